"""Prometheus metrics (issue 15, item 2): fed by the observers, scraped over HTTP from a
running ``snsmiddleware serve`` (real waitress, real prometheus_client) after real signed
deliveries, one process or several sharing ``PROMETHEUS_MULTIPROC_DIR``; and the JSON log
lines that server writes, each parsed with ``json.loads``."""

from __future__ import annotations

import http.server
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import webtest
from prometheus_client.parser import text_string_to_metric_families

from snsmiddleware import ConfigurationError, SnsMiddleware
from snsmiddleware.budget_app import MailEvent, MailOutcome
from snsmiddleware.certs import CertificateEvent, CertificateEventKind
from snsmiddleware.cli import main
from snsmiddleware.dedupe import DedupeEvent
from snsmiddleware.devmode import sample_budget_alert
from snsmiddleware.metrics import SnsMetrics
from snsmiddleware.middleware import Decision
from snsmiddleware.reasons import Reason
from snsmiddleware.server import assemble
from snsmiddleware.signer import SignedMessage
from snsmiddleware.testing import MessageSigner, TestCA, post_sns

from ._net import LocalHttpServer, free_port, serving, wait_for_port
from ._project import modules_after
from ._serve_helpers import SNS_PATH, Server, refuse_to_serve
from .conftest import PATH, TOPIC, EchoApp

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(exposition: str) -> Samples:
    """``(sample name, labels) -> value`` of a Prometheus text exposition."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def decisions(found: Samples, **labels: str) -> float:
    """The sum of ``snsmiddleware_decisions_total`` over the samples matching ``labels``."""
    wanted = set(labels.items())
    return sum(
        count
        for (name, sample_labels), count in found.items()
        if name == "snsmiddleware_decisions_total" and wanted <= sample_labels
    )


# --- SnsMetrics fed directly (no WSGI, no HTTP) -----------------------------------------------


def _decision(reason: str, status: int, topic: str | None = None) -> Decision:
    verified = topic is not None
    return Decision(
        reason,
        status,
        "/sns",
        0.02,
        "Notification" if verified else None,
        "id" if verified else None,
        topic,
    )


def test_decisions_are_counted_by_outcome_reason_type_and_verified_topic() -> None:
    metrics = SnsMetrics(clock=lambda: 1_700_000_000.0)
    metrics.observe_decision(_decision(Reason.DELIVERED, 200, TOPIC))
    metrics.observe_decision(_decision(Reason.BAD_SIGNATURE, 403))
    metrics.observe_decision(_decision(Reason.CERTIFICATE_UNAVAILABLE, 503))
    found = samples(metrics.exposition().decode())
    assert (
        value(
            found,
            "snsmiddleware_decisions_total",
            outcome="accepted",
            status="200",
            reason="delivered",
            type="Notification",
            topic=TOPIC,
        )
        == 1
    )
    assert decisions(found, outcome="refused", reason="bad_signature", type="", topic="") == 1
    assert decisions(found, outcome="retry", status="503") == 1
    assert value(found, "snsmiddleware_decision_duration_seconds_count", outcome="accepted") == 1
    assert (
        value(found, "snsmiddleware_last_notification_timestamp_seconds", topic=TOPIC)
        == 1_700_000_000.0
    )


def test_topic_labels_are_bounded_and_foreign_reasons_are_other() -> None:
    metrics = SnsMetrics(max_topics=2)
    topics = [f"{TOPIC}-{n}" for n in range(4)]
    for topic in topics:
        metrics.observe_decision(_decision(Reason.DELIVERED, 200, topic))
    metrics.observe_decision(_decision("my_own_code", 400))
    found = samples(metrics.exposition().decode())
    assert decisions(found, topic=topics[0]) == decisions(found, topic=topics[1]) == 1
    assert decisions(found, topic="_other") == 2
    assert decisions(found, reason="other") == 1
    assert "my_own_code" not in metrics.exposition().decode()


def test_certificate_dedupe_and_email_events_are_counted() -> None:
    metrics = SnsMetrics()
    for kind in (CertificateEventKind.MISS, CertificateEventKind.DOWNLOAD):
        metrics.observe_certificate(CertificateEvent(kind))
    metrics.observe_certificate(CertificateEvent(CertificateEventKind.HIT))
    metrics.observe_certificate(
        CertificateEvent(CertificateEventKind.FAILURE, Reason.CERTIFICATE_UNAVAILABLE)
    )
    metrics.observe_certificate(
        CertificateEvent(CertificateEventKind.REFUSAL_REMEMBERED, Reason.CERTIFICATE_NOT_FOUND)
    )
    for event in DedupeEvent:
        metrics.observe_dedupe(event)
    metrics.observe_mail(MailEvent(MailOutcome.DEAD_LETTERED, Reason.NO_RECIPIENTS, TOPIC))
    found = samples(metrics.exposition().decode())
    assert value(found, "snsmiddleware_certificate_cache_hits_total") == 1
    assert value(found, "snsmiddleware_certificate_cache_misses_total") == 1
    assert value(found, "snsmiddleware_certificate_downloads_total") == 1
    assert (
        value(
            found,
            "snsmiddleware_certificate_download_failures_total",
            reason="certificate_unavailable",
        )
        == 1
    )
    assert (
        value(
            found,
            "snsmiddleware_certificate_refusals_remembered_total",
            reason="certificate_not_found",
        )
        == 1
    )
    for event in DedupeEvent:
        assert value(found, "snsmiddleware_dedupe_total", outcome=event.value) == 1
    assert (
        value(found, "snsmiddleware_emails_total", outcome="dead_lettered", reason="no_recipients")
        == 1
    )


def test_instrument_keeps_an_observer_already_set_even_one_that_raises(
    make_middleware: Callable[..., SnsMiddleware], signer: MessageSigner
) -> None:
    seen: list[Decision] = []

    def raising(decision: Decision) -> None:
        seen.append(decision)
        raise RuntimeError("the user's observer is broken")

    metrics = SnsMetrics()
    app = metrics.instrument(make_middleware(observer=raising))
    assert post_sns(webtest.TestApp(app), PATH, signer.notification("x")).status_int == 200
    assert len(seen) == 1  # ran first
    assert decisions(samples(metrics.exposition().decode()), reason="delivered") == 1
    with pytest.raises(ConfigurationError, match="instrument an SnsMiddleware"):
        metrics.instrument(EchoApp())  # type: ignore[arg-type]


def test_a_missing_multiprocess_directory_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "absent"))
    with pytest.raises(ConfigurationError, match="is not a directory: create it"):
        SnsMetrics()


def test_metrics_without_prometheus_client_name_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ConfigurationError, match=r"pip install snsmiddleware\[prometheus\]"):
        SnsMetrics()


def test_the_core_never_imports_prometheus_client() -> None:
    loaded = modules_after(
        "from snsmiddleware import SnsMiddleware\n"
        "from snsmiddleware.budget_app import BudgetApp\n"
        "SnsMiddleware(BudgetApp(recipients={}), paths=['/sns'], observer=print,\n"
        "              topics=['arn:aws:sns:us-east-1:123456789012:t'])"
    )
    assert "snsmiddleware" in loaded and "prometheus_client" not in loaded
    assert "prometheus_client" in modules_after("import snsmiddleware.metrics as m\nm.SnsMetrics()")


# --- configuration ---------------------------------------------------------------------------


def test_the_metrics_port_is_never_the_sns_port() -> None:
    with pytest.raises(ConfigurationError, match="metrics_port 8080 is the SNS port"):
        assemble({"metrics_port": "8080"}, {})
    with pytest.raises(ConfigurationError, match="metrics_port 9000 is the SNS port"):
        assemble({}, {"SNSMIDDLEWARE_PORT": "9000", "SNSMIDDLEWARE_METRICS_PORT": "9000"})


def test_metrics_settings_from_the_environment_and_their_defaults() -> None:
    built = assemble({}, {"SNSMIDDLEWARE_METRICS_PORT": "9108", "SNSMIDDLEWARE_LOG_FORMAT": "json"})
    assert (built.settings.metrics_port, built.settings.metrics_host) == (9108, "127.0.0.1")
    assert built.settings.log_format == "json" and built.metrics is not None
    assert built.app.observer is not None
    plain = assemble({}, {})
    assert plain.metrics is None and plain.app.observer is None
    assert plain.settings.log_format == "plain"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # An environment error names the variable (issue 15: the surface's own language).
        (
            {"SNSMIDDLEWARE_LOG_FORMAT": "xml"},
            "SNSMIDDLEWARE_LOG_FORMAT=xml: 'xml' is not one of plain, json",
        ),
        (
            {"SNSMIDDLEWARE_METRICS_PORT": "0"},
            "SNSMIDDLEWARE_METRICS_PORT=0: '0' is not a positive",
        ),
    ],
)
def test_serve_refuses_bad_metrics_and_log_settings(
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("snsmiddleware.graceful.GracefulServer", refuse_to_serve)
    for key, setting in env.items():
        monkeypatch.setenv(key, setting)
    assert main(["serve"]) == 2
    assert message in capsys.readouterr().err


def test_ini_server_section_sets_the_metrics_port(tmp_path: Path) -> None:
    pytest.importorskip("paste.deploy")
    ini = tmp_path / "server.ini"
    ini.write_text(
        "[app:main]\nuse = egg:snsmiddleware#budget_app\nfilter-with = sns\n"
        f"[filter:sns]\nuse = egg:snsmiddleware#sns\ntopics = {TOPIC}\npaths = {SNS_PATH}\n"
        "[server:main]\nuse = egg:waitress#main\nport = 8081\nmetrics_port = 9109\n"
        "log_format = json\n",
        encoding="utf-8",
    )
    built = assemble({}, {}, ini)
    assert (built.settings.metrics_port, built.settings.log_format) == (9109, "json")
    assert built.metrics is not None and built.app.observer is not None


# --- a running server, scraped over HTTP ------------------------------------------------------

#: Where the emulator-style certificate server serves the signing certificate.
CERT_PATH = "/_aws/sns/SimpleNotificationService-metrics.pem"


class CertificateHost(LocalHttpServer):
    """Serves one PEM at :data:`CERT_PATH`, counting the downloads."""

    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.downloads = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                if self.path != CERT_PATH:
                    self.send_error(404)
                    return
                outer.downloads += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.pem)))
                self.end_headers()
                self.wfile.write(outer.pem)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler)


@pytest.fixture(scope="module")
def emulator_ca() -> TestCA:
    return TestCA(common_name="localhost.localstack.cloud")


@pytest.fixture
def certificate_host(emulator_ca: TestCA) -> Iterator[CertificateHost]:
    with serving(CertificateHost(emulator_ca.certificate_pem)) as host:
        yield host


def start_server(
    cwd: Path, host: CertificateHost, env: dict[str, str] | None = None, name: str = "server"
) -> tuple[Server, int]:
    """``snsmiddleware serve`` trusting ``host`` as its SNS emulator, with metrics and JSON
    logs; returns the server and its metrics port."""
    port, metrics_port = free_port(), free_port()
    argv = [sys.executable, "-m", "snsmiddleware", "serve", "--port", str(port)]
    argv += ["--metrics-port", str(metrics_port), "--log-format", "json"]
    server = Server(
        argv,
        cwd,
        port,
        env={"SNSMIDDLEWARE_EMULATOR": host.base, **(env or {})},
        log=cwd / f"{name}.log",
    )
    try:
        wait_for_port(metrics_port, server.process)
    except RuntimeError:
        server.stop()
        raise
    return server, metrics_port


def scrape(metrics_port: int) -> str:
    with requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
        assert response.status_code == 200
        return response.text


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    with requests.post(url, data=body, headers=headers, timeout=20) as response:
        return response.status_code, response.headers.get("X-SNS-Reason", "")


def alert(signer: MessageSigner, host: CertificateHost, budget: str) -> SignedMessage:
    """A Budgets alert signed like an emulator's, its certificate served by ``host``."""
    subject, text = sample_budget_alert(budget)
    return signer.notification(text, Subject=subject, SigningCertURL=host.base + CERT_PATH)


