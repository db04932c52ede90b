"""One contract for every DedupeStore: the claim/commit/release rules "exactly once" rests on.

Each store runs the same tests; a new store joins by adding a ``harness`` param.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from snsmiddleware import ConfigurationError
from snsmiddleware.dedupe import (
    Claim,
    ClaimState,
    DedupeStore,
    EffectLedger,
    MemoryDedupeStore,
    holder_is_dead,
    new_token,
)
from snsmiddleware.dedupe_dynamodb import DynamoDBDedupeStore
from snsmiddleware.dedupe_redis import RedisDedupeStore
from snsmiddleware.dedupe_sqlite import SQLiteDedupeStore

from ._dynamodb_helpers import REGION, MotoDynamoDB

LEASE = timedelta(seconds=30)
RETENTION = timedelta(minutes=10)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta.total_seconds()


@dataclass
class Harness:
    """A way to build one kind of store, its lease and retention, and to let time pass
    (a fake clock where the store takes one; real, short waits for Redis)."""

    make: Callable[[], DedupeStore]
    lease: timedelta
    retention: timedelta
    advance: Callable[[timedelta], None]


@pytest.fixture
def clock() -> FakeClock:  # shadows conftest's datetime clock: stores count seconds
    return FakeClock()


@pytest.fixture(params=["memory", "sqlite", "redis", "dynamodb"])
def harness(request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path) -> Iterator[Harness]:
    stores: list[Any] = []
    kind = request.param
    if kind == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = f"test-{uuid.uuid4().hex}:"
        lease, retention = timedelta(milliseconds=300), timedelta(milliseconds=700)

        def make() -> DedupeStore:
            return RedisDedupeStore(url, lease=lease, retention=retention, key_prefix=prefix)

        yield Harness(make, lease, retention, lambda delta: time.sleep(delta.total_seconds()))
        return

    if kind == "dynamodb":
        server: MotoDynamoDB = request.getfixturevalue("dynamodb")
        table = server.new_table()

        def make_dynamodb() -> DedupeStore:
            return DynamoDBDedupeStore(
                table,
                region=REGION,
                endpoint_url=server.url,
                lease=LEASE,
                retention=RETENTION,
                clock=clock,
            )

        yield Harness(make_dynamodb, LEASE, RETENTION, clock.advance)
        return

    def make_local() -> DedupeStore:
        store: Any
        if kind == "memory":
            store = MemoryDedupeStore(lease=LEASE, retention=RETENTION, monotonic=clock)
        else:
            store = SQLiteDedupeStore(
                tmp_path / "dedupe.sqlite3", lease=LEASE, retention=RETENTION, clock=clock
            )
        stores.append(store)
        return store

    yield Harness(make_local, LEASE, RETENTION, clock.advance)
    for store in stores:
        close = getattr(store, "close", None)
        if close is not None:
            close()


def test_first_claim_wins_and_holds_until_commit(harness: Harness) -> None:
    store = harness.make()
    first = store.claim("m1")
    assert first.state is ClaimState.CLAIMED and first.token
    assert store.claim("m1").state is ClaimState.IN_PROGRESS
    store.commit(first)
    assert store.claim("m1").state is ClaimState.DONE
    assert store.claim("m2").state is ClaimState.CLAIMED


def test_release_lets_a_redelivery_run(harness: Harness) -> None:
    store = harness.make()
    store.release(store.claim("m1"))
    assert store.claim("m1").state is ClaimState.CLAIMED


def test_lapsed_lease_can_be_reclaimed_and_old_release_spares_new_claim(
    harness: Harness,
) -> None:
    store = harness.make()
    first = store.claim("m1")
    harness.advance(harness.lease * 1.5)
    second = store.claim("m1")
    assert second.state is ClaimState.CLAIMED and second.token != first.token
    store.release(first)  # the lapsed holder gives up: must not drop the new claim
    assert store.claim("m1").state is ClaimState.IN_PROGRESS


def test_commit_is_remembered_for_the_retention_period(harness: Harness) -> None:
    store = harness.make()
    store.commit(store.claim("m1"))
    harness.advance(harness.retention * 0.4)
    assert store.claim("m1").state is ClaimState.DONE
    harness.advance(harness.retention * 0.8)
    assert store.claim("m1").state is ClaimState.CLAIMED


def test_release_after_commit_keeps_it_done(harness: Harness) -> None:
    store = harness.make()
    claim = store.claim("m1")
    store.commit(claim)
    store.release(claim)
    assert store.claim("m1").state is ClaimState.DONE


def _claim_at_once(store: DedupeStore, key: str, threads: int = 16) -> list[Claim]:
    """``threads`` claims of ``key``, released together by a barrier."""
    barrier = threading.Barrier(threads)

    def claim(_: int) -> Claim:
        barrier.wait(timeout=10)
        return store.claim(key)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(claim, range(threads)))


def test_concurrent_claims_have_exactly_one_winner(harness: Harness) -> None:
    states = [claim.state for claim in _claim_at_once(harness.make(), "contested")]
    assert states.count(ClaimState.CLAIMED) == 1
    assert states.count(ClaimState.IN_PROGRESS) == 15


def test_concurrent_claims_of_a_lapsed_claim_have_exactly_one_winner(harness: Harness) -> None:
    """A claim whose holder vanished lapses; of the requests that find it lapsed at once,
    exactly one takes it over."""
    store = harness.make()
    store.claim("contested")  # its holder vanished without a word
    harness.advance(harness.lease * 1.5)
    states = [claim.state for claim in _claim_at_once(store, "contested")]
    assert states.count(ClaimState.CLAIMED) == 1
    assert states.count(ClaimState.IN_PROGRESS) == 15


def test_memory_store_claims_race_for_many_keys_with_one_winner_each() -> None:
    """Many rounds of threads racing for fresh and released keys, switching threads as
    often as the interpreter allows: every round has exactly one winner."""
    store = MemoryDedupeStore(max_entries=64)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for round_ in range(200):
            key = f"m{round_ % 50}"  # keys come back after their release
            claims = _claim_at_once(store, key, threads=4)
            won = [claim for claim in claims if claim.state is ClaimState.CLAIMED]
            assert len(won) == 1, (round_, claims)
            store.release(won[0])
    finally:
        sys.setswitchinterval(interval)


def test_effects_are_recorded_apart_from_the_claim_and_kept_for_the_retention(
    harness: Harness,
) -> None:
    store = harness.make()
    assert isinstance(store, EffectLedger)
    claim = store.claim("m1")
    assert not store.effect_recorded("m1", "email")
    store.record_effect("m1", "email")
    assert store.effect_recorded("m1", "email")
    assert not store.effect_recorded("m1", "sms") and not store.effect_recorded("m2", "email")
    assert store.claim("m1").state is ClaimState.IN_PROGRESS  # the claim is untouched
    store.release(claim)
    assert store.claim("m1").state is ClaimState.CLAIMED  # a record is not a commit
    assert store.effect_recorded("m1", "email")  # and a release keeps it
    harness.advance(harness.retention * 1.2)
    assert not store.effect_recorded("m1", "email")


# --- holders: a dead process's claim is taken over at once ---------------------------------

_HOLD_A_CLAIM = """
import sys, time
from datetime import timedelta
kind, where, prefix, key, then = sys.argv[1:6]
if kind == "sqlite":
    from snsmiddleware.dedupe_sqlite import SQLiteDedupeStore
    store = SQLiteDedupeStore(where, lease=timedelta(minutes=10))
