"""Cost Anomaly Detection alerts as test fixtures: the published examples, with what each
must parse to, and a builder for variations of them.

The Message strings are the examples AWS documents and a message a public project logged
(see ``source``); none carries a verifiable signature, so tests re-sign them with
:class:`snsmiddleware.testing.MessageSigner`.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from snsmiddleware.message import Notification, parse_message
from snsmiddleware.testing import MessageSigner, SignedMessage


def to_json(value: Any) -> str:
    """JSON text in which a Decimal is written as the number it is (``json.dumps`` would need
    a float), so tests can build exact amounts, hostile numbers included."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(k)}: {to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ", ".join(to_json(item) for item in value) + "]"
    return json.dumps(value)


@dataclass(frozen=True)
class RealAnomaly:
    """One published anomaly alert and the values the parser must read from it."""

    id: str
    source: str
    topic_arn: str
    message: str
    anomaly_id: str
    account_id: str
    monitor_name: str | None
    dimension_value: str
    start_date: datetime.date
    end_date: datetime.date
    max_score: Decimal
    current_score: Decimal
    total_impact: Decimal
    total_actual_spend: Decimal
    total_expected_spend: Decimal
    total_impact_percentage: Decimal
    root_cause: tuple[str, str, str, str]  # service, region, linked account, usage type
    details_url: str

    def signed(self, signer: MessageSigner, **overrides: Any) -> SignedMessage:
        """This alert as SNS delivers it (no Subject), from its topic, signed by the test CA."""
        fields: dict[str, Any] = {"TopicArn": self.topic_arn}
        fields.update(overrides)
        return signer.notification(self.message, **fields)


# The AWS Cost Management User Guide's SNS example ("Detecting unusual spend with AWS Cost
# Anomaly Detection", "To view your anomalies from an Amazon SNS topic"), with its integer
# amounts and its placeholder root cause; account and topic as in the guide (the guide's
# trailing comma after "contribution" dropped: it is not JSON).
GUIDE_LINK = (
    "https://console.aws.amazon.com/cost-management/home#/anomaly-detection/monitors/"
    "abcdef12-1234-4ea0-84cc-918a97d736ef/anomalies/12345678-abcd-ef12-3456-987654321a12"
)
_GUIDE = (
    '{\n    "accountId": "123456789012",\n'
    f'    "anomalyDetailsLink": "{GUIDE_LINK}",\n'
    '    "anomalyEndDate": "2021-05-25T00:00:00Z",\n'
    '    "anomalyId": "12345678-abcd-ef12-3456-987654321a12",\n'
    '    "anomalyScore": {\n        "currentScore": 0.47,\n        "maxScore": 0.47\n    },\n'
    '    "anomalyStartDate": "2021-05-25T00:00:00Z",\n'
    '    "dimensionalValue": "ServiceName",\n'
    '    "impact": {\n        "maxImpact": 151,\n        "totalActualSpend": 1301,\n'
    '        "totalExpectedSpend": 300,\n        "totalImpact": 1001,\n'
    '        "totalImpactPercentage": 333.67\n    },\n'
    '    "monitorArn": "arn:aws:ce::123456789012:anomalymonitor/'
    'abcdef12-1234-4ea0-84cc-918a97d736ef",\n'
    '    "rootCauses": [\n        {\n            "linkedAccount": "AnomalousLinkedAccount",\n'
    '            "linkedAccountName": "AnomalousLinkedAccountName",\n'
    '            "region": "AnomalousRegionName",\n'
    '            "service": "AnomalousServiceName",\n'
    '            "usageType": "AnomalousUsageType",\n'
    '            "impact": {\n                "contribution": 601\n            }\n'
    "        }\n    ],\n"
    '    "subscriptionId": "874c100c-59a6-4abb-a10a-4682cc3f2d69",\n'
    '    "subscriptionName": "alertSubscription"\n}'
)
# A message a Lambda function received from SNS, kept as a test fixture by its project (the
# account id was shortened to 10 digits by its authors; the link is cut after monitors/).
_LOGGED = (
    '{"accountId":"1234567890","accountName":"opg-account",'
    '"anomalyStartDate":"2023-04-05T00:00:00Z","anomalyEndDate":"2023-04-10T00:00:00Z",'
    '"anomalyId":"6de0dd1d-feb4-488a-a55d-ff130a7a285a","dimensionalValue":"AWS CloudTrail",'
    '"monitorArn":"arn:aws:ce::1234567890:anomalymonitor/bdafded2-49c6-407e-885a-e29618f58b2a",'
    '"monitorName":"AWSServiceMonitor","monitorType":"DIMENSIONAL",'
    '"anomalyScore":{"maxScore":0.67,"currentScore":0.51},'
    '"impact":{"maxImpact":2.48,"totalExpectedSpend":0.27,"totalActualSpend":12.09,'
    '"totalImpact":11.82,"totalImpactPercentage":4377.78},'
    '"rootCauses":[{"service":"AWS CloudTrail","region":"eu-west-1",'
    '"linkedAccount":"1234567890","linkedAccountName":"opg-account",'
    '"usageType":"EU-InsightsEvents"}],'
    '"anomalyDetailsLink":"https://console.aws.amazon.com/cost-management/home#/'
    'anomaly-detection/monitors/",'
    '"subscriptionId":"458ba0da-929a-4de9-b38b-7a2381a32561",'
    '"subscriptionName":"Immediate Subscription"}'
)
# The Cost Management User Guide's EventBridge example ("Using EventBridge with Cost Anomaly
# Detection"), as an EventBridge rule forwards it to an SNS topic: the alert is ``detail``,
# the dimension is spelt dimensionValue; placeholders filled in, comments dropped.
GUIDE_MONITOR = "arn:aws:ce::123456789012:anomalymonitor/abcdef12-1234-4ea0-84cc-918a97d736ef"
_EVENTBRIDGE = to_json(
    {
        "version": "0",
        "id": "7d1e0e8a-1f3c-4f5e-9a55-0b6f1c0f3a11",
        "source": "aws.ce",
        "detail-type": "Anomaly Detected",
        "account": "123456789012",
        "region": "us-east-1",
        "time": "2021-05-25T12:00:00Z",
        "resources": [
            "arn:aws:ce::123456789012:anomalymonitor/abcdef12-1234-4ea0-84cc-918a97d736ef"
        ],
        "detail": {
            "accountName": "payments-prod",
            "anomalyEndDate": "2021-05-25T00:00:00Z",
            "anomalyId": "12345678-abcd-ef12-3456-987654321a12",
            "anomalyScore": {"currentScore": Decimal("0.47"), "maxScore": Decimal("0.47")},
            "anomalyStartDate": "2021-05-25T00:00:00Z",
            "dimensionValue": "Amazon Elastic Compute Cloud - Compute",
            "feedback": "",
            "impact": {
                "maxImpact": Decimal("151"),
                "totalActualSpend": Decimal("1301"),
                "totalExpectedSpend": Decimal("300"),
                "totalImpact": Decimal("1001"),
                "totalImpactPercentage": Decimal("333.67"),
            },
            "rootCauses": [
                {
                    "linkedAccount": "210987654321",
                    "linkedAccountName": "payments-prod",
                    "region": "us-east-1",
                    "service": "Amazon Elastic Compute Cloud - Compute",
                    "usageType": "BoxUsage:c7i.4xlarge",
                    "impact": {"contribution": Decimal("601")},
                }
            ],
            "accountId": "123456789012",
            "monitorArn": GUIDE_MONITOR,
            "monitorName": "Services",
            "anomalyDetailsLink": GUIDE_LINK,
        },
    }
)

