"""Faults: what SNS sees when our dependencies misbehave, and that nothing is lost or doubled.

* The certificate host is a real local HTTP server standing in for
  ``sns.us-east-1.amazonaws.com``: the production fetcher (:class:`HttpCertificateFetcher`)
  reaches it through a requests session whose adapter maps the SNS URL to 127.0.0.1. It
  refuses connections, stalls, drips, redirects, serves too much or the wrong thing: the
  middleware answers 503 when retrying can help and 403 when it cannot, and the same
  message is accepted once the host recovers.
* The mailer and the de-duplication store fail in the middle of a request behind
  ``SnsMiddleware(BudgetApp(...))``: the answer is 5xx, the MessageId is released (the
  store's own call log says so), and redelivery produces exactly one email.
"""

from __future__ import annotations

import http.server
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import requests
import webtest

from snsmiddleware import SnsMiddleware
from snsmiddleware.budget_app import BudgetApp
from snsmiddleware.certs import (
    DEFAULT_NEGATIVE_TTL,
    CertificateStore,
    HttpCertificateFetcher,
)
from snsmiddleware.devmode import sample_budget_alert
from snsmiddleware.mail import FileOutbox, MailUnavailableError
from snsmiddleware.testing import MessageSigner, SignedMessage, post_sns

from ._answers import assert_answer
from ._hardening_helpers import RecordingStore, emails_in
from ._misbehaving import drip_body, gzip_bomb, trickle
from ._net import ForwardingAdapter, LocalHttpServer, RefusingAdapter, free_port, serving
from .conftest import PATH, EchoApp

MakeMiddleware = Callable[..., SnsMiddleware]
SNS_HOST = "https://sns.us-east-1.amazonaws.com/"


# --- a certificate host that misbehaves on demand -------------------------------------------


class CertificateHost(LocalHttpServer):
    """Serves ``certificate`` at any path, or misbehaves as ``mode`` says."""

    def __init__(self) -> None:
        super().__init__(CertificateHostHandler)
        self.mode = "ok"
        self.certificate = b""
        self.requested: list[str] = []
        self.release = threading.Event()  # ends mode "hold"


class CertificateHostHandler(http.server.BaseHTTPRequestHandler):
    server: CertificateHost

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        self.server.requested.append(self.path)
        mode = self.server.mode
        if self.path == "/elsewhere.pem" or mode == "ok":
            self._send(200, self.server.certificate)
        elif mode == "stall":
            self.server.stop.wait(3)
        elif mode == "hold":  # until the test releases it, then: no such certificate
            self.server.release.wait(10)
            self._send(404, b"<Error/>")
        elif mode == "drip":
            drip_body(self)
        elif mode in ("drip-status", "drip-headers"):
            head = b"HTTP/1.1 200 " if mode == "drip-status" else b"HTTP/1.1 200 OK\r\nX-Pad: "
            trickle(self, head, b"O", 3)
        elif mode == "headers-then-stall":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n")
            self.wfile.flush()
            self.server.stop.wait(3)
        elif mode == "cut-mid-headers":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Cu")
            self.close_connection = True
        elif mode == "short-body":
            body = self.server.certificate
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        elif mode == "empty-200":
            self._send(200, b"")
        elif mode == "redirect":
            self._send(302, b"", {"Location": f"{self.server.base}/elsewhere.pem"})
        elif mode == "huge":
            self._send(200, self.server.certificate * 100)
        elif mode == "gzip-bomb":
            bomb = gzip_bomb(self.server.certificate)
            self._send(200, bomb, {"Content-Encoding": "gzip"})
        elif mode == "html":
            self._send(200, b"<html><body>Service Unavailable</body></html>")
        else:
            self._send(int(mode), b"<Error/>")


@pytest.fixture(scope="module")
def cert_host() -> Iterator[CertificateHost]:
    host = CertificateHost()
    with serving(host):
        yield host


@pytest.fixture
def routed(
    cert_host: CertificateHost, signer: MessageSigner
) -> Iterator[tuple[HttpCertificateFetcher, ForwardingAdapter, RefusingAdapter]]:
    """The production fetcher, with the SNS host routed to ``cert_host`` (nothing else goes
    anywhere) and short time-outs so a stalled host costs a fraction of a second."""
    cert_host.mode = "ok"
    cert_host.certificate = signer.ca.certificate_pem
    gzip_bomb(cert_host.certificate)  # compressed before any request waits for it
    cert_host.requested.clear()
    cert_host.release.clear()
    forward = ForwardingAdapter(cert_host.base)
    refuse = RefusingAdapter()
    with requests.Session() as session:
        session.mount("http://", refuse)
        session.mount("https://", refuse)
        session.mount(SNS_HOST, forward)
        fetcher = HttpCertificateFetcher(
            timeout=(1.0, 0.3), deadline=timedelta(seconds=1.0), session=session
        )
        yield fetcher, forward, refuse


