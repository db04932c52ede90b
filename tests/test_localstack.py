"""End to end against an SNS implementation nobody here wrote: LocalStack (host mode) POSTs
real, signed SubscriptionConfirmation, Notification and UnsubscribeConfirmation messages to
our waitress server, which runs SnsMiddleware in emulator mode. Select with -m localstack."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from webtest.http import StopableWSGIServer

from snsmiddleware import SnsMiddleware, get_message
from snsmiddleware.message import Notification

from ._localstack import start_localstack, wait_for

pytestmark = pytest.mark.localstack
PATH = "/sns"


@pytest.fixture(scope="module")
def localstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from start_localstack(tmp_path_factory.mktemp("localstack"))


@pytest.fixture(scope="module")
def sns(localstack: str) -> Any:
    return boto3.client(
        "sns",
        endpoint_url=localstack,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


class Endpoint:
    """Our server: waitress + SnsMiddleware(emulator) + a recording app, plus a record of
    every answer the middleware gave (status and reason)."""

    def __init__(self, localstack: str, topics: list[str]) -> None:
        self.messages: list[Notification] = []
        self.answers: list[tuple[int, str | None]] = []
        self._lock = threading.Lock()
        middleware = SnsMiddleware(
            self._app, paths=[PATH], topics=topics, emulator=localstack, confirm="url"
        )

        def recorder(environ: dict[str, Any], start_response: Any) -> Any:
            def record(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                reason = dict((k.lower(), v) for k, v in headers).get("x-sns-reason")
                with self._lock:
                    self.answers.append((int(status[:3]), reason))
                return start_response(status, headers, exc_info)

            return middleware(environ, record)

        self.server = StopableWSGIServer.create(recorder, threads=4)
        self.url = self.server.application_url.rstrip("/") + PATH

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self._lock:
            self.messages.append(get_message(environ))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    def saw(self, reason: str) -> bool:
        with self._lock:
            return any(answer_reason == reason for _, answer_reason in self.answers)


def pending(sns: Any, topic: str) -> bool:
    """Whether the topic's one subscription still waits for confirmation."""
    [found] = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    attributes = sns.get_subscription_attributes(SubscriptionArn=found["SubscriptionArn"])
    return bool(attributes["Attributes"]["PendingConfirmation"] == "true")


@pytest.fixture
def endpoint_factory(localstack: str) -> Iterator[Callable[[list[str]], Endpoint]]:
    endpoints: list[Endpoint] = []

    def make(topics: list[str]) -> Endpoint:
        endpoint = Endpoint(localstack, topics)
        endpoints.append(endpoint)
        return endpoint

    yield make
    for endpoint in endpoints:
        endpoint.server.shutdown()


def test_confirm_then_deliver_each_notification_once_then_unsubscribe(
    sns: Any, endpoint_factory: Callable[[list[str]], Endpoint]
) -> None:
    topic = sns.create_topic(Name="budget-alerts")["TopicArn"]
    endpoint = endpoint_factory([topic])
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=endpoint.url)
    wait_for(lambda: endpoint.saw("subscription_confirmed"), "the middleware's confirmation")
    assert not pending(sns, topic)

    sns.publish(TopicArn=topic, Message="with subject", Subject="AWS Budgets: x")
    sns.publish(TopicArn=topic, Message="no subject")
    sns.publish(
        TopicArn=topic,
        Message="with attributes",
        MessageAttributes={"team": {"DataType": "String", "StringValue": "finops"}},
    )
    sns.set_topic_attributes(TopicArn=topic, AttributeName="SignatureVersion", AttributeValue="2")
    sns.publish(TopicArn=topic, Message="signed with SHA256", Subject="v2")
    wait_for(lambda: len(endpoint.messages) >= 4, "four notifications")
    time.sleep(0.5)  # anything delivered twice would have arrived by now
    by_text = {m.message: m for m in endpoint.messages}
    assert len(endpoint.messages) == 4 and len(by_text) == 4
    assert by_text["with subject"].subject == "AWS Budgets: x"
    assert by_text["no subject"].subject is None
    assert by_text["with attributes"].message_attributes["team"].value == "finops"
    assert by_text["with subject"].signature_version == "1"
    assert by_text["signed with SHA256"].signature_version == "2"

    [found] = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    arn = found["SubscriptionArn"]
    sns.unsubscribe(SubscriptionArn=arn)
    wait_for(lambda: endpoint.saw("unsubscribe_acknowledged"), "the UnsubscribeConfirmation")
    time.sleep(0.5)
    assert len(endpoint.messages) == 4  # not passed on
    assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []


