"""BudgetApp: the WSGI app behind :class:`~snsmiddleware.SnsMiddleware` that turns an AWS
Budgets alert, or an AWS Cost Anomaly Detection alert, into exactly one email to the right
people.

It trusts nothing it did not get from the middleware: the message is read with
:func:`snsmiddleware.get_message`, so a request that did not pass signature, certificate and
topic checks is refused. From there:

1. Budgets' "SNS Topic Verified!" notification is acknowledged (200, no email), in case the
   middleware was told to pass it on.
2. The text is parsed (:func:`~snsmiddleware.anomaly.parse_cost_alert`): a Cost Anomaly
   Detection alert by its JSON shape (:func:`~snsmiddleware.anomaly.parse_anomaly_alert`),
   anything else as a Budgets alert (:func:`~snsmiddleware.budgets.parse_budget_alert`).
   Something that is neither (an auto-adjusting budget's JSON, any other text or JSON)
   answers 422: it was delivered and retrying cannot change it. An alert whose details only
   partly parse (or, for an anomaly, whose JSON is not strictly readable) is still emailed,
   with the raw text.
3. Recipients are every configured entry that matches: the exact budget name (for an
   anomaly: the monitor's or the alert subscription's name), a glob pattern
   (:func:`fnmatch.fnmatchcase`) or the 12-digit account id; else the default recipients;
   else nobody, and the email goes to the dead-letter outbox. Nothing is dropped silently.
   An account id is matched against the account in the *signed TopicArn* (Budgets publishes
   only to a topic in the budget's own account), and the ``AWS Account`` line of the text
   (an anomaly's ``accountId``), which whoever publishes writes, must agree when there is
   one: a publisher to a topic of account A cannot have an alert mailed to account B's
   owner by writing B into the text.
4. The mailer sends one email. A transient failure answers 503 (the middleware releases the
   MessageId and SNS redelivers); a permanent one writes the email with its full context to
   the dead-letter outbox and answers 200 saying so (the middleware commits the MessageId and
   SNS stops). If even the dead-letter outbox cannot be written, 503: SNS will try again.
   A transient failure of an alert SNS has been retrying for longer than
   ``dead_letter_after`` (its Timestamp is the first attempt's) is dead-lettered too
   (``retries_exhausted``): SNS is about to give up, and the copy can be replayed later.
5. A mailer whose sends are not idempotent (SMTP, SES) has each send recorded in the
   de-duplication store (:func:`~snsmiddleware.get_effects`) before the answer, and a
   redelivery whose send was recorded is not sent again (``already_sent``): a process killed
   between the send and the commit does not email twice. The file outbox needs no record:
   it names each file after the message.

6. :meth:`BudgetApp.on_unsubscribe` (the middleware's ``on_unsubscribe`` hook) emails the
   ``admin_recipients`` when an UnsubscribeConfirmation says this endpoint was unsubscribed
   from a topic (its alerts will stop), once per message, or logs a WARNING saying so when
   nobody is configured.

Exactly one email per alert comes from the middleware's claim/commit/release de-duplication:
this app answers 2xx only when the alert has been handed to the mailer or the dead-letter
outbox, and never keeps per-request state on ``self`` (servers call it from many threads).
"""

from __future__ import annotations

import enum
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address, Group
from email.message import EmailMessage
from email.policy import default as default_policy
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Final

from webob import Request, Response
from webob.dec import wsgify

from .admin_email import build_unsubscribe_email, resubscribe_command, unsubscribe_summary
from .alert_email import (
    DEFAULT_SUBJECT_PREFIX,
    RecipientMatch,
    build_dead_letter,
    single_line,
    topic_account,
)
from .anomaly import AnomalyAlert, parse_cost_alert
from .anomaly_email import build_cost_alert_email
from .answers import PlainTextAnswer
from .budgets import BudgetAlert, NotABudgetAlertError
from .dedupe import MessageEffects
from .email_headers import LiteralHeader, UnsafeHeaderError, verify_headers
from .errors import ConfigurationError, SnsError, TransientError, excerpt
from .hooks import HookGuard
from .mail import FileOutbox, Mailer
from .message import Notification, SnsMessage, UnsubscribeConfirmation, is_topic_verification
from .middleware import get_effects, get_message
from .reasons import Reason
from .verifier import utc_now

