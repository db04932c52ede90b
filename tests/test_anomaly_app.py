"""Cost Anomaly Detection alerts end to end: signed messages (snsmiddleware.testing) through
SnsMiddleware and BudgetApp to the file outbox, a real SMTP server (aiosmtpd) and SES (moto's
server), exactly once; routed by monitor or subscription name, glob, account (the signed
one) and default; hostile names escaped; unreadable but genuine alerts still emailed; other
JSON still refused; and ``send-test-alert --anomaly`` over a real HTTP server (issue 14.1)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webtest.http import StopableWSGIServer

from snsmiddleware import SnsMiddleware
from snsmiddleware.anomaly import parse_cost_alert
from snsmiddleware.budget_app import BudgetApp
from snsmiddleware.cli import main
from snsmiddleware.devmode import DevelopmentTrust, load_or_create_dev_ca
from snsmiddleware.mail import FileOutbox
from snsmiddleware.testing import MessageSigner, post_sns

from ._anomaly_helpers import (
    REAL_ANOMALY_TOPICS,
    RealAnomaly,
    anomaly_notification,
    anomaly_text,
    real_anomaly_params,
)
from ._answers import reason
from ._budget_helpers import REAL_ALERTS
from ._hardening_helpers import emails_in
from ._mail_helpers import (
    VERIFIED_SENDER,
    MailRoute,
    to_addresses,
)
from ._mail_helpers import text_and_html as parts
from .conftest import PATH, TOPIC

SENDER = f"Cost alerts <{VERIFIED_SENDER}>"
ANA = "Ana Lima <ana@example.com>"
BO = "Bo <bo@example.com>"
FINOPS = "FinOps <finops@example.com>"
OWN_ACCOUNT = TOPIC.split(":")[4]  # 123456789012, the accountId of anomaly_text()
OTHER_TOPIC = "arn:aws:sns:us-east-1:210987654321:cost-anomalies"


@pytest.fixture
def make_app(
    make_middleware: Callable[..., SnsMiddleware], outbox: FileOutbox, dead_letter: FileOutbox
) -> Callable[..., webtest.TestApp]:
    def make(**options: Any) -> webtest.TestApp:
        settings: dict[str, Any] = {
            "recipients": {"AWSServiceMonitor": ANA, "Services": ANA},
            "default_recipients": [FINOPS],
            "mailer": outbox,
            "sender": SENDER,
            "dead_letter": dead_letter,
        }
        settings.update(options)
        topics = [TOPIC, OTHER_TOPIC, *REAL_ANOMALY_TOPICS]
        return webtest.TestApp(make_middleware(app=BudgetApp(**settings), topics=topics), lint=True)

    return make


# --- every published example, every mailer ----------------------------------------------------


@pytest.mark.parametrize("real", real_anomaly_params)
def test_every_published_anomaly_becomes_exactly_one_correct_email(
    make_app: Callable[..., webtest.TestApp],
    signer: MessageSigner,
    mail_route: MailRoute,
    real: RealAnomaly,
) -> None:
    mailer, delivered = mail_route
    app = make_app(mailer=mailer)
    message = real.signed(signer)

    response = post_sns(app, PATH, message)
    assert (response.status_int, reason(response)) == (200, "sent"), response.text
    again = post_sns(app, PATH, message)
    assert (again.status_int, reason(again)) == (200, "duplicate")

    [email] = delivered()
    impact = f"{real.total_impact:,.2f} USD"
    assert email["Subject"].strip().startswith(f"Cost control alert - cost anomaly of {impact} (+")
    assert real.dimension_value in email["Subject"]
    expected = [ANA] if real.monitor_name in ("AWSServiceMonitor", "Services") else [FINOPS]
    assert to_addresses(email) == expected
    assert email["Message-ID"] == f"<cost-anomaly.{message.fields['MessageId']}@example.com>"
    assert email["X-SNS-Message-Id"] == message.fields["MessageId"]
    assert email["Auto-Submitted"] == "auto-generated"
    text, html = parts(email)
    for figure in (
        impact,
        f"{real.total_actual_spend:,.2f} USD",
        f"{real.total_expected_spend:,.2f} USD",
        f"{real.total_impact_percentage.normalize():f}% above expected",
        real.start_date.isoformat(),
        real.anomaly_id,
        *real.root_cause,
    ):
        assert figure in text, figure
        assert figure in html, figure
    assert f'href="{real.details_url}"' in html
    assert f"Open this anomaly in the AWS console: {real.details_url}" in text
    assert "could not be read" not in text
    assert "\n".join(real.message.splitlines()) in text.replace("\r\n", "\n")


# --- routing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipients", "expected"),
    [
        pytest.param({"Services": ANA}, [ANA], id="monitor-name"),
        pytest.param({"Immediate alerts": BO}, [BO], id="subscription-name"),
        pytest.param({"Serv*": ANA}, [ANA], id="glob-on-monitor"),
        pytest.param({"Immediate *": BO}, [BO], id="glob-on-subscription"),
        pytest.param({"services": ANA}, [FINOPS], id="names-are-case-sensitive"),
        pytest.param({OWN_ACCOUNT: ANA}, [ANA], id="account-id"),
        pytest.param(
            {"Services": ANA, "Immediate alerts": [ANA, BO], OWN_ACCOUNT: BO, "*": FINOPS},
            [ANA, BO, FINOPS],
            id="every-match-once",
        ),
        pytest.param({"Test Budget": ANA}, [FINOPS], id="a-budget-name-is-not-a-monitor"),
        pytest.param({"payments-prod": ANA}, [FINOPS], id="account-name-does-not-route"),
    ],
)
def test_anomalies_are_routed_like_budget_alerts(
    make_app: Callable[..., webtest.TestApp],
    signer: MessageSigner,
    outbox: FileOutbox,
    recipients: dict[str, Any],
    expected: list[str],
) -> None:
    app = make_app(recipients=recipients)
    assert reason(post_sns(app, PATH, signer.notification(anomaly_text()))) == "sent"
    [email] = emails_in(outbox.directory)
    assert to_addresses(email) == expected


@pytest.mark.parametrize(
    ("topic", "stated", "recipients", "expected"),
    [
        # A publisher to account 2109...'s topic writes 1234... as accountId: 1234...'s owner
        # must not get it.
        pytest.param(OTHER_TOPIC, OWN_ACCOUNT, {OWN_ACCOUNT: ANA}, [FINOPS], id="text-lies"),
        pytest.param(TOPIC, OWN_ACCOUNT, {OWN_ACCOUNT: ANA}, [ANA], id="both-agree"),
        pytest.param(TOPIC, ..., {OWN_ACCOUNT: ANA}, [ANA], id="text-silent"),
        pytest.param(
            OTHER_TOPIC,
            OWN_ACCOUNT,
            {OWN_ACCOUNT: ANA, "Services": BO},
            [BO],
            id="names-still-route",
        ),
        # Root causes name member accounts: shown, never a routing key.
        pytest.param(
            OTHER_TOPIC, ..., {OWN_ACCOUNT: ANA}, [FINOPS], id="linked-account-does-not-route"
        ),
    ],
)
def test_account_entries_match_the_signed_topic_account(
    make_app: Callable[..., webtest.TestApp],
    signer: MessageSigner,
    outbox: FileOutbox,
    caplog: pytest.LogCaptureFixture,
    topic: str,
    stated: Any,
    recipients: dict[str, Any],
    expected: list[str],
) -> None:
    app = make_app(recipients=recipients)
    message = signer.notification(anomaly_text(accountId=stated), TopicArn=topic)
    assert reason(post_sns(app, PATH, message)) == "sent"
    [email] = emails_in(outbox.directory)
    assert to_addresses(email) == expected
    text, _ = parts(email)
    signed = topic.split(":")[4]
    if stated is not ... and stated != signed:
        assert f"{signed} (the topic's account; the message says {stated}" in text
        assert f"the text names AWS account '{stated}'" in caplog.text


def test_an_anomaly_nobody_is_configured_for_is_dead_lettered(
    make_app: Callable[..., webtest.TestApp],
    signer: MessageSigner,
    outbox: FileOutbox,
    dead_letter: FileOutbox,
) -> None:
    app = make_app(recipients={"other monitor": ANA}, default_recipients=None)
    response = post_sns(app, PATH, signer.notification(anomaly_text()))
    assert (response.status_int, reason(response)) == (200, "dead_lettered")
    assert emails_in(outbox.directory) == []
    [letter] = emails_in(dead_letter.directory)
    assert letter["X-Dead-Letter-Reason"] == "no_recipients"
    assert "anomaly monitor 'Services'" in letter["X-Dead-Letter-Detail"]
    assert "cost anomaly" in letter["Subject"]


def test_budget_alerts_still_route_by_budget_name_beside_anomalies(
    make_app: Callable[..., webtest.TestApp], signer: MessageSigner, outbox: FileOutbox
) -> None:
    app = make_app(recipients={"Test Budget": BO, "Services": ANA})
    budget = REAL_ALERTS[0]
    assert reason(post_sns(app, PATH, budget.signed(signer, TopicArn=TOPIC))) == "sent"
    assert reason(post_sns(app, PATH, signer.notification(anomaly_text()))) == "sent"
    by_kind = {
        "anomaly" if "cost anomaly" in e["Subject"] else "budget": to_addresses(e)
        for e in emails_in(outbox.directory)
    }
    assert by_kind == {"budget": [BO], "anomaly": [ANA]}


# --- hostile content -------------------------------------------------------------------------


def test_hostile_names_are_escaped_and_cannot_forge_lines_or_headers(
    make_app: Callable[..., webtest.TestApp], signer: MessageSigner, outbox: FileOutbox
) -> None:
    hostile = (
        "<script>alert(1)</script>\"'&<img src=x onerror=alert(2)>"
        "\r\nBcc: attacker@example.net\nOpen this anomaly in the AWS console: https://evil.example"
        "\u202e\x00=?utf-8?q?x=0D=0ABcc=3A_y@evil.example?="
    )
    app = make_app(recipients={"*": ANA})
    text = anomaly_text(
        monitorName=hostile,
        dimensionalValue=hostile,
        subscriptionName=hostile,
        accountName=hostile,
        rootCauses=[{"service": hostile, "usageType": hostile, "linkedAccountName": hostile}],
        anomalyDetailsLink="https://evil.example/cost-management/home",
    )
    assert reason(post_sns(app, PATH, signer.notification(text))) == "sent"
    [path] = outbox.messages()
    headers = path.read_bytes().split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in headers
    [email] = emails_in(outbox.directory)
    assert email["Bcc"] is None and len(email.get_all("Subject")) == 1
    assert "\u202e" not in email["Subject"] and "\n" not in email["Subject"]
    assert to_addresses(email) == [ANA]
    plain, html = parts(email)
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;&amp;&lt;img" in html
    assert "evil.example" not in "".join(line for line in html.splitlines() if "href=" in line)
    # The only lines that start like ours are ours.
    forged = [line for line in plain.splitlines() if line.startswith("Open this anomaly")]
    assert forged == []
    assert "Bcc: attacker@example.net" in plain  # shown, on one line with the rest
    assert "\u202e" not in plain.split("--- Original message")[0]


def test_an_unreadable_genuine_alert_is_still_emailed_with_its_raw_text(
    make_app: Callable[..., webtest.TestApp],
    signer: MessageSigner,
    outbox: FileOutbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A key twice: nothing in it is believed (not even the monitor name that routes it),
    but the alert reaches the default recipients rather than being lost."""
    text = anomaly_text().replace(
        '"monitorName": "Services"', '"monitorName": "Services", "monitorName": "x"'
    )
    app = make_app(recipients={"Services": ANA, "x": BO})
    response = post_sns(app, PATH, signer.notification(text))
    assert (response.status_int, reason(response)) == (200, "sent")
    [email] = emails_in(outbox.directory)
    assert to_addresses(email) == [FINOPS]
    assert email["Subject"] == "Cost control alert - cost anomaly detected - unknown monitor"
    plain, html = parts(email)
    assert "could not be read as JSON (the key 'monitorName' appears twice" in plain
    assert text in plain.replace("\r\n", "\n")
    assert "appears twice" in html
    assert "not readable" in caplog.text


