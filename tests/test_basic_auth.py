"""HTTP Basic auth on SNS paths (``basic_auth=``): the 401 challenge before anything is read,
correct credentials still fully verified, rotation, hostile Authorization headers, secrets
kept out of logs, and every configuration surface (Python, PasteDeploy, environment, serve
--basic-auth-file), down to a real waitress server doing SNS's challenge and response."""

from __future__ import annotations

import base64
import gc
import hmac
import io
import logging
import re
import sys
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paste.deploy import loadapp
from webtest.http import StopableWSGIServer

from snsmiddleware import ConfigurationError, SnsMiddleware, get_message
from snsmiddleware.basicauth import MAX_AUTHORIZATION_CHARS, BasicAuth
from snsmiddleware.cli import main
from snsmiddleware.config import middleware_options
from snsmiddleware.server import (
    EMBEDDED_DEFAULTS,
    build_application,
    load_ini_application,
    options_from_env,
    settings_from,
)
from snsmiddleware.testing import MessageSigner, post_sns

from ._answers import reason
from ._hardening_helpers import emails_in
from ._net import free_port
from ._serve_helpers import Server, refuse_to_serve
from .conftest import PATH, TOPIC, EchoApp, RecordingConfirmer

MakeMiddleware = Callable[..., SnsMiddleware]
USER, PASSWORD = "sns", "correct horse:battery-staple"
CHALLENGE = 'Basic realm="snsmiddleware", charset="UTF-8"'


def basic(user: str | bytes, password: str | bytes) -> str:
    """An Authorization header value for these credentials (bytes are sent as they are)."""
    raw = (user if isinstance(user, bytes) else user.encode()) + b":"
    raw += password if isinstance(password, bytes) else password.encode()
    return "Basic " + base64.b64encode(raw).decode()


@pytest.fixture
def guarded(make_middleware: MakeMiddleware) -> webtest.TestApp:
    return webtest.TestApp(make_middleware(basic_auth=(USER, PASSWORD)), lint=True)


class ExplodingInput:
    """A wsgi.input that fails the test if anything reads it."""

    def read(self, *args: Any) -> bytes:
        raise AssertionError("the body was read before the credentials were checked")

    readline = readlines = read

    def __iter__(self) -> Iterator[bytes]:
        raise AssertionError("the body was read before the credentials were checked")


def call(app: SnsMiddleware, **environ: Any) -> tuple[str, dict[str, str], bytes]:
    """Call the middleware as a WSGI server would, with a body nobody may read."""
    base = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": PATH,
        "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_LENGTH": "999999999",
        "CONTENT_TYPE": "text/plain; charset=UTF-8",
        "HTTP_X_AMZ_SNS_MESSAGE_TYPE": "Notification",
        "wsgi.input": ExplodingInput(),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }
    base.update(environ)
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app(base, start_response))
    return seen["status"], seen["headers"], body


# --- the challenge: before method, body, parsing or I/O -----------------------------------


@pytest.mark.parametrize("method", ["POST", "GET", "PUT", "HEAD"])
def test_no_credentials_get_the_challenge_before_anything_is_read(
    make_middleware: MakeMiddleware, signer: MessageSigner, echo_app: EchoApp, method: str
) -> None:
    app = make_middleware(basic_auth=(USER, PASSWORD))
    status, headers, body = call(app, REQUEST_METHOD=method)
    assert status == "401 Unauthorized"
    assert headers["WWW-Authenticate"] == CHALLENGE
    assert headers["X-SNS-Reason"] == "unauthorized"
    assert body == b"unauthorized: credentials required\n"
    assert echo_app.calls == [] and signer.fetched == []


def test_wrong_credentials_are_refused_before_the_body_is_read(
    make_middleware: MakeMiddleware, echo_app: EchoApp
) -> None:
    app = make_middleware(basic_auth=(USER, PASSWORD))
    status, headers, _ = call(app, HTTP_AUTHORIZATION=basic(USER, "wrong"))
    assert status == "401 Unauthorized" and headers["WWW-Authenticate"] == CHALLENGE
    assert echo_app.calls == []