elif kind == "dynamodb":
    from snsmiddleware.dedupe_dynamodb import DynamoDBDedupeStore
    store = DynamoDBDedupeStore.from_url(where, lease=timedelta(minutes=10))
else:
    from snsmiddleware.dedupe_redis import RedisDedupeStore
    store = RedisDedupeStore(where, lease=timedelta(minutes=10), key_prefix=prefix)
assert store.claim(key).state.value == "claimed"
print("claimed", flush=True)
if then == "hang":
    time.sleep(60)
"""


@pytest.fixture(params=["sqlite", "redis", "dynamodb"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """(kind, path or URL, key prefix) of a store other processes can open."""
    if request.param == "sqlite":
        path = str(tmp_path / "shared.sqlite3")
        SQLiteDedupeStore(path).close()
        yield "sqlite", path, ""
    elif request.param == "dynamodb":
        server: MotoDynamoDB = request.getfixturevalue("dynamodb")
        yield "dynamodb", server.spec(server.new_table()), ""
    else:
        yield "redis", request.getfixturevalue("redis_url"), f"test-{uuid.uuid4().hex}:"


def _open(kind: str, where: str, prefix: str) -> Any:
    lease = timedelta(minutes=10)  # far longer than the test: only a takeover can free it
    if kind == "sqlite":
        return SQLiteDedupeStore(where, lease=lease)
    if kind == "dynamodb":
        return DynamoDBDedupeStore.from_url(where, lease=lease)
    return RedisDedupeStore(where, lease=lease, key_prefix=prefix)


def test_claim_of_a_process_that_died_is_taken_over_at_once(
    shared_store: tuple[str, str, str],
) -> None:
    kind, where, prefix = shared_store
    holder = subprocess.run(
        [sys.executable, "-c", _HOLD_A_CLAIM, kind, where, prefix, "m1", "exit"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert holder.stdout == b"claimed\n"
    store = _open(kind, where, prefix)
    claim = store.claim("m1")
    assert claim.state is ClaimState.CLAIMED
    assert store.claim("m1").state is ClaimState.IN_PROGRESS  # and now it is ours, alive
    store.commit(claim)
    assert store.claim("m1").state is ClaimState.DONE


def test_claim_of_a_live_process_is_not_taken_over(shared_store: tuple[str, str, str]) -> None:
    kind, where, prefix = shared_store
    with subprocess.Popen(
        [sys.executable, "-c", _HOLD_A_CLAIM, kind, where, prefix, "m1", "hang"],
        stdout=subprocess.PIPE,
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == b"claimed\n"
            store = _open(kind, where, prefix)
            assert store.claim("m1").state is ClaimState.IN_PROGRESS
            holder.kill()
            holder.wait(timeout=10)  # reaped: gone for good
            assert store.claim("m1").state is ClaimState.CLAIMED
        finally:
            holder.kill()


def test_holder_checks_never_declare_unknown_holders_dead() -> None:
    assert not holder_is_dead(uuid.uuid4().hex)  # older versions: no holder in the token
    assert not holder_is_dead(new_token())  # this very process
    token = new_token()
    if token.count(".") == 3:  # Linux: another namespace, or garbage, is never "dead"
        _, namespace, pid, started = token.split(".")
        assert not holder_is_dead(f"x.{'0' * 16}.{pid}.{started}")
        assert not holder_is_dead(f"x.{namespace}.notapid.{started}")
        assert holder_is_dead(f"x.{namespace}.{pid}.{int(started) - 1}")  # pid reused
    assert Claim("k", ClaimState.CLAIMED, token).token == token


# --- SQLite only: durability and several processes -----------------------------------------


def test_sqlite_store_survives_a_restart_with_claims_and_commits(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "var" / "dedupe.sqlite3"
    store = SQLiteDedupeStore(path, lease=LEASE, retention=RETENTION, clock=clock)
    store.commit(store.claim("done"))
    held = store.claim("held")
    store.close()
    reopened = SQLiteDedupeStore(path, lease=LEASE, retention=RETENTION, clock=clock)
    assert reopened.claim("done").state is ClaimState.DONE
    assert reopened.claim("held").state is ClaimState.IN_PROGRESS
    clock.advance(LEASE + timedelta(seconds=1))  # the crashed holder's lease lapses
    assert reopened.claim("held").state is ClaimState.CLAIMED
    assert held.token
    reopened.close()


def test_sqlite_purges_expired_rows(tmp_path: Path, clock: FakeClock) -> None:
    store = SQLiteDedupeStore(tmp_path / "d.sqlite3", lease=LEASE, retention=RETENTION, clock=clock)
    for index in range(50):
        store.commit(store.claim(f"old-{index}"))
    clock.advance(RETENTION + timedelta(minutes=5))
    store.claim("new")
    assert len(store) == 1
    store.close()


def test_sqlite_unusable_path_fails_at_startup(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigurationError):
        SQLiteDedupeStore(blocker / "dedupe.sqlite3")


def _claim_many(path: str, keys: list[str], start: multiprocessing.synchronize.Event) -> list[str]:
    store = SQLiteDedupeStore(path)
    start.wait(10)
    won = [key for key in keys if store.claim(key).state is ClaimState.CLAIMED]
    store.close()
    return won


def test_sqlite_two_processes_claim_each_key_once(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite3")
    SQLiteDedupeStore(path).close()  # create the schema once
    keys = [f"m{index}" for index in range(300)]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Event()
        with context.Pool(2) as pool:
            results = [pool.apply_async(_claim_many, (path, keys, start)) for _ in range(2)]
            start.set()
            won = [result.get(timeout=60) for result in results]
    assert sorted(won[0] + won[1]) == sorted(keys)
    assert not set(won[0]) & set(won[1])


def test_memory_store_stays_bounded_under_a_million_distinct_ids() -> None:
    """Issue 5: a flood of distinct ids cannot grow memory without limit."""
    import tracemalloc

    store = MemoryDedupeStore(max_entries=10_000)

    def flood(start: int, stop: int) -> None:
        for index in range(start, stop):
            store.commit(store.claim(f"{index:08x}-flood"))

    flood(0, 900_000)  # untraced: tracemalloc would make this several times slower
    tracemalloc.start()
    try:
        flood(900_000, 950_000)  # lets tracing see the store's steady state once
        before = tracemalloc.get_traced_memory()[0]
        flood(950_000, 1_000_000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(store) == 10_000
    assert grown < 64 * 1024  # flat: 50,000 more ids cost nothing (unbounded: ~7 MB)


def test_store_exposes_its_retention(harness: Harness) -> None:
    """The middleware checks it against its freshness window when it is built."""
    assert harness.make().retention == harness.retention