REAL_ANOMALIES: tuple[RealAnomaly, ...] = (
    RealAnomaly(
        id="user-guide-sns-2021",
        source="AWS Cost Management User Guide, getting-started-ad: the SNS message example",
        topic_arn="arn:aws:sns:us-east-1:123456789012:cost-anomalies",
        message=_GUIDE,
        anomaly_id="12345678-abcd-ef12-3456-987654321a12",
        account_id="123456789012",
        monitor_name=None,
        dimension_value="ServiceName",
        start_date=datetime.date(2021, 5, 25),
        end_date=datetime.date(2021, 5, 25),
        max_score=Decimal("0.47"),
        current_score=Decimal("0.47"),
        total_impact=Decimal("1001"),
        total_actual_spend=Decimal("1301"),
        total_expected_spend=Decimal("300"),
        total_impact_percentage=Decimal("333.67"),
        root_cause=(
            "AnomalousServiceName",
            "AnomalousRegionName",
            "AnomalousLinkedAccount",
            "AnomalousUsageType",
        ),
        details_url=GUIDE_LINK,
    ),
    RealAnomaly(
        id="logged-cloudtrail-2023",
        source=(
            "UNRESOLVED REPOSITORY - a public Python test of a send_cost_anomalies_to_slack "
            "Lambda (the SNS record of an 'opg-account' anomaly); the index located the file "
            "by content but did not name its repository"
        ),
        topic_arn="arn:aws:sns:us-east-1:123456789012:immediateCostAnomalyUpdates",
        message=_LOGGED,
        anomaly_id="6de0dd1d-feb4-488a-a55d-ff130a7a285a",
        account_id="1234567890",
        monitor_name="AWSServiceMonitor",
        dimension_value="AWS CloudTrail",
        start_date=datetime.date(2023, 4, 5),
        end_date=datetime.date(2023, 4, 10),
        max_score=Decimal("0.67"),
        current_score=Decimal("0.51"),
        total_impact=Decimal("11.82"),
        total_actual_spend=Decimal("12.09"),
        total_expected_spend=Decimal("0.27"),
        total_impact_percentage=Decimal("4377.78"),
        root_cause=("AWS CloudTrail", "eu-west-1", "1234567890", "EU-InsightsEvents"),
        details_url="https://console.aws.amazon.com/cost-management/home#/anomaly-detection/monitors/",
    ),
    RealAnomaly(
        id="user-guide-eventbridge-2021",
        source="AWS Cost Management User Guide, cad-eventbridge: the Anomaly Detected event",
        topic_arn="arn:aws:sns:us-east-1:123456789012:cost-anomaly-events",
        message=_EVENTBRIDGE,
        anomaly_id="12345678-abcd-ef12-3456-987654321a12",
        account_id="123456789012",
        monitor_name="Services",
        dimension_value="Amazon Elastic Compute Cloud - Compute",
        start_date=datetime.date(2021, 5, 25),
        end_date=datetime.date(2021, 5, 25),
        max_score=Decimal("0.47"),
        current_score=Decimal("0.47"),
        total_impact=Decimal("1001"),
        total_actual_spend=Decimal("1301"),
        total_expected_spend=Decimal("300"),
        total_impact_percentage=Decimal("333.67"),
        root_cause=(
            "Amazon Elastic Compute Cloud - Compute",
            "us-east-1",
            "210987654321",
            "BoxUsage:c7i.4xlarge",
        ),
        details_url=GUIDE_LINK,
    ),
)
REAL_ANOMALY_TOPICS: tuple[str, ...] = tuple(sorted({a.topic_arn for a in REAL_ANOMALIES}))
real_anomaly_params = [pytest.param(anomaly, id=anomaly.id) for anomaly in REAL_ANOMALIES]


