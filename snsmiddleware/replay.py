"""``snsmiddleware replay``: send dead-lettered emails again, exactly once each.

A dead letter (:func:`~snsmiddleware.alert_email.build_dead_letter`) is the email that could
not be sent, with ``X-Dead-Letter-Reason``/``-Detail`` headers and a ``dead-letter.json``
attachment holding the reason, the recipients and the SNS notification it came from. Replay
rebuilds that email (the dead-letter headers and the attachment removed, the Subject and
the SNS headers written literally again, the body as it was) and hands it to a mailer.

"Exactly once" across crashes is kept by a ledger, a JSON-lines file with one line per
step, flushed to disk (``fsync``) before the next step begins:

1. ``sending`` is written *before* the email goes to the mailer;
2. ``sent`` (or ``failed``, when the mailer raised one of its errors: nothing was sent) is
   written after it returned.

So a crash before step 1 sent nothing and a re-run sends it; a crash between the two steps
(during the send, or after it and before its record) leaves ``sending``, and a re-run does
**not** send that email again on its own: it reports it as interrupted ("it may have been
sent") and sends it only when told to (``--resend-interrupted``), after someone checked.
The exception is a mailer whose sends are idempotent (the file outbox names the file after
the SNS message, so writing it twice keeps one): it simply resumes. A letter recorded as
``sent`` is skipped and reported as already replayed. The ledger's identity for a letter is
its SNS TopicArn and MessageId, so copies of the same letter count as one. One replay at a
time holds the ledger (an exclusive lock on the file).

What is not our dead letter (no ``X-Dead-Letter-Reason``, no ``dead-letter.json``, headers
that disagree with the attachment) is refused with the reason and never sent.
"""

from __future__ import annotations

import contextlib
import email
import enum
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from .alert_email import single_line
from .email_headers import LiteralHeader, verify_headers
from .errors import ConfigurationError, NotADeadLetterError, SnsError, UnsafeHeaderError
from .mail import Mailer

try:  # advisory locks (POSIX); elsewhere one replay at a time is the operator's job
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: The attachment :func:`~snsmiddleware.alert_email.build_dead_letter` writes.
ATTACHMENT_NAME: Final = "dead-letter.json"
#: The ledger's file name in the dead-letter directory, unless ``--ledger`` names another.
LEDGER_NAME: Final = "replayed.jsonl"
#: Dead letters are emails of a few KiB (the SNS message is at most 256 KiB, its JSON copy
#: escaped); a bigger file is not one of ours and is not read into memory.
MAX_DEAD_LETTER_BYTES: Final = 8 * 1024 * 1024
_DEAD_LETTER_HEADERS: Final = ("X-Dead-Letter-Reason", "X-Dead-Letter-Detail")
#: A Message-ID as ours are written: ``<left@right>``, printable ASCII, no spaces.
_MESSAGE_ID: Final = re.compile(r"<[!-;=?-~]{1,200}@[!-;=?-~]{1,200}>", re.ASCII)


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter read back: why it was kept, and the email it holds.

    :param path: the file it was read from.
    :param reason: its ``X-Dead-Letter-Reason`` (``mail_rejected``, ``no_recipients``...).
    :param topic_arn: the TopicArn of the SNS message it came from.
    :param message_id: that message's MessageId.
    :param recipients: the original To addresses (none for ``no_recipients``).
    """

    path: Path
    reason: str
    detail: str
    topic_arn: str
    message_id: str
    recipients: tuple[Address, ...]
    subject: str
    date: str | None
    message_id_header: str | None
    body: Message

    @property
    def key(self) -> str:
        """The letter's identity in the ledger: a digest of its TopicArn and MessageId."""
        return hashlib.sha256(f"{self.topic_arn}\n{self.message_id}".encode()).hexdigest()

    def email(self, *, sender: Address, recipients: Sequence[Address]) -> EmailMessage:
        """The email to send again, from ``sender`` to ``recipients``; its headers are proven
        to read back as set (:class:`~snsmiddleware.errors.UnsafeHeaderError` otherwise)."""
        message = EmailMessage()
        message["Subject"] = LiteralHeader("Subject", single_line(self.subject))
        message["From"] = sender
        message["To"] = tuple(recipients)
        if self.date is not None:
            message["Date"] = self.date
        if self.message_id_header is not None:  # the same id: clients can spot a duplicate
            message["Message-ID"] = self.message_id_header
        message["Auto-Submitted"] = "auto-generated"
        message["X-SNS-Message-Id"] = LiteralHeader("X-SNS-Message-Id", self.message_id)
        message["X-SNS-Topic-Arn"] = LiteralHeader(
            "X-SNS-Topic-Arn", single_line(self.topic_arn, 256)
        )
        message["MIME-Version"] = "1.0"
        for name in ("Content-Type", "Content-Transfer-Encoding"):
            if name in self.body:
                message[name] = str(self.body[name])
        message.set_payload(self.body.get_payload())
        verify_headers(message)
        return message


def _refuse(path: Path, why: str) -> NotADeadLetterError:
    return NotADeadLetterError(f"{path}: not a dead letter of snsmiddleware ({why})")


