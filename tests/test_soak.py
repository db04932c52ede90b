"""A bounded soak: SnsMiddleware(BudgetApp(FileOutbox)) on a real waitress server, under
concurrent clients, with duplicate and forged deliveries mixed in.

Eight client threads post about 600 requests to 127.0.0.1 (never anywhere else): genuine
Budgets alerts, about 10% redeliveries of alerts already sent (some racing their original),
and a sprinkling of forgeries. Clients behave like SNS: a 5xx is retried after a short
pause, anything else is final. Afterwards every genuine alert has produced exactly one
.eml, every forgery got 403 and produced none, and the memory traced by tracemalloc grew
no more in the second half than the per-message bookkeeping the store legitimately keeps.
The run is bounded in count (the plan is fixed) and in time (every wait has a time-out).
"""

from __future__ import annotations

import gc
import logging
import random
import re
import threading
import time
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from webtest.http import StopableWSGIServer

from snsmiddleware import SnsMiddleware
from snsmiddleware.budget_app import BudgetApp
from snsmiddleware.devmode import sample_budget_alert
from snsmiddleware.mail import FileOutbox
from snsmiddleware.testing import MessageSigner, SignedMessage, TestCA

from ._hardening_helpers import emails_in
from .conftest import PATH, TOPIC

GENUINE = 500
DUPLICATES = 60
FORGED = 30
CLIENTS = 8
#: Bound on the whole soak; it takes a few seconds on a 2-core machine.
DEADLINE_SECONDS = 90.0
#: What the server may keep per delivery in the second half: the de-duplication entry of
#: each new MessageId is about 250 bytes; keeping each verified message would be 2-3 KB.
MAX_GROWTH_PER_REQUEST = 1024


@dataclass(frozen=True)
class Delivery:
    kind: str  # "genuine", "duplicate" or "forged"
    message: SignedMessage


def plan(signer: MessageSigner, other: MessageSigner) -> list[Delivery]:
    """The fixed, shuffled list of deliveries (seeded: the same plan on every run)."""
    rng = random.Random(20240131)
    genuine = []
    for index in range(GENUINE):
        subject, text = sample_budget_alert(f"Budget {index}", actual=f"{90 + index}.17")
        genuine.append(Delivery("genuine", signer.notification(text, Subject=subject)))
    deliveries = list(genuine)
    rng.shuffle(deliveries)
    for _ in range(DUPLICATES):
        # A redelivery soon after its original: often while the original is in flight.
        position = rng.randrange(len(deliveries))
        original = deliveries[position]
        while original.kind != "genuine":
            position = rng.randrange(len(deliveries))
            original = deliveries[position]
        deliveries.insert(position + rng.randrange(1, 6), Delivery("duplicate", original.message))
    forgeries = [
        lambda m: m.tampered(Message=m.fields["Message"].replace("$", "€")),
        lambda m: m.tampered(Subject="AWS Budgets: someone else's budget has exceeded"),
        lambda m: m.tampered(Signature=other.notification("x").fields["Signature"]),
        lambda m: m.tampered(TopicArn="arn:aws:sns:us-east-1:999999999999:budget-alerts"),
    ]
    for index in range(FORGED):
        victim = rng.choice(genuine).message  # same MessageId as a genuine alert
        forged = forgeries[index % len(forgeries)](victim)
        deliveries.insert(rng.randrange(len(deliveries)), Delivery("forged", forged))
    return deliveries


class Client:
    """Posts like SNS: retries 5xx a bounded number of times, one session per thread."""

    def __init__(self, url: str, deadline: float) -> None:
        self.url = url
        self.deadline = deadline
        self.local = threading.local()

    def post(self, delivery: Delivery) -> tuple[Delivery, int, str]:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        for _ in range(50):
            response = session.post(
                self.url, data=delivery.message.body, headers=delivery.message.headers, timeout=10
            )
            if response.status_code < 500 or time.monotonic() > self.deadline:
                break
            time.sleep(0.02)
        return delivery, response.status_code, response.headers.get("X-SNS-Reason", "")


