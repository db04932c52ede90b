"""Compose the email for a Budgets alert, and its dead-letter copy (pure: no I/O).

Everything that comes from the SNS message (budget name, amounts, the raw text) is
untrusted: a budget name is arbitrary user text and anyone who can publish to the topic
writes the rest. So:

* the Subject is built from sanitised text: line breaks, other control characters and
  invisible formatting characters (bidi overrides) become spaces, so no value can add a
  header or disguise the subject;
* every header made from that text is a :class:`~snsmiddleware.email_headers.LiteralHeader`:
  the stdlib never parses it, so an RFC 2047 encoded-word in a budget name
  (``=?utf-8?q?x=0D=0ABcc=3A...?=``) stays the literal text it is instead of becoming a line
  break or a ``Bcc:`` header; and every finished email (the dead-letter copy too) is checked
  by :func:`~snsmiddleware.email_headers.verify_headers` before anyone can send it;
* every value in the HTML part is escaped by :mod:`snsmiddleware.email_view`, attributes
  included, and the only links are the AWS console: this budget's page, built here from a
  name AWS would accept (URL-encoded whole) for the partition of the *signed* TopicArn, and
  the list of budgets (the message's own link only when :mod:`snsmiddleware.budgets`
  recognised it as a console URL);
* the raw message text is always included (as text, escaped and collapsed in HTML), so a
  reader can check the parsed figures and nothing is lost when the template drifts.

The email is computed once as :class:`BudgetFacts` (percentage used, overage, console link),
turned into an :class:`~snsmiddleware.email_view.EmailView` by :func:`budget_alert_view`,
and rendered to both parts from that, so they cannot disagree. Who receives it and why
(:class:`RecipientMatch`, from :meth:`snsmiddleware.budget_app.BudgetApp.route`) gives the
greeting and the footer.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Final
from urllib.parse import quote

from .budgets import AlertType, BudgetAlert, BudgetPeriod, Money
from .email_headers import LiteralHeader, UnsafeHeaderError, verify_headers
from .email_view import Bar, EmailView, Link, Tone, render_html, render_text
from .errors import PolicyError
from .message import Notification, SnsMessage
from .policy import parse_topic_arn

log = logging.getLogger(__name__)

DEFAULT_SUBJECT_PREFIX: Final = "Cost control alert"
#: Long enough for any budget name (AWS allows 100 characters) plus our wording.
MAX_SUBJECT_CHARS: Final = 200
UNKNOWN: Final = "(not found in the message)"

_PERIOD_WORDS: Final = {
    BudgetPeriod.DAY: "daily",
    BudgetPeriod.MONTH: "monthly",
    BudgetPeriod.QUARTER: "quarterly",
    BudgetPeriod.YEAR: "annual",
}
_FIELD_LABELS: Final = {
    "date": "date",
    "account_id": "account",
    "budget_name": "budget name",
    "budget_type": "budget type",
    "budgeted_amount": "budgeted amount",
    "alert_type": "alert type",
    "threshold": "alert threshold",
    "amount": "amount",
    "period": "period",
    "dashboard_url": "console link",
}


def single_line(text: str, limit: int = MAX_SUBJECT_CHARS) -> str:
    """Text safe for one header line: no control or format characters, one space between
    words, at most ``limit`` characters.

    (Encoded-words such as ``=?utf-8?q?=0D=0A?=`` are left as they are: they are plain text
    here, and :class:`~snsmiddleware.email_headers.LiteralHeader` keeps them that way.)
    """
    cleaned = "".join(
        " "
        if unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp"}
        else "\ufffd"
        if unicodedata.category(char) == "Cs"  # a lone surrogate cannot be encoded at all
        else char
        for char in text
    )
    collapsed = " ".join(cleaned.split())
    if len(collapsed) > limit:
        collapsed = collapsed[: limit - 1].rstrip() + "…"
    return collapsed


def format_percent(value: Decimal) -> str:
    """``Decimal("80.00")`` -> ``"80%"``, ``Decimal("12.50")`` -> ``"12.5%"``."""
    normal = value.normalize()
    return f"{normal:f}%"


def _budget_label(alert: BudgetAlert) -> str:
    return alert.budget_name if alert.budget_name is not None else "unknown budget"


def alert_subject(alert: BudgetAlert, prefix: str = DEFAULT_SUBJECT_PREFIX) -> str:
    """``Cost control alert - 90% warning threshold exceeded - <budget name>``."""
    if alert.threshold_percent is not None:
        threshold = f"{format_percent(alert.threshold_percent)} warning threshold"
    elif alert.threshold is not None:
        threshold = f"{alert.threshold} warning threshold"
    else:
        threshold = "alert threshold"
    verb = "forecast to be exceeded" if alert.alert_type is AlertType.FORECASTED else "exceeded"
    parts = [prefix, f"{threshold} {verb}", _budget_label(alert)]
    return single_line(" - ".join(part for part in parts if part))


def _summary(alert: BudgetAlert) -> str:
    name = _budget_label(alert)
    limit = (
        f"{format_percent(alert.threshold_percent)} of its budgeted amount"
        if alert.threshold_percent is not None
        else f"its alert threshold of {alert.threshold}"
        if alert.threshold is not None
        else "its alert threshold"
    )
    if alert.alert_type is AlertType.FORECASTED:
        return f"The forecasted cost of the budget {name!r} is expected to exceed {limit}."
    if alert.alert_type is AlertType.ACTUAL:
        return f"The actual cost of the budget {name!r} has exceeded {limit}."
    return f"The budget {name!r} has crossed {limit}."


def topic_account(topic_arn: str) -> str | None:
    """The account id in a TopicArn, or ``None`` for something that is not an SNS TopicArn.

    SNS signs the TopicArn; the ``AWS Account`` line of the text is whatever the publisher
    wrote. Budgets publishes only to a topic in the budget's own account, so for a genuine
    alert the two agree."""
    try:
        return parse_topic_arn(topic_arn).account
    except PolicyError:
        return None


def _account(alert: BudgetAlert, signed_account: str | None) -> str:
    """The Account row: the signed account, and what the text says when it disagrees."""
    if signed_account is None or alert.account_id == signed_account:
        return UNKNOWN if alert.account_id is None else alert.account_id
    if alert.account_id is None:
        return f"{signed_account} (the topic's account)"
    return f"{signed_account} (the topic's account; the message text says {alert.account_id})"


def _rows(alert: BudgetAlert, signed_account: str | None = None) -> list[tuple[str, str]]:
    def shown(value: object) -> str:
        return UNKNOWN if value is None else str(value)

    threshold = shown(alert.threshold)
    if alert.threshold is not None and alert.threshold_percent is not None:
        threshold += f" ({format_percent(alert.threshold_percent)} of the budgeted amount)"
    if alert.alert_type is AlertType.ACTUAL:
        kind = "ACTUAL (cost already incurred)"
        amount_label = "Actual amount"
    elif alert.alert_type is AlertType.FORECASTED:
        kind = "FORECASTED (projected cost for the period)"
        amount_label = "Forecasted amount"
    else:
        kind, amount_label = UNKNOWN, "Amount"
    return [
        ("Budget", shown(alert.budget_name)),
        ("Account", _account(alert, signed_account)),
        ("Budget type", shown(alert.budget_type)),
        ("Period", shown(_PERIOD_WORDS.get(alert.period) if alert.period else None)),
        ("Budgeted amount", shown(alert.budgeted_amount)),
        ("Alert threshold", threshold),
        (amount_label, shown(alert.amount)),
        ("Alert type", kind),
        ("Date", shown(alert.date.isoformat() if alert.date else None)),
    ]


def _unparsed_note(alert: BudgetAlert) -> str | None:
    if alert.complete:
        return None
    fields = ", ".join(_FIELD_LABELS.get(name, name) for name in alert.unparsed)
    return (
        f"Some details could not be read from the message ({fields}). "
        "The original message is below."
    )


#: The console pages of AWS Billing and Cost Management, per partition (the budget list; a
#: named budget's page is ``<base>#/budgets/details?name=<URL-encoded name>``). Budgets
#: exists in the commercial and China partitions only; elsewhere the message's own link is
#: used. China's console keeps the Billing path its documentation gives.
BUDGET_CONSOLES: Final = {
    "aws": "https://console.aws.amazon.com/costmanagement/home",
    "aws-cn": "https://console.amazonaws.cn/billing/home",
}
# What AWS accepts as a BudgetName (1-100 characters, no ":" or "\\", no "/action/"); we
# also refuse control and invisible formatting characters, which no console link needs.
_BUDGET_NAME: Final = re.compile(r"[^:\\]{1,100}")
_SCRIPT_TAG: Final = re.compile(r"<script>.*</script>", re.IGNORECASE | re.DOTALL)


def budget_console_url(budget_name: str | None, partition: str = "aws") -> str | None:
    """The console page of the budget ``budget_name`` in ``partition``, or ``None`` when the
    name is not one AWS would accept (then there is no such page to link to) or the partition
    has no Budgets console.

    The name is URL-encoded whole (``quote(name, safe="")``): a ``&``, ``#`` or ``/`` in it
    stays part of the name instead of changing the link.
    """
    base = BUDGET_CONSOLES.get(partition)
    if base is None or budget_name is None:
        return None
    if (
        _BUDGET_NAME.fullmatch(budget_name) is None
        or "/action/" in budget_name
        or _SCRIPT_TAG.search(budget_name) is not None
        or single_line(budget_name, limit=100) != budget_name
    ):
        return None
    return f"{base}#/budgets/details?name={quote(budget_name, safe='')}"


def budget_list_url(partition: str = "aws") -> str | None:
    """The console's list of budgets in ``partition`` (``None``: no Budgets console there)."""
    base = BUDGET_CONSOLES.get(partition)
    return None if base is None else f"{base}#/budgets"


