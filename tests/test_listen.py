"""``snsmiddleware listen`` with stubbed SQS/SNS clients (botocore's Stubber checks every call
and its parameters) and a real local HTTP server: what is deleted, what is kept, and that
cleanup happens whatever goes wrong. End to end against LocalStack: test_listen_localstack."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from webtest.http import StopableWSGIServer

from snsmiddleware.cli import main
from snsmiddleware.errors import ConfigurationError
from snsmiddleware.listen import (
    Delivery,
    ListenOptions,
    envelope_headers,
    listen,
    listen_options,
    queue_name,
    queue_policy,
)
from snsmiddleware.policy import parse_topic_arn

from ._net import free_port
from ._project import HEAVY, ROOT, modules_after

TOPIC = "arn:aws:sns:us-east-1:123456789012:budget-alerts"
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/q"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:q"
SUBSCRIPTION = TOPIC + ":0b8e7ec1-1111-2222-3333-444455556666"


def envelope(message_id: str, message_type: str = "Notification") -> str:
    return json.dumps(
        {"Type": message_type, "MessageId": message_id, "TopicArn": TOPIC, "Message": "é x"},
        ensure_ascii=False,
    )


class LocalServer:
    """A real HTTP server answering with the next status of ``statuses``; records requests."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[bytes, dict[str, str]]] = []
        self._lock = threading.Lock()
        self.server = StopableWSGIServer.create(self._app)
        self.url = self.server.application_url.rstrip("/") + "/sns"

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        with self._lock:
            self.requests.append((body, headers))
            status = self.statuses.pop(0)
        start_response(f"{status} X", [("X-SNS-Reason", f"reason_{status}")])
        return [b""]


@pytest.fixture
def local_server() -> Iterator[Any]:
    servers: list[LocalServer] = []

    def make(statuses: list[int]) -> LocalServer:
        server = LocalServer(statuses)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.server.shutdown()


