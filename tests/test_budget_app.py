"""BudgetApp end to end behind SnsMiddleware (WebTest, signed messages from the testing kit):
every real Budgets alert becomes exactly one correct email in each mailer (file outbox, SMTP
to a real aiosmtpd server, SES through moto's server), including redeliveries, concurrent
duplicates and retries after a transient failure; hostile budget names cannot inject HTML or
headers; non-alerts get a 4xx and no email; nothing undeliverable is lost (issue 3)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import requests
import webtest
from webtest.http import StopableWSGIServer

from snsmiddleware import ConfigurationError, SnsMiddleware
from snsmiddleware.alert_email import alert_subject
from snsmiddleware.budget_app import BudgetApp
from snsmiddleware.budgets import AlertType, Money, parse_budget_alert
from snsmiddleware.mail import (
    FileOutbox,
    MailRejectedError,
    MailUnavailableError,
    SesMailer,
    SmtpMailer,
)
from snsmiddleware.testing import MessageSigner, SignedMessage, post_sns

from ._answers import reason
from ._budget_helpers import REAL_ALERTS, REAL_TOPICS, RealAlert, notification, real_alert_params
from ._mail_helpers import (
    LOCALHOST,
    SES_REGION,
    VERIFIED_SENDER,
    MotoSes,
    free_port,
    parse_email,
    smtp_server,
    to_addresses,
)
from ._mail_helpers import text_and_html as parts
from .conftest import PATH, TOPIC

MakeMiddleware = Callable[..., SnsMiddleware]
SENDER = f"Budget alerts <{VERIFIED_SENDER}>"
ANA = "Ana Lima <ana@example.com>"
FINOPS = "FinOps <finops@example.com>"
# One person per real budget, so routing by exact name is checked for every variant.
PEOPLE = {
    real.budget_name: f"Owner {index} <owner{index}@example.com>"
    for index, real in enumerate(REAL_ALERTS)
}
TEMPLATE = REAL_ALERTS[0]


def emails(outbox: FileOutbox) -> list[EmailMessage]:
    return [parse_email(path.read_bytes()) for path in outbox.messages()]


@pytest.fixture
def make_app(
    make_middleware: MakeMiddleware, outbox: FileOutbox, dead_letter: FileOutbox
) -> Callable[..., webtest.TestApp]:
    """A WebTest app: SnsMiddleware(BudgetApp(**options)) accepting the real topics too."""

    def make(**options: Any) -> webtest.TestApp:
        settings: dict[str, Any] = {
            "recipients": PEOPLE,
            "default_recipients": [FINOPS],
            "mailer": outbox,
            "sender": SENDER,
            "dead_letter": dead_letter,
        }
        settings.update(options)
        middleware = make_middleware(app=BudgetApp(**settings), topics=[TOPIC, *REAL_TOPICS])
        return webtest.TestApp(middleware, lint=True)

    return make


@pytest.fixture
def app(make_app: Callable[..., webtest.TestApp]) -> webtest.TestApp:
    return make_app()


def alert_message(
    signer: MessageSigner, text: str = TEMPLATE.message, **fields: Any
) -> SignedMessage:
    fields.setdefault("Subject", TEMPLATE.subject)
    return signer.notification(text, **fields)


# --- every real variant, every mailer --------------------------------------------------------


@pytest.mark.parametrize("real", real_alert_params)
def test_every_real_alert_becomes_exactly_one_correct_email(
    make_app: Callable[..., webtest.TestApp],
    signer: MessageSigner,
    mail_route: tuple[Any, Callable[[], list[EmailMessage]]],
    real: RealAlert,
) -> None:
    mailer, delivered = mail_route
    app = make_app(mailer=mailer)
    message = real.signed(signer)

    response = post_sns(app, PATH, message)
    assert response.status_int == 200, response.text
    assert reason(response) == "sent"
    # SNS redelivers the same MessageId: answered, not emailed again.
    again = post_sns(app, PATH, message)
    assert again.status_int == 200
    assert reason(again) == "duplicate"

    [email] = delivered()
    verb = "forecast to be exceeded" if real.alert_type is AlertType.FORECASTED else "exceeded"
    # strip(): the stdlib may fold a long Subject right after "Subject:" (valid RFC 5322;
    # unfolding leaves the leading space, which mail clients drop).
    assert email["Subject"].strip() == (
        f"Cost control alert - {real.subject_percent} warning threshold {verb} - {real.budget_name}"
    )
    assert to_addresses(email) == [PEOPLE[real.budget_name]]
    assert email["From"].addresses[0].addr_spec == VERIFIED_SENDER
    assert email["X-SNS-Message-Id"] == message.fields["MessageId"]
    assert email["Message-ID"] == f"<budget-alert.{message.fields['MessageId']}@example.com>"
    assert email["Auto-Submitted"] == "auto-generated"
    text, html = parts(email)
    for amount in (real.budgeted, real.threshold, real.amount):
        shown = str(Money(amount, "USD"))
        assert shown in text
        assert shown in html
    assert real.alert_type.value in text
    assert (
        "Forecasted amount" if real.alert_type is AlertType.FORECASTED else "Actual amount"
    ) in (text)
    assert real.account_id in text
    assert f'href="{real.dashboard_url}"' in html
    assert "Some details could not be read" not in text
    # The raw text travels with it, line for line.
    assert "\n".join(real.message.splitlines()) in text.replace("\r\n", "\n")


def test_public_api_of_the_issue(tmp_path: Path) -> None:
    from snsmiddleware.mail import FileOutbox as PublicFileOutbox

    app = SnsMiddleware(
        BudgetApp(
            recipients={"Test Budget": ["Ana Lima <ana@example.com>"]},
            default_recipients=["FinOps <finops@example.com>"],
            mailer=PublicFileOutbox(tmp_path / "outbox/"),
        ),
        paths=["/sns/budgets"],
        topics=["arn:aws:sns:us-east-1:123456789012:budget-alerts"],
    )
    assert isinstance(app.app, BudgetApp)
    assert app.app.dead_letter.directory == (tmp_path / "outbox" / "dead-letter").resolve()


# --- exactly once: concurrency and retries ---------------------------------------------------


class BlockingMailer:
    """Holds the first send until released, so duplicates arrive while it is in flight."""

    def __init__(self, inner: FileOutbox) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def send(self, message: EmailMessage) -> None:
        self.entered.set()
        assert self.release.wait(timeout=30)
        self.inner.send(message)


def test_concurrent_duplicates_from_threads_produce_one_email(
    make_middleware: MakeMiddleware, signer: MessageSigner, outbox: FileOutbox
) -> None:
    """Over a real HTTP server (waitress threads): the first delivery is mid-send while
    three duplicates arrive at once; they get 503 (SNS retries), the first gets 200."""
    mailer = BlockingMailer(outbox)
    middleware = make_middleware(app=BudgetApp(recipients={"*": ANA}, mailer=mailer))
    server = StopableWSGIServer.create(middleware, threads=4)
    try:
        url = server.application_url.rstrip("/") + PATH
        message = alert_message(signer)

        def post() -> requests.Response:
            return requests.post(url, data=message.body, headers=message.headers, timeout=30)

        first: list[requests.Response] = []
        first_thread = threading.Thread(target=lambda: first.append(post()))
        first_thread.start()
        assert mailer.entered.wait(timeout=30)

        duplicates: list[requests.Response] = []
        lock = threading.Lock()

        def post_duplicate() -> None:
            response = post()
            with lock:
                duplicates.append(response)

        threads = [threading.Thread(target=post_duplicate) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert [r.status_code for r in duplicates] == [503, 503, 503]
        assert {r.headers["X-SNS-Reason"] for r in duplicates} == {"in_progress"}

        mailer.release.set()
        first_thread.join(timeout=30)
        assert first[0].status_code == 200
        assert first[0].headers["X-SNS-Reason"] == "sent"
        # SNS retries the duplicates later: by then the id is committed.
        retried = post()
        assert retried.status_code == 200
        assert retried.headers["X-SNS-Reason"] == "duplicate"
    finally:
        mailer.release.set()
        server.shutdown()
    assert len(emails(outbox)) == 1


def test_retry_after_smtp_connection_refused_sends_exactly_once(
    make_app: Callable[..., webtest.TestApp], signer: MessageSigner
) -> None:
    port = free_port()
    mailer = SmtpMailer(LOCALHOST, port, security="none", timeout=2)
    app = make_app(mailer=mailer)
    message = alert_message(signer)

    refused = post_sns(app, PATH, message)
    assert refused.status_int == 503
    assert reason(refused) == "mail_unavailable"

    with smtp_server("none", port=port) as server:  # the mail server is back
        retried = post_sns(app, PATH, message)
        assert retried.status_int == 200
        assert reason(retried) == "sent"
        assert reason(post_sns(app, PATH, message)) == "duplicate"
        assert len(server.received) == 1


class FlakyMailer:
    """Fails with a transient error ``failures`` times, then delivers to ``inner``."""

    def __init__(self, inner: FileOutbox, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.calls = 0

    def send(self, message: EmailMessage) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise MailUnavailableError("throttled", code="TooManyRequestsException")
        self.inner.send(message)


def test_retry_after_transient_failures_sends_exactly_once(
    make_app: Callable[..., webtest.TestApp], signer: MessageSigner, outbox: FileOutbox
) -> None:
    mailer = FlakyMailer(outbox, failures=2)
    app = make_app(mailer=mailer)
    message = alert_message(signer)
    statuses = [post_sns(app, PATH, message).status_int for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    assert mailer.calls == 3
    assert len(emails(outbox)) == 1


# --- permanent failures and nobody to send to: the dead-letter outbox ------------------------


def dead_letter_context(letter: EmailMessage) -> dict[str, Any]:
    [attachment] = list(letter.iter_attachments())
    assert attachment.get_filename() == "dead-letter.json"
    context: dict[str, Any] = json.loads(attachment.get_content())
    return context


def test_smtp_permanent_refusal_is_dead_lettered_and_not_retried(
    make_app: Callable[..., webtest.TestApp],
    signer: MessageSigner,
    dead_letter: FileOutbox,
    outbox: FileOutbox,
) -> None:
    with smtp_server("none") as server:
        server.handler.rcpt_replies["owner0@example.com"] = "550 5.1.1 No such user"
        app = make_app(mailer=SmtpMailer(LOCALHOST, server.port, security="none"))
        message = TEMPLATE.signed(signer)
        response = post_sns(app, PATH, message)
        assert response.status_int == 200
        assert reason(response) == "dead_lettered"
        assert "dead-letter" in response.text
        assert reason(post_sns(app, PATH, message)) == "duplicate"
        assert server.received == []

    [letter] = emails(dead_letter)
    assert letter["X-Dead-Letter-Reason"] == "recipients_refused"
    assert "550" in letter["X-Dead-Letter-Detail"]
    assert letter["Subject"].startswith("Cost control alert - 80% warning threshold exceeded")
    context = dead_letter_context(letter)
    assert context["error_code"] == "550"
    assert context["recipients"] == [PEOPLE["Test Budget"]]
    assert context["notification"]["MessageId"] == message.fields["MessageId"]
    assert context["notification"]["Message"] == TEMPLATE.message
    assert context["notification"]["TopicArn"] == TEMPLATE.topic_arn
    assert emails(outbox) == []


def test_ses_rejected_sender_is_dead_lettered(
    make_app: Callable[..., webtest.TestApp],
    signer: MessageSigner,
    dead_letter: FileOutbox,
    ses: MotoSes,
) -> None:
    app = make_app(
        mailer=SesMailer(region=SES_REGION, endpoint_url=ses.url),
        sender="Unverified <someone@unverified.example>",
    )
    response = post_sns(app, PATH, alert_message(signer))
    assert reason(response) == "dead_lettered"
    [letter] = emails(dead_letter)
    assert dead_letter_context(letter)["error_code"] == "MessageRejected"
    assert ses.sent() == []


class RejectingMailer:
    def send(self, message: EmailMessage) -> None:
        raise MailRejectedError("no such mailbox", code="550")


def test_dead_letter_outbox_failure_is_transient_and_retried(
    make_app: Callable[..., webtest.TestApp], signer: MessageSigner, tmp_path: Path
) -> None:
    target = tmp_path / "dead"
    broken = FileOutbox(target)
    target.rmdir()
    target.write_text("the disk is full, say")
    app = make_app(mailer=RejectingMailer(), dead_letter=broken)
    message = alert_message(signer)
    response = post_sns(app, PATH, message)
    assert response.status_int == 503
    assert reason(response) == "outbox_unavailable"

    target.unlink()
    target.mkdir()
    assert reason(post_sns(app, PATH, message)) == "dead_lettered"
    assert len(broken.messages()) == 1


def test_alert_with_no_recipient_and_no_default_is_dead_lettered_and_logged(
    make_app: Callable[..., webtest.TestApp],
    signer: MessageSigner,
    outbox: FileOutbox,
    dead_letter: FileOutbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(recipients={"someone else's budget": ANA}, default_recipients=None)
    response = post_sns(app, PATH, alert_message(signer))
    assert response.status_int == 200
    assert reason(response) == "dead_lettered"
    assert emails(outbox) == []
    [letter] = emails(dead_letter)
    assert letter["X-Dead-Letter-Reason"] == "no_recipients"
    assert letter["To"] is None
    assert "dead-lettered (no_recipients" in caplog.text


# --- routing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipients", "expected"),
    [
        pytest.param({"Test Budget": ANA}, [ANA], id="exact-name"),
        pytest.param({"Test *": [ANA]}, [ANA], id="glob"),
        pytest.param({"test budget": ANA}, [FINOPS], id="names-are-case-sensitive"),
        pytest.param({"017790921725": ANA}, [ANA], id="account-id"),
        pytest.param(
            {
                "Test Budget": ANA,
                "017790921725": [ANA, "bo@example.com"],
                "*": "Cy <cy@example.com>",
            },
            [ANA, "bo@example.com", "Cy <cy@example.com>"],
            id="every-match-once",
        ),
        pytest.param({"other": ANA}, [FINOPS], id="default"),
    ],
)
def test_recipients_by_name_glob_account_and_default(
    make_app: Callable[..., webtest.TestApp],
    signer: MessageSigner,
    outbox: FileOutbox,
    recipients: dict[str, Any],
    expected: list[str],
) -> None:
    app = make_app(recipients=recipients)
    assert reason(post_sns(app, PATH, TEMPLATE.signed(signer))) == "sent"
    [email] = emails(outbox)
    assert to_addresses(email) == expected


OTHER_ACCOUNT = TEMPLATE.account_id  # 017790921725, the template's own topic's account
OWN_ACCOUNT = TOPIC.split(":")[4]  # 123456789012


def _with_account_line(account: str | None) -> str:
    line = f"AWS Account {OTHER_ACCOUNT}\n"
    assert line in TEMPLATE.message
    return TEMPLATE.message.replace(line, "" if account is None else f"AWS Account {account}\n")


@pytest.mark.parametrize(
    ("topic", "text_account", "recipients", "expected"),
    [
        # A publisher to a topic of account 1234... writes account 0177... into the text:
        # 0177...'s owner must not get it (issue 12, item 7).
        pytest.param(TOPIC, OTHER_ACCOUNT, {OTHER_ACCOUNT: ANA}, [FINOPS], id="text-lies"),
        pytest.param(
            TEMPLATE.topic_arn, OTHER_ACCOUNT, {OTHER_ACCOUNT: ANA}, [ANA], id="both-agree"
        ),
        pytest.param(TEMPLATE.topic_arn, None, {OTHER_ACCOUNT: ANA}, [ANA], id="text-silent"),
        pytest.param(TOPIC, OTHER_ACCOUNT, {OWN_ACCOUNT: ANA}, [FINOPS], id="disagree-no-entry"),
        pytest.param(
            TOPIC,
            OTHER_ACCOUNT,
            {OTHER_ACCOUNT: ANA, "Test Budget": "bo@example.com"},
            ["bo@example.com"],
            id="names-still-route",
        ),
    ],
)
def test_account_entries_match_the_signed_topic_account(
    make_app: Callable[..., webtest.TestApp],
    signer: MessageSigner,
    outbox: FileOutbox,
    caplog: pytest.LogCaptureFixture,
    topic: str,
    text_account: str | None,
    recipients: dict[str, Any],
    expected: list[str],
) -> None:
    app = make_app(recipients=recipients)
    message = alert_message(signer, _with_account_line(text_account), TopicArn=topic)
    assert reason(post_sns(app, PATH, message)) == "sent"
    [email] = emails(outbox)
    assert to_addresses(email) == expected
    text, html = parts(email)
    signed = topic.split(":")[4]
    if text_account not in (None, signed):
        assert f"{signed} (the topic's account; the message text says {text_account})" in text
        assert "the topic&#x27;s account" in html
        assert f"the text names AWS account '{text_account}'" in caplog.text


def test_recipients_for_needs_the_signed_topic_for_account_entries() -> None:
    app = BudgetApp(recipients={OTHER_ACCOUNT: ANA}, default_recipients=FINOPS)
    alert = parse_budget_alert(notification(TEMPLATE.message))
    assert [str(a) for a in app.recipients_for(alert, topic_arn=TEMPLATE.topic_arn)] == [ANA]
    assert [str(a) for a in app.recipients_for(alert, topic_arn=TOPIC)] == [FINOPS]
    with pytest.warns(DeprecationWarning, match="topic_arn"):
        assert [str(a) for a in app.recipients_for(alert)] == [FINOPS]


@pytest.mark.parametrize("broken", ["mailer", "dead-letter"])
def test_outbox_failure_answer_does_not_disclose_the_path(
    make_app: Callable[..., webtest.TestApp],
    signer: MessageSigner,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    broken: str,
) -> None:
    """The 503 says what failed; where the outbox lives is for the server's log only."""
    target = tmp_path / "secret-place" / "box"
    box = FileOutbox(target)
    target.rmdir()
    target.write_text("the disk is full, say")
    options: dict[str, Any] = (
        {"mailer": box} if broken == "mailer" else {"mailer": RejectingMailer(), "dead_letter": box}
    )
    app = make_app(**options)
    response = post_sns(app, PATH, alert_message(signer))
    assert response.status_int == 503
    assert reason(response) == "outbox_unavailable"
    assert "secret-place" not in response.text and str(tmp_path) not in response.text
    assert "SNS will retry" in response.text
    assert str(target) in caplog.text


