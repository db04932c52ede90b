"""Header and body injection through the budget name (issue 12, item 1), on every mail path.

A budget name is text anyone who can publish to the topic writes, and AWS's BudgetName rules
allow RFC 2047 encoded-words. Each hostile name below is posted as a genuine signed alert
through SnsMiddleware + BudgetApp, and what was *actually delivered* (the .eml file, what
aiosmtpd received, what moto's SES recorded, the dead-letter copy) is parsed back: no header
may appear that a harmless name does not produce, the decoded Subject is one line holding the
name as literal text, and the body is intact. This runs on whatever CPython runs the tests
(3.11.7 here, without the CVE-2024-6923 fix): the protection is ours, not the stdlib's.
"""

from __future__ import annotations

import base64
import logging
import unicodedata
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8, default
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import pytest
import webtest
from hypothesis import given, settings
from hypothesis import strategies as st

from snsmiddleware import SnsMiddleware
from snsmiddleware import alert_email as alert_email_module
from snsmiddleware.alert_email import alert_subject
from snsmiddleware.budget_app import BudgetApp
from snsmiddleware.budgets import parse_budget_alert
from snsmiddleware.devmode import sample_budget_alert
from snsmiddleware.email_headers import LiteralHeader, UnsafeHeaderError, verify_headers
from snsmiddleware.mail import FileOutbox, SesMailer, SmtpMailer
from snsmiddleware.message import Notification, parse_message
from snsmiddleware.testing import MessageSigner, SignedMessage, post_sns

from ._mail_helpers import (
    LOCALHOST,
    SES_REGION,
    VERIFIED_SENDER,
    MotoSes,
    fresh_ses,
    parse_email,
    smtp_server,
)
from .conftest import PATH, TOPIC

ACCOUNT = TOPIC.split(":")[4]
SENDER = f"Budget alerts <{VERIFIED_SENDER}>"
OWNER = "Owner <owner@example.com>"
ATTACKER = "attacker@evil.example"
HARMLESS = "Test Budget"


def q_word(text: str, charset: str = "utf-8") -> str:
    """``text`` as one RFC 2047 Q encoded-word, written by hand (as an attacker would)."""
    encoded = "".join(
        chr(byte) if chr(byte).isalnum() and byte < 128 else "_" if byte == 32 else f"={byte:02X}"
        for byte in text.encode(charset)
    )
    return f"=?{charset}?q?{encoded}?="


