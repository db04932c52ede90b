"""The Cost Anomaly Detection parser on its own: every published example reads exactly (Decimal
amounts, both spellings of the dimension, the EventBridge envelope), optional fields may be
missing, wrong or absurd values are left out rather than guessed, JSON that two parsers could
read differently is not believed (yet a genuine alert is never dropped), what is not an
anomaly alert is refused with its own code, and only genuine console URLs are kept."""

from __future__ import annotations

import dataclasses
import datetime
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snsmiddleware.anomaly import (
    CONSOLE_HOSTS,
    MAX_ROOT_CAUSES,
    PARSED_FIELDS,
    REQUIRED_FIELDS,
    AnomalyAlert,
    genuine_console_url,
    parse_anomaly_alert,
    parse_cost_alert,
)
from snsmiddleware.budgets import BudgetAlert, Money
from snsmiddleware.errors import (
    BudgetAdjustmentError,
    NotABudgetAlertError,
    NotAnAnomalyAlertError,
)
from snsmiddleware.reasons import Reason

from ._anomaly_helpers import (
    RealAnomaly,
    anomaly_document,
    anomaly_notification,
    anomaly_text,
    real_anomaly_params,
    to_json,
)
from ._budget_helpers import REAL_ALERTS
from ._hostile_urls import GENUINE_CONSOLE_URLS, HOSTILE_CONSOLE_URLS


def parse(text: str) -> AnomalyAlert:
    return parse_anomaly_alert(anomaly_notification(text))


# --- the published examples ------------------------------------------------------------------


@pytest.mark.parametrize("real", real_anomaly_params)
def test_every_published_example_reads_exactly(real: RealAnomaly) -> None:
    alert = parse(real.message)
    assert alert.anomaly_id == real.anomaly_id
    assert alert.account_id == real.account_id
    assert alert.monitor_name == real.monitor_name
    assert alert.dimension_value == real.dimension_value
    assert (alert.start_date, alert.end_date) == (real.start_date, real.end_date)
    assert (alert.max_score, alert.current_score) == (real.max_score, real.current_score)
    assert alert.total_impact == Money(real.total_impact, "USD")
    assert alert.total_actual_spend == Money(real.total_actual_spend, "USD")
    assert alert.total_expected_spend == Money(real.total_expected_spend, "USD")
    assert alert.total_impact_percentage == real.total_impact_percentage
    [cause] = alert.root_causes
    assert (cause.service, cause.region, cause.linked_account, cause.usage_type) == (
        real.root_cause
    )
    assert alert.details_url == real.details_url
    assert alert.raw_text == real.message
    assert alert.unparsed == () and alert.complete and alert.unreadable is None


def test_amounts_are_exact_decimals_never_floats() -> None:
    alert = parse(
        anomaly_text(
            impact={
                "maxImpact": Decimal("0.1"),
                "totalImpact": Decimal("0.30000000000000004"),
                "totalActualSpend": Decimal("1301"),
                "totalExpectedSpend": Decimal("1E+2"),
                "totalImpactPercentage": Decimal("333.67"),
            }
        )
    )
    amounts = [
        alert.max_impact,
        alert.total_impact,
        alert.total_actual_spend,
        alert.total_expected_spend,
    ]
    assert all(isinstance(m, Money) and type(m.amount) is Decimal for m in amounts)
    assert alert.max_impact == Money(Decimal("0.1"), "USD")
    assert alert.total_impact == Money(Decimal("0.30000000000000004"), "USD")
    assert alert.total_actual_spend is not None
    assert str(alert.total_actual_spend) == "1,301.00 USD"  # an integer literal is a Decimal
    assert str(alert.total_expected_spend) == "100.00 USD"
    assert type(alert.max_score) is Decimal and type(alert.total_impact_percentage) is Decimal


def test_the_model_is_frozen() -> None:
    alert = parse(anomaly_text())
    with pytest.raises(dataclasses.FrozenInstanceError):
        alert.monitor_name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        alert.root_causes[0].service = "other"  # type: ignore[misc]


