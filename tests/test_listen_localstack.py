"""``snsmiddleware listen`` end to end against LocalStack (host mode): a Budgets alert published
to a topic reaches a temporary SQS queue, ``listen`` (a real process) forwards it to our
waitress server running the budget app in emulator mode, which verifies LocalStack's
signature and writes exactly one email; redeliveries and duplicates write none; nothing is
left in LocalStack after ``listen`` exits. Select with -m localstack."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import boto3
import pytest
from webtest.http import StopableWSGIServer

from snsmiddleware import MemoryDedupeStore, SnsMiddleware, SnsVerifier
from snsmiddleware.budget_app import BudgetApp
from snsmiddleware.devmode import sample_budget_alert
from snsmiddleware.mail import FileOutbox

from ._localstack import start_localstack, wait_for

pytestmark = pytest.mark.localstack
PATH = "/sns/budgets"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def localstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from start_localstack(tmp_path_factory.mktemp("localstack"))


def client(service: str, localstack: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=localstack,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


class CountingOutbox(FileOutbox):
    """The file outbox, counting the emails the app asked it to send."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.sends = 0

    def send(self, message: EmailMessage) -> None:
        self.sends += 1
        super().send(message)


class BudgetServer:
    """waitress + SnsMiddleware(emulator=LocalStack) + BudgetApp writing to a file outbox;
    records every request body and answer, and can answer 503 to the next ``fail`` ones."""

    def __init__(self, localstack: str, topic: str, outbox: Path) -> None:
        self.outbox = CountingOutbox(outbox)
        self.bodies: list[bytes] = []
        self.answers: list[tuple[int, str | None]] = []
        self.fail = 0
        self._lock = threading.Lock()
        app = BudgetApp(
            recipients={"*": "Ana Lima <ana@example.com>"},
            sender="AWS Budgets alerts <budget-alerts@example.com>",
            mailer=self.outbox,
            dead_letter=FileOutbox(outbox.parent / "dead-letter"),
        )
        self.middleware = SnsMiddleware(
            app,
            paths=[PATH],
            topics=[topic],
            emulator=localstack,
            dedupe=MemoryDedupeStore(),
        )
        self.server = StopableWSGIServer.create(self._recorder, threads=4)
        self.url = self.server.application_url.rstrip("/") + PATH

    def _recorder(self, environ: dict[str, Any], start_response: Any) -> Any:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        with self._lock:
            self.bodies.append(body)
            failing = self.fail > 0
            self.fail -= failing
        if failing:
            with self._lock:
                self.answers.append((503, "test_failure"))
            start_response("503 Service Unavailable", [("X-SNS-Reason", "test_failure")])
            return [b""]

        def record(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            reason = {k.lower(): v for k, v in headers}.get("x-sns-reason")
            with self._lock:
                self.answers.append((int(status[:3]), reason))
            return start_response(status, headers, exc_info)

        environ["wsgi.input"] = io.BytesIO(body)
        return self.middleware(environ, record)


class Listener:
    """``python -m snsmiddleware listen`` as a process, its output read line by line."""

    def __init__(self, localstack: str, topic: str, url: str, *extra: str) -> None:
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "PYTHONUNBUFFERED": "1",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "snsmiddleware", "listen", "--topic", topic]
            + ["--forward-to", url, "--endpoint-url", localstack, *extra],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_until_listening(self) -> None:
        wait_for(lambda: any("(Ctrl-C to stop)" in line for line in self.lines), "listen")

    def value(self, prefix: str) -> str:
        for line in self.lines:
            if line.strip().startswith(prefix):
                return line.strip()[len(prefix) :].strip()
        raise AssertionError(f"no {prefix!r} line in {self.lines}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise
        finally:
            self._reader.join(timeout=10)
            assert self.process.stdout is not None
            self.process.stdout.close()
        return status


def start(
    localstack: str, tmp_path: Path, topic_name: str, *extra: str
) -> tuple[Any, Any, str, BudgetServer, Listener]:
    """A topic, our budget server for it, and ``listen`` forwarding the topic to it."""
    sqs, sns = client("sqs", localstack), client("sns", localstack)
    topic = sns.create_topic(Name=topic_name)["TopicArn"]
    server = BudgetServer(localstack, topic, tmp_path / "outbox")
    return sqs, sns, topic, server, Listener(localstack, topic, server.url, *extra)


def publish_alert(sns: Any, topic: str, budget: str) -> None:
    subject, text = sample_budget_alert(budget)
    sns.publish(TopicArn=topic, Message=text, Subject=subject)


def leftovers(sqs: Any, sns: Any, topic: str) -> tuple[list[str], list[Any]]:
    queues = sqs.list_queues(QueueNamePrefix="snsmiddleware-listen-").get("QueueUrls", [])
    return queues, sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]


