"""``snsmiddleware connect`` against moto's server (SNS, STS and Budgets over real HTTP on
127.0.0.1; moto's missing CreateSubscriber / DescribeSubscribersForNotification are added by
tests/_aws_wiring_helpers.py): the first run wires everything, the second changes nothing,
``--dry-run`` changes nothing, a missing budget changes nothing, existing settings are
repaired and other policy statements kept; the IAM policy examples cover every call made."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from snsmiddleware.cli import main
from snsmiddleware.connect import connect_options, run_connect
from snsmiddleware.doctor import doctor_options, run_doctor

from ._aws_wiring_helpers import ACCOUNT, MotoAws
from ._project import ROOT

ENDPOINT = "https://alerts.example.com/sns/budgets"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:budget-alerts"
NOTIFICATION = {
    "NotificationType": "FORECASTED",
    "ComparisonOperator": "GREATER_THAN",
    "Threshold": 100.0,
    "ThresholdType": "PERCENTAGE",
}
EMAIL = {"SubscriptionType": "EMAIL", "Address": "ops@example.com"}


def connect(moto: MotoAws, budget: str = "Monthly", **options: Any) -> tuple[int, str]:
    out = io.StringIO()
    options.setdefault("region", "us-east-1")
    checked = connect_options(
        budget, options.pop("endpoint", ENDPOINT), endpoint_url=moto.url, **options
    )
    return run_connect(checked, out), out.getvalue()


def lines(output: str, mark: str) -> list[str]:
    return [line.split("]", 1)[1].strip() for line in output.splitlines() if line.startswith(mark)]


def subscribers(moto: MotoAws, budget: str, notification: dict[str, Any]) -> list[Any]:
    answer = moto.client("budgets").describe_subscribers_for_notification(
        AccountId=ACCOUNT, BudgetName=budget, Notification=notification
    )
    return list(answer["Subscribers"])


def test_first_run_wires_everything_second_run_changes_nothing(moto: MotoAws) -> None:
    moto.create_budget("Monthly", [{"Notification": NOTIFICATION, "Subscribers": [EMAIL]}])
    code, output = connect(moto)
    assert code == 0, output
    assert output.splitlines()[:2] == [
        f"snsmiddleware connect: budget 'Monthly' -> {ENDPOINT}",
        f"  account {ACCOUNT}, topic {TOPIC}",
    ]
    assert lines(output, "[changed]") == [
        f"create topic {TOPIC} with SignatureVersion 2",
        "let budgets.amazonaws.com and costalerts.amazonaws.com publish to it "
        f"(aws:SourceAccount {ACCOUNT})",
        f"subscribe {ENDPOINT} to the topic",
        "make notification FORECASTED > 100% of budget 'Monthly' send to the topic",
    ]
    assert "RESULT: 4 change(s) made" in output
    assert subscribers(moto, "Monthly", NOTIFICATION) == [
        EMAIL,
        {"SubscriptionType": "SNS", "Address": TOPIC},
    ]
    sns = moto.client("sns")
    attributes = sns.get_topic_attributes(TopicArn=TOPIC)["Attributes"]
    assert attributes["SignatureVersion"] == "2"
    statements = json.loads(attributes["Policy"])["Statement"]
    assert [s.get("Sid") for s in statements] == [
        "__default_statement_ID",  # kept
        "snsmiddleware-budgets-publish",
        "snsmiddleware-costalerts-publish",
    ]
    assert statements[1]["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}

    code, again = connect(moto)
    assert code == 0, again
    assert "[changed]" not in again and "[would do]" not in again
    assert lines(again, "[unchanged]") == [
        f"topic {TOPIC} exists",
        "the topic signs with SignatureVersion 2",
        "the topic policy lets budgets.amazonaws.com and costalerts.amazonaws.com publish",
        f"{ENDPOINT} is subscribed and confirmed ("
        + sns.list_subscriptions_by_topic(TopicArn=TOPIC)["Subscriptions"][0]["SubscriptionArn"]
        + ")",
        "notification FORECASTED > 100% of budget 'Monthly' sends to the topic",
    ]
    assert "RESULT: nothing to change: already connected" in again
    assert len(sns.list_subscriptions_by_topic(TopicArn=TOPIC)["Subscriptions"]) == 1


def test_dry_run_prints_the_changes_and_makes_none(moto: MotoAws) -> None:
    moto.create_budget("Monthly")
    code, output = connect(moto, dry_run=True)
    assert code == 0, output
    assert "(DRY RUN: nothing will be changed)" in output.splitlines()[0]
    assert lines(output, "[would do]") == [
        f"create topic {TOPIC} with SignatureVersion 2",
        "let budgets.amazonaws.com and costalerts.amazonaws.com publish to it "
        f"(aws:SourceAccount {ACCOUNT})",
        f"subscribe {ENDPOINT} to the topic",
        "create notification ACTUAL > 80% on budget 'Monthly', sending to the topic",
    ]
    assert "RESULT: 4 change(s) to make (dry run: none made)" in output
    assert moto.client("sns").list_topics()["Topics"] == []
    budgets = moto.client("budgets")
    assert (
        budgets.describe_notifications_for_budget(AccountId=ACCOUNT, BudgetName="Monthly")[
            "Notifications"
        ]
        == []
    )


def test_a_missing_budget_changes_nothing_and_suggests_a_name(moto: MotoAws) -> None:
    moto.create_budget("Monthly costs")
    code, output = connect(moto, "monthly-costs")
    assert code == 1
    assert lines(output, "[FAIL]") == [
        f"budget 'monthly-costs' not found in account {ACCOUNT} (the account has: "
        "'Monthly costs'); nothing was changed"
    ]
    assert "fix: did you mean 'Monthly costs'? budget names are case-sensitive" in output
    assert moto.client("sns").list_topics()["Topics"] == []  # checked before any change
    assert "[changed]" not in output


def test_existing_wiring_is_repaired_and_other_topics_left_alone(moto: MotoAws) -> None:
    sns = moto.client("sns")
    sns.create_topic(Name="budget-alerts", Attributes={"SignatureVersion": "1"})
    policy = json.loads(sns.get_topic_attributes(TopicArn=TOPIC)["Attributes"]["Policy"])
    policy["Statement"].append(
        {
            "Sid": "snsmiddleware-budgets-publish",  # ours, but too broad: replaced
            "Effect": "Allow",
            "Principal": {"Service": "budgets.amazonaws.com"},
            "Action": "SNS:Publish",
            "Resource": TOPIC,
        }
    )
    sns.set_topic_attributes(
        TopicArn=TOPIC, AttributeName="Policy", AttributeValue=json.dumps(policy)
    )
    arn = sns.subscribe(TopicArn=TOPIC, Protocol="https", Endpoint=ENDPOINT)["SubscriptionArn"]
    sns.set_subscription_attributes(
        SubscriptionArn=arn, AttributeName="RawMessageDelivery", AttributeValue="true"
    )
    other = f"arn:aws:sns:us-east-1:{ACCOUNT}:someone-elses"
    actual = {**NOTIFICATION, "NotificationType": "ACTUAL", "Threshold": 80.0}
    moto.create_budget(
        "Monthly",
        [
            {"Notification": NOTIFICATION, "Subscribers": [EMAIL]},
            {
                "Notification": actual,
                "Subscribers": [{"SubscriptionType": "SNS", "Address": other}],
            },
        ],
    )
    code, output = connect(moto, topic_arn=TOPIC)
    assert code == 0, output
    assert lines(output, "[changed]") == [
        "set the topic's SignatureVersion to 2 (was 1)",
        f"let budgets.amazonaws.com and costalerts.amazonaws.com publish to the topic "
        f"(aws:SourceAccount {ACCOUNT})",
        "turn raw message delivery off (raw bodies carry no signature: the server refuses them)",
        "make notification FORECASTED > 100% of budget 'Monthly' send to the topic",
    ]
    assert lines(output, "[warn]") == [
        f"notification ACTUAL > 80% of budget 'Monthly' already sends to another topic, "
        f"{other}: not changed (a notification has one SNS subscriber)"
    ]
    assert subscribers(moto, "Monthly", actual) == [{"SubscriptionType": "SNS", "Address": other}]
    attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    assert attributes["RawMessageDelivery"] == "false"
    statements = json.loads(sns.get_topic_attributes(TopicArn=TOPIC)["Attributes"]["Policy"])[
        "Statement"
    ]
    ours = [s for s in statements if s.get("Sid") == "snsmiddleware-budgets-publish"]
    assert len(ours) == 1 and "Condition" in ours[0]


def test_a_pending_subscription_is_asked_for_again(moto: MotoAws) -> None:
    """moto confirms at once; AWS keeps an unconfirmed subscription pending (put moto's
    record in that state): connect asks SNS for a new SubscriptionConfirmation."""
    moto.create_budget("Monthly")
    assert connect(moto)[0] == 0
    sns = moto.client("sns")
    arn = sns.list_subscriptions_by_topic(TopicArn=TOPIC)["Subscriptions"][0]["SubscriptionArn"]
    moto.subscription_attributes(arn)["PendingConfirmation"] = "true"
    moto.calls.clear()
    code, output = connect(moto)
    assert code == 0, output
    assert lines(output, "[changed]") == [
        f"ask SNS to send {ENDPOINT} the SubscriptionConfirmation again (the subscription is "
        "still pending: is the server reachable?)"
    ]
    assert moto.calls.count("sns:Subscribe") == 1


def test_a_refused_change_stops_the_run_and_says_what_was_done(moto: MotoAws) -> None:
    moto.create_budget("Monthly", [{"Notification": NOTIFICATION, "Subscribers": [EMAIL]}])
    moto.refuse("CreateSubscriber")
    code, output = connect(moto)
    assert code == 1
    assert len(lines(output, "[changed]")) == 3  # topic, policy, subscription
    assert lines(output, "[FAIL]") == [
        "could not make notification FORECASTED > 100% of budget 'Monthly' send to the topic: "
        "AccessDeniedException: not allowed: CreateSubscriber"
    ]
    assert (
        "fix: allow budgets:ModifyBudget (examples/connect-iam-policy.json); the changes "
        "above were made, none after this one"
    ) in output
    assert output.splitlines()[-1] == "RESULT: FAILED (after 3 change(s) made)"


def test_an_http_endpoint_needs_allow_http(
    moto: MotoAws, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["connect", "--budget", "Monthly", "--endpoint", "http://127.0.0.1:8080/sns/budgets"]
    assert main([*argv, "--endpoint-url", moto.url, "--region", "us-east-1"]) == 2
    assert "--endpoint must be https:// (SNS delivers to http:// in clear text" in (
        capsys.readouterr().err
    )


def test_the_cli_connects_and_doctor_agrees(
    moto: MotoAws, capsys: pytest.CaptureFixture[str]
) -> None:
    moto.create_budget("Monthly")
    argv = ["connect", "--budget", "Monthly", "--endpoint", ENDPOINT, "--region", "us-east-1"]
    assert main([*argv, "--endpoint-url", moto.url]) == 0
    output = capsys.readouterr().out
    assert f"next: snsmiddleware doctor --topic {TOPIC} --endpoint {ENDPOINT}" in output
    out = io.StringIO()
    code = run_doctor(doctor_options(TOPIC, endpoint_url=moto.url), out)
    assert code == 0, out.getvalue()


def _iam_actions(path: Path) -> set[str]:
    document = json.loads(path.read_text(encoding="utf-8"))
    actions: set[str] = set()
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        actions.update(a.lower() for a in statement["Action"])
    return actions


#: The IAM action that authorises each API call (Budgets' read calls share budgets:ViewBudget;
#: GetCallerIdentity needs no permission).
_PERMISSION = {
    "budgets:describebudget": "budgets:viewbudget",
    "budgets:describebudgets": "budgets:viewbudget",
    "budgets:describenotificationsforbudget": "budgets:viewbudget",
    "budgets:describesubscribersfornotification": "budgets:viewbudget",
    "budgets:createsubscriber": "budgets:modifybudget",
    "budgets:createnotification": "budgets:modifybudget",
}


def _needed(calls: list[str]) -> set[str]:
    return {
        _PERMISSION.get(call.lower(), call.lower())
        for call in calls
        if call != "sts:GetCallerIdentity"
    }


def test_the_iam_policy_examples_cover_every_call(moto: MotoAws, tmp_path: Path) -> None:
    moto.create_budget("Monthly", [{"Notification": NOTIFICATION, "Subscribers": [EMAIL]}])
    moto.calls.clear()
    code, output = connect(moto)
    assert code == 0, output
    code, output = connect(moto, "Monthly")  # the read-only path of a second run
    connect_calls = list(moto.calls)
    assert _needed(connect_calls) <= _iam_actions(ROOT / "examples/connect-iam-policy.json")
    moto.calls.clear()
    run_doctor(doctor_options(TOPIC, endpoint=ENDPOINT, endpoint_url=moto.url), io.StringIO())
    doctor_needs = _needed(moto.calls)
    assert doctor_needs == {
        "sns:gettopicattributes",
        "sns:listsubscriptionsbytopic",
        "sns:getsubscriptionattributes",
    }
    assert doctor_needs <= _iam_actions(ROOT / "examples/doctor-iam-policy.json")
    assert "sns:subscribe" in _needed(connect_calls)
