"""Compose the email for a Cost Anomaly Detection alert (pure: no I/O).

The same rules as :mod:`snsmiddleware.alert_email`, whose helpers this module uses (one
subject sanitiser, one envelope, one read-back check for every alert email):

* every value comes from the message and is untrusted, names included: in the plain-text
  part each one is made a single line (:func:`~snsmiddleware.alert_email.single_line`), so a
  monitor name cannot add a line that looks like a link or a figure of ours, and in the HTML
  part each one is also escaped (:func:`html.escape`, attributes included);
* the subject is one sanitised line, written literally;
* the only links are the anomaly's own console link, and only when
  :func:`~snsmiddleware.anomaly.genuine_console_url` accepted it (the email says when it
  was left out), and the Cost Anomaly Detection page of the topic's own partition;
* the raw message is always included, so nothing is lost when the format drifts.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from decimal import Decimal
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Final

from .alert_email import (
    DEFAULT_SUBJECT_PREFIX,
    UNKNOWN,
    compose_alert_email,
    format_percent,
    single_line,
    topic_account,
)
from .anomaly import AnomalyAlert, RootCause
from .errors import PolicyError
from .message import Notification
from .policy import parse_topic_arn

#: The Cost Anomaly Detection page of each partition's console (ours, not the message's).
ANOMALY_CONSOLE_URLS: Final = {
    "aws": "https://console.aws.amazon.com/cost-management/home#/anomaly-detection/overview",
    "aws-cn": "https://console.amazonaws.cn/cost-management/home#/anomaly-detection/overview",
    "aws-us-gov": (
        "https://console.amazonaws-us-gov.com/cost-management/home#/anomaly-detection/overview"
    ),
}
#: A table cell holds at most this much of a value (names may be 1,024 characters long).
MAX_CELL_CHARS: Final = 120
LINK_OMITTED: Final = (
    "The message's link to this anomaly was left out: it is not a genuine AWS console URL."
)

_FIELD_LABELS: Final = {
    "anomaly_id": "anomaly id",
    "account_id": "account",
    "account_name": "account name",
    "monitor_arn": "monitor ARN",
    "monitor_name": "monitor name",
    "monitor_type": "monitor type",
    "dimension_value": "dimension",
    "subscription_id": "subscription id",
    "subscription_name": "subscription name",
    "start_date": "start date",
    "end_date": "end date",
    "max_score": "maximum score",
    "current_score": "current score",
    "max_impact": "maximum impact",
    "total_impact": "total impact",
    "total_actual_spend": "actual spend",
    "total_expected_spend": "expected spend",
    "total_impact_percentage": "impact percentage",
    "root_causes": "root causes",
    "details_url": "console link",
}
_CAUSE_COLUMNS: Final = ("Service", "Region", "Account", "Usage type")


def _cell(value: str | None, limit: int = MAX_CELL_CHARS) -> str:
    """One untrusted value as one line of bounded length (``UNKNOWN`` when missing)."""
    return UNKNOWN if value is None else single_line(value, limit)


def _monitor_label(alert: AnomalyAlert) -> str:
    return "unknown monitor" if alert.monitor_name is None else alert.monitor_name


def _score(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _impact_words(alert: AnomalyAlert) -> str | None:
    """``892.20 USD (929.38% above expected)``, as far as the figures are known."""
    if alert.total_impact is None:
        return None
    if alert.total_impact_percentage is None:
        return str(alert.total_impact)
    return f"{alert.total_impact} ({format_percent(alert.total_impact_percentage)} above expected)"


def _dates(alert: AnomalyAlert) -> str | None:
    start, end = alert.start_date, alert.end_date
    if start is not None and end is not None:
        return start.isoformat() if start == end else f"{start.isoformat()} to {end.isoformat()}"
    if start is not None:
        return f"from {start.isoformat()}"
    if end is not None:
        return f"until {end.isoformat()}"
    return None


def anomaly_subject(alert: AnomalyAlert, prefix: str = DEFAULT_SUBJECT_PREFIX) -> str:
    """``Cost control alert - cost anomaly of 892.20 USD (+929.38%) - <service> - <monitor>``."""
    if alert.total_impact is None:
        what = "cost anomaly detected"
    elif alert.total_impact_percentage is None:
        what = f"cost anomaly of {alert.total_impact}"
    else:
        what = (
            f"cost anomaly of {alert.total_impact} "
            f"(+{format_percent(alert.total_impact_percentage)})"
        )
    parts = [prefix, what, alert.dimension_value or "", _monitor_label(alert)]
    return single_line(" - ".join(part for part in parts if part))


def _summary(alert: AnomalyAlert) -> str:
    """``... found unusual spend on <service> between <start> and <end>: <actual> spent where
    <expected> was expected, <impact> (+<percent>) more.``"""
    sentence = "AWS Cost Anomaly Detection found unusual spend"
    if alert.dimension_value is not None:
        sentence += f" on {single_line(alert.dimension_value, MAX_CELL_CHARS)}"
    start, end = alert.start_date, alert.end_date
    if start is not None and end is not None and start != end:
        sentence += f" between {start.isoformat()} and {end.isoformat()}"
    elif start is not None or end is not None:
        day = start or end
        assert day is not None
        sentence += f" {'on' if start == end else 'from' if start else 'until'} {day.isoformat()}"
    figures = []
    if alert.total_actual_spend is not None and alert.total_expected_spend is not None:
        figures.append(
            f"{alert.total_actual_spend} spent where {alert.total_expected_spend} was expected"
        )
    if alert.total_impact is not None:
        percent = alert.total_impact_percentage
        impact = f"{alert.total_impact}" + (
            f" (+{format_percent(percent)})" if percent is not None else ""
        )
        figures.append(f"{impact} more" if figures else f"an impact of {impact}")
    if figures:
        sentence += ": " + ", ".join(figures)
    return sentence + "."


def _account(alert: AnomalyAlert, signed_account: str | None) -> str:
    """The Account row: the signed account, and what the text says when it disagrees."""
    stated = alert.account_id
    name = f" ({_cell(alert.account_name)})" if alert.account_name is not None else ""
    if signed_account is None or stated == signed_account:
        return UNKNOWN if stated is None else f"{stated}{name}"
    if stated is None:
        return f"{signed_account} (the topic's account)"
    return f"{signed_account} (the topic's account; the message says {stated}{name})"


def _rows(alert: AnomalyAlert, signed_account: str | None) -> list[tuple[str, str]]:
    def shown(value: object) -> str:
        return UNKNOWN if value is None else str(value)

    monitor = _cell(alert.monitor_name)
    if alert.monitor_type is not None:
        monitor += f" ({_cell(alert.monitor_type)})"
    if alert.current_score is not None and alert.max_score is not None:
        score = f"{_score(alert.current_score)} now, {_score(alert.max_score)} at most"
    elif alert.current_score is not None or alert.max_score is not None:
        known = alert.current_score if alert.current_score is not None else alert.max_score
        assert known is not None
        score = f"{_score(known)} ({'now' if alert.current_score is not None else 'at most'})"
    else:
        score = UNKNOWN
    rows = [
        ("Monitor", monitor),
        ("Account", _account(alert, signed_account)),
        ("Actual spend", shown(alert.total_actual_spend)),
        ("Expected spend", shown(alert.total_expected_spend)),
        ("Total impact", shown(_impact_words(alert))),
        ("Maximum impact", shown(alert.max_impact)),
        ("Anomaly score", score),
        ("Dates", shown(_dates(alert))),
    ]
    if alert.dimension_value is not None:
        rows.insert(1, ("Dimension", _cell(alert.dimension_value)))
    if alert.subscription_name is not None:
        rows.append(("Alert subscription", _cell(alert.subscription_name)))
    rows.append(("Anomaly ID", _cell(alert.anomaly_id)))
    return rows


def _cause_cells(cause: RootCause) -> tuple[str, str, str, str]:
    account = cause.linked_account
    if cause.linked_account_name is not None:
        account = f"{account or UNKNOWN} ({cause.linked_account_name})"
    return (
        _cell(cause.service),
        _cell(cause.region),
        _cell(account),
        _cell(cause.usage_type),
    )


def default_console_url(topic_arn: str | None) -> str | None:
    """Our own link to Cost Anomaly Detection in the console of the topic's partition
    (``None`` for partitions without a public console)."""
    if topic_arn is None:
        return ANOMALY_CONSOLE_URLS["aws"]
    try:
        partition = parse_topic_arn(topic_arn).partition
    except PolicyError:
        return None
    return ANOMALY_CONSOLE_URLS.get(partition)


def _link_lines(alert: AnomalyAlert, topic_arn: str | None) -> list[tuple[str, str | None]]:
    """(sentence, URL) pairs: the anomaly's own link, or why it is missing and ours."""
    if alert.details_url is not None:
        return [("Open this anomaly in the AWS console", alert.details_url)]
    lines: list[tuple[str, str | None]] = []
    if alert.details_url_omitted:
        lines.append((LINK_OMITTED, None))
    fallback = default_console_url(topic_arn)
    if fallback is not None:
        lines.append(("Open Cost Anomaly Detection in the AWS console", fallback))
    return lines