@pytest.mark.parametrize(
    ("mode", "status", "reason"),
    [
        pytest.param("refused", 503, "certificate_unavailable", id="connection-refused"),
        pytest.param("stall", 503, "certificate_unavailable", id="read-time-out"),
        pytest.param("drip", 503, "certificate_unavailable", id="dripping-past-the-deadline"),
        pytest.param("drip-status", 503, "certificate_unavailable", id="dripping-status-line"),
        pytest.param("drip-headers", 503, "certificate_unavailable", id="dripping-headers"),
        pytest.param(
            "headers-then-stall", 503, "certificate_unavailable", id="stall-after-headers"
        ),
        pytest.param("cut-mid-headers", 503, "certificate_unavailable", id="cut-mid-headers"),
        pytest.param("short-body", 503, "certificate_unavailable", id="body-cut-short"),
        pytest.param("empty-200", 503, "certificate_unavailable", id="empty-200"),
        pytest.param("500", 503, "certificate_unavailable", id="http-500"),
        pytest.param("503", 503, "certificate_unavailable", id="http-503"),
        pytest.param("429", 503, "certificate_unavailable", id="http-429"),
        pytest.param("404", 403, "certificate_not_found", id="http-404"),
        pytest.param("403", 403, "certificate_not_found", id="http-403"),
        pytest.param("redirect", 403, "certificate_not_found", id="redirect-not-followed"),
        pytest.param("huge", 403, "certificate_too_large", id="huge-body"),
        pytest.param("gzip-bomb", 403, "certificate_too_large", id="gzip-bomb"),
        pytest.param("html", 403, "bad_certificate", id="not-a-certificate"),
    ],
)
def test_certificate_host_fault_then_recovery(
    make_middleware: MakeMiddleware,
    signer: MessageSigner,
    echo_app: EchoApp,
    cert_host: CertificateHost,
    routed: tuple[HttpCertificateFetcher, ForwardingAdapter, RefusingAdapter],
    mode: str,
    status: int,
    reason: str,
) -> None:
    fetcher, forward, refuse = routed
    middleware = make_middleware(fetch_certificate=fetcher)
    monotonic = FakeMonotonic()
    middleware.verifier.certificates = CertificateStore(fetcher, monotonic=monotonic)
    app = webtest.TestApp(middleware, lint=True)
    message = signer.notification("during an outage")
    if mode == "refused":
        forward.target_base = f"http://127.0.0.1:{free_port()}"
    else:
        cert_host.mode = mode

    assert_answer(post_sns(app, PATH, message), status, reason)
    assert echo_app.calls == []
    assert len(forward.sent) == 1 and forward.sent[0].startswith(SNS_HOST)
    assert "/elsewhere.pem" not in cert_host.requested  # redirects are never followed

    # The host recovers; SNS redelivers (after a 5xx; a 403 only if someone resends it).
    forward.target_base, cert_host.mode = cert_host.base, "ok"
    if status == 403:
        # A definitive "no" is remembered for a short while: asking again costs nothing...
        assert_answer(post_sns(app, PATH, message), status, reason)
        assert len(forward.sent) == 1
        monotonic.now += DEFAULT_NEGATIVE_TTL.total_seconds()  # ...and then it is forgotten
    assert post_sns(app, PATH, message).status_int == 200
    assert len(echo_app.calls) == 1
    assert len(forward.sent) == 2  # one new download; a transient failure was not cached
    assert refuse.sent == []


def test_a_cached_certificate_outlives_a_later_outage(
    make_middleware: MakeMiddleware,
    signer: MessageSigner,
    echo_app: EchoApp,
    routed: tuple[HttpCertificateFetcher, ForwardingAdapter, RefusingAdapter],
) -> None:
    fetcher, forward, _ = routed
    app = webtest.TestApp(make_middleware(fetch_certificate=fetcher), lint=True)
    assert post_sns(app, PATH, signer.notification("before")).status_int == 200
    forward.target_base = f"http://127.0.0.1:{free_port()}"
    assert post_sns(app, PATH, signer.notification("during")).status_int == 200
    assert len(forward.sent) == 1 and len(echo_app.calls) == 2


# --- how many downloads forged requests can cause ------------------------------------------


def forged_for_missing_certificate(signer: MessageSigner, digest: str) -> SignedMessage:
    """A forgery anyone can make: an allowed TopicArn (ARNs are not secret) and a certificate
    URL on that region's SNS host that does not exist."""
    url = f"{SNS_HOST}SimpleNotificationService-{digest}.pem"
    return signer.notification("forged").tampered(SigningCertURL=url)


