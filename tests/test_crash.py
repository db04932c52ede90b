"""Exactly once when a process dies mid-delivery (issue 18), one mechanism at a time:

* the file outbox names each alert's file after its SNS message and publishes it with a
  hard link, so a re-run after a crash between the write and the commit writes nothing;
* stale temporary files of killed writes are swept when the outbox opens;
* SMTP/SES sends are recorded in the de-duplication store before the answer, so a re-run
  after a crash between the send and the commit does not send again;
* a transient failure that outlasts SNS's retries is kept as a dead letter, not dropped.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import webtest

from snsmiddleware import SnsMiddleware
from snsmiddleware.budget_app import BudgetApp
from snsmiddleware.dedupe_sqlite import SQLiteDedupeStore
from snsmiddleware.devmode import sample_budget_alert
from snsmiddleware.mail import FileOutbox, MailUnavailableError, SmtpMailer
from snsmiddleware.testing import FrozenClock, MessageSigner, SignedMessage, post_sns

from ._crash_helpers import message_ids, read_emails
from ._mail_helpers import SmtpServer, parse_email, smtp_server
from .conftest import PATH, TOPIC


def alert(signer: MessageSigner, budget: str = "Test Budget") -> SignedMessage:
    subject, text = sample_budget_alert(budget)
    return signer.notification(text, Subject=subject)


class CrashBeforeCommit(SQLiteDedupeStore):
    """A store whose process "dies" after the app's work: the commit never happens (and
    nothing is released), as when the server is SIGKILLed between the two."""

    def commit(self, claim: Any) -> None:
        return None


def middleware(app: Any, signer: MessageSigner, clock: FrozenClock, store: Any) -> webtest.TestApp:
    return webtest.TestApp(
        SnsMiddleware(
            app,
            paths=[PATH],
            topics=[TOPIC],
            fetch_certificate=signer.fetch_certificate,
            clock=clock,
            confirm=lambda message: None,
            dedupe=store,
        )
    )


# --- the file outbox: one file per SNS message, whatever happens ---------------------------


def budget_app(tmp_path: Path, mailer: Any, clock: FrozenClock, **options: Any) -> BudgetApp:
    return BudgetApp(
        recipients={"*": "Ana Lima <ana@example.com>"},
        mailer=mailer,
        dead_letter=FileOutbox(tmp_path / "dead-letter", fsync=False),
        clock=clock,
        **options,
    )


def test_rerun_after_a_crash_between_write_and_commit_writes_no_second_file(
    tmp_path: Path, signer: MessageSigner, clock: FrozenClock
) -> None:
    outbox = FileOutbox(tmp_path / "outbox")
    app = budget_app(tmp_path, outbox, clock)
    path = tmp_path / "dedupe.sqlite3"
    message = alert(signer)
    crashed = middleware(app, signer, clock, CrashBeforeCommit(path, lease=timedelta(0)))
    assert post_sns(crashed, PATH, message).headers["X-SNS-Reason"] == "sent"
    [first] = outbox.messages()
    written = first.stat()
    # The redelivery runs in the next process (the dead claim has lapsed): no second email.
    survivor = middleware(app, signer, clock, SQLiteDedupeStore(path))
    assert post_sns(survivor, PATH, message).headers["X-SNS-Reason"] == "sent"
    assert outbox.messages() == [first]
    assert (first.stat().st_ino, first.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    assert post_sns(survivor, PATH, message).headers["X-SNS-Reason"] == "duplicate"
    assert [p.name for p in outbox.directory.iterdir()] == [first.name]  # no temporary left


def test_outbox_names_an_alert_after_topic_and_message_id(
    tmp_path: Path, signer: MessageSigner, clock: FrozenClock
) -> None:
    outbox = FileOutbox(tmp_path / "outbox", fsync=False)
    app = budget_app(tmp_path, outbox, clock)
    testapp = middleware(app, signer, clock, SQLiteDedupeStore(tmp_path / "d.sqlite3"))
    first, second = alert(signer), alert(signer)
    for message in (first, second):
        post_sns(testapp, PATH, message)
    names = [p.name for p in outbox.messages()]
    assert len(names) == 2 and all(name.endswith(".eml") for name in names)
    assert all(first.fields["MessageId"] not in name for name in names)  # hashed, not raw
    again = FileOutbox(tmp_path / "outbox", fsync=False)
    email = parse_email(outbox.messages()[0].read_bytes())
    assert again.write(email) in outbox.messages()  # the same identity, the same file
    assert len(outbox.messages()) == 2
    email.replace_header("X-SNS-Topic-Arn", TOPIC + "-2")
    again.write(email)  # the same MessageId on another topic is another message
    assert len(outbox.messages()) == 3


def test_concurrent_writes_of_one_alert_publish_one_file(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path / "outbox", fsync=False)
    email = parse_email(
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\n"
        b"Date: Wed, 31 Jan 2024 12:00:00 +0000\r\n"
        b"X-SNS-Topic-Arn: " + TOPIC.encode() + b"\r\nX-SNS-Message-Id: m-1\r\n\r\nbody\r\n"
    )
    barrier = threading.Barrier(8)
    paths: list[Path] = []

    def write() -> None:
        barrier.wait(10)
        paths.append(outbox.write(email))

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(set(paths)) == 1 and outbox.messages() == paths[:1]
    assert paths[0].name.startswith("20240131T120000Z-")
    assert sorted(os.listdir(outbox.directory)) == [paths[0].name]


def test_outbox_without_hard_links_still_writes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = FileOutbox(tmp_path / "outbox", fsync=False)

    def no_links(*args: Any) -> None:
        raise OSError(1, "Operation not permitted")  # EPERM: a file system without links

    monkeypatch.setattr(os, "link", no_links)
    email = parse_email(b"X-SNS-Topic-Arn: t\r\nX-SNS-Message-Id: m\r\nSubject: s\r\n\r\nbody\r\n")
    assert outbox.write(email) == outbox.write(email)
    assert len(outbox.messages()) == 1 and len(os.listdir(outbox.directory)) == 1


def test_directory_is_flushed_after_publishing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = FileOutbox(tmp_path / "outbox")
    synced: list[bool] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.path.isdir(f"/proc/self/fd/{fd}") if os.path.isdir("/proc") else True)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    email = parse_email(b"X-SNS-Topic-Arn: t\r\nX-SNS-Message-Id: m\r\nSubject: s\r\n\r\nbody\r\n")
    outbox.write(email)
    assert synced == [False, True]  # the file, then its directory
    synced.clear()
    outbox.write(email)  # already there: nothing written, nothing flushed
    assert synced == []


# --- stale temporary files ------------------------------------------------------------------


def test_opening_the_outbox_sweeps_only_our_stale_temporary_files(tmp_path: Path) -> None:
    directory = tmp_path / "outbox"
    directory.mkdir()
    old = time.time() - 3600
    stale = [directory / ".outbox-abcd1234.tmp", directory / ".k3j_x9q0.tmp"]  # new, old names
    fresh = directory / ".outbox-fresh123.tmp"  # another process may be writing it now
    others = [directory / "notes.tmp", directory / ".outbox-abcd1234.eml", directory / "a.eml"]
    for path in [*stale, fresh, *others]:
        path.write_text("x")
    for path in [*stale, *others]:
        os.utime(path, (old, old))
    outbox = FileOutbox(directory)
    assert outbox.swept == 2
    assert sorted(p.name for p in directory.iterdir()) == sorted(p.name for p in [fresh, *others])


# --- SMTP: sends recorded in the store ------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server("none") as server:
        yield server


def smtp_mailer(server: SmtpServer) -> SmtpMailer:
    return SmtpMailer("127.0.0.1", server.port, security="none")


def test_rerun_after_a_crash_between_send_and_commit_does_not_send_again(
    tmp_path: Path, signer: MessageSigner, clock: FrozenClock, smtp: SmtpServer
) -> None:
    app = budget_app(tmp_path, smtp_mailer(smtp), clock)
    path = tmp_path / "dedupe.sqlite3"
    message = alert(signer)
    crashed = middleware(app, signer, clock, CrashBeforeCommit(path, lease=timedelta(0)))
    assert post_sns(crashed, PATH, message).headers["X-SNS-Reason"] == "sent"
    store = SQLiteDedupeStore(path)
    assert store.effect_recorded(message.fields["MessageId"], "email")
    survivor = middleware(app, signer, clock, store)
    answer = post_sns(survivor, PATH, message)
    assert (answer.status_int, answer.headers["X-SNS-Reason"]) == (200, "already_sent")
    assert post_sns(survivor, PATH, message).headers["X-SNS-Reason"] == "duplicate"
    assert len(smtp.received) == 1
    # Message-ID stays derived from the MessageId: a duplicate that slipped through anyway
    # (the unclosable window) is collapsed by mail clients.
    assert (
        smtp.received[0]
        .message["Message-ID"]
        .startswith(f"<budget-alert.{message.fields['MessageId']}@")
    )


def test_file_outbox_keeps_no_send_records(
    tmp_path: Path, signer: MessageSigner, clock: FrozenClock
) -> None:
    store = SQLiteDedupeStore(tmp_path / "dedupe.sqlite3")
    app = budget_app(tmp_path, FileOutbox(tmp_path / "outbox", fsync=False), clock)
    message = alert(signer)
    post_sns(middleware(app, signer, clock, store), PATH, message)
    assert not store.effect_recorded(message.fields["MessageId"], "email")
    assert len(store) == 1  # just the commit: idempotent files need no record


def test_a_store_that_cannot_answer_about_records_still_sends(
    tmp_path: Path, signer: MessageSigner, clock: FrozenClock, smtp: SmtpServer
) -> None:
    class Forgetful(SQLiteDedupeStore):
        def effect_recorded(self, key: str, effect: str) -> bool:
            raise OSError("store down")

        def record_effect(self, key: str, effect: str) -> None:
            raise OSError("store down")

    app = budget_app(tmp_path, smtp_mailer(smtp), clock)
    testapp = middleware(app, signer, clock, Forgetful(tmp_path / "d.sqlite3"))
    assert post_sns(testapp, PATH, alert(signer)).headers["X-SNS-Reason"] == "sent"
    assert len(smtp.received) == 1


# --- outages longer than SNS's retries ------------------------------------------------------


class DownMailer:
    def __init__(self) -> None:
        self.calls = 0

    def send(self, message: Any) -> None:
        self.calls += 1
        raise MailUnavailableError("connection refused", code="421")


def test_transient_failure_outlasting_the_retry_span_is_dead_lettered(
    tmp_path: Path, signer: MessageSigner, clock: FrozenClock
) -> None:
    app = budget_app(tmp_path, DownMailer(), clock, dead_letter_after=timedelta(seconds=50))
    testapp = middleware(app, signer, clock, SQLiteDedupeStore(tmp_path / "d.sqlite3"))
    message = alert(signer)  # Timestamp = now: SNS's first attempt
    for _ in range(3):  # the first attempt and two retries, 20 s apart (SNS's default)
        answer = post_sns(testapp, PATH, message)
        assert (answer.status_int, answer.headers["X-SNS-Reason"]) == (503, "mail_unavailable")
        clock.advance(timedelta(seconds=20))
    answer = post_sns(testapp, PATH, message)  # the last attempt, 60 s after the first
    assert (answer.status_int, answer.headers["X-SNS-Reason"]) == (200, "dead_lettered")
    assert "retries_exhausted" in answer.text
    [letter] = read_emails(tmp_path / "dead-letter")
    assert letter["X-Dead-Letter-Reason"] == "retries_exhausted"
    attachment = next(part for part in letter.iter_attachments())
    context = json.loads(attachment.get_content())
    assert context["notification"]["MessageId"] == message.fields["MessageId"]
    assert context["notification"]["Message"] == message.fields["Message"]
    assert context["notification"]["Timestamp"] == message.fields["Timestamp"]
    assert "mail_unavailable" in context["detail"] and context["error_code"] == "421"
    assert post_sns(testapp, PATH, message).headers["X-SNS-Reason"] == "duplicate"
    assert message_ids(read_emails(tmp_path / "dead-letter")) == {message.fields["MessageId"]: 1}


def test_dead_letter_after_none_keeps_answering_503(
    tmp_path: Path, signer: MessageSigner, clock: FrozenClock
) -> None:
    app = budget_app(tmp_path, DownMailer(), clock, dead_letter_after=None)
    testapp = middleware(app, signer, clock, SQLiteDedupeStore(tmp_path / "d.sqlite3"))
    message = alert(signer)
    clock.advance(timedelta(minutes=50))
    assert post_sns(testapp, PATH, message).status_int == 503
    assert not (tmp_path / "dead-letter").exists() or not read_emails(tmp_path / "dead-letter")


def test_dead_letter_after_is_configurable_and_checked() -> None:
    from snsmiddleware import ConfigurationError
    from snsmiddleware.config import budget_app_options

    assert budget_app_options({"dead_letter_after": "5m"})["dead_letter_after"] == timedelta(
        minutes=5
    )
    with pytest.raises(ConfigurationError, match="dead_letter_after"):
        BudgetApp(recipients={}, dead_letter_after=timedelta(0))
