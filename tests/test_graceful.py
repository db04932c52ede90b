"""Graceful shutdown of ``snsmiddleware serve``: SIGTERM and SIGINT let the delivery in
flight finish (its email sent, its 200 answered), stop accepting, and release the claims of
deliveries that outlive the shutdown timeout."""

from __future__ import annotations

import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ._crash_helpers import ServeProcess, budget_alert, dev_signer
from ._mail_helpers import SmtpServer, smtp_server


@pytest.fixture
def slow_smtp() -> Iterator[SmtpServer]:
    with smtp_server("none") as server:
        yield server


def smtp_env(smtp: SmtpServer, **extra: str) -> dict[str, str]:
    return {
        "mailer": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": str(smtp.port),
        "smtp_security": "none",
        **extra,
    }


def post_in_background(url: str, message: object) -> tuple[threading.Thread, list[object]]:
    answers: list[object] = []

    def post() -> None:
        try:
            answers.append(
                requests.post(
                    url,
                    data=message.body,  # type: ignore[attr-defined]
                    headers=message.headers,  # type: ignore[attr-defined]
                    timeout=30,
                )
            )
        except requests.RequestException as exc:
            answers.append(exc)

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread, answers


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_lets_the_delivery_in_flight_finish_then_stops_accepting(
    signum: int, tmp_path: Path, slow_smtp: SmtpServer
) -> None:
    slow_smtp.handler.data_delay = 1.5
    server = ServeProcess(tmp_path, smtp_env(slow_smtp)).start()
    try:
        thread, answers = post_in_background(server.url, budget_alert(dev_signer(tmp_path), 1))
        assert slow_smtp.handler.data_started.wait(20)
        server.signal(signum)
        thread.join(30)
        [answer] = answers
        assert isinstance(answer, requests.Response), answer
        assert (answer.status_code, answer.headers["X-SNS-Reason"]) == (200, "sent")
        assert server.wait() == 0
    finally:
        server.stop()
    assert len(slow_smtp.received) == 1
    with pytest.raises(requests.ConnectionError):
        requests.post(server.url, data=b"{}", timeout=5)
    log = server.log.read_text()
    assert "shutting down gracefully" in log
    assert "1 delivery(ies) were in flight, 0 abandoned" in log


def test_delivery_outliving_the_shutdown_timeout_has_its_claim_released(
    tmp_path: Path, slow_smtp: SmtpServer
) -> None:
    slow_smtp.handler.data_delay = 4.0
    server = ServeProcess(tmp_path, smtp_env(slow_smtp, shutdown_timeout="300ms")).start()
    message = budget_alert(dev_signer(tmp_path), 2)
    try:
        thread, answers = post_in_background(server.url, message)
        assert slow_smtp.handler.data_started.wait(20)
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
        thread.join(30)
    finally:
        server.stop()
    log = server.log.read_text()
    assert "1 delivery(ies) were in flight, 1 abandoned" in log
    assert "claim released message_id=" + message.fields["MessageId"] in log
    with sqlite3.connect(tmp_path / "var" / "dedupe.sqlite3") as db:
        rows = db.execute(
            "SELECT key FROM sns_claims WHERE key = ?", (message.fields["MessageId"],)
        ).fetchall()
    assert rows == []  # released: the redelivery runs at once, whoever receives it
