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
* every value in the HTML part goes through :func:`html.escape`, attributes included, and
  the only link is the AWS console (the message's own link is used only when
  :mod:`snsmiddleware.budgets` recognised it as a console URL);
* the raw message text is always included (as text, escaped in HTML), so a reader can check
  the parsed figures and nothing is lost when the template drifts.
"""

from __future__ import annotations

import copy
import html
import json
import logging
import re
import unicodedata
from collections.abc import Sequence
from decimal import Decimal
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Final

from .budgets import AlertType, BudgetAlert, BudgetPeriod
from .email_headers import LiteralHeader, UnsafeHeaderError, verify_headers
from .errors import PolicyError
from .message import Notification
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


def _raw_lines(alert: BudgetAlert) -> str:
    # Normalised line ends only: a lone CR must not reach the SMTP body.
    return "\n".join(alert.raw_text.splitlines())


def alert_text(alert: BudgetAlert, *, topic_arn: str | None = None) -> str:
    """The plain-text part (``topic_arn``: the signed TopicArn, for the Account row)."""
    lines = [f"AWS Budgets alert: {_budget_label(alert)}", "", _summary(alert), ""]
    rows = _rows(alert, topic_account(topic_arn) if topic_arn is not None else None)
    width = max(len(label) for label, _ in rows) + 2
    lines += [f"{label + ':':<{width}}{value}" for label, value in rows]
    lines += ["", f"AWS Budgets console: {alert.console_url}"]
    note = _unparsed_note(alert)
    if note is not None:
        lines += ["", note]
    lines += ["", "--- Original message from AWS Budgets ---", _raw_lines(alert), ""]
    return "\n".join(lines)


def alert_html(alert: BudgetAlert, *, topic_arn: str | None = None) -> str:
    """The HTML part: every value escaped, one link (the AWS console)."""
    e = html.escape
    signed_account = topic_account(topic_arn) if topic_arn is not None else None
    rows = "\n".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0">{e(label)}</th>'
        f"<td>{e(value)}</td></tr>"
        for label, value in _rows(alert, signed_account)
    )
    note = _unparsed_note(alert)
    note_html = f"<p><strong>{e(note)}</strong></p>\n" if note else ""
    return (
        "<!DOCTYPE html>\n"
        '<html><head><meta charset="utf-8">'
        f"<title>{e(alert_subject(alert))}</title></head>\n"
        '<body style="font-family:sans-serif">\n'
        f"<h2>AWS Budgets alert: {e(_budget_label(alert))}</h2>\n"
        f"<p>{e(_summary(alert))}</p>\n"
        f"<table>\n{rows}\n</table>\n"
        f'<p><a href="{e(alert.console_url, quote=True)}">Open the AWS Budgets console</a></p>\n'
        f"{note_html}"
        "<h3>Original message from AWS Budgets</h3>\n"
        f'<pre style="white-space:pre-wrap">{e(_raw_lines(alert))}</pre>\n'
        "</body></html>\n"
    )


def build_alert_email(
    alert: BudgetAlert,
    notification: Notification,
    *,
    sender: Address,
    recipients: Sequence[Address],
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
) -> EmailMessage:
    """The email for ``alert``: plain text and HTML alternatives, marked auto-generated.

    The Message-ID is derived from the SNS MessageId (a plain token, checked when the
    envelope was parsed), so a duplicate that slipped through anyway carries the same id and
    mail clients and people can recognise it.
    """
    return compose_alert_email(
        notification,
        subject=alert_subject(alert, single_line(subject_prefix)),
        text=alert_text(alert, topic_arn=notification.topic_arn),
        html=alert_html(alert, topic_arn=notification.topic_arn),
        sender=sender,
        recipients=recipients,
    )


def compose_alert_email(
    notification: Notification,
    *,
    subject: str,
    text: str,
    html: str,
    sender: Address,
    recipients: Sequence[Address],
    kind: str = "budget-alert",
) -> EmailMessage:
    """The email every kind of alert becomes, around its own subject, text and HTML.

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
    message.set_content(text)
    message.add_alternative(html, subtype="html")
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
    notification: Notification,
    *,
    reason: str,
    detail: str,
    recipients: Sequence[Address] = (),
    error_code: str | None = None,
) -> EmailMessage:
    """A copy of ``email`` for the dead-letter outbox, with what went wrong and everything
    needed to resend it: the reason in headers, and the notification as a JSON attachment."""
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
            "Subject": notification.subject,
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
