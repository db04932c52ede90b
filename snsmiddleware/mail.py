"""Mailers: one small interface, three ways to deliver an :class:`email.message.EmailMessage`.

* :class:`FileOutbox` (the embedded default) writes one RFC 5322 ``.eml`` file per email into a
  directory, atomically (temp file, then published under its final name), so it works on any
  machine with no account and a reader never sees half a file. An alert's file is named
  after its SNS message, so writing it again (a redelivery after a crash) changes nothing.
* :class:`SmtpMailer` speaks SMTP through the standard library (STARTTLS, implicit TLS or
  plain; optional login).
* :class:`SesMailer` sends through Amazon SES (boto3 ``sesv2`` SendEmail with the raw MIME
  message). boto3 is imported only when an SES mailer is built.

Every mailer classifies its failures the way SNS delivery needs them (SNS retries only
5xx answers and time-outs; README "Status codes"):

* :class:`MailUnavailableError` (503) for trouble that may clear: connection refused or timed
  out, SMTP 4xx, SES throttling or 5xx, a full disk. The app answers 503, the middleware
  releases the MessageId and SNS redelivers.
* :class:`MailRejectedError` for a definitive refusal: SMTP 5xx (address rejected, bad
  login), SES ``MessageRejected``, an unverified sender or domain, a missing configuration
  set, a paused or suspended account, an exhausted daily quota. Retrying within SNS's hour
  cannot help, so the app writes the email to a dead-letter outbox and tells SNS to stop.

Errors are classified by their codes (SMTP reply codes, SES error codes), never by exception
class names. Every network call is bounded in time so that one send stays inside SNS's
answer deadline, ``policy.SNS_ANSWER_DEADLINE`` (otherwise SNS retries while we are still
sending, and a second email can go out).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import smtplib
import socket
import ssl
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, Protocol, runtime_checkable

from .deadline import Deadline, watch_active
from .errors import ConfigurationError, SnsError
from .errors import MailRejectedError as MailRejectedError  # defined there, kept importable
from .errors import MailUnavailableError as MailUnavailableError
from .reasons import Reason

if TYPE_CHECKING:
    from mypy_boto3_sesv2 import SESV2Client

log = logging.getLogger(__name__)

#: SMTP socket timeout per operation. Connect, EHLO, STARTTLS, AUTH, MAIL, RCPT and DATA
#: each wait at most this long; a healthy server answers in milliseconds.
DEFAULT_SMTP_TIMEOUT: Final = 5.0
#: The whole SMTP exchange, connect to DATA's answer: a server that drips its replies one
#: byte at a time inside the per-operation time-out is cut off here (the send is then
#: transient: SNS retries), so a send never outlives the claim that guards it.
DEFAULT_SMTP_DEADLINE: Final = 10.0
#: SES: connect and read timeouts and total attempts (boto3 "standard" retry mode), chosen so
#: that the worst case, 2 x (2 + 3) s plus at most 1 s of back-off = 11 s, stays below
#: ``policy.SNS_ANSWER_DEADLINE`` (15 s) and, with the store call that records the send,
#: inside the claim's lease (``dedupe.DEFAULT_LEASE``). SendEmail answers in well under a
#: second; 3 s and 5 s made it 17 s.
DEFAULT_SES_CONNECT_TIMEOUT: Final = 2.0
DEFAULT_SES_READ_TIMEOUT: Final = 3.0
DEFAULT_SES_MAX_ATTEMPTS: Final = 2

#: SES error codes that may clear on retry. Everything else that SES answers with a 4xx is
#: permanent (MessageRejected, MailFromDomainNotVerifiedException, NotFoundException,
#: ConfigurationSetDoesNotExist, SendingPausedException, AccountSuspendedException,
#: LimitExceededException, BadRequestException...).
SES_TRANSIENT_ERRORS: Final = frozenset(
    {
        "TooManyRequestsException",
        "Throttling",
        "ThrottlingException",
        "InternalFailure",
        "InternalServerError",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)

SmtpSecurity = Literal["starttls", "tls", "none"]
_DEFAULT_PORTS: Final[dict[str, int]] = {"starttls": 587, "tls": 465, "none": 25}

#: Temporary files of a FileOutbox: ``.outbox-<random>.tmp``; older ones (``.<random>.tmp``,
#: from ``tempfile.mkstemp``) are recognised too, so a sweep removes what they left.
_TEMP_PREFIX: Final = ".outbox-"
_OUR_TEMP_NAME: Final = re.compile(r"\.(?:outbox-)?[a-z0-9_]{8}\.tmp", re.ASCII)
#: A temporary file older than this was left by a write that died (a write takes ms).
DEFAULT_SWEEP_AFTER: Final = timedelta(minutes=10)
#: Link-less file systems (some network and FUSE mounts) refuse os.link with these.
_NO_LINKS: Final = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV})


@runtime_checkable
class Mailer(Protocol):
    """Delivers one email or raises :class:`MailUnavailableError` / :class:`MailRejectedError`.

    Implementations must be safe to call from several threads at once.
    """

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` to the addresses in its To, Cc and Bcc headers."""
        ...


