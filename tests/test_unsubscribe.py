"""Delivery health: an UnsubscribeConfirmation means no more alerts, and someone must hear of
it. The middleware's ``on_unsubscribe`` hook (once per MessageId, its failures answered
deliberately) and BudgetApp's notice to the admin recipients, end to end over waitress with
the file outbox, SMTP (aiosmtpd) and SES (moto) (issue 14, section 3)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import pytest
import requests
import webtest
from webtest.http import StopableWSGIServer

from snsmiddleware import SnsMiddleware
from snsmiddleware.budget_app import BudgetApp
from snsmiddleware.devmode import load_or_create_dev_ca
from snsmiddleware.errors import MailRejectedError, MailUnavailableError, TransientError
from snsmiddleware.mail import FileOutbox
from snsmiddleware.message import UnsubscribeConfirmation
from snsmiddleware.server import DEFAULT_TOPIC, assemble
from snsmiddleware.testing import FrozenClock, MessageSigner, post_sns

from ._answers import assert_answer
from ._hardening_helpers import emails_in
from ._mail_helpers import (
    SES_REGION,
    VERIFIED_SENDER,
    MotoSes,
    fresh_ses,
    parse_email,
    smtp_server,
)
from ._net import free_port
from ._project import ROOT
from ._serve_helpers import SNS_PATH, Server
from .conftest import PATH, TOPIC

ADMIN = "Ops on call <ops@example.com>"


class RecordingHook:
    """An ``on_unsubscribe`` hook that records its calls and raises what it is told to."""

    def __init__(self, *failures: BaseException) -> None:
        self.calls: list[UnsubscribeConfirmation] = []
        self.failures = list(failures)

    def __call__(self, message: UnsubscribeConfirmation) -> None:
        self.calls.append(message)
        if self.failures:
            raise self.failures.pop(0)


@pytest.fixture
def hooked(make_middleware: Callable[..., SnsMiddleware]) -> Callable[..., webtest.TestApp]:
    def make(hook: Any) -> webtest.TestApp:
        return webtest.TestApp(make_middleware(on_unsubscribe=hook), lint=True)

    return make


def test_the_hook_gets_each_verified_unsubscribe_once(
    hooked: Callable[..., webtest.TestApp], versioned_signer: MessageSigner
) -> None:
    hook = RecordingHook()
    app = hooked(hook)
    message = versioned_signer.unsubscribe_confirmation()
    assert_answer(post_sns(app, PATH, message), 200, "unsubscribe_acknowledged")
    # SNS redelivers at least once: the redelivery is answered without a second call.
    assert_answer(post_sns(app, PATH, message), 200, "duplicate")
    assert [call.message_id for call in hook.calls] == [message.fields["MessageId"]]
    assert hook.calls[0].topic_arn == TOPIC
    # Another event (a new MessageId) is another call.
    assert_answer(
        post_sns(app, PATH, versioned_signer.unsubscribe_confirmation()),
        200,
        "unsubscribe_acknowledged",
    )
    assert len(hook.calls) == 2


def test_the_hook_never_sees_an_unverified_or_foreign_unsubscribe(
    hooked: Callable[..., webtest.TestApp], signer: MessageSigner
) -> None:
    hook = RecordingHook()
    app = hooked(hook)
    forged = signer.unsubscribe_confirmation().tampered(Message="You have chosen...")
    assert post_sns(app, PATH, forged).status_int == 403
    foreign = signer.unsubscribe_confirmation(TopicArn="arn:aws:sns:us-east-1:999999999999:x")
    assert_answer(post_sns(app, PATH, foreign), 403, "topic_not_allowed")
    assert hook.calls == []


def test_a_transient_hook_failure_answers_503_and_the_redelivery_calls_it_again(
    hooked: Callable[..., webtest.TestApp], signer: MessageSigner
) -> None:
    hook = RecordingHook(TransientError("the mail server is down", reason="mail_unavailable"))
    app = hooked(hook)
    message = signer.unsubscribe_confirmation()
    assert_answer(post_sns(app, PATH, message), 503, "mail_unavailable")
    assert_answer(post_sns(app, PATH, message), 200, "unsubscribe_acknowledged")
    assert_answer(post_sns(app, PATH, message), 200, "duplicate")
    assert len(hook.calls) == 2


def test_a_permanent_hook_failure_is_answered_and_not_retried(
    hooked: Callable[..., webtest.TestApp], signer: MessageSigner
) -> None:
    hook = RecordingHook(MailRejectedError("the address does not exist"))
    app = hooked(hook)
    message = signer.unsubscribe_confirmation()
    assert_answer(post_sns(app, PATH, message), 422, "mail_rejected")
    assert_answer(post_sns(app, PATH, message), 200, "duplicate")
    assert len(hook.calls) == 1


def test_a_buggy_hook_is_a_500_without_a_traceback_and_is_retried(
    hooked: Callable[..., webtest.TestApp],
    signer: MessageSigner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook = RecordingHook(KeyError("secret-internal-detail"))
    app = hooked(hook)
    message = signer.unsubscribe_confirmation()
    with caplog.at_level(logging.ERROR, logger="snsmiddleware.middleware"):
        response = post_sns(app, PATH, message)
    assert_answer(response, 500, "app_error")
    assert "secret-internal-detail" not in response.text
    assert "Traceback" in caplog.text  # the log has it, the answer never
    assert_answer(post_sns(app, PATH, message), 200, "unsubscribe_acknowledged")


def test_without_a_hook_the_unsubscribe_is_a_warning(
    testapp: webtest.TestApp, signer: MessageSigner, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="snsmiddleware.middleware"):
        assert_answer(
            post_sns(testapp, PATH, signer.unsubscribe_confirmation()),
            200,
            "unsubscribe_acknowledged",
        )
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "deliveries from this topic stop" in record.message


def test_the_hook_must_be_callable(make_middleware: Callable[..., SnsMiddleware]) -> None:
    from snsmiddleware import ConfigurationError

    with pytest.raises(ConfigurationError, match="on_unsubscribe must be a callable"):
        make_middleware(on_unsubscribe="email the admins")


# --- BudgetApp's notice ----------------------------------------------------------------------


def budget_app(tmp_path: Path, clock: FrozenClock, **options: Any) -> BudgetApp:
    return BudgetApp(
        recipients={},
        default_recipients="FinOps <finops@example.com>",
        mailer=options.pop("mailer", FileOutbox(tmp_path / "outbox")),
        sender="Budget alerts <alerts@example.com>",
        clock=clock,
        **options,
    )


def test_without_admin_recipients_budget_app_warns_that_alerts_will_stop(
    tmp_path: Path,
    make_middleware: Callable[..., SnsMiddleware],
    signer: MessageSigner,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = budget_app(tmp_path, clock)
    testapp = webtest.TestApp(make_middleware(app=app, on_unsubscribe=app.on_unsubscribe))
    message = signer.unsubscribe_confirmation()
    with caplog.at_level(logging.WARNING, logger="snsmiddleware.budget_app"):
        assert_answer(post_sns(testapp, PATH, message), 200, "unsubscribe_acknowledged")
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert f"unsubscribed from {TOPIC} at {message.fields['Timestamp']}" in record.message
    assert "alerts will stop" in record.message and "no admin_recipients" in record.message
    assert emails_in(tmp_path / "outbox") == []


def assert_is_the_notice(notice: Any, message: MessageSigner | Any, *, to: str = ADMIN) -> None:
    fields = message.fields
    assert str(notice["To"]) == to
    subject = str(notice["Subject"])
    assert f"unsubscribed from {fields['TopicArn']}" in subject and "alerts will stop" in subject
    text = notice.get_body(("plain",)).get_content()
    assert (
        f"This endpoint was unsubscribed from {fields['TopicArn']} at {fields['Timestamp']}; "
        "alerts will stop." in text
    )
    assert f"aws sns subscribe --region us-east-1 --topic-arn {fields['TopicArn']}" in text
    assert fields["Token"] not in text and fields["SubscribeURL"] not in text
    assert notice["X-SNS-Message-Id"] == fields["MessageId"]
    assert notice["Auto-Submitted"] == "auto-generated"


def test_a_rejected_notice_is_dead_lettered_and_a_late_transient_one_too(
    tmp_path: Path,
    make_middleware: Callable[..., SnsMiddleware],
    signer: MessageSigner,
    clock: FrozenClock,
) -> None:
    class Failing:
        def __init__(self, error: Exception) -> None:
            self.error = error

        def send(self, message: Any) -> None:
            raise self.error

    dead = tmp_path / "dead"
    rejecting = budget_app(
        tmp_path,
        clock,
        admin_recipients=ADMIN,
        mailer=Failing(MailRejectedError("no")),
        dead_letter=dead,
    )
    testapp = webtest.TestApp(
        make_middleware(app=rejecting, on_unsubscribe=rejecting.on_unsubscribe)
    )
    message = signer.unsubscribe_confirmation()
    assert_answer(post_sns(testapp, PATH, message), 200, "unsubscribe_acknowledged")
    [letter] = emails_in(dead)
    assert letter["X-Dead-Letter-Reason"] == "mail_rejected"
    assert_is_the_notice(letter, message)

    down = budget_app(
        tmp_path,
        clock,
        admin_recipients=ADMIN,
        mailer=Failing(MailUnavailableError("down")),
        dead_letter=dead,
    )
    testapp = webtest.TestApp(make_middleware(app=down, on_unsubscribe=down.on_unsubscribe))
    fresh = signer.unsubscribe_confirmation()
    assert_answer(post_sns(testapp, PATH, fresh), 503, "mail_unavailable")
    clock.advance(timedelta(seconds=55))  # SNS has been retrying for longer than dead_letter_after
    assert_answer(post_sns(testapp, PATH, fresh), 200, "unsubscribe_acknowledged")
    reasons = sorted(str(letter["X-Dead-Letter-Reason"]) for letter in emails_in(dead))
    assert reasons == ["mail_rejected", "retries_exhausted"]


# --- end to end over waitress ----------------------------------------------------------------


@pytest.fixture
def dev_signer(tmp_path: Path) -> MessageSigner:
    """Signs as send-test-alert does: with the development CA a --dev server trusts."""
    return MessageSigner(load_or_create_dev_ca(tmp_path / "dev-ca"), topic_arn=DEFAULT_TOPIC)


def post(url: str, message: Any) -> tuple[int, str]:
    response = requests.post(url, data=message.body, headers=message.headers, timeout=30)
    with response:
        return response.status_code, response.headers["X-SNS-Reason"]


def test_serve_with_admin_recipient_flag_emails_the_notice_once_to_the_file_outbox(
    tmp_path: Path, dev_signer: MessageSigner
) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "snsmiddleware", "serve", "--dev", "--port", str(port)]
    argv += ["--dev-ca", str(tmp_path / "dev-ca"), "--admin-recipient", ADMIN]
    argv += ["--admin-recipient", "second@example.com"]
    server = Server(argv, tmp_path, port)
    try:
        message = dev_signer.unsubscribe_confirmation()
        assert post(server.url, message) == (200, "unsubscribe_acknowledged")
        assert post(server.url, message) == (200, "duplicate")
    finally:
        server.stop()
    [notice] = emails_in(tmp_path / "outbox")
    assert_is_the_notice(notice, message, to=f"{ADMIN}, second@example.com")


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], str]]:
    """Start the embedded-defaults application (BudgetApp behind SnsMiddleware, built as
    ``serve`` builds it, development trust on) on waitress with these environment
    variables; returns its SNS URL."""
    servers: list[StopableWSGIServer] = []

    def start(environ: dict[str, str]) -> str:
        flags = {"development": "true", "dev_ca": str(tmp_path / "dev-ca")}
        assembly = assemble(flags, environ, None)
        server = StopableWSGIServer.create(assembly.app)
        servers.append(server)
        return f"{server.application_url.rstrip('/')}{SNS_PATH}"

    yield start
    for server in servers:
        server.shutdown()


def test_the_notice_goes_through_smtp_once(
    serving: Callable[[dict[str, str]], str], dev_signer: MessageSigner
) -> None:
    with smtp_server("none") as smtp:
        url = serving(
            {
                "SNSMIDDLEWARE_MAILER": "smtp",
                "SNSMIDDLEWARE_SMTP_HOST": "127.0.0.1",
                "SNSMIDDLEWARE_SMTP_PORT": str(smtp.port),
                "SNSMIDDLEWARE_SMTP_SECURITY": "none",
                "SNSMIDDLEWARE_ADMIN_RECIPIENTS": ADMIN,
                "SNSMIDDLEWARE_DEDUPE": "memory",
            }
        )
        message = dev_signer.unsubscribe_confirmation()
        assert post(url, message) == (200, "unsubscribe_acknowledged")
        assert post(url, message) == (200, "duplicate")
        [received] = smtp.received
    assert received.rcpt_tos == ["ops@example.com"]
    assert_is_the_notice(parse_email(received.data), message)


def test_the_notice_goes_through_ses_once(
    serving: Callable[[dict[str, str]], str],
    dev_signer: MessageSigner,
    moto_server: MotoSes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ses = fresh_ses(moto_server, monkeypatch)
    url = serving(
        {
            "SNSMIDDLEWARE_MAILER": "ses",
            "SNSMIDDLEWARE_SES_REGION": SES_REGION,
            "SNSMIDDLEWARE_SES_ENDPOINT_URL": ses.url,
            "SNSMIDDLEWARE_SENDER": VERIFIED_SENDER,
            "SNSMIDDLEWARE_ADMIN_RECIPIENTS": ADMIN,
            "SNSMIDDLEWARE_DEDUPE": "memory",
        }
    )
    message = dev_signer.unsubscribe_confirmation()
    assert post(url, message) == (200, "unsubscribe_acknowledged")
    assert post(url, message) == (200, "duplicate")
    [sent] = ses.sent()
    assert {address for _, address in getaddresses(sent.destinations)} == {"ops@example.com"}
    assert_is_the_notice(parse_email(sent.raw_data), message)


def test_an_ini_pipeline_wires_the_budget_app_hook(tmp_path: Path) -> None:
    from paste.deploy import loadapp

    ini = tmp_path / "app.ini"
    ini.write_text(
        "[pipeline:main]\npipeline = sns budgets\n\n"
        "[filter:sns]\nuse = egg:snsmiddleware#sns\npaths = /sns/budgets\n"
        f"topics = {DEFAULT_TOPIC}\n\n"
        "[app:budgets]\nuse = egg:snsmiddleware#budget_app\n"
        f"admin_recipients = {ADMIN}\noutbox = {tmp_path / 'outbox'}\n"
    )
    app = loadapp(f"config:{ini}")
    assert isinstance(app, SnsMiddleware) and isinstance(app.app, BudgetApp)
    assert app.on_unsubscribe == app.app.on_unsubscribe
    assert [str(address) for address in app.app.admin_recipients] == [ADMIN]


def test_admin_recipients_are_checked_at_start() -> None:
    from snsmiddleware import ConfigurationError

    with pytest.raises(ConfigurationError, match="admin_recipients"):
        BudgetApp(recipients={}, admin_recipients="not an address")
    with pytest.raises(ConfigurationError, match="--admin-recipient applies to the embedded"):
        assemble({"admin_recipients": ADMIN}, {}, ROOT / "examples" / "paste.ini")
