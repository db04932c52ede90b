"""What the running server says besides SNS: 404 off the SNS paths, /healthz and /readyz,
the waitress body limit, the start-up summary and a port that is taken. Real `serve`
processes (waitress) where the behaviour is the server's; WebTest for the front door alone."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import webtest

from snsmiddleware import SnsMiddleware
from snsmiddleware.budget_app import BudgetApp
from snsmiddleware.cli import main
from snsmiddleware.frontdoor import Readiness, ReadinessCheck
from snsmiddleware.mail import FileOutbox, SmtpMailer
from snsmiddleware.server import front_door

from ._hardening_helpers import emails_in
from ._localstack import wait_for
from ._mail_helpers import LOCALHOST, smtp_server, tls_contexts
from ._net import free_port
from ._redis_helpers import start_redis
from ._serve_helpers import SNS_PATH, Server, serve_argv
from .conftest import TOPIC, EchoApp


def start(tmp_path: Path, *flags: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    return Server(serve_argv("--port", str(port), *flags), tmp_path, port, env=env)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """`snsmiddleware serve --dev` on the embedded defaults, in an empty directory."""
    running = start(tmp_path, "--dev")
    yield running
    running.stop()


def get(url: str, method: str = "GET", **kwargs: object) -> tuple[int, str, str]:
    """Status, X-SNS-Reason and body of one request (the response is closed)."""
    with requests.request(method, url, timeout=10, **kwargs) as response:  # type: ignore[arg-type]
        return response.status_code, response.headers.get("X-SNS-Reason", ""), response.text


# --- 404 off the SNS paths ------------------------------------------------------------------


def test_paths_that_are_not_sns_endpoints_answer_404_logged_at_info(server: Server) -> None:
    for method, path in [("GET", "/"), ("POST", "/"), ("GET", "/favicon.ico"), ("PUT", "/x")]:
        assert get(server.base + path, method) == (
            404,
            "not_found",
            "not_found: there is no SNS endpoint at this path\n",
        )
    with requests.head(server.base + "/", timeout=10) as response:
        assert (response.status_code, response.content) == (404, b"")
    server.stop()
    log = server.log.read_text()
    assert "INFO snsmiddleware.frontdoor: not found: GET '/' is not an SNS endpoint" in log
    assert "ERROR" not in log and "Traceback" not in log and "not_verified" not in log


def test_a_signed_alert_to_a_mistyped_path_gets_404_and_a_warning_naming_the_paths(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mistyped = server.base + "/sns/budget"
    assert main(["send-test-alert", mistyped, "--dev-ca", str(tmp_path / "var" / "dev-ca")]) == 1
    assert "answer 404 not_found" in capsys.readouterr().out
    assert emails_in(tmp_path / "outbox") == []
    server.stop()
    [warning] = [
        line for line in server.log.read_text().splitlines() if "WARNING" in line and "404" in line
    ]
    assert f"topic '{TOPIC}' came to '/sns/budget'" in warning
    assert f"its SNS paths: {SNS_PATH}" in warning


def test_the_sns_path_still_reaches_the_middleware(server: Server, tmp_path: Path) -> None:
    assert get(server.url) == (
        405,
        "method_not_allowed",
        "method_not_allowed: SNS delivers with POST\n",
    )
    assert main(["send-test-alert", server.url, "--dev-ca", str(tmp_path / "var" / "dev-ca")]) == 0
    assert len(emails_in(tmp_path / "outbox")) == 1


def test_an_ini_pipeline_around_an_app_of_ones_own_keeps_its_other_paths() -> None:
    own = SnsMiddleware(EchoApp(), paths=["/sns"], topics=[TOPIC])
    app = webtest.TestApp(front_door(own))
    assert app.get("/anything").status_int == 200  # the app's own answer
    assert app.get("/healthz").text == "ok: alive\n"
    budget = SnsMiddleware(BudgetApp(recipients={}), paths=["/sns"], topics=[TOPIC])
    assert webtest.TestApp(front_door(budget)).get("/anything", status=404).status_int == 404


# --- /healthz and /readyz -------------------------------------------------------------------


def test_health_endpoints_answer_get_and_head_without_basic_auth(tmp_path: Path) -> None:
    (tmp_path / "auth").write_text("sns:s3cret-password\n")
    running = start(tmp_path, "--basic-auth-file", str(tmp_path / "auth"))
    try:
        assert get(running.base + "/healthz") == (200, "ok", "ok: alive\n")
        assert get(running.base + "/readyz") == (200, "ok", "ok: ready\n")
        for path in ("/healthz", "/readyz"):
            with requests.head(running.base + path, timeout=10) as response:
                assert (response.status_code, response.content) == (200, b"")
            status, reason, _ = get(running.base + path, "POST")
            assert (status, reason) == (405, "method_not_allowed")
        # The SNS path still wants the credentials.
        assert get(running.url, "POST", data=b"{}")[:2] == (401, "unauthorized")
    finally:
        running.stop()
    assert "s3cret-password" not in running.log.read_text()


def test_readyz_says_503_while_the_outbox_is_unusable_and_200_once_it_is_back(
    tmp_path: Path,
) -> None:
    running = start(tmp_path)
    outbox = tmp_path / "outbox"
    try:
        assert get(running.base + "/readyz")[0] == 200
        shutil.rmtree(outbox)
        outbox.write_text("a file where the outbox directory was")  # unusable, even for root
        wait_for(lambda: get(running.base + "/readyz")[0] == 503, "/readyz to say 503")
        assert get(running.base + "/readyz") == (
            503,
            "not_ready",
            "not_ready: not usable: the mailer, the dead-letter outbox\n",
        )
        assert get(running.base + "/healthz")[0] == 200  # alive all the same
        outbox.unlink()
        (outbox / "dead-letter").mkdir(parents=True)
        wait_for(lambda: get(running.base + "/readyz")[0] == 200, "/readyz to recover")
    finally:
        running.stop()
    log = running.log.read_text()
    assert "WARNING snsmiddleware.frontdoor: not ready: the mailer, the dead-letter outbox" in log
    assert "ready again" in log
    assert str(tmp_path) not in log.split("not ready:")[1].splitlines()[0]  # no paths


def test_readyz_says_503_when_redis_stops_answering(tmp_path: Path) -> None:
    redis = start_redis(tmp_path)
    url = next(redis)
    running = start(tmp_path, env={"SNSMIDDLEWARE_DEDUPE": url})
    try:
        assert get(running.base + "/readyz") == (200, "ok", "ok: ready\n")
        redis.close()  # kills redis-server
        wait_for(lambda: get(running.base + "/readyz")[0] == 503, "/readyz to say 503")
        assert get(running.base + "/readyz")[2] == (
            "not_ready: not usable: the de-duplication store\n"
        )
    finally:
        running.stop()
        redis.close()


def test_readyz_says_503_once_the_server_is_shutting_down() -> None:
    middleware = SnsMiddleware(BudgetApp(recipients={}), paths=["/sns"], topics=[TOPIC])
    app = webtest.TestApp(front_door(middleware))
    assert app.get("/readyz").text == "ok: ready\n"
    middleware.begin_shutdown()
    # (the first answer is reused for a moment; a fresh front door asks at once)
    fresh = webtest.TestApp(front_door(middleware))
    answer = fresh.get("/readyz", status=503)
    assert answer.text == "not_ready: not usable: the server (shutting down)\n"


def test_readiness_runs_its_checks_at_most_once_per_cache_period() -> None:
    calls: list[int] = []
    now = [100.0]

    def check() -> bool:
        calls.append(1)
        return len(calls) > 1  # fails the first time only

    readiness = Readiness(
        [ReadinessCheck("the part", check)], cache_for=timedelta(seconds=2), clock=lambda: now[0]
    )
    assert [readiness.failing() for _ in range(50)] == [("the part",)] * 50
    assert len(calls) == 1  # a flood of probes is one check
    now[0] += 2.5
    assert readiness.failing() == ()
    assert len(calls) == 2


def test_a_check_that_raises_is_a_failure_not_a_crash() -> None:
    class Broken:
        def ping(self) -> bool:
            raise RuntimeError("boom")

    middleware = SnsMiddleware(EchoApp(), paths=["/sns"], topics=[TOPIC], dedupe=None)
    middleware.ledger.store = Broken()  # type: ignore[assignment]
    answer = webtest.TestApp(front_door(middleware)).get("/readyz", status=503)
    assert answer.text == "not_ready: not usable: the de-duplication store\n"


def test_mailer_and_store_pings(tmp_path: Path) -> None:
    from snsmiddleware.dedupe_sqlite import SQLiteDedupeStore

    outbox = FileOutbox(tmp_path / "outbox")
    assert outbox.ping()
    shutil.rmtree(tmp_path / "outbox")
    assert not outbox.ping()
    store = SQLiteDedupeStore(tmp_path / "d.sqlite3")
    assert store.ping()
    (tmp_path / "d.sqlite3").unlink()  # the open connection writes to a file nobody sees
    assert not store.ping()
    store.close()
    tls = tls_contexts(tmp_path)
    with smtp_server("starttls", tls) as smtp:
        assert SmtpMailer(LOCALHOST, smtp.port, ssl_context=tls.client).ping()
        assert smtp.received == []  # NOOP only: nothing sent, no login tried
    assert not SmtpMailer(LOCALHOST, free_port(), security="none", timeout=2).ping()


# --- the waitress body limit ----------------------------------------------------------------


def raw_post(port: int, content_length: int, body: bytes) -> bytes:
    """POST headers claiming ``content_length`` then only ``body``; the answer that comes
    back without the rest being sent (the socket times out, failing the test, otherwise)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(
            f"POST {SNS_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"x-amz-sns-message-type: Notification\r\n"
            f"Content-Length: {content_length}\r\n\r\n".encode()
            + body
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_waitress_refuses_a_huge_body_without_reading_it(tmp_path: Path) -> None:
    running = start(tmp_path, env={"SNSMIDDLEWARE_MAX_BODY_BYTES": "2000"})
    try:
        # 300 MB announced, 1 KB sent: the answer comes at once.
        answer = raw_post(running.port, 300 * 1024 * 1024, b"x" * 1024)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        # Up to the limit the middleware reads it and answers itself.
        assert raw_post(running.port, 2000, b"x" * 2000).startswith(b"HTTP/1.1 400 ")
        assert raw_post(running.port, 2001, b"x" * 2001).startswith(b"HTTP/1.1 413 ")
    finally:
        running.stop()
    assert "Traceback" not in running.log.read_text()


# --- start-up summary and a taken port ------------------------------------------------------


def test_serve_says_once_what_it_serves_and_no_secret(tmp_path: Path) -> None:
    (tmp_path / "auth").write_text("sns:s3cret-password\n")
    running = start(tmp_path, "--basic-auth-file", str(tmp_path / "auth"))
    running.stop()
    log = running.log.read_text()
    base = running.base
    for expected in [
        f"serving {base} (embedded defaults)",
        f"SNS endpoint   {base}{SNS_PATH}",
        f"topics         {TOPIC}",
        "signatures     SignatureVersion 1 and 2",
        "dedupe         SQLiteDedupeStore('var/dedupe.sqlite3')",
        f"mailer         FileOutbox('{tmp_path}/outbox')",
        "basic auth     on: users sns, realm 'snsmiddleware'",
        "body limit     1048576 bytes",
        "development    off",
        f"health         {base}/healthz (liveness), {base}/readyz (readiness)",
        "other paths    404 not_found",
    ]:
        assert log.count(expected) == 1, expected
    assert "s3cret-password" not in log


def test_a_taken_port_is_one_clear_line_and_exit_status_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            serve_argv("--port", str(port)),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"snsmiddleware serve: port {port} on 127.0.0.1 is in use; pick another with --port"
    )
    assert "Traceback" not in result.stderr