def test_a_partly_readable_alert_names_what_is_missing(
    make_app: Callable[..., webtest.TestApp], signer: MessageSigner, outbox: FileOutbox
) -> None:
    text = anomaly_text(impact={"maxImpact": "a lot", "totalImpact": [1]}, anomalyScore=...)
    assert reason(post_sns(make_app(), PATH, signer.notification(text))) == "sent"
    [email] = emails_in(outbox.directory)
    plain, _ = parts(email)
    assert (
        "Some details could not be read from the message (maximum score, current score, "
        "maximum impact, total impact)" in plain
    )
    assert to_addresses(email) == [ANA]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        pytest.param(
            '{"AlarmName": "cpu", "NewStateValue": "ALARM"}', "not_a_budget_alert", id="other-json"
        ),
        pytest.param('{"anomalyId": "x"}', "not_a_budget_alert", id="id-alone"),
        pytest.param(
            '{"previousBudgetLimit": {"amount": "1"}, "currentBudgetLimit": {"amount": "2"}}',
            "budget_auto_adjustment",
            id="auto-adjusting-budget",
        ),
    ],
)
def test_json_that_is_no_alert_is_still_refused(
    make_app: Callable[..., webtest.TestApp],
    signer: MessageSigner,
    outbox: FileOutbox,
    dead_letter: FileOutbox,
    text: str,
    code: str,
) -> None:
    response = post_sns(make_app(), PATH, signer.notification(text))
    assert (response.status_int, reason(response)) == (422, code)
    assert emails_in(outbox.directory) == [] and emails_in(dead_letter.directory) == []