def test_right_credentials_with_another_method_get_405(guarded: webtest.TestApp) -> None:
    response = guarded.get(PATH, headers={"Authorization": basic(USER, PASSWORD)}, status=405)
    assert response.headers["Allow"] == "POST"
    assert "WWW-Authenticate" not in response.headers


def test_realm_is_configurable(make_middleware: MakeMiddleware) -> None:
    app = webtest.TestApp(make_middleware(basic_auth=(USER, PASSWORD), basic_auth_realm="alerts"))
    response = app.post(PATH, b"{}", status=401)
    assert response.headers["WWW-Authenticate"] == 'Basic realm="alerts", charset="UTF-8"'


def test_other_paths_are_untouched(guarded: webtest.TestApp, echo_app: EchoApp) -> None:
    guarded.post("/elsewhere", b"no credentials", content_type="text/plain", status=200)
    guarded.get(PATH + "/child", headers={"Authorization": "Basic Zm9vOmJhcg=="}, status=200)
    assert echo_app.calls[1]["environ"]["HTTP_AUTHORIZATION"] == "Basic Zm9vOmJhcg=="


# --- correct credentials: full verification follows ---------------------------------------


def test_correct_credentials_lead_to_full_verification(
    guarded: webtest.TestApp,
    versioned_signer: MessageSigner,
    echo_app: EchoApp,
    confirmer: RecordingConfirmer,
) -> None:
    auth = {"Authorization": basic(USER, PASSWORD)}
    message = versioned_signer.notification("over budget")
    response = post_sns(guarded, PATH, message, headers=auth)
    assert response.status_int == 200
    [delivered] = echo_app.calls
    assert get_message(delivered["environ"]).message == "over budget"
    assert delivered["body"] == message.body
    assert "HTTP_AUTHORIZATION" not in delivered["environ"]  # the app never sees the secret
    forged = versioned_signer.notification("x").tampered(Message="pay me")
    response = post_sns(guarded, PATH, forged, headers=auth)
    assert (response.status_int, reason(response)) == (403, "bad_signature")
    response = post_sns(guarded, PATH, versioned_signer.subscription_confirmation(), headers=auth)
    assert reason(response) == "subscription_confirmed" and len(confirmer.confirmed) == 1
    assert len(echo_app.calls) == 1


def test_a_genuine_message_without_credentials_is_challenged(
    guarded: webtest.TestApp, signer: MessageSigner, echo_app: EchoApp
) -> None:
    response = post_sns(guarded, PATH, signer.notification("hi"))
    assert (response.status_int, reason(response)) == (401, "unauthorized")
    assert echo_app.calls == [] and signer.fetched == []


def test_rotation_accepts_each_configured_pair(
    make_middleware: MakeMiddleware, signer: MessageSigner
) -> None:
    app = webtest.TestApp(
        make_middleware(basic_auth=[("sns", "old-secret"), ("sns", "new-secret"), ("b", "x")])
    )
    for user, password in [("sns", "old-secret"), ("sns", "new-secret"), ("b", "x")]:
        headers = {"Authorization": basic(user, password)}
        assert post_sns(app, PATH, signer.notification(user), headers=headers).status_int == 200
    for user, password in [("sns", "x"), ("b", "old-secret"), ("nobody", "new-secret")]:
        headers = {"Authorization": basic(user, password)}
        response = post_sns(app, PATH, signer.notification("x"), headers=headers)
        assert response.status_int == 401
        assert response.text == "unauthorized: wrong user name or password\n"


