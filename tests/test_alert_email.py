"""The budget-alert email's facts and its two renderings, without a browser: the lead number,
the bar's geometry, the console link to this budget, the greeting and the footer, and the
reusable view model (issue 14, section 2). The laid-out page is tested in
``test_email_render.py``."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from email import message_from_bytes, policy
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

import pytest
import webtest

from snsmiddleware import SnsMiddleware
from snsmiddleware.alert_email import (
    BudgetFacts,
    RecipientMatch,
    alert_html,
    alert_text,
    budget_alert_view,
    budget_console_url,
    format_share,
    greeting,
)
from snsmiddleware.budget_app import BudgetApp
from snsmiddleware.budgets import parse_budget_alert
from snsmiddleware.email_view import (
    Bar,
    EmailView,
    Link,
    Table,
    Tone,
    render_html,
    render_text,
    text_bar,
)
from snsmiddleware.mail import FileOutbox
from snsmiddleware.testing import MessageSigner, post_sns

from ._budget_helpers import REAL_ALERTS, notification
from ._email_kinds import (
    EMAIL_KINDS,
    EMAIL_KINDS_BY_ID,
    EmailKind,
    build_email,
    html_part,
    synthetic_alert,
    text_part,
)
from .conftest import PATH

COMMERCIAL = "https://console.aws.amazon.com/costmanagement/home#/budgets/details?name="
CHINA = "https://console.amazonaws.cn/billing/home#/budgets/details?name="


# --- the console link to this budget ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        pytest.param("Test Budget", "Test%20Budget", id="space"),
        pytest.param("a&b=c#d?e/f%g+h", "a%26b%3Dc%23d%3Fe%2Ff%25g%2Bh", id="url-syntax"),
        pytest.param("équipe-données", "%C3%A9quipe-donn%C3%A9es", id="unicode"),
        pytest.param('x"><img src=y>', "x%22%3E%3Cimg%20src%3Dy%3E", id="markup"),
    ],
)
def test_the_link_names_this_budget_url_encoded_whole(name: str, encoded: str) -> None:
    assert budget_console_url(name) == COMMERCIAL + encoded
    assert budget_console_url(name, "aws-cn") == CHINA + encoded


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("a:b", id="colon"),
        pytest.param("a\\b", id="backslash"),
        pytest.param("x/action/y", id="action"),
        pytest.param("<SCRIPT>x</script>", id="script"),
        pytest.param("a\nb", id="line-break"),
        pytest.param("a\u202eb", id="bidi"),
        pytest.param("x" * 101, id="too-long"),
        pytest.param("", id="empty"),
    ],
)
def test_no_link_to_a_name_aws_would_not_accept(name: str) -> None:
    assert budget_console_url(name) is None


def test_no_budget_link_where_there_is_no_budgets_console() -> None:
    assert budget_console_url("Test Budget", "aws-us-gov") is None
    assert budget_console_url(None) is None


def test_the_link_follows_the_partition_of_the_signed_topic() -> None:
    text = synthetic_alert(
        name="cn budget", kind="ACTUAL", budgeted="100", threshold="80", amount="90"
    )
    alert = parse_budget_alert(notification(text))
    china = alert_html(alert, topic_arn="arn:aws-cn:sns:cn-north-1:123456789012:alerts")
    assert f'href="{CHINA}cn%20budget"' in china
    assert f'href="{COMMERCIAL}cn%20budget"' not in china
    commercial = alert_text(alert, topic_arn="arn:aws:sns:eu-west-1:123456789012:alerts")
    assert f"{COMMERCIAL}cn%20budget" in commercial


def test_an_unlinkable_name_links_the_budget_list_instead() -> None:
    text = synthetic_alert(
        name="bad:name", kind="ACTUAL", budgeted="100", threshold="80", amount="90"
    )
    html = alert_html(parse_budget_alert(notification(text)))
    assert "details?name=" not in html
    assert 'href="https://console.aws.amazon.com/costmanagement/home#/budgets"' in html


# --- the lead number ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [("295", "295%"), ("5000", "5,000%"), ("0.5", "0.5%"), ("120.666", "121%"), ("9.96", "10%")],
)
def test_percentages_are_short(value: str, shown: str) -> None:
    assert format_share(Decimal(value)) == shown


@pytest.mark.parametrize("kind", [pytest.param(k, id=k.id) for k in EMAIL_KINDS])
def test_each_kind_leads_with_its_number_in_both_parts(kind: EmailKind) -> None:
    email = build_email(kind)
    text, html = text_part(email), html_part(email)
    headline = kind.figures[0]
    assert f">{headline}</h1>" in html
    body = text.split("\n\n", 2)
    assert body[2].splitlines()[0] == headline, "the number comes right after the greeting"
    for figure in kind.figures:
        assert figure in text


def test_over_budget_is_red_and_says_by_how_much() -> None:
    facts = BudgetFacts.of(parse_budget_alert(notification(REAL_ALERTS[0].message)))
    assert facts.used_percent == Decimal("295")
    assert str(facts.overage) == "0.39 USD"
    assert facts.tone is Tone.ALERT
    daily = BudgetFacts.of(parse_budget_alert(notification(REAL_ALERTS[1].message)))
    assert daily.overage is None and str(daily.remaining) == "3.30 USD"
    assert daily.tone is Tone.WARNING


@pytest.mark.parametrize(
    ("change", "headline"),
    [
        pytest.param(("Amount: $0.20", "Amount: $0"), "0.59 USD spent", id="zero"),
        pytest.param(("Amount: $0.20", "Amount: 0.20 EUR"), "0.59 USD spent", id="currency"),
        pytest.param(("Amount: $0.59", "Amount: soon"), "Alert threshold exceeded", id="amount"),
    ],
)
def test_without_comparable_amounts_there_is_no_percentage_and_no_bar(
    change: tuple[str, str], headline: str
) -> None:
    alert = parse_budget_alert(notification(REAL_ALERTS[0].message.replace(*change)))
    view = budget_alert_view(alert)
    assert view.headline == headline
    assert view.bar is None
    assert 'class="bar"' not in render_html(view)
    assert "[#" not in render_text(view)


def test_a_partly_parsed_alert_says_so_and_keeps_the_raw_text() -> None:
    text = "AWS Budget Notification May 13, 2024\nAWS Account 123456789012\nNew wording.\n"
    view = budget_alert_view(parse_budget_alert(notification(text)))
    assert view.headline == "Alert threshold exceeded"
    assert view.notes and "could not be read" in view.notes[0]
    html = render_html(view)
    assert 'class="note"' in html and "<details>" in html and "New wording." in html


# --- the bar -------------------------------------------------------------------------------


def _bar(value: str, scale: str = "100", marker: str | None = "80") -> Bar:
    return Bar(
        value=Decimal(value),
        scale=Decimal(scale),
        marker=None if marker is None else Decimal(marker),
        value_label="Spent",
        scale_label="Budget",
        marker_label=None if marker is None else "Threshold",
        tone=Tone.WARNING,
    )


def test_the_bar_is_capped_and_marks_the_threshold() -> None:
    assert _bar("34").filled == Decimal("0.34")
    assert _bar("295").filled == 1
    assert _bar("-5").filled == 0
    assert _bar("34").marked == Decimal("0.8")
    assert _bar("34", marker="150").marked == 1
    with pytest.raises(ValueError, match="positive"):
        _bar("1", scale="0")


@pytest.mark.parametrize(
    ("bar", "drawn"),
    [
        (_bar("50"), "[###############---------|------]"),
        (_bar("100"), "[########################|######]"),
        (_bar("0", marker="0"), "[|------------------------------]"),
        (_bar("20", marker=None), "[######------------------------]"),
    ],
)
def test_the_text_bar(bar: Bar, drawn: str) -> None:
    assert text_bar(bar) == drawn


def test_the_html_bar_widths_add_up_and_the_fill_matches() -> None:
    html = render_html(_view(bar=_bar("34")))
    cells = re.findall(r'<td class="bar-(fill|rest)" width="([\d.]+)%"', html)
    assert sum(Decimal(width) for _, width in cells) == 100
    assert sum(Decimal(width) for kind, width in cells if kind == "fill") == 34
    assert html.count("border-left:3px solid") == 2  # the mark, and its legend swatch


# --- greeting and footer -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("addresses", "expected"),
    [
        (["Ana Lima <ana@example.com>"], "Hi Ana Lima,"),
        (["ana@example.com"], "Hello,"),
        (["Ana <a@example.com>", "Bruno <b@example.com>"], "Hi Ana and Bruno,"),
        (["A <a@example.com>", "B <b@example.com>", "C <c@example.com>"], "Hi A, B and C,"),
        (["A <a@x.io>", "B <b@x.io>", "C <c@x.io>", "D <d@x.io>"], "Hello everyone,"),
        (["Ana <a@example.com>", "b@example.com"], "Hello everyone,"),
        ([], "Hello,"),
    ],
)
def test_greeting_names_everyone_or_no_one(addresses: list[str], expected: str) -> None:
    from snsmiddleware.budget_app import parse_address

    assert greeting([parse_address(a, what="test") for a in addresses]) == expected


def test_the_app_greets_by_the_rule_and_says_which_rule_matched(
    make_middleware: Callable[..., SnsMiddleware], signer: MessageSigner, tmp_path: Path
) -> None:
    outbox = FileOutbox(tmp_path / "outbox")
    real = REAL_ALERTS[0]
    budget_app = BudgetApp(
        recipients={
            "Test Budget": "Ana Lima <ana@example.com>",
            "Test *": ["Ana Lima <ana@example.com>", "ops@example.com"],
        },
        default_recipients="FinOps <finops@example.com>",
        mailer=outbox,
    )
    app = webtest.TestApp(make_middleware(app=budget_app, topics=[real.topic_arn]), lint=True)
    response = post_sns(app, PATH, real.signed(signer))
    assert response.status_int == 200, response.text
    [path] = outbox.messages()
    email = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(email, EmailMessage)
    text = text_part(email)
    assert "\nHello everyone,\n" in text  # ops@ has no display name
    assert (
        'the recipients entry for the budget name "Test Budget" and the budget name pattern '
        '"Test *" matched this alert (ana@example.com)'
    ) in text
    assert 'pattern "Test *" matched this alert (ops@example.com)' in text
    assert "SNSMIDDLEWARE_RECIPIENTS" in text


def test_a_default_recipient_is_told_so() -> None:
    view = budget_alert_view(
        parse_budget_alert(notification(REAL_ALERTS[0].message)),
        routing=[RecipientMatch(Address("FinOps", "finops", "example.com"))],
    )
    assert view.greeting == "Hi FinOps,"
    assert "no recipients entry matched this alert" in view.footer[0]


def test_the_old_entry_points_still_render_without_routing() -> None:
    alert = parse_budget_alert(notification(REAL_ALERTS[0].message))
    text = alert_text(alert, topic_arn=REAL_ALERTS[0].topic_arn)
    assert text.startswith("AWS Budgets alert: Test Budget\n")
    assert "Hello," in text and "295% of budget used" in text
    assert "<details>" in alert_html(alert)


# --- the reusable view model -----------------------------------------------------------------


def _view(**overrides: object) -> EmailView:
    fields: dict[str, object] = {
        "title": "t",
        "heading": "h",
        "kicker": "k",
        "greeting": "Hi,",
        "headline": "+120% over expected",
        "tone": Tone.ALERT,
        "summary": "s",
    }
    fields.update(overrides)
    return EmailView(**fields)  # type: ignore[arg-type]


def test_a_view_without_a_bar_with_tables_renders_in_both_parts() -> None:
    """What another alert kind (Cost Anomaly Detection) plugs in: rows and a table."""
    view = _view(
        rows=(("Monitor", "all services"),),
        tables=(Table("Root causes", ("Service", "Region"), (("Amazon EC2", "us-east-1"),)),),
        actions=(Link("Open the anomaly", "https://console.aws.amazon.com/cost-management/"),),
    )
    html, text = render_html(view), render_text(view)
    assert 'class="bar"' not in html
    assert '<table class="data"' in html and ">Amazon EC2</td>" in html
    assert "Root causes" in text and "Amazon EC2  us-east-1" in text
    assert "Open the anomaly: https://console.aws.amazon.com/cost-management/" in text


def test_every_value_of_a_view_is_escaped() -> None:
    evil = '<q x="1">&'
    view = EmailView(
        title=evil,
        heading=evil,
        kicker=evil,
        greeting=evil,
        headline=evil,
        tone=Tone.INFO,
        summary=evil,
        subline=evil,
        bar=Bar(Decimal(1), Decimal(2), evil, evil, Tone.INFO, Decimal(1), evil),
        rows=((evil, evil),),
        tables=(Table(evil, (evil,), ((evil,),)),),
        actions=(Link(evil, "https://console.aws.amazon.com/x?a=1&b=2"),),
        notes=(evil,),
        footer=(evil,),
        raw_heading=evil,
        raw_text=evil,
    )
    html = render_html(view)
    assert "<q" not in html
    assert html.count("&lt;q x=&quot;1&quot;&gt;&amp;") == 20  # each of the 20 values
    assert 'href="https://console.aws.amazon.com/x?a=1&amp;b=2"' in html


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "http://console.aws.amazon.com/",
        'https://x.io/"on=',
        "https://x.io/ a",
    ],
)
def test_a_link_must_be_plain_https(url: str) -> None:
    with pytest.raises(ValueError, match="https"):
        Link("x", url)


def test_the_html_needs_no_style_block_script_or_image() -> None:
    html = html_part(build_email(EMAIL_KINDS_BY_ID["actual-monthly"]))
    for banned in ("<style", "<script", "<img", "<link", "url(", "position:", "display:flex"):
        assert banned not in html
    assert html.count("<a ") == 2
