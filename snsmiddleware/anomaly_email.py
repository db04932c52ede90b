"""Compose the email for a Cost Anomaly Detection alert (pure: no I/O).

The alert becomes an :class:`~snsmiddleware.email_view.EmailView`
(:func:`anomaly_alert_view`), rendered by :mod:`snsmiddleware.email_view` exactly like a
Budgets alert's: the greeting and the "why you got this" footer from
:meth:`snsmiddleware.budget_app.BudgetApp.route`, the total impact and its percentage over
the expected spend first, a bar of actual against expected spend, the root causes as a
table, the raw message collapsed. The same rules as :mod:`snsmiddleware.alert_email`, whose
envelope and helpers this module uses:

* every value comes from the message and is untrusted, names included: each one is made a
  single line (:func:`~snsmiddleware.alert_email.single_line`) of bounded length, so a
  monitor name cannot add a line that looks like a link or a figure of ours to the text
  part, and the renderer escapes every value of the HTML part (attributes included);
* the subject is one sanitised line, written literally;
* the only links are the anomaly's own console link, and only when
  :func:`~snsmiddleware.anomaly.genuine_console_url` accepted it (the email says when it
  was left out), else the Cost Anomaly Detection page of the topic's own partition;
* the raw message is always included, so nothing is lost when the format drifts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any, Final

from .alert_email import (
    DEFAULT_SUBJECT_PREFIX,
    UNKNOWN,
    RecipientMatch,
    build_alert_email,
    compose_alert_email,
    format_percent,
    format_share,
    greeting,
    routing_footer,
    single_line,
    topic_account,
)
from .anomaly import AnomalyAlert, RootCause
from .budgets import BudgetAlert
from .email_view import Bar, EmailView, Link, Table, Tone, render_html, render_text
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


def _headline(alert: AnomalyAlert) -> tuple[str, str | None]:
    """The lead figure (the total impact) and what it means against the expected spend."""
    impact, percent = alert.total_impact, alert.total_impact_percentage
    expected = alert.total_expected_spend
    if impact is None:
        if alert.total_actual_spend is not None:
            return f"{alert.total_actual_spend} spent", None
        return "Cost anomaly detected", None
    if percent is None:
        return f"{impact} above expected", None if expected is None else f"{expected} expected"
    share = f"+{format_share(percent)}"
    return (
        f"{impact} above expected",
        f"{share} over expected spend"
        if expected is None
        else f"{share} over the expected {expected}",
    )


def _bar(alert: AnomalyAlert) -> Bar | None:
    """Actual spend (the filled bar) with the expected spend marked, when both are known in
    one currency; the whole bar is the larger of the two."""
    actual, expected = alert.total_actual_spend, alert.total_expected_spend
    if actual is None or expected is None or actual.currency != expected.currency:
        return None
    scale = max(actual.amount, expected.amount)
    if scale <= 0:
        return None
    return Bar(
        value=actual.amount,
        scale=scale,
        marker=expected.amount,
        marker_label=f"Expected spend {expected}",
        value_label=f"Actual spend {actual}",
        scale_label=f"0 to {actual if scale == actual.amount else expected}",
        tone=Tone.ALERT,
    )


def _kicker(alert: AnomalyAlert) -> str:
    """``Cost anomaly · 2026-11-28 to 2026-11-30``."""
    dates = _dates(alert)
    return "Cost anomaly" if dates is None else f"Cost anomaly · {dates}"


def _causes(alert: AnomalyAlert) -> Table:
    return Table(
        title="Root causes",
        columns=_CAUSE_COLUMNS,
        rows=tuple(_cause_cells(cause) for cause in alert.root_causes),
    )


def _actions(alert: AnomalyAlert, topic_arn: str | None) -> tuple[Link, ...]:
    """The anomaly's own console page (genuine: :func:`genuine_console_url`'s characters are
    a subset of what :class:`~snsmiddleware.email_view.Link` accepts), else ours."""
    if alert.details_url is not None:
        return (Link("Open this anomaly in the AWS console", alert.details_url),)
    fallback = default_console_url(topic_arn)
    if fallback is None:
        return ()
    return (Link("Open Cost Anomaly Detection in the AWS console", fallback),)


def anomaly_alert_view(
    alert: AnomalyAlert,
    *,
    topic_arn: str | None = None,
    recipients: Sequence[Address] = (),
    routing: Sequence[RecipientMatch] | None = None,
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
) -> EmailView:
    """The :class:`~snsmiddleware.email_view.EmailView` of a Cost Anomaly Detection alert
    (the options as for :func:`~snsmiddleware.alert_email.budget_alert_view`)."""
    addresses = [match.address for match in routing] if routing else list(recipients)
    notes = []
    if alert.details_url_omitted:
        notes.append(LINK_OMITTED)
    note = _unparsed_note(alert)
    if note is not None:
        notes.append(note)
    readable = alert.unreadable is None
    headline, subline = _headline(alert)
    rows = _rows(alert, topic_account(topic_arn) if topic_arn is not None else None)
    if readable and not alert.root_causes:
        rows.append(("Root causes", "none listed in the message"))
    return EmailView(
        title=anomaly_subject(alert, single_line(subject_prefix)),
        heading=(
            "AWS Cost Anomaly Detection alert: "
            + single_line(_monitor_label(alert), MAX_CELL_CHARS)
        ),
        kicker=_kicker(alert),
        greeting=greeting(addresses),
        headline=headline,
        tone=Tone.ALERT if alert.total_impact is not None else Tone.WARNING,
        subline=subline,
        summary=_summary(alert),
        bar=_bar(alert),
        rows=tuple(rows) if readable else (),
        tables=(_causes(alert),) if readable and alert.root_causes else (),
        actions=_actions(alert, topic_arn),
        notes=tuple(notes),
        footer=routing_footer(
            routing,
            topic_arn,
            service="AWS Cost Anomaly Detection",
            when="change the alert subscription's threshold in AWS Cost Anomaly Detection",
        ),
        raw_heading="Original message from AWS Cost Anomaly Detection",
        raw_text=alert.raw_text,
    )


def anomaly_text(
    alert: AnomalyAlert,
    *,
    topic_arn: str | None = None,
    routing: Sequence[RecipientMatch] | None = None,
) -> str:
    """The plain-text part (``topic_arn``: the signed TopicArn, for the Account row and the
    console of its partition; ``routing``: who gets it and why)."""
    return render_text(anomaly_alert_view(alert, topic_arn=topic_arn, routing=routing))


def anomaly_html(
    alert: AnomalyAlert,
    *,
    topic_arn: str | None = None,
    routing: Sequence[RecipientMatch] | None = None,
) -> str:
    """The HTML part: every value escaped by the renderer; links only to the AWS console."""
    return render_html(anomaly_alert_view(alert, topic_arn=topic_arn, routing=routing))


def build_anomaly_email(
    alert: AnomalyAlert,
    notification: Notification,
    *,
    sender: Address,
    recipients: Sequence[Address],
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
    routing: Sequence[RecipientMatch] | None = None,
) -> EmailMessage:
    """The email for ``alert`` (as :func:`~snsmiddleware.alert_email.build_alert_email` for a
    Budgets alert), Message-ID ``<cost-anomaly.MessageId@sender's domain>``."""
    view = anomaly_alert_view(
        alert,
        topic_arn=notification.topic_arn,
        recipients=recipients,
        routing=routing,
        subject_prefix=subject_prefix,
    )
    return compose_alert_email(
        notification,
        subject=view.title,
        view=view,
        sender=sender,
        recipients=recipients,
        kind="cost-anomaly",
    )


def build_cost_alert_email(
    alert: BudgetAlert | AnomalyAlert,
    notification: Notification,
    **options: Any,
) -> EmailMessage:
    """The email for either kind of alert: :func:`build_anomaly_email` or
    :func:`~snsmiddleware.alert_email.build_alert_email`, with the same keyword options."""
    build: Callable[..., EmailMessage] = (
        build_anomaly_email if isinstance(alert, AnomalyAlert) else build_alert_email
    )
    return build(alert, notification, **options)