def anomaly_document(**overrides: Any) -> dict[str, Any]:
    """A complete alert in the observed SNS shape (BUDGETS.md), with ``overrides`` applied
    (a value of ``...`` removes the key)."""
    document: dict[str, Any] = {
        "accountId": "123456789012",
        "accountName": "payments-prod",
        "anomalyStartDate": "2026-11-28T00:00:00Z",
        "anomalyEndDate": "2026-11-30T00:00:00Z",
        "anomalyId": "0b7f6a3e-2d6c-4a55-9c1e-6f3b1d2a9e10",
        "dimensionalValue": "Amazon Elastic Compute Cloud - Compute",
        "monitorArn": (
            "arn:aws:ce::123456789012:anomalymonitor/4c1d2e3f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
        ),
        "monitorName": "Services",
        "monitorType": "DIMENSIONAL",
        "anomalyScore": {"maxScore": Decimal("0.83"), "currentScore": Decimal("0.61")},
        "impact": {
            "maxImpact": Decimal("412.5"),
            "totalExpectedSpend": Decimal("96.0"),
            "totalActualSpend": Decimal("988.2"),
            "totalImpact": Decimal("892.2"),
            "totalImpactPercentage": Decimal("929.38"),
        },
        "rootCauses": [
            {
                "service": "Amazon Elastic Compute Cloud - Compute",
                "region": "us-east-1",
                "linkedAccount": "123456789012",
                "linkedAccountName": "payments-prod",
                "usageType": "BoxUsage:c7i.4xlarge",
            }
        ],
        "anomalyDetailsLink": (
            "https://console.aws.amazon.com/cost-management/home#/anomaly-detection/monitors/"
            "4c1d2e3f-5a6b-4c7d-8e9f-0a1b2c3d4e5f/anomalies/0b7f6a3e-2d6c-4a55-9c1e-6f3b1d2a9e10"
        ),
        "subscriptionId": "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
        "subscriptionName": "Immediate alerts",
    }
    for key, value in overrides.items():
        if value is ...:
            document.pop(key, None)
        else:
            document[key] = value
    return document


def anomaly_text(**overrides: Any) -> str:
    """:func:`anomaly_document` as the JSON text of a Message."""
    return to_json(anomaly_document(**overrides))


def anomaly_notification(text: str, *, signer: MessageSigner | None = None) -> Notification:
    """A parsed (signed, but not verified: the parser never checks) Notification."""
    signed = (signer or _SIGNER).notification(text)
    parsed = parse_message(signed.body)
    assert isinstance(parsed, Notification)
    return parsed


_SIGNER = MessageSigner()