def json_lines(log: Path) -> list[dict[str, Any]]:
    """Every line the server wrote, each one JSON object (``json.loads`` fails otherwise)."""
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line]


def test_metrics_scraped_from_a_running_server_after_real_deliveries(
    tmp_path: Path, emulator_ca: TestCA, certificate_host: CertificateHost
) -> None:
    server, metrics_port = start_server(tmp_path, certificate_host)
    try:
        signer = MessageSigner(emulator_ca, topic_arn=TOPIC)
        message = alert(signer, certificate_host, "Test Budget")
        before = time.time()
        assert post(server.url, message.body, message.headers) == (200, "sent")
        assert post(server.url, message.body, message.headers) == (200, "duplicate")
        forged = message.tampered(Message="forged")
        assert post(server.url, forged.body, forged.headers) == (403, "bad_signature")
        stranger = alert(signer, certificate_host, "x").tampered(TopicArn=TOPIC + "-stranger")
        assert post(server.url, stranger.body, stranger.headers)[0] == 403
        after = time.time()
        exposition = scrape(metrics_port)
        with requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as public:
            assert "snsmiddleware_" not in public.text  # never on the SNS port
    finally:
        server.stop()
    found = samples(exposition)
    delivered = {"outcome": "accepted", "status": "200", "type": "Notification", "topic": TOPIC}
    assert decisions(found, reason="delivered", **delivered) == 1
    assert decisions(found, reason="duplicate", **delivered) == 1
    assert decisions(found, outcome="refused", reason="bad_signature", topic="", type="") == 1
    assert decisions(found, outcome="refused", topic="", type="") == 2
    assert "stranger" not in exposition  # an unverified TopicArn is never a label
    assert value(found, "snsmiddleware_decision_duration_seconds_count", outcome="accepted") == 2
    assert value(found, "snsmiddleware_decision_duration_seconds_count", outcome="refused") == 2
    # One real download over HTTP, then the cache: the duplicate and the forgery are hits.
    assert certificate_host.downloads == 1
    assert value(found, "snsmiddleware_certificate_downloads_total") == 1
    assert value(found, "snsmiddleware_certificate_cache_misses_total") == 1
    assert value(found, "snsmiddleware_certificate_cache_hits_total") == 2
    for outcome, count in {"claimed": 1, "committed": 1, "duplicate": 1, "released": 0}.items():
        assert value(found, "snsmiddleware_dedupe_total", outcome=outcome) == count, outcome
    assert value(found, "snsmiddleware_emails_total", outcome="sent", reason="") == 1
    last = value(found, "snsmiddleware_last_notification_timestamp_seconds", topic=TOPIC)
    assert before <= last <= after

    lines = json_lines(server.log)
    by_reason = {line.get("reason"): line for line in lines if "status" in line}
    assert by_reason["delivered"]["message_id"] == message.fields["MessageId"]
    assert by_reason["delivered"]["topic_arn"] == TOPIC
    assert by_reason["delivered"]["status"] == 200 and by_reason["delivered"]["path"] == SNS_PATH
    refused = by_reason["bad_signature"]
    assert (refused["status"], refused["level"]) == (403, "WARNING")
    assert "message_id" not in refused and "topic_arn" not in refused
    assert any(
        "metrics" in line["message"] and str(metrics_port) in line["message"] for line in lines
    )