def test_every_pair_is_compared_over_fixed_length_digests(
    make_middleware: MakeMiddleware, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    auth = BasicAuth([("first", "p" * 3), ("second", "q" * 300), ("third", "r")])
    for user, password in [("first", "ppp"), ("third", "r"), ("x", "y" * 1000)]:
        compared.clear()
        try:
            auth.check(basic(user, password))
        except Exception:
            assert user == "x"
        # user and password against all three pairs, even when the first pair matched,
        # and always 32-byte digests: neither which pair nor a length shows in the timing
        assert compared == [(32, 32)] * 6


@pytest.mark.parametrize(
    ("user", "password"),
    [
        pytest.param("sns", "wrong", id="wrong-password"),
        pytest.param("other", PASSWORD, id="wrong-user"),
        pytest.param("SNS", PASSWORD, id="user-case"),
        pytest.param(USER, PASSWORD + " ", id="password-suffix"),
        pytest.param(USER, PASSWORD[:-1], id="password-prefix"),
        pytest.param(USER, "", id="empty-password"),
        pytest.param("", PASSWORD, id="empty-user"),
        pytest.param(USER + ":" + PASSWORD, "", id="all-in-user"),
        pytest.param(USER.encode("utf-16"), PASSWORD, id="utf16-user"),
        pytest.param(USER, b"\xff\xfe" + PASSWORD.encode(), id="not-utf8"),
    ],
)
def test_wrong_credentials_are_401(
    guarded: webtest.TestApp, echo_app: EchoApp, user: str | bytes, password: str | bytes
) -> None:
    response = guarded.post(
        PATH, b"{}", headers={"Authorization": basic(user, password)}, status=401
    )
    assert response.headers["WWW-Authenticate"] == CHALLENGE
    assert reason(response) == "unauthorized"
    assert echo_app.calls == []


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        pytest.param("Basic", "no ':'", id="scheme-only"),
        pytest.param("Basic    ", "no ':'", id="blank-token"),
        pytest.param("   ", "credentials required", id="blank"),
        pytest.param("Basic !!!!", "not valid base64", id="bad-alphabet"),
        pytest.param("Basic c25zO", "not valid base64", id="bad-length"),
        pytest.param("Basic c25z OnBhc3M=", "not valid base64", id="space-inside"),
        pytest.param("Basic " + base64.b64encode(b"no-colon").decode(), "no ':'", id="no-colon"),
        pytest.param("Basic c25zOnDp", "wrong", id="latin1-bytes"),
        pytest.param("Basic é9ù", "not valid base64", id="non-ascii-token"),
        pytest.param("Bearer abc", "only Basic", id="bearer"),
        pytest.param('Digest username="sns", realm="x"', "only Basic", id="digest"),
        pytest.param("Basic " + "A" * MAX_AUTHORIZATION_CHARS, "too long", id="huge"),
        pytest.param("Basic " + base64.b64encode(b"sns:****").decode(), "Request", id="masked"),
    ],
)
def test_malformed_authorization_headers_are_401_never_500(
    make_middleware: MakeMiddleware, echo_app: EchoApp, header: str, detail: str
) -> None:
    app = make_middleware(basic_auth=(USER, PASSWORD))
    status, headers, body = call(app, HTTP_AUTHORIZATION=header)
    assert status == "401 Unauthorized" and headers["WWW-Authenticate"] == CHALLENGE
    assert body.startswith(b"unauthorized: ") and detail.encode() in body
    assert echo_app.calls == []


def test_scheme_is_case_insensitive_and_padding_optional(
    guarded: webtest.TestApp, signer: MessageSigner
) -> None:
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for header in (f"basic {token}", f"BASIC   {token.rstrip('=')}", f"  Basic {token}  "):
        response = post_sns(
            guarded, PATH, signer.notification(header), headers={"Authorization": header}
        )
        assert response.status_int == 200, header


def test_unicode_credentials_are_utf8(
    make_middleware: MakeMiddleware, signer: MessageSigner
) -> None:
    app = webtest.TestApp(make_middleware(basic_auth=("usuário", "señal-ñ")))
    ok = {"Authorization": basic("usuário".encode(), "señal-ñ".encode())}
    assert post_sns(app, PATH, signer.notification("x"), headers=ok).status_int == 200
    latin1 = {"Authorization": basic("usuário".encode("latin-1"), "señal-ñ".encode("latin-1"))}
    assert post_sns(app, PATH, signer.notification("y"), headers=latin1).status_int == 401


