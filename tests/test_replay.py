"""``snsmiddleware replay``: dead letters sent again through the configured mailer, exactly
once each, across re-runs and crashes (issue 14, section 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from snsmiddleware import ConfigurationError
from snsmiddleware.budget_app import BudgetApp
from snsmiddleware.cli import main
from snsmiddleware.errors import MailRejectedError, MailUnavailableError
from snsmiddleware.mail import FileOutbox
from snsmiddleware.message import Notification, UnsubscribeConfirmation, parse_message
from snsmiddleware.replay import (
    LEDGER_NAME,
    Outcome,
    ReplayLedger,
    read_dead_letter,
    replay_dead_letters,
)
from snsmiddleware.testing import MessageSigner, SignedMessage

from ._budget_helpers import REAL_ALERTS
from ._hardening_helpers import emails_in
from ._mail_helpers import parse_email, smtp_server
from ._project import ROOT

SENDER = "Budget alerts <alerts@example.com>"
FINOPS = "FinOps <finops@example.com>"


class Rejecting:
    """A mailer that refuses every email for good (SMTP 5xx, SES MessageRejected)."""

    def send(self, message: EmailMessage) -> None:
        raise MailRejectedError("550 mailbox unavailable")


class Recording:
    """A mailer that keeps what it sends; ``then`` is raised after the send (a crash)."""

    def __init__(self, then: BaseException | None = None) -> None:
        self.sent: list[EmailMessage] = []
        self.then = then

    def send(self, message: EmailMessage) -> None:
        self.sent.append(message)
        if self.then is not None:
            raise self.then


class Crash(BaseException):
    """The process dying right after the mail server took the email."""


def notification(signed: SignedMessage) -> Notification:
    message = parse_message(signed.body)
    assert isinstance(message, Notification)
    return message


@pytest.fixture
def dead_letters(tmp_path: Path, signer: MessageSigner) -> Callable[..., list[Path]]:
    """Dead letters as BudgetApp writes them (the mail service refused the alerts), in
    ``tmp_path/dead-letter``; ``routed=False`` gives ``no_recipients`` ones."""
    directory = tmp_path / "dead-letter"

    def make(*messages: SignedMessage, routed: bool = True) -> list[Path]:
        app = BudgetApp(
            recipients={},
            default_recipients=FINOPS if routed else None,
            mailer=Rejecting(),
            sender=SENDER,
            dead_letter=directory,
        )
        before = set(directory.glob("*.eml"))
        for message in messages:
            assert app.handle(notification(message)).status_int == 200
        return sorted(set(directory.glob("*.eml")) - before)

    return make


def tampered(letter: Path, into: Path, change: Callable[[dict[str, Any]], object] | None) -> Path:
    """A copy of a dead letter whose dead-letter.json was changed (``None``: not JSON)."""
    email = parse_email(letter.read_bytes())
    [attachment] = email.iter_attachments()
    assert isinstance(attachment, EmailMessage)
    context = json.loads(attachment.get_content())
    data = b"not json" if change is None else b""
    if change is not None:
        change(context)
        data = json.dumps(context).encode()
    attachment.set_content(
        data, maintype="application", subtype="json", filename="dead-letter.json"
    )
    into.write_bytes(email.as_bytes())
    return into


def real_alerts(signer: MessageSigner) -> list[SignedMessage]:
    return [alert.signed(signer) for alert in REAL_ALERTS[:2]]


@pytest.fixture
def file_mailer_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """serve's settings for the file outbox in ``tmp_path/replayed-outbox``."""
    outbox = tmp_path / "replayed-outbox"
    monkeypatch.setenv("SNSMIDDLEWARE_OUTBOX", str(outbox))
    monkeypatch.setenv("SNSMIDDLEWARE_DEAD_LETTER", str(tmp_path / "dead-letter"))
    monkeypatch.setenv("SNSMIDDLEWARE_SENDER", SENDER)
    return outbox