# --- hostile content -------------------------------------------------------------------------


def test_hostile_budget_name_is_html_escaped(
    app: webtest.TestApp, signer: MessageSigner, outbox: FileOutbox
) -> None:
    name = "<script>alert(1)</script>\"'&<img src=x onerror=alert(2)>"
    text = TEMPLATE.message.replace("Test Budget", name)
    response = post_sns(
        app,
        PATH,
        alert_message(
            signer, text, Subject=f"AWS Budgets: {name} has exceeded your alert threshold"
        ),
    )
    assert reason(response) == "sent"
    [email] = emails(outbox)
    plain, html = parts(email)
    assert "<script>" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;&amp;&lt;img src=x" in html
    assert name in plain  # plain text shows it as it is
    assert email["Subject"].endswith(f" - {name}")


def test_subject_header_injection_is_neutralised(
    app: webtest.TestApp, signer: MessageSigner, outbox: FileOutbox
) -> None:
    """The name reaches the Subject through the sentence, with a CR, a NUL and a bidi
    override in it; the email gains no header and keeps its recipients."""
    hostile = "evil\rBcc: attacker@example.net\x00\u202eX"
    text = (
        "AWS Budget Notification September 26, 2022\nAWS Account 017790921725\n\n"
        "You requested that we alert you when the ACTUAL Cost associated with your "
        f"{hostile} budget is greater than $0.16 for the current month.\n"
    )
    response = post_sns(app, PATH, alert_message(signer, text, Subject=None))
    assert reason(response) == "sent"
    [path] = outbox.messages()
    headers = path.read_bytes().split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in headers
    assert b"\r" not in headers.replace(b"\r\n", b"")
    email = parse_email(path.read_bytes())
    assert email["Bcc"] is None
    assert len(email.get_all("Subject")) == 1
    assert "\r" not in email["Subject"] and "\n" not in email["Subject"]
    assert "\u202e" not in email["Subject"]
    assert email["Subject"].endswith(" - evil Bcc: attacker@example.net X")
    assert to_addresses(email) == [FINOPS]