def test_listen_forwards_a_budget_alert_as_one_email_and_leaves_nothing_behind(
    localstack: str, tmp_path: Path
) -> None:
    sqs, sns, topic, server, listener = start(
        localstack, tmp_path, "budget-alerts-listen", "--visibility-timeout", "2"
    )
    try:
        listener.wait_until_listening()
        queue_url = listener.value("queue")
        subscription = listener.value("subscription")
        attributes = sns.get_subscription_attributes(SubscriptionArn=subscription)["Attributes"]
        assert attributes["Protocol"] == "sqs" and attributes["RawMessageDelivery"] == "false"
        policy = json.loads(
            sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy"])["Attributes"][
                "Policy"
            ]
        )
        assert policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"] == topic

        publish_alert(sns, topic, "Test Budget")
        wait_for(lambda: server.outbox.sends == 1 and len(server.answers) == 1, "the email")
        [(status, _)] = server.answers
        assert status == 200
        [envelope] = server.bodies

        # LocalStack signs what it puts in SQS: the envelope verifies on its own.
        verifier = SnsVerifier(topics=[topic], emulator=localstack, max_age=timedelta(hours=1))
        assert verifier.verify(envelope).message_id == json.loads(envelope)["MessageId"]

        # A duplicate (SQS delivers at least once) is answered but writes nothing.
        sqs.send_message(QueueUrl=queue_url, MessageBody=envelope.decode("utf-8"))
        wait_for(lambda: len(server.answers) == 2, "the duplicate's answer")
        assert server.answers[1][0] == 200

        # A 5xx keeps the message in the queue; it comes back and is written once.
        server.fail = 1
        publish_alert(sns, topic, "Second Budget")
        wait_for(
            lambda: server.outbox.sends == 2 and len(server.answers) == 4,
            "the redelivered alert's email",
        )
        assert server.answers[2] == (503, "test_failure")
        assert server.bodies[2] == server.bodies[3]  # the same envelope, byte for byte
        time.sleep(3)  # longer than the visibility timeout: a second copy would be here
        assert server.outbox.sends == 2
        assert len(list((tmp_path / "outbox").glob("*.eml"))) == 2
    finally:
        status = listener.stop()
        server.server.shutdown()
    output = "\n".join(listener.lines)
    assert status == 0, output
    assert f"cleaned up: deleted queue {queue_url}" in output
    assert f"cleaned up: unsubscribed {subscription}" in output
    assert "503 test_failure; kept for a retry" in output
    assert leftovers(sqs, sns, topic) == ([], [])


def test_max_messages_stops_and_cleans_up(localstack: str, tmp_path: Path) -> None:
    sqs, sns, topic, server, listener = start(
        localstack, tmp_path, "budget-alerts-max", "--max-messages", "1"
    )
    try:
        listener.wait_until_listening()
        publish_alert(sns, topic, "Test Budget")
        status = listener.process.wait(timeout=60)
    finally:
        listener.stop()
        server.server.shutdown()
    assert status == 0, listener.lines
    assert server.outbox.sends == 1
    assert leftovers(sqs, sns, topic) == ([], [])
