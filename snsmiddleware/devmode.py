"""Development mode: see the whole pipeline work on a laptop, without AWS.

``snsmiddleware send-test-alert`` signs messages with a local development CA (kept in a
directory, created on first use). A server trusts that CA **only** when started in explicit
development mode, which it logs loudly at start. Messages signed by the development key
carry a SigningCertURL on the real SNS host pattern, with the development certificate's
digest as its name: in development mode that one URL is served from disk, every other
certificate is still downloaded from AWS and checked as usual.

Never enable development mode on a server reachable from the internet: anyone holding the
development key (it sits unencrypted on disk) could sign messages it accepts.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Final

from .certs import CertificateFetcher, HttpCertificateFetcher
from .confirm import Confirmer
from .message import SubscriptionConfirmation
from .signer import MessageSigner, TestCA
from .verifier import utc_now

log = logging.getLogger(__name__)

DEFAULT_DEV_CA_DIR: Final = Path("var") / "dev-ca"


def load_or_create_dev_ca(directory: str | os.PathLike[str] = DEFAULT_DEV_CA_DIR) -> TestCA:
    """The development CA in ``directory``; created (and saved) on first use."""
    folder = Path(directory)
    try:
        return TestCA.load(folder)
    except FileNotFoundError:
        ca = TestCA()
        ca.save(folder)
        log.info("created a development CA in %s", folder)
        return ca


class DevelopmentTrust:
    """What a server in development mode trusts in addition to AWS.

    :param ca: the development CA (see :func:`load_or_create_dev_ca`).
    :param fallback: fetches every other certificate (default: the real HTTPS download).
    """

    def __init__(self, ca: TestCA, fallback: CertificateFetcher | None = None) -> None:
        self._signer = MessageSigner(ca)
        self._fallback = fallback if fallback is not None else HttpCertificateFetcher()
        self._suffix = f"/SimpleNotificationService-{self._signer.certificate_digest}.pem"

    def is_development_url(self, url: str) -> bool:
        """True for the SigningCertURL of messages signed by the development key."""
        return url.endswith(self._suffix)

    def fetch_certificate(self, url: str) -> bytes | str:
        """Serve the development certificate at its URL; download every other one."""
        if self.is_development_url(url):
            return self._signer.ca.certificate_pem
        return self._fallback(url)

    def wrap_confirmer(self, confirmer: Confirmer) -> Confirmer:
        """Development confirmations are acknowledged locally; AWS's go to ``confirmer``."""

        def confirm(message: SubscriptionConfirmation) -> None:
            if self.is_development_url(message.signing_cert_url):
                log.warning(
                    "DEVELOPMENT MODE: subscription confirmation signed by the development "
                    "CA acknowledged locally (nothing sent to AWS) message_id=%s",
                    message.message_id,
                )
                return
            confirmer(message)

        return confirm


def sample_anomaly_alert(
    monitor_name: str = "Test Monitor",
    *,
    account: str = "123456789012",
    expected: str = "96.00",
    actual: str = "988.20",
    service: str = "Amazon Elastic Compute Cloud - Compute",
    when: datetime | None = None,
) -> str:
    """A Cost Anomaly Detection alert ``Message`` in the JSON shape it publishes to SNS (an
    anomaly over the three days up to ``when``; amounts are decimal strings, written as JSON
    numbers)."""
    moment = when or utc_now()
    end = moment.date()
    start = end - timedelta(days=2)
    spent, usual = Decimal(actual), Decimal(expected)
    impact = spent - usual
    percent = (impact * 100 / usual).quantize(Decimal("0.01")) if usual else Decimal(0)
    monitor_id, anomaly_id = uuid.uuid4(), uuid.uuid4()
    link = (
        "https://console.aws.amazon.com/cost-management/home#/anomaly-detection/monitors/"
        f"{monitor_id}/anomalies/{anomaly_id}"
    )
    fields = {
        "accountId": account,
        "accountName": "sample-account",
        "anomalyStartDate": f"{start.isoformat()}T00:00:00Z",
        "anomalyEndDate": f"{end.isoformat()}T00:00:00Z",
        "anomalyId": str(anomaly_id),
        "dimensionalValue": service,
        "monitorArn": f"arn:aws:ce::{account}:anomalymonitor/{monitor_id}",
        "monitorName": monitor_name,
        "monitorType": "DIMENSIONAL",
        "rootCauses": [
            {
                "service": service,
                "region": "us-east-1",
                "linkedAccount": account,
                "linkedAccountName": "sample-account",
                "usageType": "BoxUsage:c7i.4xlarge",
            }
        ],
        "anomalyDetailsLink": link,
        "subscriptionId": str(uuid.uuid4()),
        "subscriptionName": "Immediate alerts",
    }
    # JSON numbers written from the decimals themselves (json.dumps knows only floats).
    numbers = (
        f'"anomalyScore": {{"maxScore": 0.83, "currentScore": 0.61}}, '
        f'"impact": {{"maxImpact": {(impact / 2).quantize(Decimal("0.01"))}, '
        f'"totalExpectedSpend": {usual}, "totalActualSpend": {spent}, '
        f'"totalImpact": {impact}, "totalImpactPercentage": {percent}}}'
    )
    return json.dumps(fields)[:-1] + ", " + numbers + "}"


