"""Verify SNS notifications that reach you through an SQS queue (raw message delivery off).

An SNS → SQS subscription *without* raw message delivery puts the whole signed SNS envelope,
the same JSON an HTTP(S) endpoint receives, into each SQS message's body; so
``SnsVerifier.verify(body)`` checks it exactly as the middleware would (with raw delivery
on, the body is the bare payload and carries no signature: it is refused).

Two things differ from HTTP(S) delivery:

* **Freshness.** A message can wait in the queue far longer than SNS's one hour of HTTP
  retries, so give ``max_age`` the longest time a message may sit there; and because the
  window to replay a captured message grows with it, de-duplicate by MessageId for at least
  ``verifier.freshness_window`` (SQS also delivers at least once).
* **Failures.** There is no 4xx/5xx answer: a message refused for good is deleted (logged),
  one refused for a transient reason (a certificate download failed) is left in the queue
  and comes back after its visibility timeout.

Run it with ``python -m examples.sqs_consumer QUEUE_URL TOPIC_ARN`` (AWS credentials from the
usual places); :func:`lambda_handler` is the same for an SQS-triggered Lambda function.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from snsmiddleware import ClaimState, MemoryDedupeStore, Notification, SnsError, SnsVerifier

log = logging.getLogger("examples.sqs_consumer")

#: How long a message may wait in the queue before it is treated as a replay.
MAX_QUEUE_AGE = timedelta(hours=12)


def make_verifier(topics: list[str], **options: Any) -> SnsVerifier:
    """A verifier whose freshness window covers the time a message waits in the queue."""
    options.setdefault("max_age", MAX_QUEUE_AGE)
    return SnsVerifier(topics=topics, **options)


class SqsSnsConsumer:
    """Verify, de-duplicate and handle the SNS envelopes in SQS message bodies.

    :param verifier: see :func:`make_verifier`.
    :param handle: called once per genuine, first-seen :class:`Notification`.
    """

    def __init__(self, verifier: SnsVerifier, handle: Callable[[Notification], None]) -> None:
        self.verifier = verifier
        self.handle = handle
        self.dedupe = MemoryDedupeStore(retention=verifier.freshness_window)

    def process(self, body: str) -> bool:
        """Handle one SQS message body; ``True`` when it may be deleted from the queue."""
        try:
            message = self.verifier.verify(body.encode("utf-8"))
        except SnsError as exc:
            if exc.transient:
                log.warning("kept for a retry: %s (%s)", exc.reason, exc.detail)
                return False
            log.warning("deleted, refused for good: %s (%s)", exc.reason, exc.detail)
            return True
        if not isinstance(message, Notification):
            log.info("deleted a %s (nothing to confirm through a queue)", message.type)
            return True
        claim = self.dedupe.claim(message.message_id)
        if claim.state is not ClaimState.CLAIMED:
            return claim.state is ClaimState.DONE  # a duplicate; in progress: keep it
        try:
            self.handle(message)
        except Exception:
            self.dedupe.release(claim)
            log.exception("the handler failed message_id=%s; kept for a retry", claim.key)
            return False
        self.dedupe.commit(claim)
        return True

    def drain(self, sqs: Any, queue_url: str, *, wait_seconds: int = 0) -> int:
        """Receive one batch from ``queue_url`` (a boto3 SQS client), process it, delete
        what is done; return how many messages were deleted."""
        received = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        )
        deleted = 0
        for sqs_message in received.get("Messages", []):
            if self.process(sqs_message["Body"]):
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=sqs_message["ReceiptHandle"])
                deleted += 1
        return deleted


def lambda_handler_for(consumer: SqsSnsConsumer) -> Callable[[dict[str, Any], Any], Any]:
    """An SQS-triggered Lambda handler (with ReportBatchItemFailures on the trigger): the
    records to keep are reported as failures, SQS deletes the rest."""

    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failures = [
            {"itemIdentifier": record["messageId"]}
            for record in event["Records"]
            if not consumer.process(record["body"])
        ]
        return {"batchItemFailures": failures}

    return lambda_handler


def main(argv: list[str]) -> None:  # pragma: no cover - needs a real queue
    import boto3

    queue_url, topic_arn = argv
    logging.basicConfig(level=logging.INFO)
    consumer = SqsSnsConsumer(
        make_verifier([topic_arn]), lambda message: print(message.subject, message.message)
    )
    sqs = boto3.client("sqs")
    while True:
        consumer.drain(sqs, queue_url, wait_seconds=20)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