def test_topic_not_on_the_allowlist_stays_pending(
    sns: Any, endpoint_factory: Callable[[list[str]], Endpoint]
) -> None:
    ours = sns.create_topic(Name="ours")["TopicArn"]
    theirs = sns.create_topic(Name="theirs")["TopicArn"]
    endpoint = endpoint_factory([ours])
    sns.subscribe(TopicArn=theirs, Protocol="http", Endpoint=endpoint.url)
    wait_for(lambda: endpoint.saw("topic_not_allowed"), "the refusal")
    assert (403, "topic_not_allowed") in endpoint.answers
    assert pending(sns, theirs)


def test_raw_message_delivery_is_refused(
    sns: Any, endpoint_factory: Callable[[list[str]], Endpoint]
) -> None:
    topic = sns.create_topic(Name="raw")["TopicArn"]
    endpoint = endpoint_factory([topic])
    sns.subscribe(
        TopicArn=topic,
        Protocol="http",
        Endpoint=endpoint.url,
        Attributes={"RawMessageDelivery": "true"},
    )
    wait_for(lambda: not pending(sns, topic), "the confirmation (confirmations are never raw)")
    sns.publish(TopicArn=topic, Message="raw payload")
    wait_for(lambda: endpoint.saw("raw_delivery"), "the raw delivery to be refused")
    assert (400, "raw_delivery") in endpoint.answers
    assert endpoint.messages == []


def test_api_confirmation_through_the_emulator(
    sns: Any, localstack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """confirm="api" (boto3 ConfirmSubscription) goes to the emulator in emulator mode."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    topic = sns.create_topic(Name="api-confirm")["TopicArn"]
    middleware = SnsMiddleware(
        lambda e, s: [], paths=[PATH], topics=[topic], emulator=localstack, confirm="api"
    )
    server = StopableWSGIServer.create(middleware)
    try:
        sns.subscribe(
            TopicArn=topic, Protocol="http", Endpoint=server.application_url.rstrip("/") + PATH
        )
        wait_for(lambda: not pending(sns, topic), "the API confirmation")
    finally:
        server.shutdown()


def test_budget_alert_becomes_one_email_through_localstack_ses(
    sns: Any, localstack: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 8, case 5: LocalStack publishes a Budgets alert, the middleware verifies it, the
    budget app emails it through LocalStack's SES (the v1 API its free edition emulates)."""
    from snsmiddleware.budget_app import BudgetApp
    from snsmiddleware.devmode import sample_budget_alert
    from snsmiddleware.mail import FileOutbox, SesMailer

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    ses = boto3.client("ses", endpoint_url=localstack, region_name="us-east-1")
    ses.verify_email_identity(EmailAddress="budget-alerts@example.com")
    topic = sns.create_topic(Name="budget-alerts-ses")["TopicArn"]
    budget_app = BudgetApp(
        recipients={"Test Budget": "Ana Lima <ana@example.com>"},
        sender="AWS Budgets alerts <budget-alerts@example.com>",
        mailer=SesMailer(region="us-east-1", endpoint_url=localstack, api="v1"),
        dead_letter=FileOutbox(tmp_path / "dead-letter"),
    )
    middleware = SnsMiddleware(
        budget_app, paths=[PATH], topics=[topic], emulator=localstack, confirm="url"
    )
    server = StopableWSGIServer.create(middleware, threads=4)
    try:
        sns.subscribe(
            TopicArn=topic, Protocol="http", Endpoint=server.application_url.rstrip("/") + PATH
        )
        wait_for(lambda: not pending(sns, topic), "the confirmation")
        subject, text = sample_budget_alert("Test Budget")
        sns.publish(TopicArn=topic, Message=text, Subject=subject)

        def sent() -> list[dict[str, Any]]:
            return list(requests.get(f"{localstack}/_aws/ses", timeout=5).json()["messages"])

        wait_for(lambda: len(sent()) >= 1, "the email in LocalStack's SES")
        time.sleep(0.5)
        [email] = sent()
    finally:
        server.shutdown()
    assert "ana@example.com" in json.dumps(email)
    assert "Test Budget" in json.dumps(email)
    assert list((tmp_path / "dead-letter").glob("*.eml")) == []