#: ``send-test-alert --period``: the budget's time unit as the Budgets API names it, and how
#: the alert sentence words it (``shared/BUDGETS.md``: daily alerts report yesterday's cost).
BUDGET_PERIOD_WORDING: Final = {
    "DAILY": ("per day", "Yesterday, the"),
    "MONTHLY": ("for the current month", "The"),
    "QUARTERLY": ("for the current quarter", "The"),
    "ANNUALLY": ("for the current year", "The"),
}


def sample_budget_alert(
    budget_name: str = "Test Budget",
    *,
    account: str = "123456789012",
    budgeted: str = "100.00",
    threshold: str = "90.00",
    actual: str = "93.17",
    alert_type: str = "ACTUAL",
    when: datetime | None = None,
    period: str = "MONTHLY",
) -> tuple[str, str]:
    """A Budgets alert ``(subject, message)`` in the exact shape AWS Budgets publishes.

    ``alert_type`` is ``ACTUAL`` or ``FORECASTED`` (``actual`` is then the forecasted
    amount), ``period`` a key of :data:`BUDGET_PERIOD_WORDING`; amounts are written as given
    (``"93.17"``), after a ``$``. Budgets has no forecasted alerts for daily budgets, so that
    combination is a ``ValueError``.
    """
    if alert_type not in ("ACTUAL", "FORECASTED"):
        raise ValueError(f"alert_type must be ACTUAL or FORECASTED, not {alert_type!r}")
    if period not in BUDGET_PERIOD_WORDING:
        raise ValueError(f"period must be one of {', '.join(BUDGET_PERIOD_WORDING)}")
    if period == "DAILY" and alert_type == "FORECASTED":
        raise ValueError("AWS Budgets sends no forecasted alerts for daily budgets")
    span, cost_is = BUDGET_PERIOD_WORDING[period]
    moment = when or utc_now()
    subject = f"AWS Budgets: {budget_name} has exceeded your alert threshold"
    message = (
        f"AWS Budget Notification {moment:%B %d, %Y}\n"
        f"AWS Account {account}\n\n"
        "Dear AWS Customer,\n\n"
        f"You requested that we alert you when the {alert_type} Cost associated with your "
        f"{budget_name} budget is greater than ${threshold} {span}. {cost_is} "
        f"{alert_type} Cost associated with this budget is ${actual}. You can find additional "
        "details below and by accessing the AWS Budgets dashboard [1].\n\n"
        f"Budget Name: {budget_name}\n"
        "Budget Type: Cost\n"
        f"Budgeted Amount: ${budgeted}\n"
        f"Alert Type: {alert_type}\n"
        f"Alert Threshold: > ${threshold}\n"
        f"{alert_type} Amount: ${actual}\n\n"
        "[1] https://console.aws.amazon.com/billing/home#/budgets\n"
    )
    return subject, message