def _context(path: Path, attachment: Message) -> dict[str, Any]:
    payload = attachment.get_payload(decode=True)
    try:
        context = json.loads(payload if isinstance(payload, bytes) else b"")
    except (ValueError, RecursionError):
        raise _refuse(path, f"its {ATTACHMENT_NAME} is not JSON") from None
    notification = context.get("notification") if isinstance(context, dict) else None
    if not isinstance(notification, dict) or not all(
        isinstance(notification.get(name), str) and notification[name]
        for name in ("MessageId", "TopicArn")
    ):
        raise _refuse(path, f"its {ATTACHMENT_NAME} names no SNS MessageId and TopicArn")
    if not isinstance(context.get("reason"), str):
        raise _refuse(path, f"its {ATTACHMENT_NAME} has no reason")
    checked: dict[str, Any] = context
    return checked


def read_dead_letter(path: str | os.PathLike[str]) -> DeadLetter:
    """Read a dead letter written by :class:`~snsmiddleware.budget_app.BudgetApp`.

    Raises :class:`~snsmiddleware.errors.NotADeadLetterError` saying why for anything else,
    and :class:`OSError` when the file cannot be read.
    """
    file = Path(path)
    if file.stat().st_size > MAX_DEAD_LETTER_BYTES:
        raise _refuse(file, f"larger than {MAX_DEAD_LETTER_BYTES} bytes")
    raw = file.read_bytes()
    # .eml files end lines in CRLF; the parser's policy expects LF.
    letter = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=default_policy)
    if "X-Dead-Letter-Reason" not in letter:
        raise _refuse(file, "no X-Dead-Letter-Reason header")
    if not letter.is_multipart():
        raise _refuse(file, f"no {ATTACHMENT_NAME} attachment")
    parts = list(letter.iter_parts())
    attachments = [
        part
        for part in parts
        if part.get_filename() == ATTACHMENT_NAME and part.get_content_type() == "application/json"
    ]
    if len(attachments) != 1:
        raise _refuse(file, f"not exactly one {ATTACHMENT_NAME} attachment")
    bodies = [part for part in parts if part is not attachments[0]]
    if len(bodies) != 1:
        raise _refuse(file, "not exactly one email beside the attachment")
    context = _context(file, attachments[0])
    notification = context["notification"]
    topic_arn, message_id = notification["TopicArn"], notification["MessageId"]
    if str(letter.get("X-SNS-Message-Id", "")) != message_id or str(
        letter.get("X-SNS-Topic-Arn", "")
    ) != single_line(topic_arn, 256):
        raise _refuse(file, "its X-SNS headers and its attachment name different messages")
    recipients = tuple(
        address
        for header in letter.get_all("To", [])
        for address in getattr(header, "addresses", ())
        if address.addr_spec
    )
    date = str(letter.get("Date", "")) or None
    try:
        if date is not None:
            parsedate_to_datetime(date)
    except (TypeError, ValueError):
        date = None
    message_id_header = str(letter.get("Message-ID", "")).strip()
    return DeadLetter(
        path=file,
        reason=context["reason"],
        detail=str(context.get("detail", "")),
        topic_arn=topic_arn,
        message_id=message_id,
        recipients=recipients,
        subject=str(letter.get("Subject", "")),
        date=date,
        message_id_header=message_id_header if _MESSAGE_ID.fullmatch(message_id_header) else None,
        body=bodies[0],
    )


class ReplayLedger:
    """What ``replay`` sent: a JSON-lines file, each step written and fsynced before the
    next (see the module docstring for the order and what a crash leaves).

    Use it as a context manager: entering takes an exclusive lock on the file (a second
    replay using it at the same time is a :class:`ConfigurationError`) and reads the
    records; a last line that a crash cut short is ignored, and the next record starts on a
    fresh line.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._last: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"ReplayLedger({str(self.path)!r})"

    def __enter__(self) -> ReplayLedger:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise ConfigurationError(
                f"the replay ledger {str(self.path)!r} cannot be opened: {exc}"
            ) from None
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise ConfigurationError(
                        f"another replay is using the ledger {str(self.path)!r}; try again when "
                        "it has finished"
                    ) from None
            with open(fd, "rb", closefd=False) as handle:
                data = handle.read()
            self._read(data)
            self._fd = fd
            if data and not data.endswith(b"\n"):  # a record cut short by a crash
                self._append(b"\n")
            if created:
                _sync_directory(self.path.parent)
        except BaseException:
            os.close(fd)
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None

    def _read(self, data: bytes) -> None:
        for line in data.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # cut short by a crash: it was never the outcome of a send
            if isinstance(record, dict) and isinstance(record.get("key"), str):
                self._last[record["key"]] = record

    def last(self, key: str) -> dict[str, Any] | None:
        """The latest record of the letter ``key``, or ``None``."""
        return self._last.get(key)

    def record(self, letter: DeadLetter, state: str, **fields: Any) -> None:
        """Append ``state`` for ``letter`` and flush it to disk before returning."""
        entry = {
            "key": letter.key,
            "state": state,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "message_id": letter.message_id,
            "topic_arn": letter.topic_arn,
            "file": str(letter.path),
            **fields,
        }
        self._append(json.dumps(entry, ensure_ascii=True).encode("ascii") + b"\n")
        self._last[letter.key] = entry

    def _append(self, data: bytes) -> None:
        if self._fd is None:
            raise RuntimeError("use the ledger inside a with block")
        written = os.write(self._fd, data)
        if written != len(data):  # pragma: no cover - a regular file takes it all
            raise OSError(f"short write to the replay ledger {self.path}")
        os.fsync(self._fd)


def _sync_directory(directory: Path) -> None:
    """Flush a new file's directory entry (best effort, as FileOutbox does)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Outcome(enum.Enum):
    """What replay did with one file."""

    REPLAYED = "replayed"
    ALREADY_REPLAYED = "already-replayed"
    INTERRUPTED = "interrupted"
    REFUSED = "refused"
    FAILED = "failed"