def topic_partition(topic_arn: str | None) -> str | None:
    """The partition of a signed TopicArn (``aws``, ``aws-cn``...), ``None`` if it is not one."""
    if topic_arn is None:
        return None
    try:
        return parse_topic_arn(topic_arn).partition
    except PolicyError:
        return None


@dataclass(frozen=True, slots=True)
class RecipientMatch:
    """One recipient of an alert and why it was chosen.

    :param address: the mailbox (its display name greets the reader).
    :param rules: how each configured entry that chose it reads (``the budget name "Test
        Budget"``, ``the pattern "prod-*"``); empty when it is a default recipient.
    """

    address: Address
    rules: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        """Why this recipient got the alert, as a phrase."""
        if not self.rules:
            return "no recipients entry matched this alert, and this address is a default recipient"
        return "the recipients entry for " + " and ".join(self.rules) + " matched this alert"


def greeting(addresses: Sequence[Address]) -> str:
    """``Hi Ana Lima,`` for one named recipient; ``Hi Ana Lima and Platform,`` for two or
    three who all have display names; otherwise ``Hello,`` (one) or ``Hello everyone,``.

    One email goes to every recipient (they all see the To line), so a greeting naming only
    some of them would read as addressed to those alone: it names everyone or no one.
    """
    names = [single_line(address.display_name, 60) for address in addresses]
    if not names:
        return "Hello,"
    if all(names) and len(names) <= 3:
        joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"Hi {joined},"
    return "Hello," if len(names) == 1 else "Hello everyone,"