def test_the_observed_shape_reads_completely() -> None:
    alert = parse(anomaly_text())
    assert alert.complete
    assert alert.account_name == "payments-prod"
    assert alert.monitor_type == "DIMENSIONAL"
    assert alert.subscription_name == "Immediate alerts"
    assert alert.routing_names == ("Services", "Immediate alerts")
    assert alert.start_date == datetime.date(2026, 11, 28)
    assert alert.max_impact == Money(Decimal("412.5"), "USD")


# --- spellings, envelopes, optional fields ------------------------------------------------


def test_both_spellings_of_the_dimension_are_read() -> None:
    sns = parse(anomaly_text())
    eventbridge = parse(
        anomaly_text(dimensionalValue=..., dimensionValue="Amazon Elastic Compute Cloud - Compute")
    )
    assert sns.dimension_value == eventbridge.dimension_value
    assert eventbridge.complete
    same = parse(anomaly_text(dimensionValue="Amazon Elastic Compute Cloud - Compute"))
    assert same.dimension_value == "Amazon Elastic Compute Cloud - Compute" and same.complete


def test_two_different_dimensions_are_ambiguous_and_left_out() -> None:
    alert = parse(anomaly_text(dimensionValue="AWS Lambda"))
    assert alert.dimension_value is None
    assert alert.unparsed == ("dimension_value",)


def test_an_eventbridge_event_is_read_through_its_detail() -> None:
    event = {"source": "aws.ce", "detail-type": "Anomaly Detected", "detail": anomaly_document()}
    assert parse(to_json(event)) == dataclasses.replace(
        parse(anomaly_text()), raw_text=to_json(event)
    )


def test_an_event_from_another_source_is_not_unwrapped() -> None:
    event = {
        "source": "aws.health",
        "detail-type": "Anomaly Detected",
        "detail": anomaly_document(),
    }
    with pytest.raises(NotAnAnomalyAlertError):
        parse(to_json(event))


def test_a_custom_monitor_without_optional_fields_is_complete() -> None:
    minimal = {
        key: value
        for key, value in anomaly_document(monitorType="CUSTOM").items()
        if key in ("anomalyId", "accountId", "monitorArn", "monitorType", "anomalyScore")
    }
    minimal["impact"] = {"maxImpact": Decimal("5")}
    alert = parse(to_json(minimal))
    assert alert.complete
    assert alert.monitor_type == "CUSTOM"
    for absent in (
        alert.dimension_value,
        alert.monitor_name,
        alert.total_impact,
        alert.total_impact_percentage,
        alert.start_date,
        alert.details_url,
    ):
        assert absent is None
    assert alert.root_causes == ()
    assert alert.routing_names == ()


def test_nulls_and_empty_strings_count_as_absent() -> None:
    alert = parse(
        anomaly_text(monitorName=None, accountName="", rootCauses=None, anomalyDetailsLink=None)
    )
    assert alert.complete
    assert (alert.monitor_name, alert.account_name, alert.details_url) == (None, None, None)
    assert alert.root_causes == ()


@pytest.mark.parametrize("missing", ["anomalyId", "accountId", "monitorArn", "anomalyScore"])
def test_a_field_aws_always_sends_is_reported_when_missing(missing: str) -> None:
    alert = parse(anomaly_text(**{missing: ...}))
    assert not alert.complete
    assert set(alert.unparsed) <= set(REQUIRED_FIELDS)
    assert alert.unparsed


def test_root_causes_may_be_partial_empty_or_many() -> None:
    partial = parse(
        anomaly_text(rootCauses=[{"service": "AWS Lambda"}, {}, {"region": "eu-west-1"}])
    )
    assert [(c.service, c.region) for c in partial.root_causes] == [
        ("AWS Lambda", None),
        (None, "eu-west-1"),
    ]
    assert partial.complete
    assert parse(anomaly_text(rootCauses=[])).root_causes == ()
    contribution = parse(anomaly_text(rootCauses=[{"impact": {"contribution": Decimal("601")}}]))
    assert contribution.root_causes[0].contribution == Money(Decimal("601"), "USD")

    many = parse(
        anomaly_text(rootCauses=[{"service": f"s{i}"} for i in range(MAX_ROOT_CAUSES + 5)])
    )
    assert len(many.root_causes) == MAX_ROOT_CAUSES
    assert many.unparsed == ("root_causes",)


# --- wrong types and absurd values: left out, named -------------------------------------------


