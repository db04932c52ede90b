"""``snsmiddleware doctor`` against LocalStack (host mode), whose SNS behaves as AWS's does
where moto cannot: an HTTP subscription stays *pending* until the endpoint confirms it, and
LocalStack really POSTs the SubscriptionConfirmation. A subscription to an endpoint that is
not there is reported PENDING CONFIRMATION; once our budget server (emulator mode,
``confirm="api"`` through LocalStack) has confirmed its own, every check passes, the forged
probe included (LocalStack serves the certificate it signs with, so the probe ends at the
signature: ``403 bad_signature``). ``connect`` needs the Budgets API, which LocalStack's
free edition does not emulate: the user sees why, and nothing is changed.
Select with -m localstack."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from webtest.http import StopableWSGIServer

from snsmiddleware import SnsMiddleware
from snsmiddleware.budget_app import BudgetApp
from snsmiddleware.connect import connect_options, run_connect
from snsmiddleware.doctor import doctor_options, run_doctor
from snsmiddleware.mail import FileOutbox
from snsmiddleware.topic_policy import load_policy, with_publishers

from ._localstack import start_localstack, wait_for
from ._net import free_port

pytestmark = pytest.mark.localstack
PATH = "/sns/budgets"


@pytest.fixture(scope="module")
def localstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from start_localstack(tmp_path_factory.mktemp("localstack"))


@pytest.fixture
def sns(localstack: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return boto3.client("sns", endpoint_url=localstack, region_name="us-east-1")


def wired_topic(sns: Any, name: str) -> str:
    """A topic as connect leaves it: SignatureVersion 2, Budgets and Cost Anomaly Detection
    allowed to publish."""
    topic = str(sns.create_topic(Name=name, Attributes={"SignatureVersion": "2"})["TopicArn"])
    policy = load_policy(sns.get_topic_attributes(TopicArn=topic)["Attributes"].get("Policy"))
    document, _added = with_publishers(policy, topic)
    sns.set_topic_attributes(
        TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(document)
    )
    return topic


def doctor(localstack: str, topic: str, endpoint: str | None) -> tuple[int, str]:
    out = io.StringIO()
    code = run_doctor(doctor_options(topic, endpoint=endpoint, endpoint_url=localstack), out)
    return code, out.getvalue()


def pending(sns: Any, topic: str) -> bool:
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    return any(
        sns.get_subscription_attributes(SubscriptionArn=s["SubscriptionArn"])["Attributes"].get(
            "PendingConfirmation"
        )
        == "true"
        for s in subscriptions
        if s["SubscriptionArn"].startswith("arn:")
    ) or any(not s["SubscriptionArn"].startswith("arn:") for s in subscriptions)


def test_a_subscription_nobody_confirmed_is_reported_pending(sns: Any, localstack: str) -> None:
    topic = wired_topic(sns, "doctor-pending")
    nowhere = f"http://127.0.0.1:{free_port()}{PATH}"
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=nowhere)
    code, output = doctor(localstack, topic, nowhere)
    assert code == 1
    assert f"[FAIL] subscription: {nowhere} is PENDING CONFIRMATION" in output, output
    assert "[FAIL] endpoint:" in output and "is unreachable" in output


def test_a_confirmed_subscription_to_our_server_passes_every_check(
    sns: Any, localstack: str, tmp_path: Path
) -> None:
    topic = wired_topic(sns, "doctor-confirmed")
    app = BudgetApp(
        recipients={"*": "ops@example.com"},
        sender="alerts@example.com",
        mailer=FileOutbox(tmp_path / "outbox"),
        dead_letter=FileOutbox(tmp_path / "dead-letter"),
    )
    middleware = SnsMiddleware(
        app, paths=[PATH], topics=[topic], emulator=localstack, confirm="api"
    )
    server = StopableWSGIServer.create(middleware, host="127.0.0.1", expose_tracebacks=False)
    try:
        url = server.application_url.rstrip("/") + PATH
        sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=url)
        wait_for(lambda: not pending(sns, topic), "the server's confirmation")
        code, output = doctor(localstack, topic, url)
    finally:
        server.shutdown()
    assert code == 0, output
    assert "[FAIL]" not in output and "[warn]" not in output, output
    assert f"[ok]   subscription: {url} confirmed" in output
    assert "[ok]   endpoint: refused the forged probe with 403 bad_signature" in output
    assert not list((tmp_path / "outbox").glob("*.eml"))


def test_connect_explains_that_the_emulator_has_no_budgets(sns: Any, localstack: str) -> None:
    topic = "arn:aws:sns:us-east-1:000000000000:doctor-connect"
    options = connect_options(
        "Monthly",
        "https://alerts.example.com/sns/budgets",
        topic_arn=topic,
        endpoint_url=localstack,
    )
    out = io.StringIO()
    assert run_connect(options, out) == 1
    output = out.getvalue()
    assert (
        "[FAIL]      could not read budget 'Monthly': InternalFailure: The API for service "
        "budgets is either not included in your current license plan or has not yet been "
        "emulated by LocalStack; nothing was changed"
    ) in output, output
    assert "fix: see AWS's message; an emulator may not implement this call" in output
    assert sns.list_topics()["Topics"] == [] or all(
        t["TopicArn"] != topic for t in sns.list_topics()["Topics"]
    )