HEADER_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=300)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    header=HEADER_TEXT
    | st.binary(max_size=200).map(lambda raw: "Basic " + base64.b64encode(raw).decode())
    | st.tuples(HEADER_TEXT, HEADER_TEXT).map(
        lambda pair: basic(pair[0].encode("latin-1"), pair[1].encode("latin-1"))
    )
)
def test_any_authorization_header_is_401_with_the_challenge(
    make_middleware: MakeMiddleware, header: str
) -> None:
    app = make_middleware(basic_auth=[(USER, PASSWORD), ("b", "second")])
    status, headers, body = call(app, HTTP_AUTHORIZATION=header)
    assert status == "401 Unauthorized"
    assert headers["WWW-Authenticate"] == CHALLENGE and body.startswith(b"unauthorized: ")


# --- logs and reprs never show a password -------------------------------------------------


def test_logs_never_show_the_password_and_the_challenge_is_routine(
    guarded: webtest.TestApp, signer: MessageSigner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="snsmiddleware")
    assert post_sns(guarded, PATH, signer.notification("x")).status_int == 401
    [challenge] = caplog.records
    assert challenge.levelno == logging.INFO and "unauthorized" in challenge.getMessage()
    caplog.clear()
    headers = {"Authorization": basic(USER, PASSWORD[:-1])}
    assert post_sns(guarded, PATH, signer.notification("x"), headers=headers).status_int == 401
    post_sns(
        guarded, PATH, signer.notification("y"), headers={"Authorization": basic(USER, PASSWORD)}
    )
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]
    text = caplog.text + repr(guarded.app.basic_auth)
    assert PASSWORD[:-1] not in text and base64.b64encode(PASSWORD.encode()).decode() not in text
    assert repr(guarded.app.basic_auth) == "BasicAuth(users=('sns',), realm='snsmiddleware')"


# --- configuration: Python ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("basic_auth", "message"),
    [
        pytest.param(("", "secret-1"), "user name is empty", id="empty-user"),
        pytest.param(("a:b", "secret-1"), "cannot contain ':'", id="colon-in-user"),
        pytest.param(("sns", ""), "password is empty", id="empty-password"),
        pytest.param(("sns\n", "secret-1"), "control characters", id="control-in-user"),
        pytest.param(("sns", "secret-1\x00"), "control characters", id="control-in-password"),
        pytest.param(("sns", "secret-1\ud800"), "UTF-8", id="lone-surrogate"),
        pytest.param(("sns", 12345), "must be strings", id="non-str-password"),
        pytest.param((None, "secret-1"), "must be strings", id="non-str-user"),
        pytest.param([("sns", "secret-1"), ("x",)], "item 2 is not a (user, password)", id="short"),
        pytest.param([("a", "b", "secret-1")], "item 1 is not a", id="triple"),
        pytest.param(42, "not int", id="number"),
        pytest.param(b"sns:secret-1", "not bytes", id="bytes"),
        pytest.param([], "no (user, password) pair", id="empty-list"),
        pytest.param("", "no user:password pair", id="empty-string"),
        pytest.param("sns:ok secret-1", "pair 2 has no ':'", id="string-without-colon"),
    ],
)
def test_bad_credentials_fail_at_build_time_without_echoing_secrets(
    make_middleware: MakeMiddleware, basic_auth: Any, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)) as err:
        make_middleware(basic_auth=basic_auth)
    assert "secret-1" not in str(err.value)


@pytest.mark.parametrize("realm", ["", 'a"b', "a\\b", "caf\u00e9", "x" * 201, "tab\there"])
def test_bad_realm_fails_at_build_time(make_middleware: MakeMiddleware, realm: str) -> None:
    with pytest.raises(ConfigurationError, match="basic_auth_realm"):
        make_middleware(basic_auth=(USER, PASSWORD), basic_auth_realm=realm)