def _unparsed_note(alert: AnomalyAlert) -> str | None:
    if alert.unreadable is not None:
        return (
            f"This message could not be read as JSON ({alert.unreadable}), so none of its "
            "details are shown. The original message is below."
        )
    # A refused link is explained where the link would be.
    unread = [name for name in alert.unparsed if name != "details_url"]
    if not unread:
        return None
    fields = ", ".join(_FIELD_LABELS.get(name, name) for name in unread)
    return (
        f"Some details could not be read from the message ({fields}). "
        "The original message is below."
    )


def _raw_lines(alert: AnomalyAlert) -> str:
    # Normalised line ends only: a lone CR must not reach the SMTP body.
    return "\n".join(alert.raw_text.splitlines())


def anomaly_text(alert: AnomalyAlert, *, topic_arn: str | None = None) -> str:
    """The plain-text part (``topic_arn``: the signed TopicArn, for the Account row and the
    console of its partition)."""
    title = single_line(_monitor_label(alert), MAX_CELL_CHARS)
    lines = [f"AWS Cost Anomaly Detection alert: {title}", "", _summary(alert), ""]
    rows = _rows(alert, topic_account(topic_arn) if topic_arn is not None else None)
    width = max(len(label) for label, _ in rows) + 2
    lines += [f"{label + ':':<{width}}{value}" for label, value in rows]
    lines += ["", "Root causes:"]
    if alert.root_causes:
        table = [_CAUSE_COLUMNS, *(_cause_cells(cause) for cause in alert.root_causes)]
        widths = [max(len(row[column]) for row in table) for column in range(4)]
        lines += [
            "  " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in table
        ]
    else:
        lines.append("  none listed in the message")
    lines.append("")
    lines += [
        sentence if url is None else f"{sentence}: {url}"
        for sentence, url in _link_lines(alert, topic_arn)
    ]
    note = _unparsed_note(alert)
    if note is not None:
        lines += ["", note]
    lines += ["", "--- Original message from AWS Cost Anomaly Detection ---", _raw_lines(alert), ""]
    return "\n".join(lines)


