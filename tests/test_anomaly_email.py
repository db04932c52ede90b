"""The anomaly email on its own (snsmiddleware.anomaly_email): what it says for complete,
partial and unreadable alerts, which links it carries (the anomaly's only when genuine, else
ours for the topic's partition), and that every value stays one escaped line whatever the
publisher wrote (hypothesis)."""

from __future__ import annotations

import html as html_module
import re
from email.headerregistry import Address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snsmiddleware.alert_email import single_line
from snsmiddleware.anomaly import AnomalyAlert, parse_anomaly_alert
from snsmiddleware.anomaly_email import (
    ANOMALY_CONSOLE_URLS,
    LINK_OMITTED,
    MAX_CELL_CHARS,
    anomaly_html,
    anomaly_subject,
    anomaly_text,
    build_anomaly_email,
    default_console_url,
)
from snsmiddleware.email_headers import verify_headers

from ._anomaly_helpers import anomaly_document, anomaly_notification, to_json
from ._hostile_urls import HOSTILE_CONSOLE_URLS

TOPIC = "arn:aws:sns:us-east-1:123456789012:cost-anomalies"
SENDER = Address("Cost alerts", "alerts", "example.com")
ANA = Address("Ana Lima", "ana", "example.com")
_HREF = re.compile(r'href="([^"]*)"')


def alert_from(**overrides: Any) -> AnomalyAlert:
    return parse_anomaly_alert(anomaly_notification(to_json(anomaly_document(**overrides))))


def test_subject_leads_with_the_impact_then_service_then_monitor() -> None:
    assert anomaly_subject(alert_from()) == (
        "Cost control alert - cost anomaly of 892.20 USD (+929.38%) - "
        "Amazon Elastic Compute Cloud - Compute - Services"
    )
    no_percent = alert_from(impact={"maxImpact": 1, "totalImpact": 5}, dimensionalValue=...)
    assert anomaly_subject(no_percent, "Heads-up") == (
        "Heads-up - cost anomaly of 5.00 USD - Services"
    )
    assert anomaly_subject(alert_from(impact=..., monitorName=...)) == (
        "Cost control alert - cost anomaly detected - Amazon Elastic Compute Cloud - Compute - "
        "unknown monitor"
    )


def test_the_text_gives_every_figure_in_words() -> None:
    text = anomaly_text(alert_from(), topic_arn=TOPIC)
    assert (
        "found unusual spend on Amazon Elastic Compute Cloud - Compute between 2026-11-28 and "
        "2026-11-30: 988.20 USD spent where 96.00 USD was expected, 892.20 USD (+929.38%) more."
    ) in text
    for row in (
        r"Monitor: +Services \(DIMENSIONAL\)",
        r"Account: +123456789012 \(payments-prod\)",
        r"Actual spend: +988\.20 USD",
        r"Expected spend: +96\.00 USD",
        r"Total impact: +892\.20 USD \(929\.38% above expected\)",
        r"Maximum impact: +412\.50 USD",
        r"Anomaly score: +0\.61 now, 0\.83 at most",
        r"Dates: +2026-11-28 to 2026-11-30",
        r"Alert subscription: +Immediate alerts",
        r"Service +Region +Account +Usage type",
        r"Amazon Elastic Compute Cloud - Compute  us-east-1  123456789012 \(payments-prod\)"
        r"  BoxUsage:c7i\.4xlarge",
    ):
        assert re.search(f"^{row}$", text, re.MULTILINE), row
    # The lead figure: the total impact, then how far over the expected spend it is.
    lead = text.split("Hello,\n\n", 1)[1].splitlines()[:2]
    assert lead == ["892.20 USD above expected", "+929% over the expected 96.00 USD"]


def test_the_bar_is_actual_spend_with_the_expected_spend_marked() -> None:
    text = anomaly_text(alert_from(), topic_arn=TOPIC)
    # 96 of 988.20 is 9.7% of the bar: the mark after 3 of 30 cells, the whole bar filled.
    assert "[###|###########################]" in text
    assert "  # Actual spend 988.20 USD" in text
    assert "  | Expected spend 96.00 USD" in text
    below = alert_from(impact={"totalActualSpend": 50, "totalExpectedSpend": 100})
    assert "[###############---------------|]" in anomaly_text(below)
    for missing in (
        {"impact": {"totalImpact": 5}},
        {"impact": {"totalActualSpend": 0, "totalExpectedSpend": 0}},
    ):
        assert "(the whole bar)" not in anomaly_text(alert_from(**missing))


def test_greeting_and_footer_come_from_the_routing() -> None:
    from snsmiddleware.alert_email import RecipientMatch

    routing = [RecipientMatch(ANA, ('the monitor or subscription name "Services"',))]
    text = anomaly_text(alert_from(), topic_arn=TOPIC, routing=routing)
    assert "\nHi Ana Lima,\n" in text
    assert (
        'Why you got this: the recipients entry for the monitor or subscription name "Services" '
        "matched this alert."
    ) in text
    assert "verified AWS Cost Anomaly Detection notification on the topic " + TOPIC in text