log = logging.getLogger(__name__)

#: Where emails go when no mailer is configured (relative to the working directory).
DEFAULT_OUTBOX: Final = "outbox"
DEAD_LETTER_DIRECTORY: Final = "dead-letter"
DEFAULT_SENDER: Final = "AWS Budgets alerts <budget-alerts@localhost>"
#: SNS's default HTTP policy retries 3 times about 20 s apart: its last attempt comes about
#: 60 s after the first. A transient failure after 50 s is kept as a dead letter (replayable)
#: instead of being left to an SNS that gives up. Raise it with a longer retry policy.
DEFAULT_DEAD_LETTER_AFTER: Final = timedelta(seconds=50)
#: The name of the effect recorded for a sent email (see :class:`EffectLedger`).
EMAIL_EFFECT: Final = "email"

_ACCOUNT_ID: Final = re.compile(r"\d{12}", re.ASCII)
_GLOB_CHARS: Final = frozenset("*?[")

#: Either kind of alert the app emails.
CostAlert = BudgetAlert | AnomalyAlert


def routing_names(alert: CostAlert) -> tuple[str, ...]:
    """The names ``recipients`` entries are matched against: a budget's name; an anomaly's
    monitor name and alert subscription name."""
    if isinstance(alert, AnomalyAlert):
        return alert.routing_names
    return () if alert.budget_name is None else (alert.budget_name,)


def parse_address(value: str, *, what: str) -> Address:
    """One RFC 5322 mailbox (``"Ana Lima <ana@example.com>"`` or a bare address), strictly.

    Raises :class:`ConfigurationError` naming ``what`` for anything else (two addresses, a
    group, a missing domain, line breaks).
    """
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{what}: an email address must be a non-empty string")
    if any(char in value for char in "\r\n\0"):
        raise ConfigurationError(f"{what}: {value!r} contains a line break")
    try:
        header = default_policy.header_factory("To", value)
    except Exception:  # the stdlib parser raises IndexError on some junk ("ana@")
        raise ConfigurationError(f"{what}: {value!r} is not one RFC 5322 address") from None
    addresses: tuple[Address, ...] = getattr(header, "addresses", ())
    groups: tuple[Group, ...] = getattr(header, "groups", ())
    if (
        header.defects
        or len(addresses) != 1
        or len(groups) != 1
        or groups[0].display_name is not None
    ):
        raise ConfigurationError(f"{what}: {value!r} is not one RFC 5322 address")
    address = addresses[0]
    if not address.username or not address.domain:
        raise ConfigurationError(f"{what}: {value!r} needs a user and a domain")
    return address


def _addresses(value: str | Iterable[str], *, what: str) -> tuple[Address, ...]:
    values = [value] if isinstance(value, str) else list(value)
    if not values:
        raise ConfigurationError(f"{what}: give at least one address")
    return tuple(parse_address(v, what=what) for v in values)


def _unique(addresses: Iterable[Address]) -> list[Address]:
    seen: dict[str, Address] = {}
    for address in addresses:
        seen.setdefault(address.addr_spec.lower(), address)
    return list(seen.values())


