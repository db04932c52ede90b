"""The event hooks (observers): called once per decision or event, with nothing the sender
wrote unverified, and never able to change an answer (issue 15, item 2).

Most run without WSGI: the certificate cache, the de-duplication ledger and the budget app's
``handle`` are called directly; the middleware's decisions go through WebTest."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import webtest

from snsmiddleware import ConfigurationError, MemoryDedupeStore, SnsMiddleware, parse_message
from snsmiddleware.budget_app import BudgetApp, MailEvent, MailOutcome
from snsmiddleware.certs import CertificateEvent, CertificateEventKind, CertificateStore
from snsmiddleware.dedupe import Claim, DedupeEvent, DeliveryLedger
from snsmiddleware.devmode import sample_budget_alert
from snsmiddleware.errors import CertificateError, MailUnavailableError, TransientError
from snsmiddleware.hooks import HookGuard
from snsmiddleware.logformat import JsonLineFormatter, make_formatter
from snsmiddleware.mail import FileOutbox
from snsmiddleware.message import Notification
from snsmiddleware.middleware import DECISION_LOG_FIELDS, Decision
from snsmiddleware.policy import parse_topic_arn
from snsmiddleware.reasons import Reason
from snsmiddleware.testing import FrozenClock, MessageSigner, post_sns

from .conftest import PATH, TOPIC, EchoApp

# --- HookGuard ------------------------------------------------------------------------------


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def failing(event: object) -> None:
    raise RuntimeError(f"observer bug on {event}")


def test_a_failing_hook_is_logged_once_per_interval_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="snsmiddleware.hooks")
    monotonic = FakeMonotonic()
    guard = HookGuard("the test observer", interval=60, monotonic=monotonic)
    for event in range(5):
        guard.call(failing, event)  # never raises
    assert len(caplog.records) == 1
    first = caplog.records[0]
    assert "the test observer raised; the answer is unchanged" in first.getMessage()
    assert first.exc_info is not None and "observer bug on 0" in str(first.exc_info[1])
    monotonic.now += 61
    guard.call(failing, 5)
    assert len(caplog.records) == 2
    assert "4 more failure(s) since the last report" in caplog.records[1].getMessage()
    assert guard.failures == 6


def test_a_hook_that_works_is_called_with_the_event() -> None:
    seen: list[int] = []
    HookGuard("h").call(seen.append, 7)
    assert seen == [7]


# --- the certificate cache --------------------------------------------------------------------


def test_certificate_cache_reports_misses_downloads_and_hits(signer: MessageSigner) -> None:
    events: list[CertificateEvent] = []
    store = CertificateStore(signer.fetch_certificate, observer=events.append)
    url, topic = signer.certificate_url(), parse_topic_arn(TOPIC)
    first = store.get(url, topic)
    assert store.get(url, topic) is first
    assert [event.kind for event in events] == [
        CertificateEventKind.MISS,
        CertificateEventKind.DOWNLOAD,
        CertificateEventKind.HIT,
    ]
    assert len(signer.fetched) == 1


def test_certificate_cache_reports_failures_and_remembered_refusals(
    signer: MessageSigner,
) -> None:
    events: list[CertificateEvent] = []
    store = CertificateStore(signer.fetch_certificate, observer=events.append)
    missing = signer.certificate_url().replace(".pem", "0.pem")  # not the signer's
    for _ in range(2):
        with pytest.raises(CertificateError):
            store.get(missing, parse_topic_arn(TOPIC))
    assert events == [
        CertificateEvent(CertificateEventKind.MISS),
        CertificateEvent(CertificateEventKind.FAILURE, Reason.CERTIFICATE_NOT_FOUND),
        CertificateEvent(CertificateEventKind.REFUSAL_REMEMBERED, Reason.CERTIFICATE_NOT_FOUND),
    ]
    assert len(signer.fetched) == 1


def test_a_raising_certificate_observer_changes_nothing(signer: MessageSigner) -> None:
    store = CertificateStore(signer.fetch_certificate, observer=failing)
    url, topic = signer.certificate_url(), parse_topic_arn(TOPIC)
    assert store.get(url, topic) is store.get(url, topic)
    assert len(signer.fetched) == 1


def test_the_certificate_observer_runs_outside_the_cache_lock(signer: MessageSigner) -> None:
    """A slow observer must not hold up other lookups (nor deadlock one that looks back)."""
    store = CertificateStore(signer.fetch_certificate)
    lock_was_free: list[bool] = []

    def observer(event: CertificateEvent) -> None:
        free = store._lock.acquire(blocking=False)
        if free:
            store._lock.release()
        lock_was_free.append(free)

    store.observer = observer
    url, topic = signer.certificate_url(), parse_topic_arn(TOPIC)
    store.get(url, topic)
    store.get(url, topic)
    assert lock_was_free == [True, True, True]  # miss, download, hit


# --- the de-duplication ledger ----------------------------------------------------------------


def test_ledger_reports_every_claim_outcome() -> None:
    events: list[DedupeEvent] = []
    ledger = DeliveryLedger(MemoryDedupeStore(), observer=events.append)
    done = ledger.claim("m-1")
    ledger.finish(done, succeeded=True)
    ledger.claim("m-1")  # a redelivery
    failed = ledger.claim("m-2")
    with pytest.raises(TransientError):
        ledger.claim("m-2")  # held by the first attempt
    ledger.finish(failed, succeeded=False)
    assert events == [
        DedupeEvent.CLAIMED,
        DedupeEvent.COMMITTED,
        DedupeEvent.DUPLICATE,
        DedupeEvent.CLAIMED,
        DedupeEvent.IN_PROGRESS,
        DedupeEvent.RELEASED,
    ]


class BrokenStore(MemoryDedupeStore):
    def __init__(self, *, fail_claims: bool) -> None:
        super().__init__()
        self.fail_claims = fail_claims

    def claim(self, key: str) -> Claim:
        if self.fail_claims:
            raise OSError("store down")
        return super().claim(key)

    def commit(self, claim: Claim) -> None:
        raise OSError("store down")


def test_ledger_reports_store_failures(caplog: pytest.LogCaptureFixture) -> None:
    events: list[DedupeEvent] = []
    with pytest.raises(TransientError, match="unavailable"):
        DeliveryLedger(BrokenStore(fail_claims=True), observer=events.append).claim("m")
    ledger = DeliveryLedger(BrokenStore(fail_claims=False), observer=events.append)
    ledger.finish(ledger.claim("m"), succeeded=True)
    ledger.claim("m")  # the backlog answers for the refused commit
    assert events == [
        DedupeEvent.UNAVAILABLE,
        DedupeEvent.CLAIMED,
        DedupeEvent.DEFERRED,
        DedupeEvent.DUPLICATE,
    ]


# --- the budget app (BudgetApp.handle, no WSGI) -----------------------------------------------


def _alert(signer: MessageSigner, budget: str = "Test Budget") -> Notification:
    subject, text = sample_budget_alert(budget)
    message = parse_message(signer.notification(text, Subject=subject).body)
    assert isinstance(message, Notification)
    return message


class DownMailer:
    idempotent = True

    def send(self, email: object) -> None:
        raise MailUnavailableError("the SMTP server is down")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param(
            {"default_recipients": ["ana@example.com"]},
            MailEvent(MailOutcome.SENT, None, TOPIC),
            id="sent",
        ),
        pytest.param({}, MailEvent(MailOutcome.DEAD_LETTERED, "no_recipients", TOPIC), id="dead"),
        pytest.param(
            {"default_recipients": ["ana@example.com"], "mailer": DownMailer()},
            MailEvent(MailOutcome.FAILED, "mail_unavailable", TOPIC),
            id="failed",
        ),
    ],
)
def test_budget_app_reports_each_alerts_email(
    signer: MessageSigner,
    clock: FrozenClock,
    tmp_path: Path,
    options: dict[str, object],
    expected: MailEvent,
) -> None:
    events: list[MailEvent] = []
    app = BudgetApp(
        recipients={},
        observer=events.append,
        clock=clock,
        **{"mailer": FileOutbox(tmp_path / "outbox"), **options},  # type: ignore[arg-type]
    )
    response = app.handle(_alert(signer))
    assert events == [expected]
    answered = {"sent": "sent", "dead_lettered": "dead_lettered", "failed": "mail_unavailable"}
    assert response.headers["X-SNS-Reason"] == answered[expected.outcome.value]


def test_a_raising_budget_app_observer_changes_nothing(
    signer: MessageSigner, clock: FrozenClock, tmp_path: Path
) -> None:
    app = BudgetApp(
        recipients={},
        default_recipients="ana@example.com",
        mailer=FileOutbox(tmp_path),
        observer=failing,
        clock=clock,
    )
    assert app.handle(_alert(signer)).headers["X-SNS-Reason"] == "sent"
    assert len(list(tmp_path.glob("*.eml"))) == 1


# --- the middleware's decisions (WebTest) -----------------------------------------------------


@pytest.fixture
def decisions() -> list[Decision]:
    return []


@pytest.fixture
def observed(
    make_middleware: Callable[..., SnsMiddleware], decisions: list[Decision]
) -> webtest.TestApp:
    return webtest.TestApp(make_middleware(observer=decisions.append))


def test_each_request_is_one_decision_with_its_verified_fields(
    observed: webtest.TestApp, signer: MessageSigner, decisions: list[Decision]
) -> None:
    message = signer.notification("hello")
    post_sns(observed, PATH, message)
    post_sns(observed, PATH, message)  # a redelivery
    post_sns(observed, PATH, message.tampered(Message="forged"))
    post_sns(observed, PATH, signer.notification("x", TopicArn=TOPIC + "-not-ours"))
    observed.get(PATH, expect_errors=True)
    observed.post("/elsewhere", b"not ours")  # passes through: not a decision
    assert [(d.reason, d.status) for d in decisions] == [
        (Reason.DELIVERED, 200),
        (Reason.DUPLICATE, 200),
        (Reason.BAD_SIGNATURE, 403),
        (Reason.TOPIC_NOT_ALLOWED, 403),
        (Reason.METHOD_NOT_ALLOWED, 405),
    ]
    assert all(isinstance(d.reason, Reason) and d.path == PATH for d in decisions)
    assert all(d.elapsed >= 0 for d in decisions)
    delivered, duplicate, *refused = decisions
    for decision in (delivered, duplicate):
        assert decision.verified and decision.genuine_notification
        assert decision.message_type == "Notification"
        assert decision.message_id == message.fields["MessageId"]
        assert decision.topic_arn == TOPIC
    # Nothing a sender wrote reaches the observer unverified: not even the TopicArn.
    for decision in refused:
        assert not decision.verified and not decision.genuine_notification
        assert (decision.message_type, decision.message_id, decision.topic_arn) == (None,) * 3


def test_confirmation_and_app_failure_decisions(
    make_middleware: Callable[..., SnsMiddleware], signer: MessageSigner
) -> None:
    decisions: list[Decision] = []

    def broken_app(environ: object, start_response: object) -> list[bytes]:
        raise RuntimeError("app bug")

    app = webtest.TestApp(make_middleware(observer=decisions.append))
    post_sns(app, PATH, signer.subscription_confirmation())
    failing_app = webtest.TestApp(make_middleware(app=broken_app, observer=decisions.append))
    post_sns(failing_app, PATH, signer.notification("boom"), expect_errors=True)
    confirmed, app_error = decisions
    assert (confirmed.reason, confirmed.status) == (Reason.SUBSCRIPTION_CONFIRMED, 200)
    assert confirmed.message_type == "SubscriptionConfirmation" and confirmed.verified
    assert not confirmed.genuine_notification
    assert (app_error.reason, app_error.status, app_error.verified) == (Reason.APP_ERROR, 500, True)


def test_a_raising_observer_never_changes_the_answer(
    make_middleware: Callable[..., SnsMiddleware],
    signer: MessageSigner,
    echo_app: EchoApp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="snsmiddleware")
    app = webtest.TestApp(make_middleware(observer=failing))
    first = post_sns(app, PATH, signer.notification("one"))
    assert (first.status_int, first.text) == (200, "app saw /sns/budgets")
    refused = post_sns(app, PATH, signer.notification("two").tampered(Message="x"))
    assert refused.headers["X-SNS-Reason"] == "bad_signature"
    assert len(echo_app.calls) == 1
    reports = [r for r in caplog.records if "observer raised" in r.getMessage()]
    assert len(reports) == 1  # rate-limited: the second failure is counted, not logged


def test_observer_must_be_callable(make_middleware: Callable[..., SnsMiddleware]) -> None:
    with pytest.raises(ConfigurationError, match="observer must be a callable"):
        make_middleware(observer="metrics")


def test_the_observer_can_be_set_later(
    make_middleware: Callable[..., SnsMiddleware], signer: MessageSigner
) -> None:
    middleware = make_middleware()
    app = webtest.TestApp(middleware)
    post_sns(app, PATH, signer.notification("unobserved"))
    decisions: list[Decision] = []
    middleware.observer = decisions.append
    post_sns(app, PATH, signer.notification("observed"))
    assert [d.reason for d in decisions] == [Reason.DELIVERED]


# --- decision log lines ------------------------------------------------------------------------


def test_decision_lines_carry_their_fields_as_extra(
    observed: webtest.TestApp, signer: MessageSigner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="snsmiddleware.middleware")
    message = signer.notification("hello")
    post_sns(observed, PATH, message)
    post_sns(observed, PATH, message.tampered(Message="x"))
    delivered, refused = caplog.records
    assert {name: getattr(delivered, name) for name in DECISION_LOG_FIELDS} == {
        "reason": "delivered",
        "status": 200,
        "path": PATH,
        "message_type": "Notification",
        "message_id": message.fields["MessageId"],
        "topic_arn": TOPIC,
    }
    assert (refused.reason, refused.status, refused.path) == ("bad_signature", 403, PATH)  # type: ignore[attr-defined]
    assert not hasattr(refused, "topic_arn") and not hasattr(refused, "message_id")


HOSTILE = 'a "quoted"\nline\r{"forged": true}\x1b[31m\u2028\x00 ünï'


def test_json_lines_escape_every_field() -> None:
    record = logging.LogRecord(
        "snsmiddleware.middleware", logging.WARNING, "", 1, HOSTILE, (), None
    )
    record.reason = "bad_field"
    record.topic_arn = HOSTILE
    record.elapsed = float("nan")
    line = JsonLineFormatter().format(record)
    assert "\n" not in line and "\r" not in line and line.isascii() and line.isprintable()
    document = json.loads(line)
    assert document["message"] == HOSTILE and document["topic_arn"] == HOSTILE
    assert document["reason"] == "bad_field" and document["level"] == "WARNING"
    assert document["elapsed"] == "nan"
    assert document["logger"] == "snsmiddleware.middleware" and "T" in document["time"]


def test_json_lines_carry_the_traceback_in_one_field() -> None:
    try:
        raise ValueError("inner\nproblem")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, "", 1, "failed", (), sys.exc_info())
    document = json.loads(JsonLineFormatter().format(record))
    assert "ValueError: inner\nproblem" in document["exception"]


def test_log_formats_are_plain_or_json() -> None:
    assert isinstance(make_formatter("json"), JsonLineFormatter)
    assert not isinstance(make_formatter("plain"), JsonLineFormatter)
    with pytest.raises(ValueError, match="not one of plain, json"):
        make_formatter("xml")