def format_share(percent: Decimal) -> str:
    """A percentage for a headline: whole numbers with separators (``5,000%``), one decimal
    below 10 (``0.5%``)."""
    places = Decimal(1) if abs(percent) >= 10 else Decimal("0.1")
    shown = percent.quantize(places, ROUND_HALF_UP)
    text = f"{shown:,f}"
    return (text[:-2] if text.endswith(".0") else text) + "%"


_PERIOD_END: Final = {
    BudgetPeriod.DAY: "by the end of the day",
    BudgetPeriod.MONTH: "by the end of the month",
    BudgetPeriod.QUARTER: "by the end of the quarter",
    BudgetPeriod.YEAR: "by the end of the year",
}


@dataclass(frozen=True, slots=True)
class BudgetFacts:
    """What a Budgets alert's email says, computed once from the alert and where it came
    from (the signed TopicArn): the HTML and text parts are both rendered from these.

    :param used_percent: the amount as a percentage of the budgeted amount (``None`` when
        either is missing, the budget is zero or the currencies differ).
    :param overage: how far the amount is over the budgeted amount (``None`` when it is not).
    :param remaining: what is left of the budget when the amount is within it.
    :param budget_url: this budget's console page, when its name and partition allow one.
    """

    alert: BudgetAlert
    signed_account: str | None
    partition: str | None
    used_percent: Decimal | None
    overage: Money | None
    remaining: Money | None
    budget_url: str | None

    @classmethod
    def of(cls, alert: BudgetAlert, *, topic_arn: str | None = None) -> BudgetFacts:
        """The facts of ``alert``, published to ``topic_arn`` (the signed TopicArn)."""
        amount, budgeted = alert.amount, alert.budgeted_amount
        used = overage = remaining = None
        if (
            amount is not None
            and budgeted is not None
            and budgeted.amount > 0
            and amount.currency == budgeted.currency
        ):
            used = amount.amount * 100 / budgeted.amount
            difference = amount.amount - budgeted.amount
            if difference > 0:
                overage = Money(difference, amount.currency)
            else:
                remaining = Money(-difference, amount.currency)
        partition = topic_partition(topic_arn)
        return cls(
            alert=alert,
            signed_account=topic_account(topic_arn) if topic_arn is not None else None,
            partition=partition,
            used_percent=used,
            overage=overage,
            remaining=remaining,
            budget_url=budget_console_url(alert.budget_name, partition or "aws"),
        )

    @property
    def forecast(self) -> bool:
        return self.alert.alert_type is AlertType.FORECASTED

    @property
    def tone(self) -> Tone:
        """Red over budget (actual or forecast), amber for a threshold within budget."""
        return Tone.ALERT if self.overage is not None else Tone.WARNING

    def headline(self) -> str:
        alert = self.alert
        if self.used_percent is not None:
            share = format_share(self.used_percent)
            return (
                f"Forecast to reach {share} of budget"
                if self.forecast
                else f"{share} of budget used"
            )
        if alert.amount is not None:
            return f"{alert.amount} forecast" if self.forecast else f"{alert.amount} spent"
        return (
            "Forecast to exceed the alert threshold"
            if self.forecast
            else "Alert threshold exceeded"
        )

    def subline(self) -> str | None:
        """The overage (``0.39 USD over budget``) or what is left; else the threshold."""
        alert = self.alert
        when = _PERIOD_END.get(alert.period) if alert.period is not None else None
        when = when or "by the end of the period"
        if self.overage is not None:
            return (
                f"{self.overage} over budget {when}"
                if self.forecast
                else (f"{self.overage} over budget")
            )
        if self.remaining is not None and alert.budgeted_amount is not None:
            if self.forecast:
                return f"{self.remaining} under budget {when}"
            return f"{self.remaining} of {alert.budgeted_amount} left"
        if alert.threshold is not None:
            return f"Alert threshold: {alert.threshold}"
        return None

    def summary(self) -> str:
        sentence = _summary(self.alert)
        alert = self.alert
        if alert.amount is not None and alert.budgeted_amount is not None:
            what = "forecast for" if self.forecast else "spent in"
            period = (
                f"the {_PERIOD_WORDS[alert.period]} budget period"
                if alert.period is not None
                else "this budget period"
            )
            sentence += (
                f" {alert.amount} {what} {period}, against {alert.budgeted_amount} budgeted."
            )
        return sentence

    def bar(self) -> Bar | None:
        alert = self.alert
        amount, budgeted, threshold = alert.amount, alert.budgeted_amount, alert.threshold
        if self.used_percent is None or amount is None or budgeted is None:
            return None
        marker = marker_label = None
        if threshold is not None and threshold.currency == budgeted.currency:
            marker = threshold.amount
            share = (
                f" ({format_percent(alert.threshold_percent)})"
                if alert.threshold_percent is not None
                else ""
            )
            marker_label = f"Alert threshold {threshold}{share}"
        return Bar(
            value=amount.amount,
            scale=budgeted.amount,
            marker=marker,
            marker_label=marker_label,
            value_label=(
                f"{'Forecast' if self.forecast else 'Spent'} {amount} "
                f"({format_share(self.used_percent)})"
            ),
            scale_label=f"Budget {budgeted}",
            tone=self.tone,
        )

    def kicker(self) -> str:
        """``Actual cost · monthly budget``."""
        kinds = {AlertType.ACTUAL: "Actual cost", AlertType.FORECASTED: "Forecasted cost"}
        kind = kinds[self.alert.alert_type] if self.alert.alert_type is not None else "Alert"
        period = self.alert.period
        return f"{kind} · {_PERIOD_WORDS[period]} budget" if period is not None else kind

    def links(self) -> tuple[Link, ...]:
        """This budget's console page first; then the list of budgets (the message's own
        link when it had a genuine one, else the partition's)."""
        listing = self.alert.dashboard_url or budget_list_url(self.partition or "aws")
        listing = listing or self.alert.console_url
        if self.budget_url is None:
            return (Link("Open AWS Budgets in the console", listing),)
        return (
            Link("Open this budget in the AWS console", self.budget_url),
            Link("All budgets in the AWS console", listing),
        )

    def rows(self) -> list[tuple[str, str]]:
        rows = _rows(self.alert, self.signed_account)
        if self.used_percent is not None:
            used = f"{format_share(self.used_percent)} of the budgeted amount"
            rows.insert(7, ("Forecast vs budget" if self.forecast else "Budget used", used))
        if self.overage is not None:
            rows.insert(8, ("Over budget by", str(self.overage)))
        return rows


