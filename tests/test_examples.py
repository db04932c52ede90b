"""Every example in examples/ is exercised, so none of them can rot."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import webtest

from snsmiddleware.errors import CertificateFetchError
from snsmiddleware.testing import FrozenClock, MessageSigner, post_sns

from ._mail_helpers import FAKE_AWS_ENV
from ._net import free_port
from .conftest import PATH, TOPIC

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def kit_options(signer: MessageSigner, clock: FrozenClock) -> dict[str, Any]:
    return {
        "fetch_certificate": signer.fetch_certificate,
        "clock": clock,
        "confirm": lambda message: None,
    }


def check_framework_app(app: Any, signer: MessageSigner) -> None:
    testapp = webtest.TestApp(app)
    message = signer.notification("over budget", Subject="AWS Budgets: x")
    response = post_sns(testapp, PATH, message)
    assert response.status_int == 200, response.text
    assert response.json["received"] == message.fields["MessageId"]
    assert response.json["subject"] == "AWS Budgets: x"
    assert post_sns(testapp, PATH, message.tampered(Message="forged")).status_int == 403
    assert post_sns(testapp, PATH, signer.subscription_confirmation()).status_int == 200


def test_flask_example(kit_options: dict[str, Any], signer: MessageSigner) -> None:
    from examples.flask_app import create_app

    app = create_app(**kit_options)
    check_framework_app(app, signer)
    response = post_sns(webtest.TestApp(app), PATH, signer.notification("again"))
    assert response.json["same_body"] is True
    assert webtest.TestApp(app).get("/").status_int == 200


def test_pyramid_example(kit_options: dict[str, Any], signer: MessageSigner) -> None:
    from examples.pyramid_app import create_app

    app = create_app(**kit_options)
    check_framework_app(app, signer)
    response = post_sns(webtest.TestApp(app), PATH, signer.notification("body"))
    assert response.json["body_bytes"] > 0


def test_django_example(kit_options: dict[str, Any], signer: MessageSigner) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_project.settings")
    from examples.django_project.wsgi import create_application

    app = create_application(**kit_options)
    check_framework_app(app, signer)
    response = post_sns(webtest.TestApp(app), PATH, signer.notification("body"))
    assert response.json["same_body"] is True


def test_standalone_example_in_process(kit_options: dict[str, Any], signer: MessageSigner) -> None:
    from examples.standalone_waitress import create_app

    testapp = webtest.TestApp(create_app(**kit_options))
    response = post_sns(testapp, PATH, signer.notification("x"))
    assert (response.status_int, response.text) == (200, "ok\n")


def test_standalone_example_serves_over_http(signer: MessageSigner) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "standalone_waitress.py"), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "SNS_TOPICS": TOPIC},
    )
    url = f"http://127.0.0.1:{port}{PATH}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = requests.post(url, data=b"{}", timeout=5)
                break
            except requests.ConnectionError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the example did not start"
                time.sleep(0.1)
        assert (response.status_code, response.headers["X-SNS-Reason"]) == (400, "unknown_type")
        other = signer.notification("x", TopicArn="arn:aws:sns:us-east-1:999999999999:other")
        response = requests.post(url, data=other.body, headers=other.headers, timeout=5)
        assert (response.status_code, response.headers["X-SNS-Reason"]) == (
            403,
            "topic_not_allowed",
        )
    finally:
        process.terminate()
        process.communicate(timeout=10)  # also closes the stderr pipe


# --- SNS envelopes in SQS message bodies (examples/sqs_consumer.py) ----------------------------


@pytest.fixture
def moto_sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A boto3 SQS client talking to moto's server mode on 127.0.0.1 over real HTTP."""
    import boto3
    from moto.server import ThreadedMotoServer

    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield boto3.session.Session().client(
            "sqs", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}"
        )
    finally:
        server.stop()


def queue_bodies(sqs: Any, queue_url: str) -> list[str]:
    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [message["Body"] for message in received.get("Messages", [])]


def test_sqs_consumer_example_against_a_real_queue(
    moto_sqs: Any, signer: MessageSigner, clock: FrozenClock
) -> None:
    from examples.sqs_consumer import SqsSnsConsumer, make_verifier

    handled: list[str] = []
    consumer = SqsSnsConsumer(
        make_verifier([TOPIC], fetch_certificate=signer.fetch_certificate, clock=clock),
        lambda message: handled.append(message.message),
    )
    queue_url = moto_sqs.create_queue(
        QueueName="budget-alerts", Attributes={"VisibilityTimeout": "0"}
    )["QueueUrl"]
    genuine = signer.notification("over budget", Subject="AWS Budgets: x")
    for body in (
        genuine.body,
        genuine.body,  # SQS delivers at least once
        genuine.tampered(Message="forged").body,
        b"over budget",  # raw message delivery on: nothing to verify
    ):
        moto_sqs.send_message(QueueUrl=queue_url, MessageBody=body.decode())
    clock.advance(timedelta(hours=3))  # waited in the queue longer than SNS's HTTP retries

    deleted = 0
    for _ in range(4):
        deleted += consumer.drain(moto_sqs, queue_url)
    assert (deleted, handled) == (4, ["over budget"])
    assert queue_bodies(moto_sqs, queue_url) == []


def test_sqs_consumer_example_keeps_what_may_succeed_later(
    signer: MessageSigner, clock: FrozenClock
) -> None:
    from examples.sqs_consumer import SqsSnsConsumer, lambda_handler_for, make_verifier

    outage = {"on": True}

    def flaky_fetch(url: str) -> bytes:
        if outage["on"]:
            raise CertificateFetchError("the certificate host did not answer")
        return signer.fetch_certificate(url)

    handled: list[str] = []
    consumer = SqsSnsConsumer(
        make_verifier([TOPIC], fetch_certificate=flaky_fetch, clock=clock),
        lambda message: handled.append(message.message_id),
    )
    handler = lambda_handler_for(consumer)
    genuine = signer.notification("x")
    event = {
        "Records": [
            {"messageId": "m-1", "eventSource": "aws:sqs", "body": genuine.body.decode()},
            {"messageId": "m-2", "eventSource": "aws:sqs", "body": "not an envelope"},
        ]
    }
    assert handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    outage["on"] = False
    assert handler(event, None) == {"batchItemFailures": []}
    assert handler(event, None) == {"batchItemFailures": []}  # the redelivery: a duplicate
    assert handled == [genuine.fields["MessageId"]]