@dataclass(frozen=True, slots=True)
class RecipientRule:
    """One ``recipients`` entry: who gets the alerts that ``key`` matches.

    ``key`` is a 12-digit account id, a glob pattern (``*``, ``?``, ``[...]``, matched
    case-sensitively) or an exact name: a budget's name for a Budgets alert, the monitor's
    or the alert subscription's name for a Cost Anomaly Detection alert.
    """

    key: str
    addresses: tuple[Address, ...]

    @property
    def is_account(self) -> bool:
        return _ACCOUNT_ID.fullmatch(self.key) is not None

    def matches(self, alert: CostAlert, signed_account: str | None = None) -> bool:
        """Does this entry want ``alert``, published to a topic of ``signed_account``?

        An account entry needs ``signed_account`` (the account of the signed TopicArn, see
        :func:`~snsmiddleware.alert_email.topic_account`) to be its key, and the text's own
        account (a Budgets alert's ``AWS Account`` line, an anomaly's ``accountId``), if
        any, to agree: without a signed account, an account entry matches nothing. Any
        other entry matches a name of :func:`routing_names`.
        """
        if self.is_account:
            return signed_account == self.key and alert.account_id in (None, self.key)
        return any(self._matches_name(name) for name in routing_names(alert))

    def _matches_name(self, name: str) -> bool:
        if name == self.key:
            return True
        return bool(_GLOB_CHARS & set(self.key)) and fnmatchcase(name, self.key)

    def describe(self, alert: CostAlert | None = None) -> str:
        """How this entry reads in the footer of ``alert``'s email (``the budget name "Test
        Budget"``; for an anomaly, ``the monitor or subscription name "Daily spend"``)."""
        if self.is_account:
            return f"the account {self.key}"
        name = "monitor or subscription name" if isinstance(alert, AnomalyAlert) else "budget name"
        if _GLOB_CHARS & set(self.key):
            return f'the {name} pattern "{single_line(self.key, 100)}"'
        return f'the {name} "{single_line(self.key, 100)}"'


def _kind(alert: CostAlert) -> str:
    return "cost anomaly alert" if isinstance(alert, AnomalyAlert) else "budget alert"


def _named(alert: CostAlert) -> str:
    """What a dead letter's detail calls the alert: ``budget 'x'``, ``anomaly monitor 'y'``."""
    if isinstance(alert, AnomalyAlert):
        name = alert.monitor_name
        return "anomaly monitor " + ("(no name found)" if name is None else excerpt(name))
    name = alert.budget_name
    return "budget " + ("(no name found)" if name is None else excerpt(name))


class MailOutcome(enum.Enum):
    """What became of one alert's email (see :class:`MailEvent`)."""

    #: handed to the mailer
    SENT = "sent"
    #: an earlier attempt sent it (recorded in the de-duplication store): not sent again
    ALREADY_SENT = "already_sent"
    #: kept in the dead-letter outbox (``reason`` says why); SNS is answered 200
    DEAD_LETTERED = "dead_lettered"
    #: not sent yet, and not dead-lettered: 503, SNS retries (``reason`` says why)
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class MailEvent:
    """One alert's email outcome, for :class:`BudgetApp`'s ``observer``.

    :param outcome: what happened.
    :param reason: the reason code of a ``DEAD_LETTERED`` or ``FAILED`` outcome (the
        dead-letter reason, or the mailer's error), else ``None``.
    :param topic_arn: the TopicArn of the verified notification the alert came in.
    """

    outcome: MailOutcome
    reason: str | None
    topic_arn: str


#: ``event -> None``; see :class:`MailEvent`.
MailObserver = Callable[[MailEvent], object]


def _about(message: SnsMessage) -> str:
    """The log fields naming a notification (the TopicArn cut short: ``handle()`` can be
    called without the middleware's allowlist in front)."""
    return f"message_id={message.message_id} topic={excerpt(message.topic_arn, 300)}"


def _response(answer: PlainTextAnswer) -> Response:
    """The WebOb form of a plain-text answer: the same status line, headers and body as
    every answer of the middleware."""
    # app_iter, not body=: WebOb would move Content-Length to the end of the headers.
    return Response(status=answer.status_line, headerlist=answer.headers, app_iter=[answer.body])


def _answer(code: int, reason: str, detail: str) -> Response:
    return _response(PlainTextAnswer(code, reason, detail))


def _check_writable(probe: EmailMessage, what: str) -> None:
    """Raise ConfigurationError when ``probe``'s headers do not read back as written."""
    try:
        verify_headers(probe)
    except UnsafeHeaderError as exc:
        raise ConfigurationError(f"{what} cannot be written safely: {exc}") from None