WRONG = [
    pytest.param({"accountId": 123456789012}, "account_id", id="account-as-number"),
    pytest.param({"accountId": "12345678901234"}, "account_id", id="account-too-long"),
    pytest.param({"accountId": "１２３"}, "account_id", id="account-fullwidth-digits"),
    pytest.param({"monitorName": ["Services"]}, "monitor_name", id="name-as-list"),
    pytest.param({"monitorName": "x" * 1025}, "monitor_name", id="name-too-long"),
    pytest.param({"monitorName": "bad \ud800 name"}, "monitor_name", id="lone-surrogate"),
    pytest.param({"subscriptionName": True}, "subscription_name", id="name-as-bool"),
    pytest.param({"anomalyStartDate": "2026-02-30"}, "start_date", id="unreal-date"),
    pytest.param({"anomalyEndDate": "30/11/2026"}, "end_date", id="other-date-format"),
    pytest.param({"anomalyEndDate": 20261130}, "end_date", id="date-as-number"),
    pytest.param({"anomalyScore": [1, 2]}, "max_score", id="score-not-an-object"),
    pytest.param(
        {"anomalyScore": {"maxScore": "0.8", "currentScore": Decimal("0.6")}},
        "max_score",
        id="score-as-string",
    ),
    pytest.param(
        {"anomalyScore": {"maxScore": Decimal("0.8"), "currentScore": Decimal("-0.1")}},
        "current_score",
        id="negative-score",
    ),
    pytest.param({"impact": "892.20"}, "total_impact", id="impact-not-an-object"),
    pytest.param(
        {"impact": {"maxImpact": Decimal("1"), "totalImpact": "892.20"}},
        "total_impact",
        id="amount-as-string",
    ),
    pytest.param(
        {"impact": {"maxImpact": Decimal("1"), "totalImpact": True}},
        "total_impact",
        id="amount-as-bool",
    ),
    pytest.param(
        {"impact": {"maxImpact": Decimal("1"), "totalActualSpend": Decimal("1E+15")}},
        "total_actual_spend",
        id="absurd-amount",
    ),
    pytest.param(
        {"impact": {"maxImpact": Decimal("1"), "totalImpactPercentage": Decimal("-1E+20")}},
        "total_impact_percentage",
        id="absurd-percentage",
    ),
    pytest.param({"rootCauses": {"service": "x"}}, "root_causes", id="causes-not-a-list"),
    pytest.param({"rootCauses": ["AWS Lambda"]}, "root_causes", id="cause-not-an-object"),
    pytest.param({"rootCauses": [{"service": 7}]}, "root_causes", id="cause-field-wrong"),
    pytest.param(
        {"rootCauses": [{"impact": {"contribution": "601"}}]}, "root_causes", id="contribution"
    ),
    pytest.param({"anomalyDetailsLink": "https://evil.example/"}, "details_url", id="link"),
]


@pytest.mark.parametrize(("overrides", "field"), WRONG)
def test_a_wrong_or_absurd_value_is_left_out_and_named(
    overrides: dict[str, Any], field: str
) -> None:
    alert = parse(anomaly_text(**overrides))
    assert field in alert.unparsed
    assert getattr(alert, field) in (None, ())
    assert alert.unreadable is None
    # Everything else still reads.
    assert alert.anomaly_id == "0b7f6a3e-2d6c-4a55-9c1e-6f3b1d2a9e10"


def test_a_refused_link_is_reported_as_omitted() -> None:
    alert = parse(anomaly_text(anomalyDetailsLink="https://console.aws.amazon.com.evil.example/"))
    assert alert.details_url is None
    assert alert.details_url_omitted
    assert not parse(anomaly_text(anomalyDetailsLink=None)).details_url_omitted


# --- JSON that is not believed -------------------------------------------------------------