def routing_footer(
    routing: Sequence[RecipientMatch] | None,
    topic_arn: str | None,
    *,
    service: str = "AWS Budgets",
    when: str = "change the budget's alert thresholds in AWS Budgets",
) -> tuple[str, ...]:
    """The footer of every alert email: why each recipient got it (``routing``), how to
    change who gets such alerts and (``when``) when they are sent, and which verified
    ``service`` notification, from which topic, it was made from."""
    paragraphs = []
    if routing is not None and len(routing) == 1:
        paragraphs.append(f"Why you got this: {routing[0].reason}.")
    elif routing:
        groups: dict[str, list[str]] = {}
        for match in routing:
            groups.setdefault(match.reason, []).append(match.address.addr_spec)
        paragraphs.append(
            "Why you got this: "
            + "; ".join(f"{reason} ({', '.join(who)})" for reason, who in groups.items())
            + "."
        )
    source = f" on the topic {topic_arn}" if topic_arn is not None else ""
    paragraphs.append(
        "To change who gets these alerts, change the recipients setting of the alert server "
        "that sent this (BudgetApp recipients=, or SNSMIDDLEWARE_RECIPIENTS for snsmiddleware "
        f"serve); to change when they are sent, {when}."
    )
    paragraphs.append(
        f"Sent by snsmiddleware for a verified {service} notification{source}. "
        "Replies are not read."
    )
    return tuple(paragraphs)


