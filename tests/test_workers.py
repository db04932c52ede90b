"""Several server processes on one port sharing the de-duplication store: ``serve
--workers 2`` and gunicorn with the ``snsmiddleware.server:make_app()`` factory. Signed
deliveries, each sent twice at once, give exactly one email each across the processes."""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from snsmiddleware import ConfigurationError
from snsmiddleware.devmode import load_or_create_dev_ca, sample_budget_alert
from snsmiddleware.prefork import check_shared_store, check_single_process_options
from snsmiddleware.server import EMBEDDED_DEFAULTS, assemble, make_app
from snsmiddleware.testing import MessageSigner, SignedMessage, TestCA

from ._hardening_helpers import emails_in
from ._net import LocalHttpServer, free_port, serving
from ._serve_helpers import SNS_PATH, Server

TOPIC = EMBEDDED_DEFAULTS["topics"]


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if int(fields[1]) == pid and fields[0] not in {"Z", "X"}:
                found.append(int(entry.name))
    return found


def _post_each_twice_at_once(url: str, messages: list[SignedMessage]) -> list[str]:
    """Every message twice, the copies concurrently (a redelivery racing the first)."""

    def post(message: SignedMessage) -> str:
        with requests.post(url, data=message.body, headers=message.headers, timeout=30) as r:
            return f"{r.status_code} {r.headers.get('X-SNS-Reason', '')}"

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(post, [m for m in messages for _ in range(2)]))


def _alerts(signer: MessageSigner, count: int, **overrides: str) -> list[SignedMessage]:
    return [
        signer.notification(
            sample_budget_alert(f"Budget {i}")[1], Subject="AWS Budgets", **overrides
        )
        for i in range(count)
    ]


def _assert_exactly_once(answers: list[str], outbox: Path, count: int) -> None:
    # A copy that lost the race is a duplicate (200) or finds the claim held (503: SNS retries).
    assert all(a.startswith(("200", "503 in_progress")) for a in answers), answers
    assert sum(a.startswith("200") for a in answers) >= count
    emails = emails_in(outbox)
    assert len(emails) == count
    assert len({str(email["X-SNS-Message-Id"]) for email in emails}) == count


def _assert_front_door(base: str) -> None:
    """The server's own answers around the SNS path: health, readiness, 404 elsewhere."""
    for path, status in (("/healthz", 200), ("/readyz", 200), ("/elsewhere", 404)):
        with requests.get(f"{base}{path}", timeout=10) as response:
            assert response.status_code == status, (path, response.text)


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[Server, MessageSigner]]:
    """``serve --dev --workers 2`` on the embedded defaults (SQLite), and a signer it trusts."""
    port = free_port()
    server = Server(
        [sys.executable, "-m", "snsmiddleware", "serve", "--dev", "--workers", "2"]
        + ["--port", str(port)],
        tmp_path,
        port,
    )
    try:
        yield (
            server,
            MessageSigner(load_or_create_dev_ca(tmp_path / "var" / "dev-ca"), topic_arn=TOPIC),
        )
    finally:
        server.stop()


def test_serve_workers_share_the_sqlite_store_and_stop_on_sigterm(
    tmp_path: Path, two_workers: tuple[Server, MessageSigner]
) -> None:
    server, signer = two_workers
    try:
        assert len(_children(server.process.pid)) == 2
        answers = _post_each_twice_at_once(server.url, _alerts(signer, 12))
        _assert_exactly_once(answers, tmp_path / "outbox", 12)
        _assert_front_door(server.base)  # each worker serves what serve serves
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) == 0
    finally:
        server.stop()
    log = server.log.read_text()
    assert "2 worker processes serving" in log
    assert log.count("shut down in") == 2  # each worker drained on its own


def test_a_worker_that_dies_is_started_again(
    tmp_path: Path, two_workers: tuple[Server, MessageSigner]
) -> None:
    server, signer = two_workers
    first = _children(server.process.pid)
    os.kill(first[0], signal.SIGKILL)
    _post_each_twice_at_once(server.url, _alerts(signer, 4))
    children: list[int] = []
    for _ in range(200):  # each request gives the supervisor time to notice and respawn
        children = _children(server.process.pid)
        if len(children) == 2 and first[0] not in children:
            break
        requests.get(f"http://127.0.0.1:{server.port}/", timeout=5).close()
    assert len(children) == 2 and first[0] not in children
    assert len(emails_in(tmp_path / "outbox")) == 4


def test_workers_refuse_a_per_process_store(tmp_path: Path) -> None:
    assembly = assemble({"dedupe": "memory", "workers": "2"}, {}, None)
    with pytest.raises(ConfigurationError, match="--workers needs a de-duplication store"):
        check_shared_store(assembly)


def test_workers_refuse_a_metrics_port(tmp_path: Path) -> None:
    # One metrics server per worker could not share the port: refused before any is forked.
    flags = {"dedupe": f"sqlite:{tmp_path / 'dedupe.sqlite3'}", "workers": "2"}
    assembly = assemble({**flags, "metrics_port": str(free_port())}, {}, None)
    with pytest.raises(ConfigurationError, match="--metrics-port needs one server process"):
        check_single_process_options(assembly)
    check_single_process_options(assemble(flags, {}, None))  # without it: fine


def test_the_app_factory_refuses_a_metrics_port_it_would_never_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNSMIDDLEWARE_DEDUPE", f"sqlite:{tmp_path / 'dedupe.sqlite3'}")
    monkeypatch.setenv("SNSMIDDLEWARE_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.setenv("SNSMIDDLEWARE_METRICS_PORT", str(free_port()))
    with pytest.raises(ConfigurationError, match="metrics_port is served by"):
        make_app()


@pytest.fixture
def certificate_host() -> Iterator[tuple[str, TestCA]]:
    """An emulator-style host serving the signing certificate (emulator mode trusts it)."""
    ca = TestCA()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Length", str(len(ca.certificate_pem)))
            self.end_headers()
            self.wfile.write(ca.certificate_pem)

        def log_message(self, *args: object) -> None:
            pass

    with serving(LocalHttpServer(Handler)) as server:
        yield server.base, ca


@pytest.mark.skipif(
    shutil.which("gunicorn", path=Path(sys.executable).parent) is None,
    reason="gunicorn is in the test extra",
)
def test_gunicorn_workers_with_the_app_factory_deliver_each_alert_once(
    tmp_path: Path, certificate_host: tuple[str, TestCA]
) -> None:
    base, ca = certificate_host
    port = free_port()
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    env = {
        "SNSMIDDLEWARE_EMULATOR": base,
        "SNSMIDDLEWARE_DEDUPE": f"sqlite:{tmp_path / 'var' / 'dedupe.sqlite3'}",
        "SNSMIDDLEWARE_OUTBOX": str(tmp_path / "outbox"),
    }
    server = Server(
        [gunicorn, "-w", "2", "-b", f"127.0.0.1:{port}", "snsmiddleware.server:make_app()"],
        tmp_path,
        port,
        env,
    )
    try:
        signer = MessageSigner(ca, topic_arn=TOPIC)
        alerts = _alerts(signer, 12, SigningCertURL=f"{base}/signing-cert.pem")
        answers = _post_each_twice_at_once(f"http://127.0.0.1:{port}{SNS_PATH}", alerts)
        _assert_exactly_once(answers, tmp_path / "outbox", 12)
        assert len(_children(server.process.pid)) == 2
        _assert_front_door(server.base)
    finally:
        server.stop()
