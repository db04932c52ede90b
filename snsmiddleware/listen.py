"""``snsmiddleware listen``: receive a topic's real, signed deliveries on a laptop.

A machine with no public endpoint cannot be an HTTP(S) subscriber, but it can poll a queue.
An SNS → SQS subscription with raw message delivery *off* puts the whole signed envelope, the
same JSON an HTTP(S) endpoint receives, into each SQS message's body. So ``listen`` creates
a temporary queue that only the topic may send to, subscribes it, long-polls it, and POSTs
each body byte for byte to a local server with the ``x-amz-sns-*`` headers SNS would have
sent. The local server verifies the signature as it would any real delivery: nothing here is
trusted, nothing from a message is fetched (no SubscribeURL), and a SubscriptionConfirmation
(a topic in another account) is forwarded for the local server to handle like any other.

The queue keeps SNS's delivery semantics: a 2xx–4xx answer means *delivered* (the SQS message
is deleted), a 5xx or an unreachable server means *retry* (the message is left in the queue
and becomes visible again after the visibility timeout). On exit (Ctrl-C, SIGTERM,
``max_messages``, ``duration``) the subscription and the queue are removed.

boto3 is imported only when :func:`listen` runs.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlsplit

from .errors import ConfigurationError, SnsError
from .policy import TopicArn, parse_topic_arn
from .terminal import terminal_safe

#: SQS's longest long poll.
MAX_WAIT_SECONDS = 20
#: How long a local server may take to answer; SNS itself waits 15 s for an HTTP endpoint.
FORWARD_TIMEOUT = 15.0
#: The visibility timeout's bounds (seconds): long enough for a forward, short enough that a
#: message the local server could not take (5xx) comes back while someone is watching.
MIN_VISIBILITY_TIMEOUT = 1
MAX_VISIBILITY_TIMEOUT = 300
DEFAULT_VISIBILITY_TIMEOUT = 30
#: The envelope fields the ``x-amz-sns-*`` headers repeat.
_HEADER_FIELDS = (
    ("x-amz-sns-message-type", "Type"),
    ("x-amz-sns-message-id", "MessageId"),
    ("x-amz-sns-topic-arn", "TopicArn"),
)
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class _Stop(BaseException):
    """Raised in the main thread by the SIGTERM handler: leave the loop, then clean up.

    A BaseException, like KeyboardInterrupt: the HTTP and AWS libraries below catch
    ``Exception`` (to retry, to wrap), and must not swallow a request to stop."""


@dataclass(frozen=True)
class ListenOptions:
    """What ``listen`` does; :func:`listen_options` builds it from checked arguments."""

    topic: TopicArn
    topic_arn: str
    forward_to: str
    region: str
    endpoint_url: str | None = None
    max_messages: int | None = None
    duration: float | None = None
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT
    forward_timeout: float = FORWARD_TIMEOUT


def listen_options(
    topic_arn: str,
    forward_to: str,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    max_messages: int | None = None,
    duration: float | None = None,
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT,
) -> tuple[ListenOptions, list[str]]:
    """Check the arguments before anything is created in AWS; return the options and the
    warnings to show. Bad arguments raise :class:`ConfigurationError`."""
    try:
        topic = parse_topic_arn(topic_arn)
    except SnsError as exc:
        raise ConfigurationError(f"--topic {terminal_safe(topic_arn)!r}: {exc}") from None
    warnings = []
    parts = urlsplit(forward_to)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigurationError(
            "--forward-to must be an http:// or https:// URL, for example "
            "http://127.0.0.1:8080/sns/budgets"
        )
    if parts.hostname not in _LOCAL_HOSTS and not parts.hostname.startswith("127."):
        warnings.append(
            f"{terminal_safe(parts.hostname)} is not this machine: every delivery of the "
            "topic will be sent there"
        )
    if endpoint_url is not None and urlsplit(endpoint_url).scheme not in {"http", "https"}:
        raise ConfigurationError("--endpoint-url must be an http:// or https:// URL")
    if max_messages is not None and max_messages < 1:
        raise ConfigurationError("--max-messages must be at least 1")
    if duration is not None and duration <= 0:
        raise ConfigurationError("--duration must be positive")
    if not MIN_VISIBILITY_TIMEOUT <= visibility_timeout <= MAX_VISIBILITY_TIMEOUT:
        raise ConfigurationError(
            f"--visibility-timeout must be {MIN_VISIBILITY_TIMEOUT}-{MAX_VISIBILITY_TIMEOUT} s"
        )
    options = ListenOptions(
        topic=topic,
        topic_arn=topic_arn,
        forward_to=forward_to,
        region=region or topic.region,
        endpoint_url=endpoint_url,
        max_messages=max_messages,
        duration=duration,
        visibility_timeout=visibility_timeout,
    )
    return options, warnings


def queue_name(topic: TopicArn) -> str:
    """A unique name that says what the queue is for (SQS allows 80 characters of
    ``[A-Za-z0-9_-]``; a FIFO topic needs a FIFO queue, whose name ends in ``.fifo``)."""
    fifo = topic.name.endswith(".fifo")
    base = topic.name.removesuffix(".fifo")[:40]
    return f"snsmiddleware-listen-{base}-{uuid.uuid4().hex[:12]}" + (".fifo" if fifo else "")


def queue_policy(queue_arn: str, topic_arn: str) -> str:
    """The queue policy: exactly this topic may send to the queue, nobody else."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "OnlyTheListenedTopic",
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        }
    )


