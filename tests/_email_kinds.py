"""Every kind of alert email (Budgets: ACTUAL and FORECASTED, each period, within and over
budget; a Cost Anomaly Detection alert) as the app builds it, with what its bar must show:
shared by the browser tests and ``scripts/email-screenshots``."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from decimal import Decimal
from email.message import EmailMessage

from snsmiddleware.anomaly import parse_cost_alert
from snsmiddleware.anomaly_email import build_cost_alert_email
from snsmiddleware.budget_app import BudgetApp
from snsmiddleware.mail import FileOutbox
from snsmiddleware.message import Notification, parse_message
from snsmiddleware.testing import MessageSigner

from ._anomaly_helpers import anomaly_text
from ._budget_helpers import REAL_ALERTS

RECIPIENTS = {
    "Test Budget": ["Ana Lima <ana@example.com>"],
    "killswitch": ["Bruno Costa <bruno@example.com>"],
    "service-catalog_*": ["Research IT <research-it@example.com>"],
    "AwsCostNotificationStack-*": ["Kenji Sato <kenji@example.com>"],
    "prod-*": ["Platform team <platform@example.com>", "cto@example.com"],
    # an anomaly monitor's name
    "Services": ["Priya Shah <priya@example.com>"],
}
DEFAULTS = ["FinOps <finops@example.com>"]
TOPIC = "arn:aws:sns:us-east-1:123456789012:budget-alerts"


def synthetic_alert(
    *,
    name: str,
    kind: str,
    budgeted: str,
    threshold: str,
    amount: str,
    period: str = "for the current month",
    account: str = "123456789012",
) -> str:
    """A Budgets alert in the template every real one follows (BUDGETS.md)."""
    the = "Yesterday, the" if period == "per day" else "The"
    return (
        "AWS Budget Notification November 30, 2026\n"
        f"AWS Account {account}\n\n"
        "Dear AWS Customer,\n\n"
        f"You requested that we alert you when the {kind} Cost associated with your {name} "
        f"budget is greater than ${threshold} {period}. {the} {kind} Cost associated with "
        f"this budget is ${amount}. You can find additional details below and by accessing "
        "the AWS Budgets dashboard [1].\n\n"
        f"Budget Name: {name}\nBudget Type: Cost\nBudgeted Amount: ${budgeted}\n"
        f"Alert Type: {kind}\nAlert Threshold: > ${threshold}\n{kind} Amount: ${amount}\n\n"
        "[1] https://console.aws.amazon.com/costmanagement/home#/budgets\n"
    )


@dataclass(frozen=True)
class EmailKind:
    """One kind of email: the alert, and what the rendered email must show."""

    id: str
    message: str
    #: the SNS Subject (``None``: none, as for Cost Anomaly Detection).
    subject: str | None
    topic_arn: str
    #: spent (or forecast) / budgeted, capped at 1: the bar's filled share (an anomaly:
    #: actual spend / the larger of actual and expected).
    filled: Decimal
    #: threshold / budgeted, capped at 1: where the mark sits (an anomaly: expected spend).
    marked: Decimal
    #: texts a reader must see (the lead number, the overage, the greeting).
    figures: tuple[str, ...]


def _real(index: int, kind_id: str, figures: tuple[str, ...]) -> EmailKind:
    real = REAL_ALERTS[index]
    return EmailKind(
        id=kind_id,
        message=real.message,
        subject=real.subject,
        topic_arn=real.topic_arn,
        filled=min(real.amount / real.budgeted, Decimal(1)),
        marked=min(real.threshold / real.budgeted, Decimal(1)),
        figures=figures,
    )


def _synthetic(kind_id: str, figures: tuple[str, ...], **fields: str) -> EmailKind:
    budgeted, threshold, amount = (Decimal(fields[k]) for k in ("budgeted", "threshold", "amount"))
    return EmailKind(
        id=kind_id,
        message=synthetic_alert(**fields),
        subject=f"AWS Budgets: {fields['name']} has exceeded your alert threshold",
        topic_arn=TOPIC,
        filled=min(amount / budgeted, Decimal(1)),
        marked=min(threshold / budgeted, Decimal(1)),
        figures=figures,
    )


EMAIL_KINDS: tuple[EmailKind, ...] = (
    _real(0, "actual-monthly", ("295% of budget used", "0.39 USD over budget", "Hi Ana Lima,")),
    _real(
        1, "actual-daily", ("34% of budget used", "3.30 USD of 5.00 USD left", "Hi Bruno Costa,")
    ),
    _real(2, "actual-annual", ("121% of budget used", "0.31 USD over budget", "Hi Research IT,")),
    _synthetic(
        "actual-quarterly",
        ("92% of budget used", "Hello everyone,", "959.75 USD of 12,000.00 USD left"),
        name="prod-data-platform",
        kind="ACTUAL",
        budgeted="12000.00",
        threshold="10800.00",
        amount="11040.25",
        period="for the current quarter",
    ),
    _synthetic(
        "forecasted-monthly",
        (
            "Forecast to reach 86% of budget",
            "68.20 USD under budget by the end of the month",
            "Hi FinOps,",
        ),
        name="team-analytics",
        kind="FORECASTED",
        budgeted="500.00",
        threshold="400.00",
        amount="431.80",
    ),
    _real(
        3,
        "forecasted-monthly-over",
        (
            "Forecast to reach 5,000% of budget",
            "0.49 USD over budget by the end of the month",
            "Hi Kenji Sato,",
        ),
    ),
    EmailKind(
        id="anomaly",
        message=anomaly_text(),
        subject=None,
        topic_arn="arn:aws:sns:us-east-1:123456789012:cost-anomalies",
        filled=Decimal(1),
        marked=Decimal("96.00") / Decimal("988.20"),
        figures=(
            "892.20 USD above expected",
            "+929% over the expected 96.00 USD",
            "Hi Priya Shah,",
        ),
    ),
)
EMAIL_KINDS_BY_ID = {kind.id: kind for kind in EMAIL_KINDS}


def signed_notification(kind: EmailKind, signer: MessageSigner | None = None) -> Notification:
    subject = {} if kind.subject is None else {"Subject": kind.subject}
    signed = (signer or MessageSigner()).notification(
        kind.message, TopicArn=kind.topic_arn, **subject
    )
    parsed = parse_message(signed.body)
    assert isinstance(parsed, Notification)
    return parsed


def build_email(kind: EmailKind, signer: MessageSigner | None = None) -> EmailMessage:
    """The email the app sends for ``kind``, routed as :data:`RECIPIENTS` says."""
    with tempfile.TemporaryDirectory() as directory:  # the app's outbox, never written
        app = BudgetApp(
            recipients=RECIPIENTS, default_recipients=DEFAULTS, mailer=FileOutbox(directory)
        )
    notification = signed_notification(kind, signer)
    alert = parse_cost_alert(notification)
    routing = app.route(alert, topic_arn=notification.topic_arn)
    return build_cost_alert_email(
        alert,
        notification,
        sender=app.sender,
        recipients=[match.address for match in routing],
        routing=routing,
    )


def html_part(email: EmailMessage) -> str:
    part = email.get_body(("html",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def text_part(email: EmailMessage) -> str:
    part = email.get_body(("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")