def test_root_causes_render_as_a_table_and_missing_ones_are_said() -> None:
    causes = [
        {"service": "AWS Lambda", "region": "eu-west-1", "usageType": "Request"},
        {"linkedAccount": "210987654321", "linkedAccountName": "team-b"},
    ]
    page = anomaly_html(alert_from(rootCauses=causes), topic_arn=TOPIC)
    table = page.split('class="data"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(<t[dh][^>]*>.*?)</tr>", table)
    cells = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in rows]
    assert ["Service", "Region", "Account", "Usage type"] in cells
    assert ["AWS Lambda", "eu-west-1", "(not found in the message)", "Request"] in cells
    assert [
        "(not found in the message)",
        "(not found in the message)",
        "210987654321 (team-b)",
        "(not found in the message)",
    ] in cells
    none = alert_from(rootCauses=[])
    assert "none listed in the message" in anomaly_text(none)
    assert 'class="data"' not in anomaly_html(none)
    assert ">none listed in the message</td>" in anomaly_html(none)


def test_the_anomaly_link_is_the_only_link_when_it_is_genuine() -> None:
    alert = alert_from()
    assert alert.details_url is not None
    assert _HREF.findall(anomaly_html(alert, topic_arn=TOPIC)) == [alert.details_url]
    assert LINK_OMITTED not in anomaly_text(alert, topic_arn=TOPIC)


@pytest.mark.parametrize("url", HOSTILE_CONSOLE_URLS)
def test_a_hostile_link_is_omitted_said_so_and_replaced_by_ours(url: object) -> None:
    alert = alert_from(anomalyDetailsLink=url)
    page = anomaly_html(alert, topic_arn=TOPIC)
    assert _HREF.findall(page) == [ANOMALY_CONSOLE_URLS["aws"]]
    text = anomaly_text(alert, topic_arn=TOPIC)
    assert (LINK_OMITTED in text) == (url is not None)
    assert "Some details could not be read" not in text  # the link is explained already


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("arn:aws:sns:us-east-1:123456789012:t", ANOMALY_CONSOLE_URLS["aws"]),
        ("arn:aws-cn:sns:cn-northwest-1:123456789012:t", ANOMALY_CONSOLE_URLS["aws-cn"]),
        ("arn:aws-us-gov:sns:us-gov-west-1:123456789012:t", ANOMALY_CONSOLE_URLS["aws-us-gov"]),
        ("arn:aws-iso:sns:us-iso-east-1:123456789012:t", None),
        ("not a topic", None),
    ],
)
def test_our_fallback_link_is_the_console_of_the_topics_partition(
    topic: str, expected: str | None
) -> None:
    assert default_console_url(topic) == expected
    page = anomaly_html(alert_from(anomalyDetailsLink=...), topic_arn=topic)
    assert _HREF.findall(page) == ([] if expected is None else [expected])


def test_an_unreadable_alert_says_why_and_shows_nothing_it_held() -> None:
    text = to_json(anomaly_document()).replace('"maxScore": 0.83', '"maxScore": NaN')
    alert = parse_anomaly_alert(anomaly_notification(text))
    plain = anomaly_text(alert, topic_arn=TOPIC)
    assert "could not be read as JSON (NaN is not a number an alert can hold)" in plain
    before_raw = plain.split("--- Original message")[0]
    assert "Services" not in before_raw and "892" not in before_raw
    assert text in plain


def test_the_built_email_is_one_proven_envelope() -> None:
    notification = anomaly_notification(to_json(anomaly_document()))
    alert = parse_anomaly_alert(notification)
    email = build_anomaly_email(alert, notification, sender=SENDER, recipients=[ANA])
    verify_headers(email)
    assert email["Message-ID"] == f"<cost-anomaly.{notification.message_id}@example.com>"
    assert email["Subject"] == anomaly_subject(alert)
    assert [part.get_content_type() for part in email.iter_parts()] == ["text/plain", "text/html"]


_HOSTILE_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", categories=None),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(
    monitor=_HOSTILE_TEXT,
    service=_HOSTILE_TEXT,
    subscription=_HOSTILE_TEXT,
    usage=_HOSTILE_TEXT,
)
def test_any_names_stay_single_escaped_values(
    monitor: str, service: str, subscription: str, usage: str
) -> None:
    alert = alert_from(
        monitorName=monitor,
        dimensionalValue=service,
        subscriptionName=subscription,
        rootCauses=[{"service": service, "usageType": usage}],
    )
    notification = anomaly_notification(to_json(anomaly_document()))
    email = build_anomaly_email(alert, notification, sender=SENDER, recipients=[ANA])
    verify_headers(email)
    subject = str(email["Subject"])
    assert "\n" not in subject and "\r" not in subject
    text_part = email.get_body(("plain",))
    html_part = email.get_body(("html",))
    assert text_part is not None and html_part is not None
    summary = text_part.get_content().split("--- Original message")[0]
    # Our lines only: the summary part has exactly the lines we write, whatever the names.
    assert len(summary.splitlines()) == len(
        anomaly_text(alert_from(), topic_arn=TOPIC).split("--- Original message")[0].splitlines()
    )
    page = html_part.get_content()
    assert _HREF.findall(page) == [alert.details_url]
    body = page.split("<body", 1)[1]
    assert re.findall(r"<(/?[a-z0-9]+)", body) == re.findall(
        r"<(/?[a-z0-9]+)", anomaly_html(alert_from()).split("<body", 1)[1]
    )
    assert html_module.escape(single_line(usage, MAX_CELL_CHARS)) in page