def clients() -> tuple[Any, Any, Stubber, Stubber]:
    kwargs: dict[str, Any] = {
        "region_name": "us-east-1",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    sqs, sns = boto3.client("sqs", **kwargs), boto3.client("sns", **kwargs)
    return sqs, sns, Stubber(sqs), Stubber(sns)


def expect_set_up(sqs: Stubber, sns: Stubber) -> None:
    sqs.add_response("create_queue", {"QueueUrl": QUEUE_URL}, {"QueueName": ANY, "Attributes": ANY})
    sqs.add_response(
        "get_queue_attributes",
        {"Attributes": {"QueueArn": QUEUE_ARN}},
        {"QueueUrl": QUEUE_URL, "AttributeNames": ["QueueArn"]},
    )
    sqs.add_response(
        "set_queue_attributes",
        {},
        {"QueueUrl": QUEUE_URL, "Attributes": {"Policy": queue_policy(QUEUE_ARN, TOPIC)}},
    )
    sns.add_response(
        "subscribe",
        {"SubscriptionArn": SUBSCRIPTION},
        {
            "TopicArn": TOPIC,
            "Protocol": "sqs",
            "Endpoint": QUEUE_ARN,
            "Attributes": {"RawMessageDelivery": "false"},
            "ReturnSubscriptionArn": True,
        },
    )


def expect_clean_up(sqs: Stubber, sns: Stubber) -> None:
    sns.add_response("unsubscribe", {}, {"SubscriptionArn": SUBSCRIPTION})
    sqs.add_response("delete_queue", {}, {"QueueUrl": QUEUE_URL})


def received(*bodies: str) -> dict[str, Any]:
    return {
        "Messages": [
            {"MessageId": f"sqs-{i}", "ReceiptHandle": f"handle-{i}", "Body": body}
            for i, body in enumerate(bodies)
        ]
    }


def expect_receive(sqs: Stubber, response: dict[str, Any], batch: int) -> None:
    sqs.add_response(
        "receive_message",
        response,
        {
            "QueueUrl": QUEUE_URL,
            "MaxNumberOfMessages": batch,
            "WaitTimeSeconds": 20,
            "VisibilityTimeout": 30,
        },
    )


def options(url: str, **extra: Any) -> ListenOptions:
    found, _ = listen_options(TOPIC, url, **extra)
    return found


def test_deletes_after_2xx_and_4xx_keeps_after_5xx(local_server: Any) -> None:
    server = local_server([200, 400, 503])
    sqs, sns, sqs_stub, sns_stub = clients()
    expect_set_up(sqs_stub, sns_stub)
    expect_receive(sqs_stub, received(envelope("a"), envelope("b"), envelope("c")), batch=3)
    for handle in ("handle-0", "handle-1"):  # not handle-2: the 503 stays for a retry
        sqs_stub.add_response(
            "delete_message", {}, {"QueueUrl": QUEUE_URL, "ReceiptHandle": handle}
        )
    expect_clean_up(sqs_stub, sns_stub)
    out = io.StringIO()
    with sqs_stub, sns_stub:
        assert listen(options(server.url, max_messages=3), out, clients=(sqs, sns)) == 0
        sqs_stub.assert_no_pending_responses()
        sns_stub.assert_no_pending_responses()
    lines = out.getvalue().splitlines()
    assert "Notification a -> 200 reason_200; deleted" in lines
    assert "Notification b -> 400 reason_400; deleted" in lines
    assert "Notification c -> 503 reason_503; kept for a retry" in lines
    assert f"cleaned up: unsubscribed {SUBSCRIPTION}" in lines
    assert f"cleaned up: deleted queue {QUEUE_URL}" in lines


def test_unreachable_local_server_keeps_the_message() -> None:
    sqs, sns, sqs_stub, sns_stub = clients()
    expect_set_up(sqs_stub, sns_stub)
    expect_receive(sqs_stub, received(envelope("a")), batch=1)
    expect_clean_up(sqs_stub, sns_stub)  # and no delete_message
    out = io.StringIO()
    url = f"http://127.0.0.1:{free_port()}/sns"
    with sqs_stub, sns_stub:
        assert listen(options(url, max_messages=1), out, clients=(sqs, sns)) == 0
        sqs_stub.assert_no_pending_responses()
    assert "Notification a -> no answer (ConnectionError); kept for a retry" in out.getvalue()


def test_the_envelope_is_forwarded_byte_for_byte_with_its_headers(local_server: Any) -> None:
    server = local_server([200, 200])
    sqs, sns, sqs_stub, sns_stub = clients()
    expect_set_up(sqs_stub, sns_stub)
    confirmation = envelope("c", "SubscriptionConfirmation")
    expect_receive(sqs_stub, received(envelope("n"), confirmation), batch=2)
    for handle in ("handle-0", "handle-1"):
        sqs_stub.add_response(
            "delete_message", {}, {"QueueUrl": QUEUE_URL, "ReceiptHandle": handle}
        )
    expect_clean_up(sqs_stub, sns_stub)
    with sqs_stub, sns_stub:
        listen(options(server.url, max_messages=2), io.StringIO(), clients=(sqs, sns))
    (body, headers), (confirmation_body, confirmation_headers) = server.requests
    assert body == envelope("n").encode("utf-8")
    assert headers["x-amz-sns-message-type"] == "Notification"
    assert headers["x-amz-sns-message-id"] == "n"
    assert headers["x-amz-sns-topic-arn"] == TOPIC
    assert headers["x-amz-sns-subscription-arn"] == SUBSCRIPTION
    assert headers["content-type"] == "text/plain; charset=UTF-8"
    assert confirmation_body == confirmation.encode("utf-8")  # forwarded, never fetched
    assert confirmation_headers["x-amz-sns-message-type"] == "SubscriptionConfirmation"
    assert "x-amz-sns-subscription-arn" not in confirmation_headers


def test_a_failing_receive_still_cleans_up() -> None:
    sqs, sns, sqs_stub, sns_stub = clients()
    expect_set_up(sqs_stub, sns_stub)
    sqs_stub.add_client_error("receive_message", "AccessDenied", "not allowed")
    expect_clean_up(sqs_stub, sns_stub)
    out = io.StringIO()
    with sqs_stub, sns_stub:
        assert listen(options("http://127.0.0.1:1/"), out, clients=(sqs, sns)) == 2
        sqs_stub.assert_no_pending_responses()
        sns_stub.assert_no_pending_responses()
    assert "AccessDenied" in out.getvalue()
    assert f"cleaned up: deleted queue {QUEUE_URL}" in out.getvalue()


def test_a_failing_subscribe_deletes_the_queue_it_created() -> None:
    sqs, sns, sqs_stub, sns_stub = clients()
    sqs_stub.add_response("create_queue", {"QueueUrl": QUEUE_URL})
    sqs_stub.add_response("get_queue_attributes", {"Attributes": {"QueueArn": QUEUE_ARN}})
    sqs_stub.add_response("set_queue_attributes", {})
    sns_stub.add_client_error("subscribe", "AuthorizationError", "no")
    sqs_stub.add_response("delete_queue", {}, {"QueueUrl": QUEUE_URL})  # and no unsubscribe
    out = io.StringIO()
    with sqs_stub, sns_stub:
        assert listen(options("http://127.0.0.1:1/"), out, clients=(sqs, sns)) == 2
        sqs_stub.assert_no_pending_responses()
    assert "unsubscribed" not in out.getvalue()


def test_a_failing_unsubscribe_still_deletes_the_queue_and_says_what_is_left() -> None:
    sqs, sns, sqs_stub, sns_stub = clients()
    expect_set_up(sqs_stub, sns_stub)
    sns_stub.add_client_error("unsubscribe", "Throttling", "slow down")
    sqs_stub.add_response("delete_queue", {}, {"QueueUrl": QUEUE_URL})
    out = io.StringIO()
    with sqs_stub, sns_stub:
        status = listen(options("http://127.0.0.1:1/", duration=0.001), out, clients=(sqs, sns))
        sqs_stub.assert_no_pending_responses()
    assert status == 1
    assert f"aws sns unsubscribe --subscription-arn {SUBSCRIPTION}" in out.getvalue()
    assert f"cleaned up: deleted queue {QUEUE_URL}" in out.getvalue()


def test_ctrl_c_while_forwarding_cleans_up() -> None:
    class Interrupted:
        def post(self, *args: Any, **kwargs: Any) -> Any:
            raise KeyboardInterrupt

    sqs, sns, sqs_stub, sns_stub = clients()
    expect_set_up(sqs_stub, sns_stub)
    expect_receive(sqs_stub, received(envelope("a")), batch=10)
    expect_clean_up(sqs_stub, sns_stub)
    out = io.StringIO()
    with sqs_stub, sns_stub:
        listen(options("http://127.0.0.1:1/"), out, clients=(sqs, sns), session=Interrupted())
        sqs_stub.assert_no_pending_responses()
        sns_stub.assert_no_pending_responses()
    assert "stopping" in out.getvalue().splitlines()


def test_nothing_from_a_message_or_an_answer_reaches_the_terminal_raw() -> None:
    headers = envelope_headers(
        json.dumps({"Type": "Notification", "MessageId": "\x1b[2Jx\r\nSet-Cookie: a"})
    )
    assert "x-amz-sns-message-id" not in headers  # never a header built from a line break
    line = Delivery("Notification", "\x1b]0;owned\x07", 200, "ok\x1b[31m\u202e").line()
    assert line.isprintable() and "\x1b" not in line
    assert envelope_headers("not json") == {"Content-Type": "text/plain; charset=UTF-8"}


def test_arguments_are_checked_before_anything_is_created() -> None:
    with pytest.raises(ConfigurationError, match="--topic"):
        listen_options("arn:aws:sns:us-east-1:123:x", "http://127.0.0.1/")
    with pytest.raises(ConfigurationError, match="--forward-to"):
        listen_options(TOPIC, "file:///etc/passwd")
    with pytest.raises(ConfigurationError, match="--visibility-timeout"):
        listen_options(TOPIC, "http://127.0.0.1/", visibility_timeout=0)
    found, warnings = listen_options(TOPIC, "http://localhost:8080/sns")
    assert found.region == "us-east-1" and warnings == []
    found, warnings = listen_options(TOPIC, "https://example.com/sns", region="eu-west-1")
    assert found.region == "eu-west-1"
    assert warnings and "example.com is not this machine" in warnings[0]


def test_cli_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["listen", "--topic", "nope", "--forward-to", "http://127.0.0.1/"]) == 2
    assert "--topic" in capsys.readouterr().err