def test_repeated_forgeries_for_one_missing_certificate_download_it_once(
    make_middleware: MakeMiddleware,
    signer: MessageSigner,
    echo_app: EchoApp,
    cert_host: CertificateHost,
    routed: tuple[HttpCertificateFetcher, ForwardingAdapter, RefusingAdapter],
) -> None:
    fetcher, forward, refuse = routed
    app = webtest.TestApp(make_middleware(fetch_certificate=fetcher), lint=True)
    cert_host.mode = "404"
    inbound = 40
    for _ in range(inbound):
        message = forged_for_missing_certificate(signer, "0badc0de")
        assert_answer(post_sns(app, PATH, message), 403, "certificate_not_found")
    assert len(cert_host.requested) == 1  # 40 inbound -> 1 outbound (main: 40)
    assert len(forward.sent) == 1 and refuse.sent == [] and echo_app.calls == []


def test_concurrent_forgeries_cause_a_bounded_number_of_downloads(
    make_middleware: MakeMiddleware,
    signer: MessageSigner,
    echo_app: EchoApp,
    cert_host: CertificateHost,
    routed: tuple[HttpCertificateFetcher, ForwardingAdapter, RefusingAdapter],
) -> None:
    """16 forgeries at once, each for another missing certificate, while the host holds
    every download open: with the default bound of 2 concurrent downloads, 16 inbound make
    2 outbound (main: 16); the 14 others answer 503 at once, so SNS would retry a genuine
    one, and the 2 held ones get the host's answer when it comes."""
    fetcher, forward, _ = routed
    fetcher.timeout, fetcher.deadline = (1.0, 9.0), 9.0  # only the test ends the downloads
    app = webtest.TestApp(make_middleware(fetch_certificate=fetcher), lint=True)
    cert_host.mode = "hold"
    messages = [forged_for_missing_certificate(signer, f"{index:08x}") for index in range(16)]
    answers: list[Any] = []

    def post(message: SignedMessage) -> None:
        answers.append(post_sns(app, PATH, message))

    threads = [threading.Thread(target=post, args=(message,)) for message in messages]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 20
        while len(answers) < 14 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(answers) == 14  # answered while two downloads are still held open
        for answer in answers:
            assert_answer(answer, 503, "certificate_unavailable")
        assert len(cert_host.requested) == 2
    finally:
        cert_host.release.set()
        for thread in threads:
            thread.join(20)
    assert len(answers) == 16
    for answer in answers[14:]:
        assert_answer(answer, 403, "certificate_not_found")
    assert len(cert_host.requested) == len(forward.sent) == 2 and echo_app.calls == []


# --- mailer and store failures mid-request -------------------------------------------------


def budget_alert(signer: MessageSigner) -> SignedMessage:
    subject, text = sample_budget_alert()
    return signer.notification(text, Subject=subject)


class FailingOnceMailer:
    """Raises ``error`` on the first send, then writes to ``outbox``."""

    def __init__(self, outbox: FileOutbox, error: Exception) -> None:
        self.outbox = outbox
        self.error = error
        self.calls = 0

    def send(self, message: EmailMessage) -> None:
        self.calls += 1
        if self.calls == 1:
            raise self.error
        self.outbox.send(message)


@pytest.fixture
def outbox(tmp_path: Path) -> FileOutbox:
    return FileOutbox(tmp_path / "outbox", fsync=False)


def budget_app(tmp_path: Path, mailer: Any) -> BudgetApp:
    return BudgetApp(
        recipients={"*": "Ana Lima <ana@example.com>"},
        mailer=mailer,
        dead_letter=FileOutbox(tmp_path / "dead-letter", fsync=False),
    )


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        pytest.param(
            MailUnavailableError("throttled", code="Throttling"), 503, "mail_unavailable", id="503"
        ),
        pytest.param(RuntimeError("mailer bug: password=hunter2"), 500, "app_error", id="bug"),
    ],
)
def test_mailer_failure_releases_the_id_and_redelivery_sends_one_email(
    make_middleware: MakeMiddleware,
    signer: MessageSigner,
    outbox: FileOutbox,
    tmp_path: Path,
    error: Exception,
    status: int,
    reason: str,
) -> None:
    store = RecordingStore()
    mailer = FailingOnceMailer(outbox, error)
    app = webtest.TestApp(make_middleware(app=budget_app(tmp_path, mailer), dedupe=store))
    message = budget_alert(signer)

    failed = post_sns(app, PATH, message)
    assert failed.status_int == status and failed.headers["X-SNS-Reason"] == reason
    assert "hunter2" not in failed.text and "Traceback" not in failed.text
    assert store.methods() == ["claim", "release"] and len(store) == 0
    assert emails_in(outbox.directory) == []

    assert_answer(post_sns(app, PATH, message), 200, "sent")
    assert_answer(post_sns(app, PATH, message), 200, "duplicate")
    assert store.methods() == ["claim", "release", "claim", "commit", "claim"]
    assert len(emails_in(outbox.directory)) == 1