def test_the_summary_says_when_an_emulator_or_sha1_refusal_is_configured() -> None:
    from snsmiddleware.server import assemble, summary

    environ = {
        "SNSMIDDLEWARE_EMULATOR": "http://127.0.0.1:4566",
        "SNSMIDDLEWARE_REQUIRE_SIGNATURE_V2": "true",
        "SNSMIDDLEWARE_DEDUPE": "memory",
    }
    lines = summary(assemble({}, environ), 8080)
    assert "  signatures     SignatureVersion 2" in lines
    assert "  EMULATOR       trusting http://127.0.0.1:4566 instead of AWS" in lines
    assert lines[0].endswith("serving http://127.0.0.1:8080 (embedded defaults + environment)")


def test_a_probe_during_a_slow_check_gets_the_previous_answer_and_runs_no_check() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []
    now = [0.0]

    def check() -> bool:
        calls.append(1)
        if len(calls) > 1:  # the second check hangs (an SMTP server that stopped answering)
            started.set()
            release.wait(30)
        return True

    readiness = Readiness(
        [ReadinessCheck("the part", check)], cache_for=timedelta(seconds=1), clock=lambda: now[0]
    )
    assert readiness.failing() == ()
    now[0] = 5.0  # the answer is stale: the next probe checks again
    slow = threading.Thread(target=readiness.failing)
    slow.start()
    assert started.wait(30)
    assert readiness.failing() == ()  # the previous answer, from a probe that did not wait
    release.set()
    slow.join(30)
    assert len(calls) == 2