def test_realm_without_credentials_is_a_mistake(make_middleware: MakeMiddleware) -> None:
    with pytest.raises(ConfigurationError, match="basic_auth_realm needs basic_auth"):
        make_middleware(basic_auth_realm="alerts")


def test_string_form_splits_pairs_on_whitespace_and_at_the_first_colon(
    make_middleware: MakeMiddleware, signer: MessageSigner
) -> None:
    app = make_middleware(basic_auth="sns:pa:ss\n  next:p@ss/w0rd ")
    assert app.basic_auth is not None and app.basic_auth.users == ("sns", "next")
    testapp = webtest.TestApp(app)
    for user, password in [("sns", "pa:ss"), ("next", "p@ss/w0rd")]:
        headers = {"Authorization": basic(user, password)}
        assert post_sns(testapp, PATH, signer.notification(user), headers=headers).status_int == 200


# --- configuration: PasteDeploy, environment, serve ---------------------------------------


def filter_ini(path: Path, options: str) -> Path:
    """A PasteDeploy pipeline: our filter on /sns, with ``options``, in front of an echo app."""
    path.write_text(
        "[app:echo]\nuse = call:tests.test_config:echo_app_factory\n\n"
        "[filter:sns]\nuse = egg:snsmiddleware#sns\npaths = /sns\n"
        f"topics = {TOPIC}\nconfirm = url\n{options}\n\n"
        "[pipeline:main]\npipeline = sns echo\n"
    )
    return path


def test_paste_filter_options(tmp_path: Path) -> None:
    ini = filter_ini(
        tmp_path / "sns.ini",
        "basic_auth =\n    sns:old-secret\n    sns:new:secret\nbasic_auth_realm = budget alerts",
    )
    app = loadapp(f"config:{ini}")
    assert isinstance(app, SnsMiddleware) and app.basic_auth is not None
    testapp = webtest.TestApp(app)
    response = testapp.post("/sns", b"{}", status=401)
    assert response.headers["WWW-Authenticate"] == 'Basic realm="budget alerts", charset="UTF-8"'
    response = testapp.post(
        "/sns", b"{}", headers={"Authorization": basic("sns", "new:secret")}, status=400
    )
    assert reason(response) == "unknown_type"  # past the credentials, on to the envelope
    ini.write_text(ini.read_text().replace("sns:old-secret", "old-secret"))
    with pytest.raises(ConfigurationError, match=r"\[sns\] basic_auth: .*pair 1 has no ':'") as err:
        loadapp(f"config:{ini}")
    assert "old-secret" not in str(err.value)


def test_middleware_options_convert_the_string_form() -> None:
    options = middleware_options({"basic_auth": "a:1 b:2:3", "basic_auth_realm": " r "})
    assert options == {"basic_auth": [("a", "1"), ("b", "2:3")], "basic_auth_realm": "r"}


def test_environment_variable_through_the_server_configuration(signer: MessageSigner) -> None:
    env = options_from_env(
        {"SNSMIDDLEWARE_BASIC_AUTH": "sns:s3cret-env", "SNSMIDDLEWARE_BASIC_AUTH_REALM": "alerts"}
    )
    settings = settings_from({**EMBEDDED_DEFAULTS, **env})
    assert "s3cret-env" not in repr(settings)
    app = build_application(settings)
    assert app.basic_auth is not None and app.basic_auth.users == ("sns",)
    response = webtest.TestApp(app).post(PATH, b"{}", status=401)
    assert response.headers["WWW-Authenticate"] == 'Basic realm="alerts", charset="UTF-8"'
    with pytest.raises(ConfigurationError, match="pair 1 has no ':'") as err:
        build_application(settings_from({**EMBEDDED_DEFAULTS, "basic_auth": "s3cret-env"}))
    assert "s3cret-env" not in str(err.value)