def budget_alert_view(
    alert: BudgetAlert,
    *,
    topic_arn: str | None = None,
    recipients: Sequence[Address] = (),
    routing: Sequence[RecipientMatch] | None = None,
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
) -> EmailView:
    """The :class:`~snsmiddleware.email_view.EmailView` of a Budgets alert.

    :param topic_arn: the signed TopicArn: the Account row, the console's partition.
    :param recipients: who gets the email (greeted by display name) when ``routing`` is not
        given.
    :param routing: each recipient with the rules that chose it (greeting and footer).
    """
    facts = BudgetFacts.of(alert, topic_arn=topic_arn)
    addresses = [match.address for match in routing] if routing else list(recipients)
    note = _unparsed_note(alert)
    return EmailView(
        title=alert_subject(alert, single_line(subject_prefix)),
        heading=f"AWS Budgets alert: {_budget_label(alert)}",
        kicker=facts.kicker(),
        greeting=greeting(addresses),
        headline=facts.headline(),
        tone=facts.tone,
        subline=facts.subline(),
        summary=facts.summary(),
        bar=facts.bar(),
        rows=tuple(facts.rows()),
        actions=facts.links(),
        notes=(note,) if note else (),
        footer=routing_footer(routing, topic_arn),
        raw_heading="Original message from AWS Budgets",
        raw_text=alert.raw_text,
    )


def alert_text(
    alert: BudgetAlert,
    *,
    topic_arn: str | None = None,
    routing: Sequence[RecipientMatch] | None = None,
) -> str:
    """The plain-text part (``topic_arn``: the signed TopicArn, for the Account row and the
    console link; ``routing``: who gets it and why, for the greeting and footer)."""
    return render_text(budget_alert_view(alert, topic_arn=topic_arn, routing=routing))


def alert_html(
    alert: BudgetAlert,
    *,
    topic_arn: str | None = None,
    routing: Sequence[RecipientMatch] | None = None,
) -> str:
    """The HTML part: tables and inline styles only, every value escaped, links only to the
    AWS console."""
    return render_html(budget_alert_view(alert, topic_arn=topic_arn, routing=routing))


def build_alert_email(
    alert: BudgetAlert,
    notification: Notification,
    *,
    sender: Address,
    recipients: Sequence[Address],
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
    routing: Sequence[RecipientMatch] | None = None,
) -> EmailMessage:
    """The email for ``alert``: plain text and HTML alternatives, marked auto-generated.

    ``routing`` (each recipient and the rules that chose it) adds who and why to the
    greeting and footer; without it the greeting uses ``recipients``' display names.

    The Message-ID is derived from the SNS MessageId (a plain token, checked when the
    envelope was parsed), so a duplicate that slipped through anyway carries the same id and
    mail clients and people can recognise it.
    """
    view = budget_alert_view(
        alert,
        topic_arn=notification.topic_arn,
        recipients=recipients,
        routing=routing,
        subject_prefix=subject_prefix,
    )
    return compose_alert_email(
        notification,
        subject=alert_subject(alert, single_line(subject_prefix)),
        view=view,
        sender=sender,
        recipients=recipients,
    )