GOOD = anomaly_text()
UNREADABLE = [
    pytest.param(
        GOOD.replace(
            '"monitorName": "Services"', '"monitorName": "Services", "monitorName": "Other"'
        ),
        "appears twice",
        id="duplicate-key",
    ),
    pytest.param(
        GOOD.replace('"maxScore": 0.83', '"maxScore": 0.83, "maxScore": 0.01'),
        "appears twice",
        id="duplicate-nested-key",
    ),
    pytest.param(GOOD.replace('"totalImpact": 892.2', '"totalImpact": NaN'), "NaN", id="nan"),
    pytest.param(
        GOOD.replace('"totalImpact": 892.2', '"totalImpact": Infinity'), "Infinity", id="infinity"
    ),
    pytest.param(
        GOOD.replace('"totalImpact": 892.2', '"totalImpact": -Infinity'),
        "Infinity",
        id="minus-infinity",
    ),
    pytest.param(
        GOOD.replace('"totalImpact": 892.2', '"totalImpact": ' + "9" * 5000),
        "more than 40",
        id="huge-integer",
    ),
    pytest.param(
        GOOD.replace('"totalImpact": 892.2', '"totalImpact": 1e999999999'),
        None,
        id="huge-exponent",
    ),
    pytest.param(
        GOOD.replace('"totalImpact": 892.2', '"totalImpact": 0e-999999999'),
        None,
        id="tiny-exponent",
    ),
    pytest.param(
        GOOD.replace('"totalImpact": 892.2', '"totalImpact": 0.' + "1" * 60),
        "more than 40",
        id="long-fraction",
    ),
    pytest.param(
        GOOD[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "nested too deeply",
        id="deep-nesting",
    ),
    pytest.param(
        GOOD[:-1] + ', "padding": "' + "x" * (256 * 1024) + '"}', "256 KiB", id="over-256-kib"
    ),
    pytest.param(GOOD + " trailing", "Extra data", id="trailing-garbage"),
    pytest.param(GOOD[:-1], "Expecting", id="truncated"),
    pytest.param(GOOD.replace('"Services"', "'Services'"), "Expecting", id="single-quotes"),
]


@pytest.mark.parametrize(("text", "why"), UNREADABLE)
def test_unreadable_json_that_names_an_anomaly_is_kept_whole_and_believed_in_nothing(
    text: str, why: str | None
) -> None:
    alert = parse(text)
    if why is None:  # a short literal of an absurd number: readable JSON, an absurd amount
        assert alert.unreadable is None and alert.total_impact is None
        assert "total_impact" in alert.unparsed
        return
    assert alert.unreadable is not None and why in alert.unreadable
    assert alert.unparsed == PARSED_FIELDS and not alert.complete
    assert alert.monitor_name is None and alert.account_id is None
    assert alert.routing_names == () and alert.root_causes == ()
    assert alert.raw_text == text


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"alarm": 1, "alarm": 2}', id="duplicate-key"),
        pytest.param('{"value": NaN}', id="nan"),
        pytest.param("{" * 10, id="broken"),
        pytest.param('{"anomalyId": "x", "anomalyId": "y"}', id="only-the-id"),
    ],
)
def test_unreadable_json_that_does_not_name_an_anomaly_is_refused(text: str) -> None:
    with pytest.raises(NotAnAnomalyAlertError) as caught:
        parse(text)
    assert caught.value.status == 422
    assert "not readable JSON" in caught.value.detail


# --- not an anomaly alert -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(REAL_ALERTS[0].message, id="budgets-alert"),
        pytest.param("hello world", id="plain-text"),
        pytest.param("", id="empty"),
        pytest.param('[{"anomalyId": "x", "impact": {}}]', id="json-array"),
        pytest.param('"anomalyId"', id="json-string"),
        pytest.param('{"AlarmName": "cpu", "NewStateValue": "ALARM"}', id="cloudwatch-alarm"),
        pytest.param('{"anomalyId": "x"}', id="id-alone"),
        pytest.param('{"impact": {"totalImpact": 1}, "monitorArn": "arn"}', id="no-id"),
        pytest.param(
            '{"previousBudgetLimit": {"amount": "1"}, "currentBudgetLimit": {"amount": "2"}}',
            id="auto-adjusting-budget",
        ),
    ],
)
def test_what_is_not_an_anomaly_alert_is_refused_with_its_own_code(text: str) -> None:
    with pytest.raises(NotAnAnomalyAlertError) as caught:
        parse(text)
    error = caught.value
    assert isinstance(error, NotABudgetAlertError)  # one "not an alert" case for callers
    assert (error.status, error.reason) == (422, Reason.NOT_AN_ANOMALY_ALERT)
    assert error.answer().status_line.startswith("422 ")