def test_serve_reads_the_environment_and_never_logs_the_password(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    served: list[Any] = []

    class RecordingServer:
        """Stands in for the graceful waitress server: records the app, serves nothing."""

        port = 8080

        def __init__(self, app: Any, **options: Any) -> None:
            served.append(app)

        def run(self) -> None:
            pass

    monkeypatch.setattr("snsmiddleware.graceful.GracefulServer", RecordingServer)
    monkeypatch.setenv("SNSMIDDLEWARE_BASIC_AUTH", "sns:old-s3cret sns:new-s3cret")
    caplog.set_level(logging.INFO)
    assert main(["serve"]) == 0
    [front_door] = served
    app = front_door.app  # behind the server's own /healthz, /readyz and 404
    assert isinstance(app, SnsMiddleware) and app.basic_auth is not None
    assert "basic auth     on: users sns, realm 'snsmiddleware'" in caplog.text
    assert "s3cret" not in caplog.text


def test_ini_takes_credentials_from_the_environment(tmp_path: Path) -> None:
    ini = filter_ini(tmp_path / "server.ini", "basic_auth = %(SNSMIDDLEWARE_BASIC_AUTH)s")
    app, _ = load_ini_application(ini, {"SNSMIDDLEWARE_BASIC_AUTH": "sns:from-env%1"})
    assert isinstance(app, SnsMiddleware)
    testapp = webtest.TestApp(app)
    assert reason(testapp.post("/sns", b"{}", status=401)) == "unauthorized"
    response = testapp.post(
        "/sns", b"{}", headers={"Authorization": basic("sns", "from-env%1")}, status=400
    )
    assert reason(response) == "unknown_type"


def test_the_short_interpolation_that_lost_basic_auth_is_refused(tmp_path: Path) -> None:
    # PasteDeploy drops an option named like a default it is given: this line used to vanish
    # and the server ran without Basic auth.
    ini = filter_ini(tmp_path / "server.ini", "basic_auth = %(basic_auth)s")
    with pytest.raises(ConfigurationError, match=r"write basic_auth = %\(SNSMIDDLEWARE_BASIC_AUTH"):
        load_ini_application(ini, {"SNSMIDDLEWARE_BASIC_AUTH": "sns:from-env"})


def test_basic_auth_file_flag_is_for_the_embedded_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("snsmiddleware.graceful.GracefulServer", refuse_to_serve)
    secret = tmp_path / "basic-auth"
    secret.write_text("sns:file-s3cret\n")
    ini = tmp_path / "x.ini"
    ini.write_text("[app:main]\nuse = egg:snsmiddleware#budget_app\n")
    assert main(["serve", "--config", str(ini), "--basic-auth-file", str(secret)]) == 2
    assert "set basic_auth in the INI" in capsys.readouterr().err
    assert main(["serve", "--basic-auth-file", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err


def test_dev_server_with_basic_auth_file_and_send_test_alert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "basic-auth"
    secret.write_text("sns:f1le-s3cret\n")
    port = free_port()
    argv = [sys.executable, "-m", "snsmiddleware", "serve", "--dev", "--port", str(port)]
    server = Server([*argv, "--basic-auth-file", str(secret)], tmp_path, port)
    dev_ca = str(tmp_path / "var" / "dev-ca")
    try:
        assert main(["send-test-alert", server.url, "--dev-ca", dev_ca]) == 1
        output = capsys.readouterr().out
        assert "answer 401 unauthorized" in output and "wants Basic auth" in output
        with_credentials = server.url.replace("http://", "http://sns:f1le-s3cret@")
        assert main(["send-test-alert", with_credentials, "--dev-ca", dev_ca]) == 0
        output = capsys.readouterr().out
        assert "answer 200" in output and "to     http://sns:***@127.0.0.1" in output
        assert "f1le-s3cret" not in output
    finally:
        server.stop()
    assert len(emails_in(tmp_path / "outbox")) == 1
    log = server.log.read_text()
    assert "basic auth     on: users sns" in log and "f1le-s3cret" not in log


# --- a real server: SNS's challenge and response --------------------------------------------


class SeenAuthorization:
    """Outermost WSGI layer recording whether each request carried credentials."""

    def __init__(self, app: SnsMiddleware) -> None:
        self.app = app
        self.seen: list[bool] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.seen.append("HTTP_AUTHORIZATION" in environ)
        return self.app(environ, start_response)


@pytest.fixture
def waitress_server(make_middleware: MakeMiddleware) -> Iterator[tuple[str, SeenAuthorization]]:
    recorder = SeenAuthorization(make_middleware(basic_auth=[("sns", "old"), (USER, PASSWORD)]))
    server = StopableWSGIServer.create(recorder, host="127.0.0.1", expose_tracebacks=False)
    # listening once created; webtest's wait() would leak its probe connection
    try:
        yield f"http://127.0.0.1:{server.adj.port}", recorder
    finally:
        server.shutdown(debug=True)


def post_like_sns(url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    """What SNS does with https://user:password@host/path: POST without the credentials,
    and only after a 401 Basic challenge with a realm, POST again with them."""
    parts = requests.utils.urlparse(url)
    bare = url.replace(f"{parts.username}:{parts.password}@", "")
    first = requests.post(bare, data=body, headers=headers, timeout=10, allow_redirects=False)
    challenge = first.headers.get("WWW-Authenticate", "")
    if first.status_code != 401 or not challenge.startswith("Basic realm="):
        return first
    user, password = requests.utils.get_auth_from_url(url)
    return requests.post(bare, data=body, headers=headers, timeout=10, auth=(user, password))


def test_challenge_and_response_over_waitress(
    waitress_server: tuple[str, SeenAuthorization], signer: MessageSigner, echo_app: EchoApp
) -> None:
    base, recorder = waitress_server
    message = signer.notification("over budget")
    url = base.replace("http://", f"http://{USER}:{requests.utils.quote(PASSWORD)}@") + PATH
    response = post_like_sns(url, message.body, message.headers)
    assert response.status_code == 200 and response.text == "app saw /sns/budgets"
    assert recorder.seen == [False, True]
    response = post_like_sns(
        base.replace("http://", "http://sns:old@") + PATH, message.body, message.headers
    )
    assert (response.status_code, response.headers["X-SNS-Reason"]) == (200, "duplicate")
    response = post_like_sns(
        base.replace("http://", "http://sns:nope@") + PATH, message.body, message.headers
    )
    assert (response.status_code, response.headers["X-SNS-Reason"]) == (401, "unauthorized")
    assert len(echo_app.calls) == 1


def test_requests_with_credentials_in_the_url(
    waitress_server: tuple[str, SeenAuthorization], signer: MessageSigner
) -> None:
    base, recorder = waitress_server
    message = signer.notification("preemptive")
    url = base.replace("http://", "http://sns:old@") + PATH
    response = requests.post(url, data=message.body, headers=message.headers, timeout=10)
    assert response.status_code == 200 and recorder.seen == [True]


def test_a_standard_client_understands_the_challenge(
    waitress_server: tuple[str, SeenAuthorization], signer: MessageSigner
) -> None:
    """urllib's Basic handler retries only after a challenge it can parse, as SNS does."""
    base, recorder = waitress_server
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, base, USER, PASSWORD)
    opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(passwords))
    message = signer.notification("via urllib")
    request = urllib.request.Request(base + PATH, data=message.body, headers=message.headers)
    with opener.open(request, timeout=10) as response:
        assert response.status == 200
    assert recorder.seen == [False, True]
    wrong_passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    wrong_passwords.add_password(None, base, USER, "wrong")
    wrong = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(wrong_passwords))
    request = urllib.request.Request(base + PATH, data=message.body, headers=message.headers)
    with pytest.raises(urllib.error.HTTPError) as refused:
        wrong.open(request, timeout=10)
    assert refused.value.code == 401
    refused.value.close()
    assert recorder.seen == [False, True, False, True]
    # urllib's Basic handler leaves each challenge's 401 response to the garbage collector:
    # collect them here, so their "unclosed socket" warnings cannot fail a later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