def compose_alert_email(
    notification: Notification,
    *,
    subject: str,
    view: EmailView,
    sender: Address,
    recipients: Sequence[Address],
    kind: str = "budget-alert",
) -> EmailMessage:
    """The email every kind of alert becomes: its own subject, and both parts rendered from
    its :class:`~snsmiddleware.email_view.EmailView` (text first, HTML the alternative).

    ``subject`` must already be one line (:func:`single_line`); it is written literally
    and, like every header made from message text, proven to read back as it was set.
    ``kind`` (a plain token) starts the Message-ID: ``<kind.MessageId@sender's domain>``.
    """
    message = EmailMessage()
    message["Subject"] = LiteralHeader("Subject", subject)
    message["From"] = sender
    if recipients:
        message["To"] = tuple(recipients)
    message["Date"] = format_datetime(notification.sent_at)
    domain = sender.domain if sender.domain.isascii() else "localhost"
    message["Message-ID"] = f"<{kind}.{notification.message_id}@{domain}>"
    # RFC 3834: automatic mail; out-of-office replies must not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message["X-SNS-Message-Id"] = LiteralHeader("X-SNS-Message-Id", notification.message_id)
    message["X-SNS-Topic-Arn"] = LiteralHeader(
        "X-SNS-Topic-Arn", single_line(notification.topic_arn, 256)
    )
    message.set_content(render_text(view))
    message.add_alternative(render_html(view), subtype="html")
    return _proven_single_line(message, ("Subject", "X-SNS-Message-Id", "X-SNS-Topic-Arn"))


#: What is left of untrusted header text if even the literal encoding did not read back.
_NOT_PLAIN: Final = re.compile(r"[^A-Za-z0-9 .,:;_()%+/@#&'-]+", re.ASCII)


def _proven_single_line(message: EmailMessage, untrusted: Sequence[str]) -> EmailMessage:
    """``message`` once :func:`verify_headers` has shown that each header reads back as the
    one line that was set. Should that ever fail (a bug here or in the stdlib), the headers
    made from untrusted text are cut down to plain ASCII words and checked again: an alert
    with a plainer Subject is better than no alert. If even that fails, raise."""
    try:
        verify_headers(message)
    except UnsafeHeaderError as exc:
        log.error("email headers did not read back safely (%s); using plain ASCII instead", exc)
        for name in untrusted:
            if name in message:
                plain = " ".join(_NOT_PLAIN.sub(" ", str(message[name])).split())
                message.replace_header(name, plain)
        verify_headers(message)
    return message


def build_dead_letter(
    email: EmailMessage,
    notification: SnsMessage,
    *,
    reason: str,
    detail: str,
    recipients: Sequence[Address] = (),
    error_code: str | None = None,
) -> EmailMessage:
    """A copy of ``email`` for the dead-letter outbox, with what went wrong and everything
    needed to resend it: the reason in headers, and the notification as a JSON attachment
    (``snsmiddleware replay`` reads it back; ``notification`` may be another verified
    message, such as the UnsubscribeConfirmation of an admin notice)."""
    letter = copy.deepcopy(email)
    letter["X-Dead-Letter-Reason"] = LiteralHeader("X-Dead-Letter-Reason", single_line(reason, 100))
    letter["X-Dead-Letter-Detail"] = LiteralHeader("X-Dead-Letter-Detail", single_line(detail, 500))
    context = {
        "reason": reason,
        "detail": detail,
        "error_code": error_code,
        "recipients": [str(address) for address in recipients],
        "notification": {
            "Type": notification.type,
            "MessageId": notification.message_id,
            "TopicArn": notification.topic_arn,
            "Timestamp": notification.timestamp,
            "Subject": getattr(notification, "subject", None),
            "Message": notification.message,
        },
    }
    letter.add_attachment(
        json.dumps(context, indent=2, ensure_ascii=False).encode("utf-8"),
        maintype="application",
        subtype="json",
        filename="dead-letter.json",
    )
    return _proven_single_line(
        letter,
        (
            "Subject",
            "X-SNS-Message-Id",
            "X-SNS-Topic-Arn",
            "X-Dead-Letter-Reason",
            "X-Dead-Letter-Detail",
        ),
    )