def test_outbox_directory_gone_then_back(
    make_middleware: MakeMiddleware, signer: MessageSigner, outbox: FileOutbox, tmp_path: Path
) -> None:
    """A real OSError from the disk, not a fake mailer: 503, then exactly one email."""
    store = RecordingStore()
    app = webtest.TestApp(make_middleware(app=budget_app(tmp_path, outbox), dedupe=store))
    message = budget_alert(signer)
    shutil.rmtree(outbox.directory)

    assert_answer(post_sns(app, PATH, message), 503, "outbox_unavailable")
    assert store.methods() == ["claim", "release"]

    outbox.directory.mkdir()
    assert_answer(post_sns(app, PATH, message), 200, "sent")
    assert len(emails_in(outbox.directory)) == 1


def test_store_down_on_claim_then_back(
    make_middleware: MakeMiddleware, signer: MessageSigner, outbox: FileOutbox, tmp_path: Path
) -> None:
    store = RecordingStore(fail={"claim": 2})
    app = webtest.TestApp(make_middleware(app=budget_app(tmp_path, outbox), dedupe=store))
    message = budget_alert(signer)
    for _ in range(2):
        assert_answer(post_sns(app, PATH, message), 503, "dedupe_unavailable")
    assert emails_in(outbox.directory) == []  # never processed without de-duplication
    assert_answer(post_sns(app, PATH, message), 200, "sent")
    assert_answer(post_sns(app, PATH, message), 200, "duplicate")
    assert len(emails_in(outbox.directory)) == 1


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_store_down_on_release_holds_the_claim_until_its_lease_lapses(
    make_middleware: MakeMiddleware, signer: MessageSigner, outbox: FileOutbox, tmp_path: Path
) -> None:
    """The mail fails and so does the release: the claim stays until its lease lapses, so
    redeliveries meanwhile get 503 (not an email each), then one is processed."""
    monotonic = FakeMonotonic()
    store = RecordingStore(fail={"release": 1}, monotonic=monotonic)
    mailer = FailingOnceMailer(outbox, MailUnavailableError("down"))
    app = webtest.TestApp(make_middleware(app=budget_app(tmp_path, mailer), dedupe=store))
    message = budget_alert(signer)

    assert_answer(post_sns(app, PATH, message), 503, "mail_unavailable")
    assert_answer(post_sns(app, PATH, message), 503, "in_progress")
    monotonic.now += timedelta(minutes=2, seconds=1).total_seconds()
    assert_answer(post_sns(app, PATH, message), 200, "sent")
    assert_answer(post_sns(app, PATH, message), 200, "duplicate")
    assert mailer.calls == 2 and len(emails_in(outbox.directory)) == 1


def test_store_down_on_commit_answers_the_apps_success_once(
    make_middleware: MakeMiddleware, signer: MessageSigner, outbox: FileOutbox, tmp_path: Path
) -> None:
    """The email went out, so SNS must hear 200 (a 5xx would send it again); the refused
    commit is kept in the process and retried by the next request, and the redelivery is a
    duplicate."""
    store = RecordingStore(fail={"commit": 1})
    app = webtest.TestApp(make_middleware(app=budget_app(tmp_path, outbox), dedupe=store))
    message = budget_alert(signer)
    assert_answer(post_sns(app, PATH, message), 200, "sent")
    assert_answer(post_sns(app, PATH, message), 200, "duplicate")
    assert store.methods().count("commit") == 2  # the refused commit, then its retry
    assert_answer(post_sns(app, PATH, message), 200, "duplicate")  # now from the store
    assert len(emails_in(outbox.directory)) == 1


@pytest.mark.parametrize("commit_failures", [1, 50])
def test_store_down_on_commit_and_a_late_redelivery_still_sends_one_email(
    make_middleware: MakeMiddleware,
    signer: MessageSigner,
    outbox: FileOutbox,
    tmp_path: Path,
    commit_failures: int,
) -> None:
    """Regression (issue 7): a failed commit used to leave only the claim, whose lease lapsed,
    so a redelivery after two minutes sent the email again."""
    monotonic = FakeMonotonic()
    store = RecordingStore(fail={"commit": commit_failures}, monotonic=monotonic)
    app = webtest.TestApp(make_middleware(app=budget_app(tmp_path, outbox), dedupe=store))
    message = budget_alert(signer)
    assert_answer(post_sns(app, PATH, message), 200, "sent")
    monotonic.now += timedelta(minutes=3).total_seconds()
    post_sns(app, PATH, message)
    assert len(emails_in(outbox.directory)) == 1
