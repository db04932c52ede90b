"""What the middleware logs per delivery: accepted deliveries at DEBUG with a counter and
an INFO line at most once a minute; refusals and failures one line each, as before."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import pytest
import webtest

from snsmiddleware import SnsMiddleware
from snsmiddleware.testing import MessageSigner, post_sns

from .conftest import PATH

MakeMiddleware = Callable[..., SnsMiddleware]
LOGGER = "snsmiddleware.middleware"


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


def test_accepted_deliveries_are_counted_and_summed_up_at_info(
    make_middleware: MakeMiddleware, signer: MessageSigner, caplog: pytest.LogCaptureFixture
) -> None:
    middleware = make_middleware()
    app = webtest.TestApp(middleware)
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    messages = [signer.notification(f"m{i}") for i in range(3)]
    for message in messages:
        assert post_sns(app, PATH, message).status_int == 200
    assert middleware.delivered == 3
    [summary] = _records(caplog, logging.INFO)  # the first; the others within the minute
    assert "delivered to the app (200 OK); 1 since the last such line, 1 since start" in summary
    assert f"message_id={messages[0].fields['MessageId']}" in summary
    debug = _records(caplog, logging.DEBUG)
    assert [m.split("message_id=")[1].split()[0] for m in debug] == [
        m.fields["MessageId"] for m in messages[1:]
    ]
    post_sns(app, PATH, messages[0])  # a duplicate: logged at INFO as before, not counted
    assert middleware.delivered == 3
    assert any("duplicate delivery ignored" in m for m in _records(caplog, logging.INFO))


def test_the_next_delivery_after_a_quiet_minute_is_logged_at_info(
    make_middleware: MakeMiddleware,
    signer: MessageSigner,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import snsmiddleware.middleware as module

    now = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    middleware = make_middleware()
    app = webtest.TestApp(middleware)
    caplog.set_level(logging.INFO, logger=LOGGER)
    for index in range(4):
        post_sns(app, PATH, signer.notification(f"m{index}"))
    now[0] += module.DELIVERY_SUMMARY_SECONDS
    post_sns(app, PATH, signer.notification("after a minute"))
    summaries = _records(caplog, logging.INFO)
    assert len(summaries) == 2
    assert "4 since the last such line, 5 since start" in summaries[1]


def test_an_app_refusal_stays_an_info_line_and_is_not_counted(
    make_middleware: MakeMiddleware, signer: MessageSigner, caplog: pytest.LogCaptureFixture
) -> None:
    def unavailable(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"later"]

    middleware = make_middleware(app=unavailable)
    caplog.set_level(logging.INFO, logger=LOGGER)
    messages = [signer.notification(f"m{index}") for index in range(2)]
    for message in messages:
        response = post_sns(webtest.TestApp(middleware), PATH, message, expect_errors=True)
        assert response.status_int == 503
    assert middleware.delivered == 0
    lines = _records(caplog, logging.INFO)  # every one, not once a minute
    assert len(lines) == 2
    for line, message in zip(lines, messages, strict=True):
        assert "delivered to the app (503 Service Unavailable)" in line
        assert f"message_id={message.fields['MessageId']}" in line


def test_an_app_that_never_calls_start_response_is_500_and_its_claim_released(
    make_middleware: MakeMiddleware, signer: MessageSigner
) -> None:
    def broken(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return [b"no status"]

    middleware = make_middleware(app=broken)
    message = signer.notification("m")
    response = post_sns(webtest.TestApp(middleware), PATH, message, expect_errors=True)
    assert response.status_int == 500 and response.headers["X-SNS-Reason"] == "app_error"
    assert middleware.dedupe.claim(message.fields["MessageId"]).state.value == "claimed"
