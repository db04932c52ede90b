"""The topic policy reader and writer behind ``doctor`` and ``connect`` (pure functions): who
may publish, under which conditions, and that adding our statements keeps everyone else's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from snsmiddleware.aws_wiring import endpoint_key
from snsmiddleware.errors import TopicPolicyError
from snsmiddleware.topic_policy import (
    BUDGETS_PRINCIPAL,
    COST_ANOMALY_PRINCIPAL,
    load_policy,
    publish_verdict,
    publisher_statement,
    with_publishers,
)

ACCOUNT = "123456789012"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:budget-alerts"
DEFAULT_STATEMENT = {
    "Sid": "__default_statement_ID",
    "Effect": "Allow",
    "Principal": {"AWS": "*"},
    "Action": ["SNS:GetTopicAttributes", "SNS:Subscribe", "SNS:Publish"],
    "Resource": TOPIC,
    "Condition": {"StringEquals": {"AWS:SourceOwner": ACCOUNT}},
}


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return load_policy(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))


def budgets(**fields: Any) -> dict[str, Any]:
    statement = {
        "Sid": "b",
        "Effect": "Allow",
        "Principal": {"Service": BUDGETS_PRINCIPAL},
        "Action": "SNS:Publish",
        "Resource": TOPIC,
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
    }
    for key, value in fields.items():
        if value is None:
            statement.pop(key, None)
        else:
            statement[key] = value
    return statement


@pytest.mark.parametrize(
    ("statements", "status", "words"),
    [
        pytest.param([DEFAULT_STATEMENT], "fail", "Principal * with conditions", id="default"),
        pytest.param([], "fail", "no statement lets", id="empty"),
        pytest.param([budgets()], "ok", "aws:SourceAccount 123456789012", id="scoped"),
        pytest.param(
            [budgets(Principal={"Service": [COST_ANOMALY_PRINCIPAL, BUDGETS_PRINCIPAL]})],
            "ok",
            "allows",
            id="service-list",
        ),
        pytest.param([budgets(Action="sns:*")], "ok", "allows", id="action-wildcard"),
        pytest.param([budgets(Action=["SNS:Subscribe"])], "fail", "no statement", id="no-publish"),
        pytest.param(
            [budgets(Resource="arn:aws:sns:us-east-1:123456789012:*")], "ok", "", id="resource-glob"
        ),
        pytest.param(
            [budgets(Resource="arn:aws:sns:us-east-1:123456789012:other")],
            "fail",
            "no statement",
            id="other-topic",
        ),
        pytest.param([budgets(Condition=None)], "warn", "from ANY account", id="unscoped"),
        pytest.param(
            [budgets(Condition={"StringEquals": {"aws:SourceAccount": "999999999999"}})],
            "fail",
            "limited to 999999999999",
            id="other-account",
        ),
        pytest.param(
            [budgets(Condition={"ArnLike": {"aws:SourceArn": f"arn:aws:budgets::{ACCOUNT}:*"}})],
            "ok",
            "aws:SourceArn",
            id="source-arn",
        ),
        pytest.param(
            [budgets(Condition={"ArnLike": {"aws:SourceArn": "arn:aws:budgets::999999999999:*"}})],
            "fail",
            "limited to",
            id="source-arn-other-account",
        ),
        pytest.param(
            [budgets(Condition={"Bool": {"aws:SecureTransport": "true"}})],
            "warn",
            "not evaluated",
            id="unknown-condition",
        ),
        pytest.param(
            [{**budgets(Condition=None), "Principal": "*"}],
            "warn",
            "ANYONE",
            id="public",
        ),
        pytest.param(
            [budgets(), budgets(Sid="no", Effect="Deny", Condition=None)],
            "fail",
            "statement 'no' denies",
            id="denied",
        ),
    ],
)
def test_publish_verdict(statements: list[dict[str, Any]], status: str, words: str) -> None:
    verdict = publish_verdict(policy(*statements), BUDGETS_PRINCIPAL, TOPIC)
    assert verdict.status == status, verdict
    assert words in verdict.detail


def test_the_statement_connect_writes_is_scoped_and_ok() -> None:
    statement = publisher_statement(COST_ANOMALY_PRINCIPAL, TOPIC)
    assert statement == {
        "Sid": "snsmiddleware-costalerts-publish",
        "Effect": "Allow",
        "Principal": {"Service": "costalerts.amazonaws.com"},
        "Action": "sns:Publish",
        "Resource": TOPIC,
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
    }
    assert publish_verdict(policy(statement), COST_ANOMALY_PRINCIPAL, TOPIC).status == "ok"


def test_with_publishers_keeps_other_statements_and_is_idempotent() -> None:
    document, added = with_publishers(policy(DEFAULT_STATEMENT), TOPIC)
    assert added == [BUDGETS_PRINCIPAL, COST_ANOMALY_PRINCIPAL]
    assert document["Statement"][0] == DEFAULT_STATEMENT
    again, added_again = with_publishers(document, TOPIC)
    assert added_again == [] and again == document


def test_a_too_broad_statement_of_ours_is_replaced() -> None:
    ours = budgets(Sid="snsmiddleware-budgets-publish", Condition=None)
    document, added = with_publishers(policy(ours), TOPIC, (BUDGETS_PRINCIPAL,))
    assert added == [BUDGETS_PRINCIPAL]
    assert document["Statement"] == [publisher_statement(BUDGETS_PRINCIPAL, TOPIC)]


@pytest.mark.parametrize("text", ["{", "[]", '{"Statement": 3}'])
def test_an_unreadable_policy_is_an_error(text: str) -> None:
    with pytest.raises(TopicPolicyError):
        load_policy(text)


def test_no_policy_is_a_policy_without_statements() -> None:
    assert load_policy(None)["Statement"] == []
    assert load_policy('{"Statement": {"Effect": "Deny"}}')["Statement"] == [{"Effect": "Deny"}]


@pytest.mark.parametrize(
    ("typed", "listed"),
    [
        ("https://alerts.example.com/sns/budgets", "https://ALERTS.example.com:443/sns/budgets"),
        ("https://ops:secret@alerts.example.com/sns", "https://ops:****@alerts.example.com/sns"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
    ],
)
def test_endpoints_compare_as_sns_lists_them(typed: str, listed: str) -> None:
    """SNS masks the password of the Endpoint it lists: the rest must match."""
    assert endpoint_key(typed) == endpoint_key(listed)


@pytest.mark.parametrize(
    "other",
    [
        "https://alerts.example.com/sns/other",
        "http://alerts.example.com/sns/budgets",
        "https://alerts.example.com:8443/sns/budgets",
        "https://someone@alerts.example.com/sns/budgets",
    ],
)
def test_other_endpoints_differ(other: str) -> None:
    assert endpoint_key("https://alerts.example.com/sns/budgets") != endpoint_key(other)