def test_hostile_text_cannot_break_a_json_log_line(
    tmp_path: Path, emulator_ca: TestCA, certificate_host: CertificateHost
) -> None:
    server, _ = start_server(tmp_path, certificate_host)
    forged_line = '{"level": "INFO", "message": "delivered to the app (200 OK)"}'
    try:
        signer = MessageSigner(emulator_ca, topic_arn=TOPIC)
        hostile = alert(signer, certificate_host, "x").tampered(
            TopicArn=f"arn:aws:sns:us-east-1:123456789012:x\n{forged_line}"
        )
        headers = {k: v for k, v in hostile.headers.items() if k != "x-amz-sns-topic-arn"}
        status, _ = post(server.url, hostile.body, headers)
        assert 400 <= status < 500
    finally:
        server.stop()
    lines = json_lines(server.log)  # every line parses: nothing was split or injected
    assert not any(line == json.loads(forged_line) for line in lines)
    [refused] = [line for line in lines if line.get("status") == status]
    assert refused["path"] == SNS_PATH


def test_several_processes_report_their_totals_through_the_multiprocess_directory(
    tmp_path: Path, emulator_ca: TestCA, certificate_host: CertificateHost
) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    first, first_metrics = start_server(tmp_path, certificate_host, env, name="first")
    try:
        second, second_metrics = start_server(tmp_path, certificate_host, env, name="second")
        try:
            signer = MessageSigner(emulator_ca, topic_arn=TOPIC)
            for server, budget in ((first, "one"), (second, "two")):
                message = alert(signer, certificate_host, budget)
                assert post(server.url, message.body, message.headers) == (200, "sent")
            scraped = [samples(scrape(port)) for port in (first_metrics, second_metrics)]
        finally:
            second.stop()
    finally:
        first.stop()
    for found in scraped:  # either port: the totals of both processes
        assert decisions(found, reason="delivered", topic=TOPIC) == 2
        assert value(found, "snsmiddleware_certificate_downloads_total") == 2
        assert value(found, "snsmiddleware_emails_total", outcome="sent", reason="") == 2
    assert certificate_host.downloads == 2  # one per process: caches are per process