def b_word(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


HOSTILE_NAMES = {
    "issue-example": "=?utf-8?q?x=0D=0ABcc=3A_attacker=40evil=2Eexample?=",
    "q-bcc": q_word(f"x\r\nBcc: {ATTACKER}"),
    "b-bcc": b_word(f"x\r\nBcc: {ATTACKER}"),
    "q-reply-to-and-end-of-headers": q_word(
        f"x\r\nReply-To: {ATTACKER}\r\nTo: {ATTACKER}\r\n\r\nFAKE BODY"
    ),
    "b-end-of-headers": b_word("x\r\n\r\n<html>FAKE BODY</html>"),
    "split-across-words": f"{q_word('x' + chr(13))} {q_word(chr(10) + 'Bcc: ' + ATTACKER)}",
    "folding-whitespace": f"{q_word(f'x{chr(13)}{chr(10)} Bcc: {ATTACKER}')}\t"
    f"{q_word(f'{chr(13)}{chr(10)}{chr(9)}To: {ATTACKER}')}",
    "unicode-separators": q_word(
        f"x\u2028Bcc: {ATTACKER}\x85Reply-To: {ATTACKER}\u2029To: {ATTACKER}"
    ),
    "lowercase-hex-upper-q": "=?UTF-8?Q?x=0d=0aBcc:_attacker@evil.example?=",
    "latin-1-charset": q_word(f"x\r\nBcc: {ATTACKER}", "iso-8859-1"),
    "bare-lf-and-nul": q_word(f"x\nBcc: {ATTACKER}\x00"),
    "very-long": (q_word(f"\r\nBcc: {ATTACKER}") + " ") * 4000,  # ~200 KB
}


def alert(name: str, *, where: str = "label") -> tuple[str | None, str]:
    """(SNS Subject, Message) of a Budgets alert carrying ``name`` where the parser reads it
    first: the ``Budget Name:`` line, the SNS Subject, or the sentence."""
    subject, text = sample_budget_alert("PLACEHOLDER", account=ACCOUNT)
    if where == "label":
        return None, text.replace("PLACEHOLDER", name)
    text = text.replace("Budget Name: PLACEHOLDER\n", "")
    if where == "subject":
        return subject.replace("PLACEHOLDER", name), text.replace("PLACEHOLDER", "some")
    return None, text.replace("PLACEHOLDER", name)


CASES = [pytest.param(name, "label", id=key) for key, name in HOSTILE_NAMES.items()] + [
    pytest.param(HOSTILE_NAMES["issue-example"], "subject", id="issue-example-in-sns-subject"),
    pytest.param(HOSTILE_NAMES["b-bcc"], "sentence", id="b-bcc-in-sentence"),
    pytest.param(
        f"x\u2028Bcc: {ATTACKER}\x85Reply-To: {ATTACKER}\rTo: {ATTACKER}\u2029",
        "sentence",
        id="literal-separators-in-sentence",
    ),
]


# --- the mail paths, each with a real receiving end ------------------------------------------


@pytest.fixture
def ses(moto_server: MotoSes, monkeypatch: pytest.MonkeyPatch) -> MotoSes:
    return fresh_ses(moto_server, monkeypatch)


class Route:
    """A BudgetApp behind SnsMiddleware whose emails end up somewhere we can read back."""

    def __init__(
        self,
        app: webtest.TestApp,
        delivered: Callable[[], list[EmailMessage]],
        envelope: Callable[[], list[list[str]]],
        *,
        dead_letter: bool,
    ) -> None:
        self.app = app
        self.delivered = delivered
        self.envelope = envelope
        self.dead_letter = dead_letter


ROUTES = ["file", "smtp", "ses", "dead-letter-no-recipients", "dead-letter-smtp-refused"]


@pytest.fixture(params=ROUTES)
def route(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    make_middleware: Callable[..., SnsMiddleware],
) -> Iterator[Route]:
    outbox = FileOutbox(tmp_path / "outbox")
    dead = FileOutbox(tmp_path / "dead-letter")

    def make(mailer: Any, **options: Any) -> webtest.TestApp:
        settings: dict[str, Any] = {
            "recipients": {HARMLESS: OWNER},
            "default_recipients": [OWNER],
            "mailer": mailer,
            "sender": SENDER,
            "dead_letter": dead,
        }
        settings.update(options)
        return webtest.TestApp(make_middleware(app=BudgetApp(**settings)), lint=True)

    def read(box: FileOutbox) -> Callable[[], list[EmailMessage]]:
        return lambda: [parse_email(path.read_bytes()) for path in box.messages()]

    kind = request.param
    if kind == "file":
        yield Route(make(outbox), read(outbox), lambda: [], dead_letter=False)
    elif kind in ("smtp", "dead-letter-smtp-refused"):
        with smtp_server("none") as server:
            if kind == "dead-letter-smtp-refused":
                server.handler.rcpt_replies["owner@example.com"] = "550 5.1.1 No such user"
            app = make(SmtpMailer(LOCALHOST, server.port, security="none"))
            if kind == "smtp":
                yield Route(
                    app,
                    lambda: [received.message for received in server.received],
                    lambda: [received.rcpt_tos for received in server.received],
                    dead_letter=False,
                )
            else:
                yield Route(app, read(dead), lambda: [], dead_letter=True)
                assert server.received == []
    elif kind == "ses":
        moto: MotoSes = request.getfixturevalue("ses")
        mailer = SesMailer(region=SES_REGION, endpoint_url=moto.url)
        yield Route(
            make(mailer),
            lambda: [parse_email(sent.raw_data) for sent in moto.sent()],
            # moto adds the To header's addresses to the Destination it was given.
            lambda: [
                sorted({address for _, address in getaddresses(sent.destinations)})
                for sent in moto.sent()
            ],
            dead_letter=False,
        )
    else:
        app = make(outbox, recipients={}, default_recipients=None)
        yield Route(app, read(dead), lambda: [], dead_letter=True)
        assert outbox.messages() == []


def post_alert(route: Route, signer: MessageSigner, name: str, where: str) -> SignedMessage:
    subject, text = alert(name, where=where)
    message = signer.notification(text, Subject=subject)
    response = post_sns(route.app, PATH, message)
    assert response.status_int == 200, response.text
    assert response.text.startswith("dead_lettered" if route.dead_letter else "sent")
    return message


def header_names(email: EmailMessage) -> list[str]:
    return [name.lower() for name in email]


def assert_one_line(value: str) -> None:
    assert len(value.splitlines()) <= 1, value
    assert not [c for c in value if unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp"}], value


def expected_subject(message: SignedMessage) -> str:
    notification = parse_message(message.body)
    assert isinstance(notification, Notification)
    return alert_subject(parse_budget_alert(notification))


@pytest.mark.parametrize(("name", "where"), CASES)
def test_hostile_budget_name_adds_no_header_on_any_mail_path(
    route: Route, signer: MessageSigner, name: str, where: str
) -> None:
    harmless = post_alert(route, signer, HARMLESS, where)
    hostile = post_alert(route, signer, name, where)
    # Identified by MessageId: an outbox lists its files by name, not in the order written.
    delivered = {str(message["X-SNS-Message-Id"]): message for message in route.delivered()}
    assert len(delivered) == 2
    control = delivered[harmless.fields["MessageId"]]
    email = delivered[hostile.fields["MessageId"]]

    # Exactly the headers a harmless name produces, each once: no Bcc, Reply-To, extra To.
    assert header_names(email) == header_names(control)
    assert len(set(header_names(email))) == len(header_names(email))
    for extra in ("Bcc", "Cc", "Reply-To"):
        assert email.get_all(extra) is None
    if email["To"] is not None or not route.dead_letter:
        assert [a.addr_spec for a in email["To"].addresses] == ["owner@example.com"]
    for recipients in route.envelope():
        assert recipients == ["owner@example.com"]

    # One Subject, one line, the name as literal text (encoded-words and all).
    [subject] = email.get_all("Subject")
    assert_one_line(str(subject))
    assert str(subject) == expected_subject(hostile)
    for value in email.values():
        assert_one_line(str(value))
    assert str(email["X-SNS-Message-Id"]) == hostile.fields["MessageId"]
    assert str(control["X-SNS-Message-Id"]) == harmless.fields["MessageId"]

    # The body is the real one, with the original text line for line.
    text = email.get_body(("plain",))
    html = email.get_body(("html",))
    assert text is not None and html is not None
    plain = text.get_content().replace("\r\n", "\n")
    assert plain.startswith("AWS Budgets alert: ")
    assert "\n".join(hostile.fields["Message"].splitlines()) in plain
    if route.dead_letter:
        assert_one_line(str(email["X-Dead-Letter-Detail"]))
        [attachment] = list(email.iter_attachments())
        assert attachment.get_filename() == "dead-letter.json"


def test_the_issue_example_reads_back_literally_from_the_outbox(
    tmp_path: Path, signer: MessageSigner, make_middleware: Callable[..., SnsMiddleware]
) -> None:
    outbox = FileOutbox(tmp_path / "outbox")
    app = webtest.TestApp(
        make_middleware(app=BudgetApp(recipients={}, default_recipients=OWNER, mailer=outbox))
    )
    name = HOSTILE_NAMES["issue-example"]
    subject, text = alert(name)
    assert post_sns(app, PATH, signer.notification(text, Subject=subject)).status_int == 200
    [path] = outbox.messages()
    raw = path.read_bytes()
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in headers and ATTACKER.encode() not in headers
    email = parse_email(raw)
    assert str(email["Subject"]) == f"Cost control alert - 90% warning threshold exceeded - {name}"
    assert email["Bcc"] is None


def test_very_long_hostile_name_makes_short_log_lines(
    tmp_path: Path,
    signer: MessageSigner,
    make_middleware: Callable[..., SnsMiddleware],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Should-fix of issue 12: a 200 KB budget name made a 200 KB log record."""
    caplog.set_level(logging.DEBUG)
    app = webtest.TestApp(
        make_middleware(
            app=BudgetApp(
                recipients={"someone else": OWNER},
                mailer=FileOutbox(tmp_path / "outbox"),
                dead_letter=tmp_path / "dead",
            )
        )
    )
    name = HOSTILE_NAMES["very-long"]
    assert len(name) > 200_000
    subject, text = alert(name)
    response = post_sns(app, PATH, signer.notification(text, Subject=subject))
    assert response.text.startswith("dead_lettered")
    assert len(response.body) < 1000
    assert caplog.records
    assert max(len(record.getMessage()) for record in caplog.records) < 2000
    [letter] = [parse_email(p.read_bytes()) for p in FileOutbox(tmp_path / "dead").messages()]
    assert len(str(letter["X-Dead-Letter-Detail"])) < 200


# --- the building blocks ---------------------------------------------------------------------


def naive_email(subject: str) -> EmailMessage:
    """What the stdlib does with untrusted text assigned as a plain string."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = SENDER
    message["To"] = OWNER
    message.set_content("hello")
    return message


@pytest.mark.parametrize(
    "key", ["issue-example", "b-bcc", "b-end-of-headers", "unicode-separators"]
)
def test_verify_headers_catches_what_the_stdlib_would_inject(key: str) -> None:
    """On CPython without the CVE-2024-6923 fix the naive email gains a header; with the fix
    its decoded Subject holds a line break. verify_headers refuses both."""
    with pytest.raises(UnsafeHeaderError):
        verify_headers(naive_email(f"Cost control alert - {HOSTILE_NAMES[key]}"))


@pytest.mark.parametrize("key", sorted(HOSTILE_NAMES))
def test_literal_header_reads_back_as_the_text_it_was_given(key: str) -> None:
    text = f"Cost control alert - {HOSTILE_NAMES[key]}"
    header = LiteralHeader("Subject", text)
    assert str(header) == text.replace("\t", " ").strip()  # a tab is a control character
    text = str(header)
    message = naive_email("placeholder")
    message.replace_header("Subject", header)
    verify_headers(message)
    for policy in (SMTP, SMTPUTF8, default):
        raw = message.as_bytes(policy=policy)
        assert str(parse_email(raw)["Subject"]) == text
        assert parse_email(raw)["Bcc"] is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.sampled_from(["Subject", "X-Dead-Letter-Detail", "X"]))
def test_any_text_reads_back_as_one_line(text: str, name: str) -> None:
    header = LiteralHeader(name, text)
    message = EmailMessage()
    message[name] = header
    message["To"] = OWNER
    verify_headers(message)
    raw = message.as_bytes(policy=SMTP)
    got = str(parse_email(raw)[name])
    assert got == str(header)
    assert_one_line(got)
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_unsafe_headers_fall_back_to_plain_ascii(
    tmp_path: Path,
    signer: MessageSigner,
    make_middleware: Callable[..., SnsMiddleware],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Should the literal encoding ever fail (here: replaced by the naive stdlib behaviour),
    the check notices and the alert still goes out, with a plain ASCII Subject."""
    monkeypatch.setattr(alert_email_module, "LiteralHeader", lambda name, text: text)
    outbox = FileOutbox(tmp_path / "outbox")
    app = webtest.TestApp(
        make_middleware(app=BudgetApp(recipients={}, default_recipients=OWNER, mailer=outbox))
    )
    subject, text = alert(HOSTILE_NAMES["issue-example"])
    assert post_sns(app, PATH, signer.notification(text, Subject=subject)).status_int == 200
    [email] = [parse_email(p.read_bytes()) for p in outbox.messages()]
    assert email["Bcc"] is None
    assert_one_line(str(email["Subject"]))
    assert str(email["Subject"]).startswith("Cost control alert - 90% warning threshold exceeded")
    assert "did not read back safely" in caplog.text
