"""``import snsmiddleware`` stays cheap: boto3 and botocore load only when a feature needs them.

Each check runs in a fresh interpreter, because this test process has long imported boto3
for other tests. Building a middleware with the default ``confirm="api"`` must not import
boto3 either (it only checks that boto3 is installed); the first confirmation does.
"""

from __future__ import annotations

import pytest

from ._project import HEAVY, modules_after


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("import snsmiddleware", id="package"),
        pytest.param("import snsmiddleware.testing", id="testing-kit"),
        pytest.param("from snsmiddleware import *", id="star"),
        pytest.param(
            "from snsmiddleware import SnsMiddleware\n"
            "SnsMiddleware(lambda e, s: [], paths=['/sns'],\n"
            "              topics=['arn:aws:sns:us-east-1:123456789012:t'])",
            id="middleware-with-confirm-api",
        ),
        pytest.param(
            "from snsmiddleware import SnsVerifier\n"
            "SnsVerifier(topics=['arn:aws:sns:us-east-1:123456789012:t'])",
            id="verifier",
        ),
        pytest.param(
            "from snsmiddleware.config import to_dedupe_spec\n"
            "to_dedupe_spec('dynamodb://dedupe?region=us-east-1')",
            id="dynamodb-spec-checked",
        ),
    ],
)
def test_no_boto3_at_import(code: str) -> None:
    loaded = modules_after(code)
    assert "snsmiddleware" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_the_check_can_fail() -> None:
    """The same probe sees botocore as soon as a confirmation is attempted."""
    loaded = modules_after(
        "import snsmiddleware.confirm as c\n"
        "try:\n"
        "    c.ApiConfirmer()(None)\n"
        "except Exception:\n"
        "    pass"
    )
    assert "botocore" in loaded


# A meta-path finder that makes every WebOb import fail, as in an environment without it.
_BLOCK_WEBOB = (
    "import sys\n"
    "class _NoWebOb:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'webob' or name.startswith('webob.'):\n"
    "            raise ImportError('webob is blocked for this test')\n"
    "        return None\n"
    "sys.meta_path.insert(0, _NoWebOb())\n"
)


def test_verifier_needs_no_webob() -> None:
    """A Lambda function or a queue worker verifies messages without any WSGI stack."""
    loaded = modules_after(
        _BLOCK_WEBOB + "import snsmiddleware\n"
        "from snsmiddleware import SnsVerifier\n"
        "from snsmiddleware.signer import MessageSigner\n"
        "signer = MessageSigner()\n"
        "verifier = SnsVerifier(topics=[signer.topic_arn],\n"
        "                       fetch_certificate=signer.fetch_certificate)\n"
        "message = signer.notification('hello')\n"
        "assert verifier.verify(message.body, message.headers).message == 'hello'\n"
    )
    assert "webob" not in loaded


def test_the_webob_block_can_fail() -> None:
    """The same block makes the names built on WebOb unavailable (BudgetApp; the middleware
    calls the app without WebOb since issue 17), so the test above proves something."""
    loaded = modules_after(
        _BLOCK_WEBOB + "try:\n"
        "    from snsmiddleware.budget_app import BudgetApp\n"
        "except ImportError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('BudgetApp imported without webob')\n"
    )
    assert "webob" not in loaded


def test_the_middleware_needs_no_webob() -> None:
    """SnsMiddleware plumbs the WSGI call itself: an app on any framework, no WebOb."""
    loaded = modules_after(
        _BLOCK_WEBOB + "from snsmiddleware import SnsMiddleware\n"
        "from snsmiddleware.signer import MessageSigner\n"
        "import io\n"
        "signer = MessageSigner()\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [environ['wsgi.input'].read()]\n"
        "sns = SnsMiddleware(app, paths=['/sns'], topics=[signer.topic_arn], confirm='url',\n"
        "                    fetch_certificate=signer.fetch_certificate)\n"
        "message = signer.notification('hello')\n"
        "environ = {'REQUEST_METHOD': 'POST', 'PATH_INFO': '/sns',\n"
        "           'wsgi.input': io.BytesIO(message.body),\n"
        "           'CONTENT_LENGTH': str(len(message.body))}\n"
        "for name, value in message.headers.items():\n"
        "    environ['HTTP_' + name.upper().replace('-', '_')] = value\n"
        "body = b''.join(sns(environ, lambda status, headers, exc_info=None: None))\n"
        "assert body == message.body, body\n"
    )
    assert "webob" not in loaded