def test_replay_sends_each_dead_letter_once_through_the_file_outbox(
    dead_letters: Callable[..., list[Path]],
    signer: MessageSigner,
    file_mailer_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    letters = dead_letters(*real_alerts(signer))
    assert main(["replay", *map(str, letters)]) == 0
    out = capsys.readouterr().out
    assert out.count("\nreplayed ") + out.startswith("replayed ") == 2
    assert "sent to 1 recipient(s) (was mail_rejected)" in out
    replayed = [parse_email(path.read_bytes()) for path in sorted(file_mailer_env.glob("*.eml"))]
    assert len(replayed) == 2
    for letter_path, email in zip(letters, replayed, strict=True):
        letter = parse_email(letter_path.read_bytes())
        assert email["Subject"] == letter["Subject"]
        assert email["Message-ID"] == letter["Message-ID"]
        assert str(email["To"]) == FINOPS and str(email["From"]) == SENDER
        assert email["X-SNS-Message-Id"] == letter["X-SNS-Message-Id"]
        assert "X-Dead-Letter-Reason" not in email and "X-Dead-Letter-Detail" not in email
        assert list(email.iter_attachments()) == []
        for kind in ("plain", "html"):
            original = letter.get_body((kind,))
            again = email.get_body((kind,))
            assert original is not None and again is not None
            assert again.get_content() == original.get_content()
    ledger = tmp_path / "dead-letter" / LEDGER_NAME
    states = [json.loads(line)["state"] for line in ledger.read_text().splitlines()]
    assert states == ["sending", "sent", "sending", "sent"]

    # Run it again (and give a letter twice): nothing is sent twice, and it says so.
    assert main(["replay", *map(str, letters), str(letters[0])]) == 0
    out = capsys.readouterr().out
    assert "3 already-replayed;" in out and "not sent again" in out
    assert len(emails_in(file_mailer_env)) == 2


def test_a_hostile_subject_stays_literal_when_replayed(
    dead_letters: Callable[..., list[Path]], signer: MessageSigner, tmp_path: Path
) -> None:
    name = "=?utf-8?q?x=0D=0ABcc=3A_attacker=40evil=2Eexample?="
    alert = REAL_ALERTS[0]
    message = signer.notification(
        alert.message.replace(alert.budget_name, name),
        Subject=f"AWS Budgets: {name} has exceeded your alert threshold",
    )
    [letter] = dead_letters(message)
    mailer = Recording()
    with ReplayLedger(tmp_path / "ledger.jsonl") as ledger:
        [result] = replay_dead_letters(
            [letter], mailer=mailer, sender=read_dead_letter(letter).recipients[0], ledger=ledger
        )
    assert result.outcome is Outcome.REPLAYED
    [sent] = mailer.sent
    wire = parse_email(sent.as_bytes())
    assert "Bcc" not in wire and "attacker@evil.example" not in str(wire["To"])
    assert name in str(wire["Subject"])


def test_replay_through_smtp_once_each_and_letters_with_nobody_to_send_to(
    dead_letters: Callable[..., list[Path]],
    signer: MessageSigner,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    [routed] = dead_letters(real_alerts(signer)[0])
    [nobody] = dead_letters(real_alerts(signer)[1], routed=False)
    assert read_dead_letter(nobody).reason == "no_recipients"
    with smtp_server("none") as smtp:
        for name, value in {
            "MAILER": "smtp",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp.port),
            "SMTP_SECURITY": "none",
            "SENDER": SENDER,
            "DEAD_LETTER": str(tmp_path / "dead-letter"),
        }.items():
            monkeypatch.setenv(f"SNSMIDDLEWARE_{name}", value)
        assert main(["replay", str(routed), str(nobody)]) == 0
        out = capsys.readouterr().out
        assert "(was no_recipients)" in out and "(was mail_rejected)" in out
        # A letter nobody was configured for goes to serve's default_recipients now.
        assert sorted(received.rcpt_tos[0] for received in smtp.received) == [
            "budget-owner@localhost",
            "finops@example.com",
        ]
        assert all(received.mail_from == "alerts@example.com" for received in smtp.received)
        assert main(["replay", str(routed), str(nobody), "--to", "ana@example.com"]) == 0
        assert "2 already-replayed;" in capsys.readouterr().out
        assert len(smtp.received) == 2

    # With no default recipients either, it needs --to.
    mailer = Recording()
    sender = read_dead_letter(routed).recipients[0]
    with ReplayLedger(tmp_path / "other-ledger.jsonl") as ledger:
        [result] = replay_dead_letters([nobody], mailer=mailer, sender=sender, ledger=ledger)
        assert result.outcome is Outcome.FAILED
        assert "nobody to send it to (dead-lettered as no_recipients)" in result.detail
        assert "--to" in result.detail
        [result] = replay_dead_letters(
            [nobody], mailer=mailer, sender=sender, ledger=ledger, recipients=[sender]
        )
        assert result.outcome is Outcome.REPLAYED
    assert [str(sent["To"]) for sent in mailer.sent] == [str(sender)]


def test_replay_refuses_what_is_not_our_dead_letter(
    dead_letters: Callable[..., list[Path]],
    signer: MessageSigner,
    file_mailer_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    [letter] = dead_letters(real_alerts(signer)[0])
    outbox = FileOutbox(tmp_path / "alerts")
    app = BudgetApp(recipients={}, default_recipients=FINOPS, mailer=outbox)
    app.handle(notification(real_alerts(signer)[1]))
    [alert_email] = outbox.messages()
    text = tmp_path / "notes.eml"
    text.write_text("hello\n")
    other = tampered(
        letter, tmp_path / "other.eml", lambda c: c["notification"].update(MessageId="x")
    )
    broken = tampered(letter, tmp_path / "broken.eml", lambda c: c["notification"].pop("TopicArn"))
    not_json = tampered(letter, tmp_path / "not-json.eml", None)
    missing = tmp_path / "missing.eml"

    files = [alert_email, text, other, broken, not_json, missing]
    assert main(["replay", *map(str, files)]) == 1
    out = capsys.readouterr().out
    assert out.count("\nrefused ") + out.startswith("refused ") == 6
    assert "not a dead letter of snsmiddleware (no X-Dead-Letter-Reason header)" in out
    assert "its X-SNS headers and its attachment name different messages" in out
    assert "its dead-letter.json names no SNS MessageId and TopicArn" in out
    assert "its dead-letter.json is not JSON" in out
    assert "cannot be read" in out
    assert "6 refused" in out
    assert not file_mailer_env.exists() or emails_in(file_mailer_env) == []


def test_a_crash_after_the_send_never_sends_twice_silently(
    dead_letters: Callable[..., list[Path]], signer: MessageSigner, tmp_path: Path
) -> None:
    [letter] = dead_letters(real_alerts(signer)[0])
    ledger_path = tmp_path / "ledger.jsonl"
    sender = read_dead_letter(letter).recipients[0]
    crashing = Recording(then=Crash())
    with pytest.raises(Crash), ReplayLedger(ledger_path) as ledger:
        list(replay_dead_letters([letter], mailer=crashing, sender=sender, ledger=ledger))
    assert len(crashing.sent) == 1  # it went out; its "sent" record did not

    mailer = Recording()
    for _ in range(2):
        with ReplayLedger(ledger_path) as ledger:
            [result] = replay_dead_letters([letter], mailer=mailer, sender=sender, ledger=ledger)
        assert result.outcome is Outcome.INTERRUPTED and not result.ok
        assert "may have been sent" in result.detail and "--resend-interrupted" in result.detail
    assert mailer.sent == []

    with ReplayLedger(ledger_path) as ledger:
        [result] = replay_dead_letters(
            [letter], mailer=mailer, sender=sender, ledger=ledger, resend_interrupted=True
        )
    assert result.outcome is Outcome.REPLAYED and "resumed" in result.detail
    assert len(mailer.sent) == 1
    with ReplayLedger(ledger_path) as ledger:
        [result] = replay_dead_letters([letter], mailer=mailer, sender=sender, ledger=ledger)
    assert result.outcome is Outcome.ALREADY_REPLAYED and len(mailer.sent) == 1


def test_a_replay_killed_during_the_smtp_send_is_reported_not_resent(
    dead_letters: Callable[..., list[Path]], signer: MessageSigner, tmp_path: Path
) -> None:
    [letter] = dead_letters(real_alerts(signer)[0])
    with smtp_server("none") as smtp:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SNSMIDDLEWARE_")},
            "SNSMIDDLEWARE_MAILER": "smtp",
            "SNSMIDDLEWARE_SMTP_HOST": "127.0.0.1",
            "SNSMIDDLEWARE_SMTP_PORT": str(smtp.port),
            "SNSMIDDLEWARE_SMTP_SECURITY": "none",
            "SNSMIDDLEWARE_SMTP_TIMEOUT": "60s",
            "SNSMIDDLEWARE_DEAD_LETTER": str(tmp_path / "dead-letter"),
        }
        argv = [sys.executable, "-m", "snsmiddleware", "replay", str(letter)]
        smtp.handler.data_delay = 60.0  # the server holds its answer to DATA
        process = subprocess.Popen(
            argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            assert smtp.handler.data_started.wait(timeout=60), "the replay never sent DATA"
        finally:
            process.kill()
            process.communicate(timeout=30)
        smtp.handler.data_delay = 0.0
        ledger = tmp_path / "dead-letter" / LEDGER_NAME
        assert [json.loads(line)["state"] for line in ledger.read_text().splitlines()] == [
            "sending"
        ]

        rerun = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert rerun.returncode == 1, rerun.stdout + rerun.stderr
        assert "interrupted" in rerun.stdout and "may have been sent" in rerun.stdout
        assert smtp.received == []  # the killed send never completed, and nothing re-sent it

        resent = subprocess.run(
            [*argv, "--resend-interrupted"], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert resent.returncode == 0, resent.stdout + resent.stderr
        assert len(smtp.received) == 1


def test_the_file_outbox_resumes_an_interrupted_replay(
    dead_letters: Callable[..., list[Path]], signer: MessageSigner, tmp_path: Path
) -> None:
    [letter] = dead_letters(real_alerts(signer)[0])
    ledger_path = tmp_path / "ledger.jsonl"
    outbox = FileOutbox(tmp_path / "outbox")
    sender = read_dead_letter(letter).recipients[0]

    class CrashingOutbox(FileOutbox):
        def send(self, message: EmailMessage) -> None:
            super().send(message)
            raise Crash()

    with pytest.raises(Crash), ReplayLedger(ledger_path) as ledger:
        list(
            replay_dead_letters(
                [letter], mailer=CrashingOutbox(outbox.directory), sender=sender, ledger=ledger
            )
        )
    with ReplayLedger(ledger_path) as ledger:
        [result] = replay_dead_letters([letter], mailer=outbox, sender=sender, ledger=ledger)
    assert result.outcome is Outcome.REPLAYED and "resumed" in result.detail
    assert len(outbox.messages()) == 1  # written once, however often


def test_a_failed_send_is_recorded_and_sent_by_the_next_run(
    dead_letters: Callable[..., list[Path]], signer: MessageSigner, tmp_path: Path
) -> None:
    [letter] = dead_letters(real_alerts(signer)[0])
    ledger_path = tmp_path / "ledger.jsonl"
    sender = read_dead_letter(letter).recipients[0]

    class Down:
        def send(self, message: EmailMessage) -> None:
            raise MailUnavailableError("connection refused")

    with ReplayLedger(ledger_path) as ledger:
        [result] = replay_dead_letters([letter], mailer=Down(), sender=sender, ledger=ledger)
    assert result.outcome is Outcome.FAILED and "mail_unavailable" in result.detail
    # A crash cut the ledger's last line short: it is ignored, the next record is whole.
    with ledger_path.open("ab") as handle:
        handle.write(b'{"key": "cut sh')
    mailer = Recording()
    with ReplayLedger(ledger_path) as ledger:
        [result] = replay_dead_letters([letter], mailer=mailer, sender=sender, ledger=ledger)
    assert result.outcome is Outcome.REPLAYED and len(mailer.sent) == 1
    lines = ledger_path.read_text().splitlines()
    assert lines[2] == '{"key": "cut sh'
    assert [json.loads(line)["state"] for line in lines[:2] + lines[3:]] == [
        "sending",
        "failed",
        "sending",
        "sent",
    ]


def test_one_replay_at_a_time_holds_the_ledger(tmp_path: Path) -> None:
    with (
        ReplayLedger(tmp_path / "ledger.jsonl"),
        pytest.raises(ConfigurationError, match="another replay is using the ledger"),
        ReplayLedger(tmp_path / "ledger.jsonl"),
    ):
        pass


def test_an_unsubscribe_notice_that_was_dead_lettered_can_be_replayed(
    signer: MessageSigner, tmp_path: Path
) -> None:
    dead = FileOutbox(tmp_path / "dead")
    app = BudgetApp(
        recipients={},
        admin_recipients="Ops <ops@example.com>",
        mailer=Rejecting(),
        dead_letter=dead,
    )
    message = parse_message(signer.unsubscribe_confirmation().body)
    assert isinstance(message, UnsubscribeConfirmation)
    app.on_unsubscribe(message)
    [letter] = dead.messages()
    mailer = Recording()
    with ReplayLedger(tmp_path / "ledger.jsonl") as ledger:
        [result] = replay_dead_letters([letter], mailer=mailer, sender=app.sender, ledger=ledger)
    assert result.outcome is Outcome.REPLAYED
    [sent] = mailer.sent
    assert "alerts will stop" in str(sent["Subject"]) and str(sent["To"]) == "Ops <ops@example.com>"


def test_replay_takes_the_mailer_from_an_ini_file(
    dead_letters: Callable[..., list[Path]],
    signer: MessageSigner,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    [letter] = dead_letters(real_alerts(signer)[0])
    ini = tmp_path / "server.ini"
    ini.write_text((ROOT / "examples" / "paste.ini").read_text())
    ledger = tmp_path / "ledger.jsonl"
    assert main(["replay", "--config", str(ini), "--ledger", str(ledger), str(letter)]) == 0
    [email] = emails_in(tmp_path / "outbox")  # the example's outbox, relative to the cwd
    assert str(email["From"]) == "AWS Budgets alerts <budget-alerts@example.com>"
    assert "ledger " + str(ledger) in capsys.readouterr().out
    bare = tmp_path / "bare.ini"  # the app alone, without the middleware
    bare.write_text("[app:main]\nuse = egg:snsmiddleware#budget_app\n")
    assert main(["replay", "--config", str(bare), "--ledger", str(ledger), str(letter)]) == 0
    assert "already-replayed" in capsys.readouterr().out