class BudgetApp:
    """Email AWS Budgets and Cost Anomaly Detection alerts; put
    :class:`~snsmiddleware.SnsMiddleware` in front of it.

    :param recipients: budget name (for anomalies: monitor or alert subscription name), glob
        pattern or 12-digit account id -> one RFC 5322 address or a list of them. Every
        matching entry receives the alert (one email, all of them in To).
    :param default_recipients: who receives alerts that no entry matches. Without it such
        alerts go to the dead-letter outbox (and are logged).
    :param mailer: a :class:`~snsmiddleware.mail.Mailer`; default ``FileOutbox("outbox")``
        in the working directory.
    :param sender: the From address (SES needs a verified identity; SMTP servers usually
        insist on an address they serve).
    :param dead_letter: a :class:`~snsmiddleware.mail.FileOutbox` or a directory for emails
        that could not be delivered (or had nobody to go to), each with the reason and the
        original notification attached. Default: ``dead-letter/`` inside the mailer's
        directory when the mailer is a ``FileOutbox``, else ``./dead-letter``.
    :param subject_prefix: the start of every subject.
    :param dead_letter_after: after a transient failure of an alert that SNS has been
        retrying for this long (measured from its Timestamp), keep it in the dead-letter
        outbox and answer 200 ``dead_lettered`` instead of 503; ``None``: always 503.
    :param clock: the current aware datetime (the middleware's ``clock``, in tests).
    :param observer: called with a :class:`MailEvent` for every alert it emails,
        dead-letters or fails to send (for metrics: :mod:`snsmiddleware.metrics`); what it
        raises is logged (rate-limited) and never changes the answer. Settable later as the
        ``observer`` attribute.
    :param admin_recipients: who is emailed when this endpoint is unsubscribed from a topic
        (:meth:`on_unsubscribe`, given to the middleware as ``on_unsubscribe=``). Without
        them that event is only logged, as a WARNING.

    Example::

        app = SnsMiddleware(
            BudgetApp(recipients={"Test Budget": ["Ana Lima <ana@example.com>"]},
                      default_recipients=["FinOps <finops@example.com>"],
                      mailer=FileOutbox("outbox/")),
            paths=["/sns/budgets"], topics=["arn:aws:sns:us-east-1:123456789012:budget-alerts"])
    """

    def __init__(
        self,
        *,
        recipients: Mapping[str, str | Iterable[str]],
        default_recipients: str | Iterable[str] | None = None,
        mailer: Mailer | None = None,
        sender: str = DEFAULT_SENDER,
        dead_letter: FileOutbox | str | os.PathLike[str] | None = None,
        subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
        dead_letter_after: timedelta | None = DEFAULT_DEAD_LETTER_AFTER,
        clock: Callable[[], datetime] = utc_now,
        observer: MailObserver | None = None,
        admin_recipients: str | Iterable[str] | None = None,
    ) -> None:
        self.clock = clock
        self.observer = observer
        self._observer_guard = HookGuard("the BudgetApp observer")
        if dead_letter_after is not None and dead_letter_after <= timedelta(0):
            raise ConfigurationError("dead_letter_after must be positive (or None)")
        self.dead_letter_after = dead_letter_after
        if not isinstance(recipients, Mapping):
            raise ConfigurationError("recipients must map budget names or account ids to addresses")
        rules = []
        for key, value in recipients.items():
            if not isinstance(key, str) or not key.strip():
                raise ConfigurationError("recipients keys must be non-empty budget names")
            rules.append(RecipientRule(key, _addresses(value, what=f"recipients[{key!r}]")))
        self.rules: tuple[RecipientRule, ...] = tuple(rules)
        self.default_recipients: tuple[Address, ...] = (
            _addresses(default_recipients, what="default_recipients")
            if default_recipients is not None
            else ()
        )
        self.admin_recipients: tuple[Address, ...] = (
            _addresses(admin_recipients, what="admin_recipients")
            if admin_recipients is not None
            else ()
        )
        self.sender = parse_address(sender, what="sender")
        if any(char in subject_prefix for char in "\r\n"):
            raise ConfigurationError("subject_prefix must be one line")
        if mailer is None:
            mailer = FileOutbox(DEFAULT_OUTBOX)
        if not isinstance(mailer, Mailer):
            raise ConfigurationError("mailer must have a send(EmailMessage) method")
        self.mailer: Mailer = mailer
        if dead_letter is None:
            base = mailer.directory if isinstance(mailer, FileOutbox) else Path.cwd()
            dead_letter = base / DEAD_LETTER_DIRECTORY
        self.dead_letter = (
            dead_letter if isinstance(dead_letter, FileOutbox) else FileOutbox(dead_letter)
        )
        self.subject_prefix = subject_prefix
        self._check_configured_headers()
        if not self.rules and not self.default_recipients:
            log.warning("BudgetApp has no recipients: every alert goes to %s", self.dead_letter)

    def _check_configured_headers(self) -> None:
        """Every configured address must read back from a written email as it was given
        (the check each alert's email gets): fail at startup rather than on the first alert."""
        probe = EmailMessage()
        probe["Subject"] = LiteralHeader("Subject", single_line(self.subject_prefix))
        probe["From"] = self.sender
        lists = [(f"recipients[{rule.key!r}]", rule.addresses) for rule in self.rules]
        if self.admin_recipients:
            lists.append(("admin_recipients", self.admin_recipients))
        for what, addresses in lists:
            probe["To"] = addresses
            _check_writable(probe, what)
            del probe["To"]
        if self.default_recipients:
            probe["To"] = self.default_recipients
        _check_writable(probe, "sender, subject_prefix or default_recipients")

    def recipients_for(self, alert: CostAlert, *, topic_arn: str | None = None) -> list[Address]:
        """Everyone configured for this alert, else the defaults (possibly nobody).

        ``topic_arn`` is the signed TopicArn the alert came from; account entries match its
        account (see :meth:`RecipientRule.matches`) and nothing without it.
        """
        account = topic_account(topic_arn) if topic_arn is not None else None
        if topic_arn is None and any(rule.is_account for rule in self.rules):
            warnings.warn(
                "recipients_for() without topic_arn: account entries match the account of the "
                "signed TopicArn, so none of them can match",
                DeprecationWarning,
                stacklevel=2,
            )
        return [match.address for match in self._route(alert, account)]

    def route(self, alert: CostAlert, *, topic_arn: str) -> list[RecipientMatch]:
        """Like :meth:`recipients_for`, with the entries that chose each recipient (for the
        email's greeting and its "why you got this" footer); no entries: a default recipient.
        """
        return self._route(alert, topic_account(topic_arn))

    def _route(self, alert: CostAlert, account: str | None) -> list[RecipientMatch]:
        chosen: dict[str, tuple[Address, list[str]]] = {}
        for rule in self.rules:
            if rule.matches(alert, account):
                for address in rule.addresses:
                    entry = chosen.setdefault(address.addr_spec.lower(), (address, []))
                    entry[1].append(rule.describe(alert))
        if chosen:
            return [RecipientMatch(address, tuple(rules)) for address, rules in chosen.values()]
        return [RecipientMatch(address) for address in _unique(self.default_recipients)]

    @wsgify
    def __call__(self, request: Request) -> Response:
        try:
            message = get_message(request.environ)
        except LookupError:
            log.error("BudgetApp called without a verified message: is SnsMiddleware in front?")
            return _answer(
                403, Reason.NOT_VERIFIED, "this endpoint only accepts verified SNS messages"
            )
        return self.handle(message, get_effects(request.environ))

    def handle(self, message: Notification, effects: MessageEffects | None = None) -> Response:
        """Process one verified notification and say how it went (no WSGI needed).

        ``effects`` (from the middleware) records the send of a mailer that is not
        idempotent, so that a redelivery after a crash does not send it again.
        """
        about = _about(message)
        if is_topic_verification(message):
            log.info("budgets topic verification acknowledged %s", about)
            return _answer(200, Reason.BUDGETS_VERIFICATION_ACKNOWLEDGED, "acknowledged")
        try:
            alert = parse_cost_alert(message)
        except NotABudgetAlertError as exc:
            log.warning("not emailed: %s (%s) %s", exc.reason, exc.detail, about)
            return _response(exc.answer())
        kind = _kind(alert)
        if isinstance(alert, AnomalyAlert) and alert.unreadable is not None:
            log.warning(
                "%s not readable (%s); emailing the raw text %s", kind, alert.unreadable, about
            )
        elif not alert.complete:
            log.warning(
                "%s only partly parsed (missing: %s); emailing the raw text %s",
                kind,
                ", ".join(alert.unparsed),
                about,
            )
        signed_account = topic_account(message.topic_arn)
        if alert.account_id is not None and alert.account_id != signed_account:
            log.warning(
                "the text names AWS account %s but the topic belongs to account %s: account "
                "entries of recipients do not apply %s",
                excerpt(alert.account_id, 16),
                signed_account,
                about,
            )
        routing = self.route(alert, topic_arn=message.topic_arn)
        recipients = [match.address for match in routing]
        email = self._email(alert, message, routing)
        if not recipients:
            return self._dead_letter(
                email,
                message,
                reason=Reason.NO_RECIPIENTS,
                detail=f"nobody is configured for the {_named(alert)}",
                recipients=(),
            )
        ledger = None if getattr(self.mailer, "idempotent", False) else effects
        if ledger is not None and self._recorded(ledger, about):
            log.warning("an earlier attempt sent this alert; not sending it again %s", about)
            self._notify(MailOutcome.ALREADY_SENT, None, message)
            return _answer(200, Reason.ALREADY_SENT, "emailed by an earlier attempt")
        try:
            self.mailer.send(email)
        except SnsError as exc:
            if exc.transient:
                return self._not_sent_yet(exc, email, message, recipients)
            return self._dead_letter(
                email,
                message,
                reason=exc.reason,
                detail=exc.detail,
                recipients=recipients,
                error_code=getattr(exc, "code", None),
            )
        if ledger is not None:
            try:
                ledger.record(EMAIL_EFFECT)
            except Exception:
                # Sent: the answer stays 200. Only a crash before the commit would resend.
                log.exception("the send could not be recorded %s", about)
        log.info("%s emailed to %d recipient(s) %s", kind, len(recipients), about)
        self._notify(MailOutcome.SENT, None, message)
        return _answer(200, Reason.SENT, f"emailed to {len(recipients)} recipient(s)")

    def _notify(self, outcome: MailOutcome, reason: str | None, message: Notification) -> None:
        observer = self.observer
        if observer is not None:
            self._observer_guard.call(observer, MailEvent(outcome, reason, message.topic_arn))

    def _email(
        self, alert: CostAlert, message: Notification, routing: list[RecipientMatch]
    ) -> EmailMessage:
        """The email for either kind of alert (``routing``: who gets it and why, for the
        greeting and the footer)."""
        return build_cost_alert_email(
            alert,
            message,
            sender=self.sender,
            recipients=[match.address for match in routing],
            subject_prefix=self.subject_prefix,
            routing=routing,
        )

    def _not_sent_yet(
        self,
        exc: SnsError,
        email: EmailMessage,
        message: Notification,
        recipients: list[Address],
    ) -> Response:
        """A transient send failure: SNS retries (the error's own 5xx), unless it has been
        retrying for ``dead_letter_after`` already, when the alert is dead-lettered."""
        age = self.clock() - message.sent_at
        if self.dead_letter_after is not None and age >= self.dead_letter_after:
            return self._dead_letter(
                email,
                message,
                reason=Reason.RETRIES_EXHAUSTED,
                detail=f"{exc.reason} for {int(age.total_seconds())} s of SNS retries "
                f"({exc.detail})",
                recipients=recipients,
                error_code=getattr(exc, "code", None),
            )
        # The detail stays in our log: it can name a path or host nobody else needs.
        log.error(
            "email not sent, SNS will retry: %s (%s) %s", exc.reason, exc.detail, _about(message)
        )
        self._notify(MailOutcome.FAILED, exc.reason, message)
        return _response(exc.answer("the email could not be sent yet; SNS will retry"))

    def on_unsubscribe(self, message: UnsubscribeConfirmation) -> None:
        """Tell the admin recipients that this endpoint was unsubscribed from a topic.

        The hook for ``SnsMiddleware(on_unsubscribe=...)``, which calls it once per verified
        UnsubscribeConfirmation of an allowed topic (redeliveries are de-duplicated there).
        The notice goes through the app's mailer; without ``admin_recipients`` the event is
        logged as a WARNING instead. A transient mail failure raises
        :class:`~snsmiddleware.errors.TransientError` (the middleware answers 503 and a
        redelivery tries again), unless SNS has been retrying for ``dead_letter_after``: then,
        as for a permanent failure, the notice is kept in the dead-letter outbox (where
        ``snsmiddleware replay`` can send it later) and nothing is raised.
        """
        about = _about(message)
        summary = unsubscribe_summary(message)
        if not self.admin_recipients:
            log.warning(
                "%s: no admin_recipients are configured, so nobody was told; subscribe the "
                "endpoint again to receive alerts (%s) %s",
                summary,
                resubscribe_command(message.topic_arn),
                about,
            )
            return
        email = build_unsubscribe_email(
            message,
            sender=self.sender,
            recipients=self.admin_recipients,
            subject_prefix=self.subject_prefix,
        )
        try:
            self.mailer.send(email)
        except SnsError as exc:
            age = self.clock() - message.sent_at
            give_up = self.dead_letter_after is not None and age >= self.dead_letter_after
            if exc.transient and not give_up:
                log.error(
                    "%s; the admin notice could not be sent yet (%s: %s), SNS may retry %s",
                    summary,
                    exc.reason,
                    exc.detail,
                    about,
                )
                raise TransientError(
                    "the unsubscribe notice could not be emailed yet", reason=exc.reason
                ) from None
            reason = Reason.RETRIES_EXHAUSTED if exc.transient else exc.reason
            self._keep_notice(email, message, reason=reason, detail=exc.detail, about=about)
            return
        log.warning("%s: told %d admin recipient(s) %s", summary, len(self.admin_recipients), about)

    def _keep_notice(
        self,
        email: EmailMessage,
        message: UnsubscribeConfirmation,
        *,
        reason: str,
        detail: str,
        about: str,
    ) -> None:
        """Write an admin notice that could not be sent to the dead-letter outbox."""
        letter = build_dead_letter(
            email, message, reason=reason, detail=detail, recipients=self.admin_recipients
        )
        try:
            path = self.dead_letter.write(letter)
        except SnsError as exc:
            log.error(
                "%s; the admin notice was not sent (%s) and the dead-letter outbox failed: %s %s",
                unsubscribe_summary(message),
                reason,
                exc.detail,
                about,
            )
            raise TransientError(
                "the unsubscribe notice could not be emailed or kept", reason=exc.reason
            ) from None
        log.error(
            "%s; the admin notice was not sent (%s: %s) and is kept in %s %s",
            unsubscribe_summary(message),
            reason,
            detail,
            path,
            about,
        )

    @staticmethod
    def _recorded(ledger: MessageEffects, about: str) -> bool:
        try:
            return ledger.done(EMAIL_EFFECT)
        except Exception:
            # Unknown: sending risks a duplicate, not sending would risk losing the alert.
            log.exception("the de-duplication store could not say whether it was sent %s", about)
            return False

    def _dead_letter(
        self,
        email: EmailMessage,
        message: Notification,
        *,
        reason: str,
        detail: str,
        recipients: Iterable[Address],
        error_code: str | None = None,
    ) -> Response:
        about = _about(message)
        letter = build_dead_letter(
            email,
            message,
            reason=reason,
            detail=detail,
            recipients=list(recipients),
            error_code=error_code,
        )
        try:
            path = self.dead_letter.write(letter)
        except SnsError as exc:
            if not exc.transient:
                raise
            log.error(
                "alert not delivered (%s) and the dead-letter outbox failed: %s; SNS will retry %s",
                reason,
                exc.detail,
                about,
            )
            self._notify(MailOutcome.FAILED, exc.reason, message)
            return _response(
                exc.answer(
                    f"not emailed ({reason}) and the dead-letter outbox failed; SNS will retry"
                )
            )
        log.error("alert dead-lettered (%s: %s) to %s %s", reason, detail, path, about)
        self._notify(MailOutcome.DEAD_LETTERED, reason, message)
        return _answer(
            200, Reason.DEAD_LETTERED, f"not emailed ({reason}); kept in the dead-letter outbox"
        )


def app_factory(global_conf: dict[str, object], **local_conf: str) -> BudgetApp:
    """PasteDeploy ``paste.app_factory``: ``[app:budgets] use = egg:snsmiddleware#budget_app``.

    Options are strings converted strictly (:data:`snsmiddleware.config.BUDGET_APP_OPTIONS`);
    unknown keys fail at startup.
    """
    from .config import budget_app_options

    return BudgetApp(**budget_app_options(local_conf))
