"""Genuine deliveries wherever AWS runs SNS and however they reach us (issue 11).

Through the public interface only: :class:`SnsMiddleware` over WebTest and
:class:`SnsVerifier`, with messages signed by the testing kit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import webtest

from snsmiddleware import SnsMiddleware
from snsmiddleware.testing import MessageSigner, post_sns

from .conftest import PATH, EchoApp

MakeMiddleware = Callable[..., SnsMiddleware]


def reason(response: webtest.TestResponse) -> str:
    return str(response.headers["X-SNS-Reason"])


# --- fetch_certificate may return str ---------------------------------------------------------


def test_a_fetcher_returning_pem_text_works(
    make_middleware: MakeMiddleware, signer: MessageSigner, echo_app: EchoApp
) -> None:
    """What requests' ``response.text`` and most HTTP helpers return."""

    def fetch_text(url: str) -> str:
        return signer.fetch_certificate(url).decode("ascii")

    app = webtest.TestApp(make_middleware(fetch_certificate=fetch_text))
    assert post_sns(app, PATH, signer.notification("x")).status_int == 200
    assert len(echo_app.calls) == 1


@pytest.mark.parametrize(
    "returned",
    [pytest.param(None, id="none"), pytest.param(7, id="int"), pytest.param(["pem"], id="list")],
)
def test_a_fetcher_returning_something_else_is_a_logged_503(
    make_middleware: MakeMiddleware,
    signer: MessageSigner,
    echo_app: EchoApp,
    caplog: pytest.LogCaptureFixture,
    returned: Any,
) -> None:
    """A broken fetch_certificate is our bug, not a forgery: SNS retries while it is fixed."""
    app = webtest.TestApp(make_middleware(fetch_certificate=lambda url: returned))
    with caplog.at_level(logging.ERROR, logger="snsmiddleware.certs"):
        response = post_sns(app, PATH, signer.notification("x"))
    assert (response.status_int, reason(response)) == (503, "certificate_unavailable")
    assert "Traceback" not in response.text
    assert echo_app.calls == []
    assert any(
        f"fetch_certificate returned {type(returned).__name__}" in record.getMessage()
        for record in caplog.records
    )


def test_pem_text_with_non_ascii_is_a_bad_certificate(
    make_middleware: MakeMiddleware, signer: MessageSigner
) -> None:
    app = webtest.TestApp(make_middleware(fetch_certificate=lambda url: "é-----BEGIN"))
    response = post_sns(app, PATH, signer.notification("x"))
    assert (response.status_int, reason(response)) == (403, "bad_certificate")