def test_partly_parsed_genuine_alert_is_still_emailed_with_its_raw_text(
    app: webtest.TestApp, signer: MessageSigner, outbox: FileOutbox
) -> None:
    text = "AWS Budget Notification May 13, 2024\nAWS Account 123456789012\nNew wording here.\n"
    response = post_sns(app, PATH, alert_message(signer, text))
    assert reason(response) == "sent"
    [email] = emails(outbox)
    plain, html = parts(email)
    assert email["Subject"] == "Cost control alert - alert threshold exceeded - Test Budget"
    assert "Some details could not be read" in plain
    assert "New wording here." in plain and "New wording here." in html
    assert to_addresses(email) == [PEOPLE["Test Budget"]]


# --- not alerts: 4xx, never an email ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "subject", "code"),
    [
        pytest.param(
            json.dumps(
                {
                    "previousBudgetLimit": {"amount": "100", "unit": "USD"},
                    "currentBudgetLimit": {"amount": "120", "unit": "USD"},
                }
            ),
            None,
            "budget_auto_adjustment",
            id="auto-adjusting-budget",
        ),
        pytest.param("hello world", None, "not_a_budget_alert", id="plain-text"),
        pytest.param('{"AlarmName": "cpu"}', "ALARM: cpu", "not_a_budget_alert", id="other-json"),
    ],
)
def test_non_alert_notification_is_4xx_and_not_emailed(
    app: webtest.TestApp,
    signer: MessageSigner,
    outbox: FileOutbox,
    dead_letter: FileOutbox,
    text: str,
    subject: str | None,
    code: str,
) -> None:
    response = post_sns(app, PATH, signer.notification(text, Subject=subject))
    assert response.status_int == 422
    assert reason(response) == code
    assert emails(outbox) == []
    assert emails(dead_letter) == []