def run_half(client: Client, deliveries: list[Delivery]) -> list[tuple[Delivery, int, str]]:
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(client.post, delivery) for delivery in deliveries]
        done, pending = wait(futures, timeout=max(1.0, client.deadline - time.monotonic()))
        assert not pending, f"{len(pending)} deliveries did not finish in time"
    return [future.result() for future in futures]


#: Memory the harness keeps, not the server: pytest's captured log records and output,
#: this test's own result lists.
_HARNESS = (
    tracemalloc.Filter(False, logging.__file__),
    tracemalloc.Filter(False, "*/_pytest/*"),
    tracemalloc.Filter(False, __file__),
)


def traced_memory() -> int:
    """Bytes allocated since tracemalloc started and still alive, harness excluded."""
    re.purge()  # the re module's cache of compiled patterns is bounded (512): empty it
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(_HARNESS)
    return sum(stat.size for stat in snapshot.statistics("filename"))


@pytest.fixture
def server(tmp_path: Path, test_ca: TestCA) -> Iterator[tuple[str, MessageSigner, FileOutbox]]:
    signer = MessageSigner(test_ca, topic_arn=TOPIC)
    outbox = FileOutbox(tmp_path / "outbox", fsync=False)
    app = SnsMiddleware(
        BudgetApp(
            recipients={"Budget *": "Ana Lima <ana@example.com>"},
            mailer=outbox,
            dead_letter=FileOutbox(tmp_path / "dead-letter", fsync=False),
        ),
        paths=[PATH],
        topics=[TOPIC],
        fetch_certificate=signer.fetch_certificate,
        confirm=lambda message: None,
    )
    server = StopableWSGIServer.create(app, host="127.0.0.1", threads=4, expose_tracebacks=False)
    try:
        yield f"http://127.0.0.1:{server.adj.port}{PATH}", signer, outbox
    finally:
        server.shutdown()


@pytest.mark.soak
def test_soak_every_genuine_alert_once_every_forgery_refused_memory_flat(
    server: tuple[str, MessageSigner, FileOutbox],
) -> None:
    url, signer, outbox = server
    deliveries = plan(signer, MessageSigner(TestCA(), topic_arn=TOPIC))
    assert len(deliveries) == GENUINE + DUPLICATES + FORGED
    client = Client(url, time.monotonic() + DEADLINE_SECONDS)
    half = len(deliveries) // 2

    tracemalloc.start()
    try:
        results = run_half(client, deliveries[:half])
        after_first = traced_memory()
        results += run_half(client, deliveries[half:])
        after_second = traced_memory()
    finally:
        tracemalloc.stop()

    # Per genuine MessageId: one "sent" and a "duplicate" for each redelivery, whichever of
    # them won the race.
    answers: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for delivery, status, reason in results:
        if delivery.kind != "forged":
            answers[delivery.message.fields["MessageId"]].append((status, reason))
    assert len(answers) == GENUINE
    for got in answers.values():
        assert sorted(got) == [(200, "duplicate")] * (len(got) - 1) + [(200, "sent")], got
    assert sum(len(got) for got in answers.values()) == GENUINE + DUPLICATES
    forged = [(status, reason) for d, status, reason in results if d.kind == "forged"]
    assert all(status == 403 for status, _ in forged), Counter(forged)
    assert {reason for _, reason in forged} <= {"bad_signature", "topic_not_allowed"}

    emails = emails_in(outbox.directory)
    ids = Counter(str(email["X-SNS-Message-Id"]) for email in emails)
    genuine_ids = {d.message.fields["MessageId"] for d in deliveries if d.kind == "genuine"}
    assert set(ids) == genuine_ids and set(ids.values()) == {1}
    assert not any("€" in email.get_body(("plain",)).get_content() for email in emails)

    second_half = len(deliveries) - half
    growth = after_second - after_first
    assert growth < MAX_GROWTH_PER_REQUEST * second_half, (after_first, after_second)
