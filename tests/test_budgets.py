"""The Budgets alert parser (pure, no WSGI): every real variant (tests/_budget_helpers.py), the
drift the parser must tolerate (label case, amounts, extra lines, periods), partial alerts,
and messages that are not alerts at all (issue 3)."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal

import pytest

from snsmiddleware.budgets import (
    DEFAULT_CONSOLE_URL,
    PARSED_FIELDS,
    AlertType,
    BudgetAdjustmentError,
    BudgetAlert,
    BudgetPeriod,
    Money,
    NotABudgetAlertError,
    is_topic_verification,
    parse_budget_alert,
    parse_money,
)
from snsmiddleware.errors import SnsError

from ._budget_helpers import REAL_ALERTS, RealAlert, notification, real_alert_params

TEMPLATE = REAL_ALERTS[0]


def parse(message: str, subject: str | None = TEMPLATE.subject) -> BudgetAlert:
    return parse_budget_alert(notification(message, subject=subject))


def edited(old: str, new: str, base: str = TEMPLATE.message) -> str:
    assert old in base, old
    return base.replace(old, new)


# --- the real variants ----------------------------------------------------------------------


@pytest.mark.parametrize("real", real_alert_params)
def test_every_real_variant_parses_completely(real: RealAlert) -> None:
    alert = parse(real.message, real.subject)
    assert alert.unparsed == ()
    assert alert.complete
    assert alert.date == real.date
    assert alert.account_id == real.account_id
    assert alert.budget_name == real.budget_name
    assert alert.budget_type == "Cost"
    assert alert.budgeted_amount == Money(real.budgeted, "USD")
    assert alert.alert_type is real.alert_type
    assert alert.threshold == Money(real.threshold, "USD")
    assert alert.threshold_percent == real.threshold_percent
    assert alert.amount == Money(real.amount, "USD")
    assert alert.period is real.period
    assert alert.dashboard_url == real.dashboard_url
    assert alert.console_url == real.dashboard_url
    assert alert.subject == real.subject
    assert alert.raw_text == real.message


@pytest.mark.parametrize("real", real_alert_params)
def test_real_variants_parse_without_a_subject(real: RealAlert) -> None:
    alert = parse(real.message, subject=None)
    assert alert.complete
    assert alert.budget_name == real.budget_name


def test_amounts_are_decimals_never_floats() -> None:
    alert = parse(REAL_ALERTS[3].message)  # "FORECASTED Amount: $0.5"
    assert alert.amount is not None
    assert type(alert.amount.amount) is Decimal
    assert alert.amount.amount == Decimal("0.5")
    assert str(alert.amount) == "0.50 USD"
    assert alert.threshold_percent is not None and type(alert.threshold_percent) is Decimal


def test_labelled_lines_win_over_the_sentence() -> None:
    """Edited examples disagree (sentence $1.03, line $0.5); the labelled lines are the data."""
    alert = parse(REAL_ALERTS[3].message)
    assert "$1.03" in alert.raw_text
    assert alert.amount == Money(Decimal("0.5"), "USD")


# --- tolerated drift ------------------------------------------------------------------------


def test_labels_match_case_insensitively_like_the_2020_sample() -> None:
    message = edited("Alert Type: ACTUAL\n", "alert type: Actual\n")
    message = edited("ACTUAL Amount: $0.59", "Actual Amount: $0.59", message)
    message = edited("Budget Name:", "BUDGET NAME:", message)
    alert = parse(message)
    assert alert.complete
    assert alert.alert_type is AlertType.ACTUAL
    assert alert.amount == Money(Decimal("0.59"), "USD")
    assert alert.budget_name == "Test Budget"


def test_unknown_extra_lines_and_crlf_are_tolerated() -> None:
    message = edited("Budget Type: Cost\n", "Budget Type: Cost\nCost Category: eng\nNew Line\n")
    message = message.replace("\n", "\r\n") + "\r\nSome footer: with a colon\r\n"
    alert = parse(message)
    assert alert.complete
    assert alert.budget_type == "Cost"
    assert alert.raw_text == message


@pytest.mark.parametrize(
    ("sentence", "period"),
    [
        pytest.param("for the current month", BudgetPeriod.MONTH, id="month"),
        pytest.param("for the current quarter", BudgetPeriod.QUARTER, id="quarter"),
        pytest.param("for the current year", BudgetPeriod.YEAR, id="year"),
        pytest.param("per day", BudgetPeriod.DAY, id="day"),
        pytest.param("FOR THE CURRENT QUARTER", BudgetPeriod.QUARTER, id="upper-case"),
    ],
)
def test_period_wording(sentence: str, period: BudgetPeriod) -> None:
    alert = parse(edited("for the current month", sentence))
    assert alert.period is period


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("$0.5", Money(Decimal("0.5"), "USD"), id="one-decimal"),
        pytest.param("$12", Money(Decimal("12"), "USD"), id="integer"),
        pytest.param("$1,234,567.891", Money(Decimal("1234567.891"), "USD"), id="thousands"),
        pytest.param("USD 10.00", Money(Decimal("10.00"), "USD"), id="code-first"),
        pytest.param("10.00 EUR", Money(Decimal("10.00"), "EUR"), id="code-last"),
        pytest.param("€3", Money(Decimal("3"), "EUR"), id="euro-sign"),
        pytest.param("  $0.16  ", Money(Decimal("0.16"), "USD"), id="spaces"),
        pytest.param("0.16", None, id="no-currency"),
        pytest.param("$NaN", None, id="nan"),
        pytest.param("$Infinity", None, id="infinity"),
        pytest.param("$1e5", None, id="exponent"),
        pytest.param("$-1", None, id="negative"),
        pytest.param("$1,23", None, id="bad-grouping"),
        pytest.param("$ 0.16 USD", None, id="two-currencies"),
        pytest.param("$" + "9" * 400, None, id="absurdly-long"),
        pytest.param("", None, id="empty"),
    ],
)
def test_parse_money(text: str, expected: Money | None) -> None:
    assert parse_money(text) == expected


def test_money_formats_with_at_least_two_decimals() -> None:
    assert str(Money(Decimal("1234.5"), "USD")) == "1,234.50 USD"
    assert str(Money(Decimal("0.125"), "USD")) == "0.125 USD"


def test_percentage_threshold_is_converted_to_an_amount() -> None:
    alert = parse(edited("Alert Threshold: > $0.16", "Alert Threshold: > 80%"))
    assert alert.threshold_percent == Decimal("80.00")
    assert alert.threshold == Money(Decimal("0.16"), "USD")
    assert alert.complete


def test_zero_budget_has_no_percentage_but_is_complete() -> None:
    alert = parse(edited("Budgeted Amount: $0.20", "Budgeted Amount: $0.00"))
    assert alert.threshold_percent is None
    assert alert.complete


def test_dashboard_link_outside_the_aws_console_is_not_trusted() -> None:
    alert = parse(
        edited(
            "[1] https://console.aws.amazon.com/billing/home#/budgets",
            "[1] https://console.aws.amazon.com.evil.example/budgets",
        )
    )
    assert alert.dashboard_url is None
    assert alert.unparsed == ("dashboard_url",)
    assert alert.console_url == DEFAULT_CONSOLE_URL


def test_date_is_read_without_the_locale_and_rejects_impossible_dates() -> None:
    assert parse(edited("September 26, 2022", "Sept 26, 2022")).date == datetime.date(2022, 9, 26)
    alert = parse(edited("September 26, 2022", "February 30, 2022"))
    assert alert.date is None
    assert alert.unparsed == ("date",)


# --- partial alerts: still alerts, with what is missing named ---------------------------------


def test_alert_with_missing_lines_is_partial_not_rejected() -> None:
    message = (
        "AWS Budget Notification September 26, 2022\n"
        "AWS Account 017790921725\n\nSomething changed in the template.\n"
    )
    alert = parse(message)
    assert alert.budget_name == "Test Budget"  # from the Subject
    assert alert.account_id == "017790921725"
    assert set(alert.unparsed) == {
        "budget_type",
        "budgeted_amount",
        "alert_type",
        "threshold",
        "amount",
        "period",
        "dashboard_url",
    }
    assert not alert.complete
    assert alert.raw_text == message


def test_subject_alone_identifies_an_alert_with_unknown_wording() -> None:
    """Usage or RI budgets may word their text differently; the Subject still says Budgets."""
    alert = parse(
        "Your usage budget went over.", subject="AWS Budgets: ri-usage has exceeded your alert"
    )
    assert alert.budget_name == "ri-usage"
    assert set(alert.unparsed) == set(PARSED_FIELDS) - {"budget_name"}


def test_unknown_alert_type_is_unparsed() -> None:
    alert = parse(edited("Alert Type: ACTUAL", "Alert Type: SOMEDAY"))
    assert alert.alert_type is None
    assert alert.amount is None
    assert set(alert.unparsed) == {"alert_type", "amount"}


def test_alert_type_inferred_from_the_only_amount_line_when_its_label_is_missing() -> None:
    alert = parse(edited("Alert Type: ACTUAL\n", ""))
    assert alert.alert_type is AlertType.ACTUAL
    assert alert.complete


def test_conflicting_repeated_label_is_unparsed_not_guessed() -> None:
    """A look-alike line (say, from user text) must not silently replace the real value."""
    message = edited("ACTUAL Amount: $0.59\n", "ACTUAL Amount: $0.59\nACTUAL Amount: $0.01\n")
    alert = parse(message)
    assert alert.amount is None
    assert alert.unparsed == ("amount",)
    same = parse(edited("Budget Type: Cost\n", "Budget Type: Cost\nBudget Type: Cost\n"))
    assert same.complete


def test_budget_name_keeps_hostile_text_verbatim_for_the_renderer_to_escape() -> None:
    name = "<script>alert(1)</script> & co: \"quotes\" 'x'"
    alert = parse(edited("Budget Name: Test Budget", f"Budget Name: {name}"))
    assert alert.budget_name == name


@pytest.mark.parametrize(
    "separator", ["\r", "\u2028", "\x85", "\x0b"], ids=["cr", "u2028", "nel", "vt"]
)
def test_budget_name_never_spans_lines(separator: str) -> None:
    alert = parse(
        edited(
            "Budget Name: Test Budget",
            f"Budget Name: Test Budget{separator}Alert Type: FORECASTED",
        )
    )
    assert alert.budget_name == "Test Budget"
    assert alert.alert_type is None  # ACTUAL vs the injected FORECASTED: ambiguous


# --- not alerts -----------------------------------------------------------------------------


def test_auto_adjusting_budget_json_is_not_an_alert() -> None:
    message = json.dumps(
        {
            "budgetName": "auto",
            "previousBudgetLimit": {"amount": "100.0", "unit": "USD"},
            "currentBudgetLimit": {"amount": "120.0", "unit": "USD"},
        }
    )
    with pytest.raises(BudgetAdjustmentError) as info:
        parse(message, subject="AWS Budgets: auto has exceeded your alert threshold")
    assert info.value.status == 422
    assert info.value.reason == "budget_auto_adjustment"
    assert isinstance(info.value, NotABudgetAlertError)


@pytest.mark.parametrize(
    ("message", "subject"),
    [
        pytest.param("", None, id="empty"),
        pytest.param("hello", None, id="plain-text"),
        pytest.param("hello", "Some other subject", id="other-subject"),
        pytest.param('{"AlarmName": "x"}', None, id="other-json"),
        pytest.param('{"a": 1}', TEMPLATE.subject, id="json-with-budgets-subject"),
        pytest.param("[1, 2]", None, id="json-array"),
        pytest.param("Your SNS topic is verified.", "SNS Topic Verified!", id="verification"),
        pytest.param("x" * 256 * 1024, None, id="256-kib"),
        pytest.param("AWS Budget", None, id="truncated-header"),
        pytest.param("hi", "AWS Budgets: " + " " * 100_000 + "x", id="huge-subject"),
        pytest.param("{" * 100_000, None, id="deep-brackets"),
    ],
)
def test_non_alerts_raise_a_4xx(message: str, subject: str | None) -> None:
    with pytest.raises(NotABudgetAlertError) as info:
        parse(message, subject)
    assert isinstance(info.value, SnsError)
    assert 400 <= info.value.status < 500
    assert not info.value.transient


def test_hostile_long_text_parses_quickly_enough_to_finish() -> None:
    """Patterns must stay linear: a 256 KiB line of near-misses still parses (no timing
    assertion; a quadratic pattern would simply not finish in the suite's time)."""
    junk = "associated with your " * 12_000 + "AWS Budgets: " * 1000
    alert = parse("AWS Budget Notification\n" + junk, subject=None)
    assert alert.budget_name is None


def test_topic_verification_detection() -> None:
    assert is_topic_verification(notification("x", subject="SNS Topic Verified!"))
    assert not is_topic_verification(notification("x", subject="sns topic verified!"))
    assert not is_topic_verification(notification("x"))