def anomaly_html(alert: AnomalyAlert, *, topic_arn: str | None = None) -> str:
    """The HTML part: every value escaped; links only to the AWS console."""
    e = html.escape
    signed_account = topic_account(topic_arn) if topic_arn is not None else None
    rows = "\n".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0">{e(label)}</th>'
        f"<td>{e(value)}</td></tr>"
        for label, value in _rows(alert, signed_account)
    )
    if alert.root_causes:
        head = "".join(
            f'<th align="left" style="padding:2px 12px 2px 0">{e(c)}</th>' for c in _CAUSE_COLUMNS
        )
        body = "\n".join(
            "<tr>"
            + "".join(
                f'<td style="padding:2px 12px 2px 0">{e(cell)}</td>' for cell in _cause_cells(cause)
            )
            + "</tr>"
            for cause in alert.root_causes
        )
        causes = f"<table>\n<tr>{head}</tr>\n{body}\n</table>\n"
    else:
        causes = "<p>None listed in the message.</p>\n"
    links = "".join(
        f"<p>{e(sentence)}</p>\n"
        if url is None
        else f'<p><a href="{e(url, quote=True)}">{e(sentence)}</a></p>\n'
        for sentence, url in _link_lines(alert, topic_arn)
    )
    note = _unparsed_note(alert)
    note_html = f"<p><strong>{e(note)}</strong></p>\n" if note else ""
    title = single_line(_monitor_label(alert), MAX_CELL_CHARS)
    return (
        "<!DOCTYPE html>\n"
        '<html><head><meta charset="utf-8">'
        f"<title>{e(anomaly_subject(alert))}</title></head>\n"
        '<body style="font-family:sans-serif">\n'
        f"<h2>AWS Cost Anomaly Detection alert: {e(title)}</h2>\n"
        f"<p>{e(_summary(alert))}</p>\n"
        f"<table>\n{rows}\n</table>\n"
        "<h3>Root causes</h3>\n"
        f"{causes}"
        f"{links}"
        f"{note_html}"
        "<h3>Original message from AWS Cost Anomaly Detection</h3>\n"
        f'<pre style="white-space:pre-wrap;overflow-wrap:anywhere">{e(_raw_lines(alert))}</pre>\n'
        "</body></html>\n"
    )


def build_anomaly_email(
    alert: AnomalyAlert,
    notification: Notification,
    *,
    sender: Address,
    recipients: Sequence[Address],
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
) -> EmailMessage:
    """The email for ``alert``: plain text and HTML alternatives, marked auto-generated,
    Message-ID ``<cost-anomaly.MessageId@sender's domain>`` (see
    :func:`~snsmiddleware.alert_email.compose_alert_email`)."""
    return compose_alert_email(
        notification,
        subject=anomaly_subject(alert, single_line(subject_prefix)),
        text=anomaly_text(alert, topic_arn=notification.topic_arn),
        html=anomaly_html(alert, topic_arn=notification.topic_arn),
        sender=sender,
        recipients=recipients,
        kind="cost-anomaly",
    )