def test_queue_names_are_unique_valid_and_fifo_for_fifo_topics() -> None:
    topic = parse_topic_arn(TOPIC)
    first, second = queue_name(topic), queue_name(topic)
    assert first != second and len(first) <= 80
    assert first.startswith("snsmiddleware-listen-budget-alerts-")
    fifo = queue_name(parse_topic_arn(TOPIC + "-" + "x" * 200 + ".fifo"))
    assert fifo.endswith(".fifo") and len(fifo) <= 80
    policy = json.loads(queue_policy(QUEUE_ARN, TOPIC))["Statement"][0]
    assert policy["Condition"] == {"ArnEquals": {"aws:SourceArn": TOPIC}}
    assert policy["Resource"] == QUEUE_ARN


def test_listen_and_the_cli_do_not_import_boto3() -> None:
    loaded = modules_after("import snsmiddleware.listen, snsmiddleware.cli")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_the_example_iam_policy_allows_exactly_the_calls_listen_makes(local_server: Any) -> None:
    """examples/listen-iam-policy.json (and the README's list) against every call of a run."""
    server = local_server([200])
    sqs, sns, sqs_stub, sns_stub = clients()
    calls: list[str] = []
    for service, client in (("sqs", sqs), ("sns", sns)):
        client.meta.events.register(
            "before-call.*.*",
            lambda model, service=service, **kwargs: calls.append(f"{service}:{model.name}"),
        )
    expect_set_up(sqs_stub, sns_stub)
    expect_receive(sqs_stub, received(envelope("a")), batch=1)
    sqs_stub.add_response(
        "delete_message", {}, {"QueueUrl": QUEUE_URL, "ReceiptHandle": "handle-0"}
    )
    expect_clean_up(sqs_stub, sns_stub)
    with sqs_stub, sns_stub:
        listen(options(server.url, max_messages=1), io.StringIO(), clients=(sqs, sns))
    policy = json.loads((ROOT / "examples" / "listen-iam-policy.json").read_text())
    allowed = {action for statement in policy["Statement"] for action in statement["Action"]}
    assert set(calls) == allowed
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for action in allowed:
        assert f"`{action}`" in readme