def envelope_recipients(message: EmailMessage) -> list[str]:
    """The bare addresses of To, Cc and Bcc, in order, without duplicates."""
    values = [str(v) for name in ("To", "Cc", "Bcc") for v in message.get_all(name, [])]
    seen: dict[str, None] = {}
    for _, address in getaddresses(values):
        if address:
            seen.setdefault(address, None)
    return list(seen)


def envelope_sender(message: EmailMessage) -> str:
    """The bare address of the From header."""
    addresses = [a for _, a in getaddresses([str(message.get("From", ""))]) if a]
    if len(addresses) != 1:
        raise MailRejectedError(
            "the email needs exactly one From address", reason=Reason.BAD_SENDER
        )
    return addresses[0]


def message_key(message: EmailMessage) -> str | None:
    """The identity of the SNS message an email was built from (its ``X-SNS-Topic-Arn`` and
    ``X-SNS-Message-Id`` headers), or ``None`` for an email that has none."""
    topic, message_id = message.get("X-SNS-Topic-Arn"), message.get("X-SNS-Message-Id")
    if not topic or not message_id:
        return None
    return f"{topic}\n{message_id}"


class FileOutbox:
    """Write each email as one RFC 5322 ``.eml`` file (CRLF line ends) into ``directory``.

    Files are written to a hidden temporary name in the same directory, flushed to disk and
    published under their final name, so a reader (or a process that picks files up) only
    ever sees whole emails.

    An email built from an SNS message (see :func:`message_key`, or pass ``key=``) is named
    after it: ``<its Date>-<SHA-256 of topic and MessageId>.eml``. It is published with a
    hard link, which fails if the name exists, so writing the same alert twice (a
    redelivery after a crash between the write and the de-duplication commit) leaves the
    first file and writes nothing; the directory is flushed too, so the name survives a
    power loss. Other emails get a unique name (time + UUID). Names sort by time.

    Temporary files that a killed write left behind are removed when the outbox opens
    (only our own ``.outbox-*.tmp`` names, only older than ``sweep_after``: another process
    may be writing one right now).

    :param directory: created (with parents) if missing.
    :param fsync: flush each file and the directory to disk (durability across power loss).
    :param sweep_after: age from which a leftover temporary file is removed.

    Example::

        outbox = FileOutbox("outbox/")
        outbox.send(message)          # -> outbox/20240131T120000Z-<sha256>.eml
    """

    suffix: ClassVar[str] = ".eml"
    #: Writing an email twice keeps one file: no effect record is needed (see BudgetApp).
    idempotent: ClassVar[bool] = True

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        fsync: bool = True,
        sweep_after: timedelta = DEFAULT_SWEEP_AFTER,
    ) -> None:
        self.directory = Path(directory).resolve()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"the outbox directory {str(self.directory)!r} cannot be created: {exc}"
            ) from None
        if not self.directory.is_dir():
            raise ConfigurationError(f"the outbox {str(self.directory)!r} is not a directory")
        try:  # fail at startup, not on the first alert (os.access lies for root)
            self._probe()
        except OSError as exc:
            raise ConfigurationError(
                f"the outbox directory {str(self.directory)!r} is not writable: {exc}"
            ) from None
        self.fsync = fsync
        self.swept = self.sweep(older_than=sweep_after)

    def __repr__(self) -> str:
        return f"FileOutbox({str(self.directory)!r})"

    def _probe(self) -> None:
        """Create and remove a file in the directory (raises ``OSError`` if it cannot)."""
        with tempfile.TemporaryFile(dir=self.directory, prefix=".probe-"):
            pass

    def ping(self) -> bool:
        """True when a file can be created in the directory now (for health endpoints)."""
        try:
            self._probe()
        except OSError:
            return False
        return True

    def send(self, message: EmailMessage) -> None:
        self.write(message)

    def path_for(self, message: EmailMessage, key: str | None = None) -> Path | None:
        """The file an email with this SNS identity is (or would be) written to; ``None``
        when it has no identity (it then gets a unique name)."""
        key = key if key is not None else message_key(message)
        if key is None:
            return None
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:40]
        try:
            date = parsedate_to_datetime(str(message.get("Date", "")))
            stamp = date.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ-")
        except (TypeError, ValueError):
            stamp = ""
        return self.directory / f"{stamp}{digest}{self.suffix}"

    def write(self, message: EmailMessage, *, key: str | None = None) -> Path:
        """Write ``message`` and return the path of its file.

        With an SNS identity (``key``, else :func:`message_key`), an email already in the
        outbox is not written again: the existing file's path is returned.
        """
        final = self.path_for(message, key)
        try:
            if final is None:
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
                final = self.directory / f"{stamp}-{uuid.uuid4().hex}{self.suffix}"
                self._publish(message, final, exclusive=False)
            elif final.exists():
                log.info("already in the outbox, not written again: %s", final.name)
            elif not self._publish(message, final, exclusive=True):
                log.info("already in the outbox (written meanwhile): %s", final.name)
        except OSError as exc:
            # A full disk or a permissions change may be fixed within SNS's retry hour.
            raise MailUnavailableError(
                f"the outbox {str(self.directory)!r} could not be written ({exc.strerror or exc})",
                reason=Reason.OUTBOX_UNAVAILABLE,
            ) from None
        return final

    def _publish(self, message: EmailMessage, final: Path, *, exclusive: bool) -> bool:
        """Write a temporary file and give it the final name (never over an existing file
        when ``exclusive``); False when that name already existed."""
        data = message.as_bytes(policy=policy.SMTP)
        fd, temp_name = tempfile.mkstemp(dir=self.directory, prefix=_TEMP_PREFIX, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())
            published = True
            if not exclusive:
                os.replace(temp_name, final)
            else:
                try:
                    os.link(temp_name, final)  # atomic, and fails if the name exists
                except FileExistsError:
                    published = False
                except OSError as exc:
                    if exc.errno not in _NO_LINKS:
                        raise
                    # No hard links here: rename, after a check (claims keep writers apart).
                    if final.exists():
                        published = False
                    else:
                        os.replace(temp_name, final)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
        if published and self.fsync:
            self._sync_directory()
        return published

    def _sync_directory(self) -> None:
        """Flush the directory entry, so the new name itself survives a power loss."""
        try:
            fd = os.open(self.directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:  # some file systems cannot fsync a directory; the file is synced
            pass
        finally:
            os.close(fd)

    def sweep(self, *, older_than: timedelta = DEFAULT_SWEEP_AFTER) -> int:
        """Remove temporary files that killed writes left behind (only our own names, only
        older than ``older_than``); returns how many were removed."""
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return 0
        for entry in entries:
            if not _OUR_TEMP_NAME.fullmatch(entry.name):
                continue
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue
        if removed:
            log.warning("removed %d stale temporary file(s) from %s", removed, self.directory)
        return removed

    def messages(self) -> list[Path]:
        """The ``.eml`` files in the outbox, oldest first (temporary files excluded)."""
        return sorted(
            p
            for p in self.directory.iterdir()
            if p.suffix == self.suffix and not p.name.startswith(".")
        )


def _classify_smtp_code(code: int, what: str) -> SnsError:
    detail = f"the SMTP server answered {code} to {what}"
    if 400 <= code < 500:
        return MailUnavailableError(detail, code=str(code))
    return MailRejectedError(detail, code=str(code))


def _hang_up(smtp: smtplib.SMTP) -> None:
    """Say QUIT without waiting for the server's answer, and close.

    The server took responsibility for the email with its 250 to DATA; waiting for the 221
    to QUIT would only widen the window in which a crash leaves the send unrecorded (and a
    redelivery sends it again), and an odd answer to QUIT must not turn a sent email into
    an error that SNS retries.
    """
    with contextlib.suppress(OSError, smtplib.SMTPException):
        if smtp.sock is not None:
            smtp.send("QUIT\r\n")
    smtp.close()


class _WatchedSMTP(smtplib.SMTP):
    """Registers its socket with the active :class:`~snsmiddleware.deadline.Deadline` as
    soon as TCP is connected, so the whole exchange (STARTTLS included) can be cut."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock: socket.socket = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        watch_active(sock)
        return sock


class _WatchedSMTPSSL(smtplib.SMTP_SSL):
    """Implicit TLS: the plain socket is registered before the handshake (which a server
    could drip as well), then wrapped."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock: socket.socket = smtplib.SMTP._get_socket(self, host, port, timeout)  # type: ignore[attr-defined]
        watch_active(sock)
        return self.context.wrap_socket(sock, server_hostname=self._host)  # type: ignore[attr-defined]


class SmtpMailer:
    """Send through an SMTP server with the standard library's :mod:`smtplib`.

    One connection per email (alerts are rare; no connection to keep alive or share between
    threads).

    :param host: the server's name or address.
    :param port: default 587 for ``starttls``, 465 for ``tls``, 25 for ``none``.
    :param security: ``"starttls"`` (default: upgrade, and refuse to go on in clear if the
        server cannot), ``"tls"`` (implicit TLS, "SMTPS") or ``"none"``.
    :param username: log in with this user (requires ``password``); never in clear text
        unless ``security="none"`` was chosen explicitly.
    :param password: the password for ``username``.
    :param timeout: seconds for each socket operation.
    :param deadline: seconds for the whole exchange (a server dripping its replies is cut
        off then, and the send is transient: 503, SNS retries).
    :param ssl_context: certificate verification settings; default: the system's trust
        store with host name checking.
    :param local_hostname: the name sent in EHLO (default: this machine's FQDN).

    Example::

        SmtpMailer("smtp.example.com", username="alerts", password=os.environ["SMTP_PASSWORD"])
    """

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        security: SmtpSecurity = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = DEFAULT_SMTP_TIMEOUT,
        deadline: float = DEFAULT_SMTP_DEADLINE,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if security not in _DEFAULT_PORTS:
            raise ConfigurationError('security must be "starttls", "tls" or "none"')
        if not host:
            raise ConfigurationError("host is required")
        if (username is None) != (password is None):
            raise ConfigurationError("give both username and password, or neither")
        if timeout <= 0 or deadline <= 0:
            raise ConfigurationError("timeout and deadline must be positive")
        self.host = host
        self.port = port if port is not None else _DEFAULT_PORTS[security]
        self.security = security
        self.username = username
        self._password = password
        self.timeout = timeout
        self.deadline = deadline
        self.ssl_context = ssl_context
        self.local_hostname = local_hostname

    def __repr__(self) -> str:
        return f"SmtpMailer({self.host!r}, {self.port}, security={self.security!r})"

    def _context(self) -> ssl.SSLContext:
        return self.ssl_context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            return _WatchedSMTPSSL(
                self.host,
                self.port,
                local_hostname=self.local_hostname,
                timeout=self.timeout,
                context=self._context(),
            )
        return _WatchedSMTP(
            self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout
        )

    def _exchange(
        self, message: EmailMessage, sender: str, recipients: list[str]
    ) -> dict[str, tuple[int, bytes]]:
        """Connect, secure, log in and send; the recipients the server refused."""
        smtp = self._open()
        try:
            if self.username is not None and self._password is not None:
                smtp.login(self.username, self._password)
            return smtp.send_message(message, from_addr=sender, to_addrs=recipients)
        finally:
            _hang_up(smtp)

    def _open(self) -> smtplib.SMTP:
        """A connection, upgraded with STARTTLS when that is the security (never in clear
        then: starttls raises when the server does not offer it)."""
        smtp = self._connect()
        if self.security == "starttls":
            try:
                smtp.starttls(context=self._context())
                smtp.ehlo()
            except BaseException:
                smtp.close()
                raise
        return smtp

    def ping(self) -> bool:
        """True when the server answers a connection, TLS as configured and NOOP (for health
        endpoints). It does not log in: a probe every few seconds must not look like a
        password-guessing client to the mail server."""
        try:
            with Deadline(self.deadline):
                smtp = self._open()
                try:
                    code, _ = smtp.noop()
                finally:
                    _hang_up(smtp)
        except (OSError, smtplib.SMTPException):
            return False
        return code == 250

    def send(self, message: EmailMessage) -> None:
        sender = envelope_sender(message)
        recipients = envelope_recipients(message)
        if not recipients:
            raise MailRejectedError("the email has no recipients", reason=Reason.NO_RECIPIENTS)
        # (send_message never transmits Bcc headers; the envelope still includes them.)
        deadline = Deadline(self.deadline)
        try:
            with deadline:
                refused = self._exchange(message, sender, recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [int(code) for code, _ in exc.recipients.values()]
            if any(400 <= code < 500 for code in codes):
                raise MailUnavailableError(
                    f"the SMTP server deferred every recipient ({sorted(set(codes))})",
                    code=str(min(codes)),
                ) from None
            raise MailRejectedError(
                f"the SMTP server refused every recipient ({sorted(set(codes))})",
                reason=Reason.RECIPIENTS_REFUSED,
                code=str(min(codes)),
            ) from None
        except smtplib.SMTPSenderRefused as exc:
            raise _classify_smtp_code(exc.smtp_code, "MAIL FROM") from None
        except smtplib.SMTPAuthenticationError as exc:
            raise _classify_smtp_code(exc.smtp_code, "AUTH") from None
        except smtplib.SMTPNotSupportedError as exc:
            # No STARTTLS or no AUTH: sending anyway would leak the email or the password.
            raise MailRejectedError(
                f"the SMTP server does not support what this mailer requires ({exc})",
                reason=Reason.SMTP_UNSUPPORTED,
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise _classify_smtp_code(exc.smtp_code, "the email") from None
        except ssl.SSLCertVerificationError as exc:
            raise MailRejectedError(
                f"the SMTP server's certificate did not verify ({exc.verify_message})",
                reason=Reason.SMTP_CERTIFICATE,
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            # Refused, reset, timed out, disconnected: may well clear before SNS gives up.
            if deadline.expired:
                raise MailUnavailableError(
                    f"the SMTP exchange took longer than {self.deadline:g} s and was cut off"
                ) from None
            raise MailUnavailableError(
                f"the SMTP server could not be reached ({type(exc).__name__})"
            ) from None
        if refused:
            # Delivered to the others; a retry would email them twice. Say so loudly.
            log.warning(
                "SMTP server refused some recipients of an email that was sent: %s",
                ", ".join(f"{addr} ({code})" for addr, (code, _) in refused.items()),
            )


class SesMailer:
    """Send through Amazon SES with boto3's ``sesv2`` SendEmail (raw MIME content), or the
    SES v1 SendRawEmail with ``api="v1"`` (what LocalStack's free edition emulates).

    The client's timeouts and retries are bounded so that a send stays below SNS's answer
    deadline (:data:`~snsmiddleware.policy.SNS_ANSWER_DEADLINE`). Needs ``ses:SendEmail`` on
    the sender identity; in the SES sandbox only verified recipients can receive.

    :param region: the SES region (default: boto3's configuration).
    :param configuration_set: an SES configuration set name for every email.
    :param endpoint_url: an SES endpoint instead of AWS's (moto's server, LocalStack).
    :param connect_timeout: seconds to connect.
    :param read_timeout: seconds to wait for an answer.
    :param max_attempts: total attempts including boto3's own retries.
    :param api: ``"v2"`` (``sesv2`` SendEmail, default) or ``"v1"`` (``ses`` SendRawEmail).
    :param client: a ready client of that API (tests with botocore's Stubber, custom
        sessions); exclusive with region and endpoint_url.

    Example::

        SesMailer(region="eu-west-1", configuration_set="budget-alerts")
    """

    def __init__(
        self,
        *,
        region: str | None = None,
        configuration_set: str | None = None,
        endpoint_url: str | None = None,
        connect_timeout: float = DEFAULT_SES_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_SES_READ_TIMEOUT,
        max_attempts: int = DEFAULT_SES_MAX_ATTEMPTS,
        api: Literal["v2", "v1"] = "v2",
        client: SESV2Client | Any | None = None,
    ) -> None:
        if api not in ("v2", "v1"):
            raise ConfigurationError('api must be "v2" or "v1"')
        self.api = api
        self.configuration_set = configuration_set
        self._client: Any
        if client is not None:
            if region is not None or endpoint_url is not None:
                raise ConfigurationError("give either client or region/endpoint_url, not both")
            self._client = client
            return
        if max_attempts < 1 or connect_timeout <= 0 or read_timeout <= 0:
            raise ConfigurationError("timeouts must be positive and max_attempts at least 1")
        from .confirm import require_boto3

        require_boto3("SesMailer")
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # "total_max_attempts" counts the first try; botocore's "max_attempts" would not
            # (max_attempts=2 meant 3 attempts: 3 x (3 + 5) s + back-off, far past 15 s).
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
        )
        try:
            # Built once, here: client creation is not thread-safe, a built client is.
            self._client = boto3.session.Session().client(
                "sesv2" if api == "v2" else "ses",
                region_name=region,
                endpoint_url=endpoint_url,
                config=config,
            )
        except BotoCoreError as exc:  # NoRegionError and friends: fail at startup
            raise ConfigurationError(f"the SES client cannot be built: {exc}") from None

    def __repr__(self) -> str:
        return f"SesMailer(region={self._client.meta.region_name!r}, api={self.api!r})"

    def send(self, message: EmailMessage) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        recipients = envelope_recipients(message)
        if not recipients:
            raise MailRejectedError("the email has no recipients", reason=Reason.NO_RECIPIENTS)
        raw = message.as_bytes(policy=policy.SMTP)
        request: dict[str, Any]
        if self.api == "v2":
            request = {
                "FromEmailAddress": envelope_sender(message),
                "Destination": {"ToAddresses": recipients},
                "Content": {"Raw": {"Data": raw}},
            }
        else:
            request = {
                "Source": envelope_sender(message),
                "Destinations": recipients,
                "RawMessage": {"Data": raw},
            }
        if self.configuration_set is not None:
            request["ConfigurationSetName"] = self.configuration_set
        try:
            if self.api == "v2":
                self._client.send_email(**request)
            else:
                self._client.send_raw_email(**request)
        except ClientError as exc:
            raise classify_ses_error(exc.response) from None
        except BotoCoreError as exc:
            # Connection refused, time-outs, missing credentials: may clear within the hour.
            # (A read time-out after SES accepted the email can mean a second email: SNS's
            # at-least-once delivery cannot be beaten when the far side stops answering.)
            raise MailUnavailableError(f"SES could not be reached ({type(exc).__name__})") from None


def classify_ses_error(response: Any) -> SnsError:
    """Map an SES error response (botocore's ``ClientError.response``) to our errors."""
    error = response.get("Error", {}) if isinstance(response, dict) else {}
    code = str(error.get("Code", "Unknown"))
    text = str(error.get("Message", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    detail = f"SES refused the email ({code}: {text[:200]})"
    if code in {"Throttling", "ThrottlingException"} and "daily" in text.lower():
        # An exhausted 24-hour quota will not clear within SNS's retry hour.
        return MailRejectedError(detail, reason=Reason.SES_QUOTA_EXHAUSTED, code=code)
    if code in SES_TRANSIENT_ERRORS or status >= 500 or status == 429:
        return MailUnavailableError(
            f"SES is unavailable for now ({code})", reason=Reason.MAIL_UNAVAILABLE, code=code
        )
    return MailRejectedError(detail, code=code)