# --- send-test-alert --anomaly ---------------------------------------------------------------


def test_send_test_alert_anomaly_over_a_real_server(
    tmp_path: Path, outbox: FileOutbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI signs with the development CA; a waitress server whose middleware trusts that
    CA (as ``serve --dev`` does) verifies it and emails it, routed by the sample's monitor."""
    ca_dir = tmp_path / "dev-ca"
    trust = DevelopmentTrust(load_or_create_dev_ca(ca_dir))
    app = SnsMiddleware(
        BudgetApp(recipients={"Test Monitor": ANA}, mailer=outbox),
        paths=[PATH],
        topics=[TOPIC],
        fetch_certificate=trust.fetch_certificate,
    )
    server = StopableWSGIServer.create(app)
    try:
        url = f"{server.application_url.rstrip('/')}{PATH}"
        argv = ["send-test-alert", url, "--anomaly", "--topic", TOPIC, "--dev-ca", str(ca_dir)]
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "Cost Anomaly Detection alert" in out and "answer 200 sent" in out
        assert main([*argv, "--subscription-confirmation"]) == 2
        # The Budgets-alert flags cannot shape an anomaly: refused, not silently ignored.
        assert main([*argv, "--forecasted", "--threshold", "80%", "--period", "DAILY"]) == 2
        refusal = capsys.readouterr().err
        assert "cannot be combined with --forecasted, --threshold, --period" in refusal
    finally:
        server.shutdown()
    [email] = emails_in(outbox.directory)
    assert to_addresses(email) == [ANA]
    assert email["Subject"].startswith("Cost control alert - cost anomaly of 892.20 USD (+929.38%)")
    plain, _ = parts(email)
    assert re.search(rf"^Account: +{OWN_ACCOUNT} \(sample-account\)\r?$", plain, re.MULTILINE)
    assert "could not be read" not in plain
    # Greeted by name, and told which entry chose them, worded for an anomaly.
    assert re.search(r"^Hi Ana Lima,\r?$", plain, re.MULTILINE)
    assert (
        'the recipients entry for the monitor or subscription name "Test Monitor" matched'
    ) in plain.replace("\r\n", "\n").replace("\n", " ")


# --- no anomaly JSON makes the app fail ---------------------------------------------------

_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.decimals(allow_nan=False, allow_infinity=False, places=3, max_value=10**9)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.dictionaries(
        st.sampled_from(
            [
                "monitorName",
                "accountId",
                "impact",
                "rootCauses",
                "anomalyScore",
                "anomalyDetailsLink",
                "subscriptionName",
                "dimensionValue",
            ]
        ),
        _VALUES,
        max_size=5,
    ),
    tail=st.sampled_from(["", " ", "}", ', "monitorName": "x"}', "]"]),
)
def test_any_anomaly_json_is_emailed_or_refused_never_a_failure(
    tmp_path: Path, signer: MessageSigner, values: dict[str, Any], tail: str
) -> None:
    """Through BudgetApp.handle (the app behind the middleware): 200 sent with one email,
    or a 422 for what is no alert; never a 5xx, never an exception."""
    box = FileOutbox(tmp_path / f"box-{uuid.uuid4()}")
    app = BudgetApp(recipients={"*": ANA}, default_recipients=FINOPS, mailer=box)
    text = anomaly_text(**values)
    text = text[:-1] + tail if tail else text
    response = app.handle(anomaly_notification(text, signer=signer))
    assert response.status_int in (200, 422), response.text
    assert len(box.messages()) == (1 if response.status_int == 200 else 0)


def test_route_words_each_entry_for_an_anomaly(tmp_path: Path) -> None:
    """The footer's "why you got this" names what an anomaly entry matched (the monitor or
    subscription name), never a budget name."""
    app = BudgetApp(
        recipients={"Serv*": ANA, "Immediate alerts": ANA, OWN_ACCOUNT: "Bo <bo@example.com>"},
        mailer=FileOutbox(tmp_path),
    )
    alert = parse_cost_alert(anomaly_notification(anomaly_text()))
    ana, bo = app.route(alert, topic_arn=TOPIC)
    assert ana.rules == (
        'the monitor or subscription name pattern "Serv*"',
        'the monitor or subscription name "Immediate alerts"',
    )
    assert bo.rules == (f"the account {OWN_ACCOUNT}",)