def envelope_headers(body: str, subscription_arn: str | None = None) -> dict[str, str]:
    """The headers SNS sends with an HTTP(S) delivery, rebuilt from the envelope.

    They repeat body fields and are not signed; the local server checks that they agree.
    A field that is missing, not a string or not one printable line is left out (the local
    server then judges the body alone): a header value is never built from a line break.
    """
    headers = {"Content-Type": "text/plain; charset=UTF-8"}
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict):
        for header, name in _HEADER_FIELDS:
            value = document.get(name)
            if isinstance(value, str) and value.isascii() and value.isprintable():
                headers[header] = value
        if document.get("Type") == "Notification" and subscription_arn:
            headers["x-amz-sns-subscription-arn"] = subscription_arn
    return headers


@dataclass(frozen=True)
class Delivery:
    """The outcome of forwarding one envelope: the local answer, or why there was none."""

    message_type: str
    message_id: str
    status: int | None
    reason: str | None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        """SNS's rule: 2xx–4xx is delivered (delete); 5xx or no answer is retried (keep)."""
        return self.status is not None and 200 <= self.status < 500

    def line(self) -> str:
        """One terminal-safe line: type, id, answer, and what happens to the message."""
        answer = (
            f"{self.status} {self.reason or '-'}"
            if self.status is not None
            else f"no answer ({self.error})"
        )
        fate = "deleted" if self.delivered else "kept for a retry"
        return terminal_safe(f"{self.message_type} {self.message_id} -> {answer}; {fate}")


