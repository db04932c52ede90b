"""The real AWS Budgets alert variants seen in the wild as test fixtures, with what
each must parse to. The Message strings are copied exactly as published (public repositories'
fixtures and logs; see ``source``); none carries a verifiable signature, so tests re-sign them
with :class:`snsmiddleware.testing.MessageSigner`."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from snsmiddleware.budgets import AlertType, BudgetPeriod
from snsmiddleware.message import Notification, parse_message
from snsmiddleware.testing import MessageSigner, SignedMessage


@dataclass(frozen=True)
class RealAlert:
    """One published Budgets alert and the values the parser must read from it."""

    id: str
    source: str
    subject: str
    topic_arn: str
    message: str
    date: datetime.date
    account_id: str
    budget_name: str
    budgeted: Decimal
    alert_type: AlertType
    threshold: Decimal
    threshold_percent: Decimal
    amount: Decimal
    period: BudgetPeriod
    dashboard_url: str
    subject_percent: str

    def signed(self, signer: MessageSigner, **overrides: Any) -> SignedMessage:
        """This alert as SNS delivers it, from its own topic, signed by the test CA."""
        fields: dict[str, Any] = {"Subject": self.subject, "TopicArn": self.topic_arn}
        fields.update(overrides)
        return signer.notification(self.message, **fields)


REAL_ALERTS: tuple[RealAlert, ...] = (
    RealAlert(
        id="actual-monthly-2022",
        source=(
            "cds-snc/sre-bot - app/tests/server/event_handlers/test_aws_handler.py, function "
            "`mock_budget_alert()`"
        ),
        subject="AWS Budgets: Test Budget has exceeded your alert threshold",
        topic_arn="arn:aws:sns:ca-central-1:017790921725:test-sre-bot",
        message=(
            "AWS Budget Notification September 26, 2022\n"
            "AWS Account 017790921725\n"
            "\n"
            "Dear AWS Customer,\n"
            "\n"
            "You requested that we alert you when the ACTUAL Cost associated with your "
            "Test Budget budget is greater than $0.16 for the current month. The ACTUAL "
            "Cost associated with this budget is $0.59. You can find additional details "
            "below and by accessing the AWS Budgets dashboard [1].\n"
            "\n"
            "Budget Name: Test Budget\n"
            "Budget Type: Cost\n"
            "Budgeted Amount: $0.20\n"
            "Alert Type: ACTUAL\n"
            "Alert Threshold: > $0.16\n"
            "ACTUAL Amount: $0.59\n"
            "\n"
            "[1] https://console.aws.amazon.com/billing/home#/budgets\n"
        ),
        date=datetime.date(2022, 9, 26),
        account_id="017790921725",
        budget_name="Test Budget",
        budgeted=Decimal("0.20"),
        alert_type=AlertType.ACTUAL,
        threshold=Decimal("0.16"),
        threshold_percent=Decimal("80.00"),
        amount=Decimal("0.59"),
        period=BudgetPeriod.MONTH,
        dashboard_url="https://console.aws.amazon.com/billing/home#/budgets",
        subject_percent="80%",
    ),
    RealAlert(
        id="actual-daily-2023",
        source=(
            "rtp-aws/killswitch_aws - events.md (CloudWatch log of the event the Lambda "
            "received; the same event is pasted into a comment at the end of lambda.js)"
        ),
        subject="AWS Budgets: killswitch has exceeded your alert threshold",
        topic_arn="arn:aws:sns:us-east-1:265627204426:killswitch",
        message=(
            "AWS Budget Notification March 05, 2023\n"
            "AWS Account 265627204426\n"
            "\n"
            "Dear AWS Customer,\n"
            "\n"
            "You requested that we alert you when the ACTUAL Cost associated with your "
            "killswitch budget is greater than $0.75 per day. Yesterday, the ACTUAL Cost "
            "associated with this budget is $1.70. You can find additional details below "
            "and by accessing the AWS Budgets dashboard [1].\n"
            "\n"
            "Budget Name: killswitch\n"
            "Budget Type: Cost\n"
            "Budgeted Amount: $5.00\n"
            "Alert Type: ACTUAL\n"
            "Alert Threshold: > $0.75\n"
            "ACTUAL Amount: $1.70\n"
            "\n"
            "[1] https://console.aws.amazon.com/billing/home#/budgets\n"
        ),
        date=datetime.date(2023, 3, 5),
        account_id="265627204426",
        budget_name="killswitch",
        budgeted=Decimal("5.00"),
        alert_type=AlertType.ACTUAL,
        threshold=Decimal("0.75"),
        threshold_percent=Decimal("15.00"),
        amount=Decimal("1.70"),
        period=BudgetPeriod.DAY,
        dashboard_url="https://console.aws.amazon.com/billing/home#/budgets",
        subject_percent="15%",
    ),
    RealAlert(
        id="actual-annual-2020",
        source=("Sage-Bionetworks-IT/lambda-send-budget-alert - events/event.json"),
        subject="AWS Budgets: service-catalog_987654 has exceeded your alert threshold",
        topic_arn="arn:aws:sns:us-east-1:465877038949:lambda-budgets-BudgetMakerNotificationTopic-1G7CL03USSYRY",
        message=(
            "AWS Budget Notification July 23, 2020\n"
            "AWS Account 123456789\n"
            "\n"
            "Dear AWS Customer,\n"
            "\n"
            "You requested that we alert you when the ACTUAL Cost associated with your "
            "service-catalog_987654 budget is greater than $1.50 for the current year. "
            "The ACTUAL Cost associated with this budget is $1.81. You can find "
            "additional details below and by accessing the AWS Budgets dashboard [1].\n"
            "\n"
            "Budget Name: service-catalog_987654\n"
            "Budget Type: Cost\n"
            "Budgeted Amount: $1.50\n"
            "Alert Type: ACTUAL\n"
            "Alert Threshold: > $1.50\n"
            "ACTUAL Amount: $1.81\n"
            "\n"
            "[1] https://console.aws.amazon.com/billing/home#/budgets\n"
        ),
        date=datetime.date(2020, 7, 23),
        account_id="123456789",
        budget_name="service-catalog_987654",
        budgeted=Decimal("1.50"),
        alert_type=AlertType.ACTUAL,
        threshold=Decimal("1.50"),
        threshold_percent=Decimal("100.00"),
        amount=Decimal("1.81"),
        period=BudgetPeriod.YEAR,
        dashboard_url="https://console.aws.amazon.com/billing/home#/budgets",
        subject_percent="100%",
    ),
    RealAlert(
        id="forecasted-monthly-2024",
        source=(
            "sasa9477/aws-cost-notification - test/handlers/BudgetAlartHandler.test.ts (test "
            '"予想額の出力が正しい"; earlier revision, topic name `...-BudgetAlartTopic`)'
        ),
        subject=(
            "AWS Budgets: AwsCostNotificationStack-MonthlyCostBudget has exceeded your alert "
            "threshold"
        ),
        topic_arn=(
            "arn:aws:sns:ap-northeast-1:123456789012:AwsCostNotificationStack-BudgetAlartTopic"
        ),
        message=(
            "AWS Budget Notification May 13, 2024\n"
            "AWS Account 123456789012\n"
            "\n"
            "Dear AWS Customer,\n"
            "\n"
            "You requested that we alert you when the FORECASTED Cost associated with "
            "your AwsCostNotificationStack-MonthlyCostBudget budget is greater than "
            "$0.01 for the current month. The FORECASTED Cost associated with this "
            "budget is $1.03. You can find additional details below and by accessing the "
            "AWS Budgets dashboard [1].\n"
            "\n"
            "Budget Name: AwsCostNotificationStack-MonthlyCostBudget\n"
            "Budget Type: Cost\n"
            "Budgeted Amount: $0.01\n"
            "Alert Type: FORECASTED\n"
            "Alert Threshold: > $0.01\n"
            "FORECASTED Amount: $0.5\n"
            "\n"
            "[1] https://console.aws.amazon.com/billing/home#/budgets\n"
        ),
        date=datetime.date(2024, 5, 13),
        account_id="123456789012",
        budget_name="AwsCostNotificationStack-MonthlyCostBudget",
        budgeted=Decimal("0.01"),
        alert_type=AlertType.FORECASTED,
        threshold=Decimal("0.01"),
        threshold_percent=Decimal("100.00"),
        amount=Decimal("0.5"),
        period=BudgetPeriod.MONTH,
        dashboard_url="https://console.aws.amazon.com/billing/home#/budgets",
        subject_percent="100%",
    ),
    RealAlert(
        id="forecasted-monthly-2026-costmanagement-link",
        source=(
            "UNRESOLVED REPOSITORY - a public TypeScript Jest test `forward-sns-message "
            "Lambda` (imports '../../lib/budget-alerts-stack.forward-sns-message'); the SNS JSON "
            "is the SQS record `body`. The index located the file by content but did not name its "
            "repository/path."
        ),
        subject="AWS Budgets: test has exceeded your alert threshold",
        topic_arn="arn:aws:sns:eu-west-1:391613010373:budget-alerts",
        message=(
            "AWS Budget Notification January 28, 2026\n"
            "AWS Account 391613010373\n"
            "\n"
            "Dear AWS Customer,\n"
            "\n"
            "You requested that we alert you when the FORECASTED Cost associated with "
            "your test budget is greater than $0.00 for the current month. The "
            "FORECASTED Cost associated with this budget is $0.95. You can find "
            "additional details below and by accessing the AWS Budgets dashboard [1].\n"
            "\n"
            "Budget Name: test\n"
            "Budget Type: Cost\n"
            "Budgeted Amount: $0.02\n"
            "Alert Type: FORECASTED\n"
            "Alert Threshold: > $0.00\n"
            "FORECASTED Amount: $0.95\n"
            "\n"
            "[1] https://console.aws.amazon.com/costmanagement/home#/budgets\n"
        ),
        date=datetime.date(2026, 1, 28),
        account_id="391613010373",
        budget_name="test",
        budgeted=Decimal("0.02"),
        alert_type=AlertType.FORECASTED,
        threshold=Decimal("0.00"),
        threshold_percent=Decimal("0.00"),
        amount=Decimal("0.95"),
        period=BudgetPeriod.MONTH,
        dashboard_url="https://console.aws.amazon.com/costmanagement/home#/budgets",
        subject_percent="0%",
    ),
)
REAL_TOPICS: tuple[str, ...] = tuple(alert.topic_arn for alert in REAL_ALERTS)
real_alert_params = [pytest.param(alert, id=alert.id) for alert in REAL_ALERTS]


def notification(
    message: str, *, subject: str | None = None, signer: MessageSigner | None = None
) -> Notification:
    """A parsed (signed, but not verified: the parser never checks) Notification."""
    signer = signer or _SIGNER
    signed = signer.notification(message, Subject=subject)
    parsed = parse_message(signed.body)
    assert isinstance(parsed, Notification)
    return parsed


_SIGNER = MessageSigner()