def test_budgets_verification_passed_to_the_app_is_acknowledged_not_emailed(
    make_middleware: MakeMiddleware, signer: MessageSigner, outbox: FileOutbox
) -> None:
    budget_app = BudgetApp(recipients={"*": ANA}, mailer=outbox)
    app = webtest.TestApp(make_middleware(app=budget_app, answer_budgets_verification=False))
    response = post_sns(app, PATH, signer.budgets_verification())
    assert response.status_int == 200
    assert reason(response) == "budgets_verification_acknowledged"
    assert emails(outbox) == []


def test_app_without_the_middleware_refuses_unverified_requests(outbox: FileOutbox) -> None:
    app = webtest.TestApp(BudgetApp(recipients={"*": ANA}, mailer=outbox))
    response = app.post(PATH, TEMPLATE.message, expect_errors=True)
    assert response.status_int == 403
    assert reason(response) == "not_verified"
    assert emails(outbox) == []


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"recipients": {"b": "not an address"}}, id="bad-address"),
        pytest.param({"recipients": {"b": "a@example.com, b@example.com"}}, id="two-in-one"),
        pytest.param({"recipients": {"b": "x@example.com\r\nBcc: y@example.com"}}, id="crlf"),
        pytest.param({"recipients": {"b": []}}, id="empty-list"),
        pytest.param({"recipients": {"": ANA}}, id="empty-key"),
        pytest.param({"recipients": [("b", ANA)]}, id="not-a-mapping"),
        pytest.param({"recipients": {}, "default_recipients": ["nope"]}, id="bad-default"),
        pytest.param({"recipients": {}, "sender": "a@b.example, c@d.example"}, id="bad-sender"),
        pytest.param({"recipients": {}, "mailer": object()}, id="mailer-without-send"),
        pytest.param({"recipients": {}, "subject_prefix": "x\nBcc: y"}, id="multiline-prefix"),
        # Addresses that parse but would put a line separator into every email's To or From.
        pytest.param({"recipients": {"b": "Ana\x85 <ana@example.com>"}}, id="nel-in-name"),
        pytest.param(
            {"recipients": {}, "default_recipients": "Ana\u2028Lima <ana@example.com>"},
            id="line-separator-in-default",
        ),
        pytest.param({"recipients": {}, "sender": "Ana\u2029 <a@example.com>"}, id="ps-sender"),
    ],
)
def test_bad_configuration_fails_at_construction(tmp_path: Path, options: dict[str, Any]) -> None:
    options.setdefault("mailer", FileOutbox(tmp_path))
    with pytest.raises(ConfigurationError):
        BudgetApp(**options)


def test_default_mailer_is_a_file_outbox_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    budget_app = BudgetApp(recipients={"*": ANA})
    assert isinstance(budget_app.mailer, FileOutbox)
    assert budget_app.mailer.directory == (tmp_path / "outbox").resolve()
    assert budget_app.dead_letter.directory == (tmp_path / "outbox" / "dead-letter").resolve()


def test_subject_wording_for_forecasts_and_missing_percentages() -> None:

    forecast = parse_budget_alert(notification(REAL_ALERTS[4].message, subject=None))
    assert alert_subject(forecast, "Heads-up") == (
        "Heads-up - 0% warning threshold forecast to be exceeded - test"
    )
    no_budget = parse_budget_alert(
        notification(TEMPLATE.message.replace("Budgeted Amount: $0.20\n", ""), subject=None)
    )
    assert alert_subject(no_budget) == (
        "Cost control alert - 0.16 USD warning threshold exceeded - Test Budget"
    )