def test_parse_cost_alert_tells_the_two_kinds_apart() -> None:
    assert isinstance(parse_cost_alert(anomaly_notification(anomaly_text())), AnomalyAlert)
    budget = parse_cost_alert(anomaly_notification(REAL_ALERTS[0].message))
    assert isinstance(budget, BudgetAlert) and budget.budget_name == "Test Budget"
    with pytest.raises(NotABudgetAlertError) as other:
        parse_cost_alert(anomaly_notification('{"AlarmName": "cpu"}'))
    assert other.value.reason == Reason.NOT_A_BUDGET_ALERT
    with pytest.raises(BudgetAdjustmentError):
        parse_cost_alert(
            anomaly_notification(json.dumps({"previousBudgetLimit": {}, "currentBudgetLimit": {}}))
        )
    unreadable = parse_cost_alert(anomaly_notification(UNREADABLE[0].values[0]))
    assert isinstance(unreadable, AnomalyAlert) and unreadable.unreadable is not None


# --- console links --------------------------------------------------------------------------


@pytest.mark.parametrize("url", GENUINE_CONSOLE_URLS)
def test_genuine_console_urls_are_kept(url: str) -> None:
    assert genuine_console_url(url) == url
    assert parse(anomaly_text(anomalyDetailsLink=url)).details_url == url


@pytest.mark.parametrize("url", HOSTILE_CONSOLE_URLS)
def test_hostile_console_urls_are_refused(url: object) -> None:
    assert genuine_console_url(url) is None
    alert = parse(anomaly_text(anomalyDetailsLink=url))
    assert alert.details_url is None
    assert alert.details_url_omitted == (url is not None)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.builds(
            lambda host, rest: f"https://{host}{rest}",
            st.sampled_from(sorted(CONSOLE_HOSTS) + ["evil.example", "console.aws.amazon.com.x"]),
            st.text(alphabet=st.characters(codec="utf-8"), max_size=80),
        ),
    )
)
def test_an_accepted_console_url_is_always_plain_https_on_a_console_host(url: str) -> None:
    from urllib.parse import urlsplit

    accepted = genuine_console_url(url)
    if accepted is None:
        return
    parts = urlsplit(accepted)
    assert parts.scheme == "https" and parts.hostname in CONSOLE_HOSTS
    assert parts.netloc == parts.hostname  # no user information, no port
    assert parts.path.split("/")[1] in ("cost-management", "costmanagement")
    assert accepted.isascii() and accepted.isprintable() and " " not in accepted
    assert not {"%", "\\", "@", '"', "<", ">", "'"} & set(accepted)


# --- hostile input never crashes the parser ----------------------------------------------

_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=-(10**20), max_value=10**20
    )
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
_KEYS = [
    "accountId",
    "accountName",
    "anomalyStartDate",
    "anomalyEndDate",
    "dimensionalValue",
    "dimensionValue",
    "monitorArn",
    "monitorName",
    "monitorType",
    "anomalyScore",
    "impact",
    "rootCauses",
    "anomalyDetailsLink",
    "subscriptionId",
    "subscriptionName",
]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(_KEYS), _JSON_VALUES, max_size=len(_KEYS)))
def test_any_values_in_an_alert_parse_to_typed_fields_or_none(values: dict[str, Any]) -> None:
    alert = parse(anomaly_text(**values))
    assert alert.unreadable is None
    for name in ("max_impact", "total_impact", "total_actual_spend", "total_expected_spend"):
        value = getattr(alert, name)
        assert value is None or (type(value.amount) is Decimal and value.amount.is_finite())
    for name in ("monitor_name", "account_name", "dimension_value", "subscription_name"):
        value = getattr(alert, name)
        assert value is None or (isinstance(value, str) and value.encode("utf-8"))
    assert alert.account_id is None or alert.account_id.isdigit()
    assert alert.details_url is None or genuine_console_url(alert.details_url) == alert.details_url
    assert set(alert.unparsed) <= set(PARSED_FIELDS)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_an_alert_or_a_422(text: str) -> None:
    for candidate in (text, '{"anomalyId": 1, "impact": ' + text):
        try:
            alert = parse(candidate)
        except NotAnAnomalyAlertError as exc:
            assert exc.status == 422
        else:
            assert alert.raw_text == candidate