@dataclass(frozen=True)
class ReplayResult:
    """One file's outcome and a sentence about it."""

    path: Path
    outcome: Outcome
    detail: str

    @property
    def ok(self) -> bool:
        """Sent now, or sent by an earlier replay."""
        return self.outcome in (Outcome.REPLAYED, Outcome.ALREADY_REPLAYED)


def replay_dead_letters(
    paths: Iterable[str | os.PathLike[str]],
    *,
    mailer: Mailer,
    sender: Address,
    ledger: ReplayLedger,
    recipients: Sequence[Address] = (),
    default_recipients: Sequence[Address] = (),
    resend_interrupted: bool = False,
) -> Iterator[ReplayResult]:
    """Send each dead letter in ``paths`` again through ``mailer``, at most once each (see
    the module docstring), yielding one result per path as it goes.

    :param sender: the From of every replayed email (the configured sender: the one the
        mailer may send as).
    :param recipients: send every letter to these instead of its own recipients.
    :param default_recipients: for a letter with no recipients of its own (``no_recipients``).
    :param resend_interrupted: send letters whose earlier replay was interrupted between
        ``sending`` and its outcome (they may have been sent).
    """
    for path in paths:
        yield _replay_one(
            Path(path),
            mailer=mailer,
            sender=sender,
            ledger=ledger,
            recipients=tuple(recipients),
            default_recipients=tuple(default_recipients),
            resend_interrupted=resend_interrupted,
        )


def _replay_one(
    path: Path,
    *,
    mailer: Mailer,
    sender: Address,
    ledger: ReplayLedger,
    recipients: tuple[Address, ...],
    default_recipients: tuple[Address, ...],
    resend_interrupted: bool,
) -> ReplayResult:
    try:
        letter = read_dead_letter(path)
    except NotADeadLetterError as exc:
        return ReplayResult(path, Outcome.REFUSED, str(exc))
    except OSError as exc:
        return ReplayResult(path, Outcome.REFUSED, f"{path}: cannot be read ({exc.strerror})")
    last = ledger.last(letter.key)
    state = last.get("state") if last is not None else None
    idempotent = bool(getattr(mailer, "idempotent", False))
    if last is not None and state == "sent":
        return ReplayResult(
            path, Outcome.ALREADY_REPLAYED, f"already replayed at {last.get('at')}; not sent again"
        )
    if last is not None and state == "sending" and not (resend_interrupted or idempotent):
        return ReplayResult(
            path,
            Outcome.INTERRUPTED,
            f"a replay started at {last.get('at')} did not finish: it may have been sent. "
            "Check with the recipients, then run again with --resend-interrupted to send it",
        )
    to = recipients or letter.recipients or default_recipients
    if not to:
        return ReplayResult(
            path,
            Outcome.FAILED,
            f"nobody to send it to (dead-lettered as {letter.reason}): configure "
            "default_recipients or give --to",
        )
    try:
        message = letter.email(sender=sender, recipients=to)
    except UnsafeHeaderError as exc:
        return ReplayResult(path, Outcome.FAILED, f"cannot be written safely: {exc}")
    addresses = [address.addr_spec for address in to]
    ledger.record(letter, "sending", recipients=addresses)
    try:
        mailer.send(message)
    except SnsError as exc:
        # The mailer's own verdict: not sent (a time-out after a server took the email is
        # the one exception, as in serve).
        ledger.record(letter, "failed", reason=exc.reason, detail=exc.detail)
        return ReplayResult(path, Outcome.FAILED, f"not sent: {exc.reason} ({exc.detail})")
    except Exception as exc:
        # Unknown whether it went out: the ledger keeps "sending", so it is never re-sent
        # without being asked.
        return ReplayResult(
            path,
            Outcome.FAILED,
            f"the mailer failed unexpectedly ({type(exc).__name__}: {exc}); it may have been "
            "sent, so it counts as interrupted",
        )
    ledger.record(letter, "sent", recipients=addresses)
    resumed = " (resumed an interrupted replay)" if state == "sending" else ""
    return ReplayResult(
        path, Outcome.REPLAYED, f"sent to {len(to)} recipient(s) (was {letter.reason}){resumed}"
    )
