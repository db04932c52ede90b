"""The IAM policies in examples/ grant exactly the AWS calls the code makes, mode by mode.

Each mode runs through the public interface (a signed message posted to the middleware, the
budget app sending through SES, the DynamoDB store claiming and releasing) against moto's
server on 127.0.0.1, while every botocore call is recorded as the IAM action it needs
(``signing name:operation``: SES v2's SendEmail is ``ses:SendEmail``). A policy that misses
an action fails here before an operator's AccessDenied; one that grants an action the code
never calls fails too (least privilege). Resources are the examples' placeholders, checked
for shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import webtest

from snsmiddleware import SnsMiddleware
from snsmiddleware.budget_app import BudgetApp
from snsmiddleware.dedupe_dynamodb import DynamoDBDedupeStore
from snsmiddleware.mail import SesMailer
from snsmiddleware.testing import MessageSigner, post_sns

from ._mail_helpers import SES_REGION, VERIFIED_SENDER, MotoSes, fresh_ses
from ._project import ROOT
from .conftest import PATH, TOPIC

EXAMPLES = ROOT / "examples"
ALERT = (EXAMPLES / "budget-alert.txt").read_text(encoding="utf-8")
ALERT_SUBJECT = "AWS Budgets: Test Budget has exceeded your alert threshold"
MakeMiddleware = Callable[..., SnsMiddleware]


def policy_actions(name: str) -> set[str]:
    """The actions an example policy allows, after checking it is a well-formed policy."""
    document = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    assert document["Version"] == "2012-10-17"
    actions: set[str] = set()
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        assert "*" not in json.dumps(statement["Action"]), "no wildcard actions"
        resources = statement["Resource"]
        for resource in [resources] if isinstance(resources, str) else resources:
            assert resource.startswith("arn:aws:"), resource
        actions |= set(statement["Action"])
    return actions


@contextmanager
def recorded_aws_calls() -> Iterator[set[str]]:
    """Every botocore API call made inside the block, as the IAM action it needs."""
    from botocore.client import BaseClient

    calls: set[str] = set()
    original = BaseClient._make_api_call

    def recording(client: Any, operation: str, params: Any) -> Any:
        calls.add(f"{client.meta.service_model.signing_name}:{operation}")
        return original(client, operation, params)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", recording)
        yield calls


@pytest.fixture
def ses(moto_server: MotoSes, monkeypatch: pytest.MonkeyPatch) -> MotoSes:
    return fresh_ses(moto_server, monkeypatch)


def budget_app(mailer: SesMailer) -> BudgetApp:
    return BudgetApp(
        recipients={}, default_recipients="ops@example.com", sender=VERIFIED_SENDER, mailer=mailer
    )


def send_alert(app: webtest.TestApp, signer: MessageSigner) -> None:
    response = post_sns(app, PATH, signer.notification(ALERT, Subject=ALERT_SUBJECT))
    assert response.status_int == 200, response.text


def test_confirm_policy_is_what_confirm_api_calls(
    ses: MotoSes, signer: MessageSigner, make_middleware: MakeMiddleware
) -> None:
    import boto3

    sns = boto3.session.Session().client("sns", region_name="us-east-1", endpoint_url=ses.url)
    assert sns.create_topic(Name="budget-alerts")["TopicArn"] == TOPIC
    app = webtest.TestApp(make_middleware(confirm="api", confirm_endpoint_url=ses.url))
    with recorded_aws_calls() as calls:
        response = post_sns(app, PATH, signer.subscription_confirmation())
    assert response.status_int == 200, response.text
    assert calls == policy_actions("iam-policy-confirm.json") == {"sns:ConfirmSubscription"}


def test_ses_policy_is_what_both_ses_apis_call(
    ses: MotoSes, signer: MessageSigner, make_middleware: MakeMiddleware
) -> None:
    with recorded_aws_calls() as calls:
        for api in ("v2", "v1"):
            mailer = SesMailer(region=SES_REGION, endpoint_url=ses.url, api=api)
            send_alert(webtest.TestApp(make_middleware(app=budget_app(mailer))), signer)
    assert len(ses.sent()) == 2, "each API sent its email"
    assert calls == policy_actions("iam-policy-ses.json")


def test_dynamodb_policy_is_what_the_store_calls(
    ses: MotoSes, signer: MessageSigner, make_middleware: MakeMiddleware
) -> None:
    """Claim, effect record and commit of an alert sent through SES; the release after an
    app that failed; the health check."""
    table = "iam-dedupe"
    DynamoDBDedupeStore.create_table(table, region=SES_REGION, endpoint_url=ses.url)
    with recorded_aws_calls() as calls:
        store = DynamoDBDedupeStore(table, region=SES_REGION, endpoint_url=ses.url)
        assert store.ping()
        mailer = SesMailer(region=SES_REGION, endpoint_url=ses.url)
        send_alert(webtest.TestApp(make_middleware(app=budget_app(mailer), dedupe=store)), signer)

        def failing(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"try again"]

        unavailable = webtest.TestApp(make_middleware(app=failing, dedupe=store))
        response = post_sns(unavailable, PATH, signer.notification("x"))
        assert response.status_int == 503
    dynamodb = {call for call in calls if call.startswith("dynamodb:")}
    assert dynamodb == policy_actions("iam-policy-dynamodb.json")
    assert calls - dynamodb == {"ses:SendEmail"}


def test_every_example_policy_is_checked_here() -> None:
    source = Path(__file__).read_text(encoding="utf-8")
    for policy in sorted(EXAMPLES.glob("iam-policy-*.json")):
        assert f'"{policy.name}"' in source, f"{policy.name} has no test of its actions"


def test_readme_names_each_policy_and_its_actions() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    deploy = readme[readme.index("### IAM: what the server calls") :]
    deploy = deploy[: deploy.index("\n### ", 1)]
    for policy in sorted(EXAMPLES.glob("iam-policy-*.json")):
        assert f"examples/{policy.name}" in deploy
        for action in policy_actions(policy.name):
            assert action.split(":")[1] in deploy, f"{action} of {policy.name}"