def forward(
    session: Any,
    url: str,
    body: str,
    *,
    subscription_arn: str | None = None,
    timeout: float = FORWARD_TIMEOUT,
) -> Delivery:
    """POST one envelope, byte for byte, to the local server (no redirects followed)."""
    import requests

    headers = envelope_headers(body, subscription_arn)
    message_type = headers.get("x-amz-sns-message-type", "(unknown type)")
    message_id = headers.get("x-amz-sns-message-id", "(no MessageId)")
    try:
        response = session.post(
            url,
            data=body.encode("utf-8"),
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        return Delivery(message_type, message_id, None, None, error=type(exc).__name__)
    response.close()
    reason = response.headers.get("X-SNS-Reason")
    return Delivery(message_type, message_id, response.status_code, reason)


@dataclass
class Resources:
    """What ``listen`` created, so that cleanup removes exactly that."""

    queue_url: str | None = None
    queue_arn: str | None = None
    subscription_arn: str | None = None
    cleaned: list[str] = field(default_factory=list)


def _clients(options: ListenOptions) -> tuple[Any, Any]:
    import boto3
    from botocore.config import Config

    # Bounded: a long poll takes up to 20 s, nothing else should take long.
    config = Config(
        connect_timeout=5,
        read_timeout=MAX_WAIT_SECONDS + 10,
        retries={"mode": "standard", "max_attempts": 3},
    )
    kwargs: dict[str, Any] = {"region_name": options.region, "config": config}
    if options.endpoint_url is not None:
        kwargs["endpoint_url"] = options.endpoint_url
    return boto3.client("sqs", **kwargs), boto3.client("sns", **kwargs)


def set_up(sqs: Any, sns: Any, options: ListenOptions, resources: Resources) -> None:
    """Create the queue, let only the topic send to it, and subscribe it to the topic.

    Each resource is recorded in ``resources`` as soon as it exists, so a failure half way
    is cleaned up too.
    """
    name = queue_name(options.topic)
    attributes = {
        "VisibilityTimeout": str(options.visibility_timeout),
        "MessageRetentionPeriod": "86400",
    }
    if name.endswith(".fifo"):
        attributes["FifoQueue"] = "true"
    resources.queue_url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    found = sqs.get_queue_attributes(QueueUrl=resources.queue_url, AttributeNames=["QueueArn"])
    resources.queue_arn = found["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(
        QueueUrl=resources.queue_url,
        Attributes={"Policy": queue_policy(resources.queue_arn, options.topic_arn)},
    )
    subscribed = sns.subscribe(
        TopicArn=options.topic_arn,
        Protocol="sqs",
        Endpoint=resources.queue_arn,
        Attributes={"RawMessageDelivery": "false"},
        ReturnSubscriptionArn=True,
    )
    resources.subscription_arn = subscribed["SubscriptionArn"]


def clean_up(sqs: Any, sns: Any, resources: Resources, out: TextIO) -> bool:
    """Unsubscribe and delete the queue; each step is tried even if the other failed.
    Returns whether everything was removed (a failure prints what to remove by hand)."""
    ok = True
    arn = resources.subscription_arn
    if arn is not None and arn.startswith("arn:"):  # not "pending confirmation"
        try:
            sns.unsubscribe(SubscriptionArn=arn)
            resources.cleaned.append(f"subscription {arn}")
            out.write(f"cleaned up: unsubscribed {terminal_safe(arn)}\n")
            resources.subscription_arn = None
        except Exception as exc:  # noqa: BLE001 - report and go on to the queue
            ok = False
            out.write(
                f"could not unsubscribe ({terminal_safe(str(exc))}); remove it with: "
                f"aws sns unsubscribe --subscription-arn {terminal_safe(arn)}\n"
            )
    if resources.queue_url is not None:
        url = resources.queue_url
        try:
            sqs.delete_queue(QueueUrl=url)
            resources.cleaned.append(f"queue {url}")
            out.write(f"cleaned up: deleted queue {terminal_safe(url)}\n")
            resources.queue_url = None
        except Exception as exc:  # noqa: BLE001
            ok = False
            out.write(
                f"could not delete the queue ({terminal_safe(str(exc))}); remove it with: "
                f"aws sqs delete-queue --queue-url {terminal_safe(url)}\n"
            )
    out.flush()
    return ok


def poll(
    sqs: Any,
    session: Any,
    options: ListenOptions,
    resources: Resources,
    out: TextIO,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Long-poll the queue and forward each message until ``max_messages`` or ``duration``
    (or a signal); return how many messages were forwarded."""
    assert resources.queue_url is not None
    started = clock()
    forwarded = 0
    while options.max_messages is None or forwarded < options.max_messages:
        wait = MAX_WAIT_SECONDS
        if options.duration is not None:
            remaining = int(options.duration - (clock() - started))
            if remaining < 1:  # a long poll waits whole seconds
                break
            wait = min(wait, remaining)
        batch = 10
        if options.max_messages is not None:
            batch = min(batch, options.max_messages - forwarded)
        received = sqs.receive_message(
            QueueUrl=resources.queue_url,
            MaxNumberOfMessages=batch,
            WaitTimeSeconds=wait,
            VisibilityTimeout=options.visibility_timeout,
        )
        received_at = clock()
        timeout = min(options.forward_timeout, float(options.visibility_timeout))
        for index, message in enumerate(received.get("Messages", [])):
            # A forward that could outlast the message's invisibility would race its own
            # redelivery: leave it in the queue for the next receive instead.
            if index and clock() - received_at + timeout > options.visibility_timeout:
                continue
            delivery = forward(
                session,
                options.forward_to,
                message["Body"],
                subscription_arn=resources.subscription_arn,
                timeout=timeout,
            )
            forwarded += 1
            if delivery.delivered:
                sqs.delete_message(
                    QueueUrl=resources.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
            out.write(delivery.line() + "\n")
            out.flush()
    return forwarded


@contextmanager
def _signals_stop() -> Iterator[None]:
    """SIGTERM stops the loop like Ctrl-C does (only the main thread can take signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise _Stop

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """Cleanup must finish: a second Ctrl-C or SIGTERM would leave the queue behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def listen(
    options: ListenOptions,
    out: TextIO,
    *,
    clients: tuple[Any, Any] | None = None,
    session: Any = None,
) -> int:
    """Set up, forward until told to stop, clean up. Returns the exit status: 0; 1 when
    something could not be removed; 2 when AWS refused or could not be reached.

    :param clients: ``(sqs, sns)`` boto3 clients (tests pass stubbed ones).
    :param session: a ``requests.Session`` for the forwards.
    """
    import requests
    from botocore.exceptions import BotoCoreError, ClientError

    sqs, sns = clients if clients is not None else _clients(options)
    session = session if session is not None else requests.Session()
    resources = Resources()
    status = 0
    # The cleanup runs inside the SIGTERM handler's scope, with both signals ignored: no
    # moment between the loop and the cleanup where a signal would kill the process.
    with _signals_stop():
        try:
            set_up(sqs, sns, options, resources)
            out.write(
                f"listening to {terminal_safe(options.topic_arn)}\n"
                f"  queue        {terminal_safe(resources.queue_url or '')}\n"
                f"  subscription {terminal_safe(resources.subscription_arn or '')}\n"
                f"  forwarding to {terminal_safe(options.forward_to)} (Ctrl-C to stop)\n"
            )
            out.flush()
            count = poll(sqs, session, options, resources, out)
            out.write(f"stopping after {count} message(s)\n")
        except (KeyboardInterrupt, _Stop):
            out.write("stopping\n")
        except (BotoCoreError, ClientError) as exc:
            out.write(f"error: {terminal_safe(str(exc))}\n")
            status = 2
        finally:
            with _signals_ignored():
                if not clean_up(sqs, sns, resources, out):
                    status = max(status, 1)
    return status
