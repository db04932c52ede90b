"""SQLiteDedupeStore beyond the shared contract: files of the previous schema, the commit
that flips a flag, bounded purging, durable effect records; and claim tokens of forked
processes (``serve --workers``)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from snsmiddleware.dedupe import ClaimState, holder_is_dead, new_token
from snsmiddleware.dedupe_sqlite import PURGE_BATCH, PURGE_INTERVAL_SECONDS, SQLiteDedupeStore

LEASE = timedelta(seconds=30)
RETENTION = timedelta(minutes=10)
# The schema and rows as the previous version wrote them (lease in ``expires``).
_PREVIOUS_SCHEMA = """
CREATE TABLE sns_claims (
    key TEXT PRIMARY KEY, done INTEGER NOT NULL, expires REAL NOT NULL, token TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX sns_claims_expires ON sns_claims (expires);
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _store(path: Path, clock: Clock) -> SQLiteDedupeStore:
    return SQLiteDedupeStore(path, lease=LEASE, retention=RETENTION, clock=clock)


def test_a_file_of_the_previous_schema_keeps_its_rows_and_meanings(tmp_path: Path) -> None:
    path, clock = tmp_path / "old.sqlite3", Clock()
    with sqlite3.connect(path) as old:
        old.executescript(_PREVIOUS_SCHEMA)
        old.executemany(
            "INSERT INTO sns_claims VALUES (?, ?, ?, ?)",
            [
                ("done", 1, clock.now + 300, "t1"),  # committed, remembered 5 more minutes
                ("held", 0, clock.now + 20, "t2"),  # claimed by an old process, 20 s lease
                ("old|email", 1, clock.now + 300, ""),  # an effect record
            ],
        )
    old.close()
    store = _store(path, clock)
    assert store.claim("done").state is ClaimState.DONE
    assert store.claim("held").state is ClaimState.IN_PROGRESS
    assert store.effect_recorded("old", "email")
    clock.now += 21  # the old claim's lease lapses
    claim = store.claim("held")
    assert claim.state is ClaimState.CLAIMED
    store.commit(claim)
    clock.now += 301
    assert store.claim("held").state is ClaimState.DONE  # remembered from its commit
    assert store.claim("done").state is ClaimState.CLAIMED  # its retention is over
    store.close()
    # A process of the old version (still running during an upgrade) can go on writing
    # the file as it did (it names its columns): the new one is optional.
    with sqlite3.connect(path) as old:
        old.execute(
            "INSERT INTO sns_claims (key, done, expires, token) VALUES ('by-old', 0, ?, 't9')",
            (clock.now + 5,),
        )
    old.close()
    reopened = _store(path, clock)
    assert reopened.claim("by-old").state is ClaimState.IN_PROGRESS
    reopened.close()


def test_two_stores_migrating_one_file_at_once_both_work(tmp_path: Path) -> None:
    path, clock = tmp_path / "old.sqlite3", Clock()
    with sqlite3.connect(path) as old:
        old.executescript(_PREVIOUS_SCHEMA)
    old.close()
    first, second = _store(path, clock), _store(path, clock)
    claim = first.claim("m")
    assert second.claim("m").state is ClaimState.IN_PROGRESS
    first.commit(claim)
    assert second.claim("m").state is ClaimState.DONE
    first.close()
    second.close()


def test_a_commit_after_the_lease_is_remembered_for_the_retention_after_it(
    tmp_path: Path,
) -> None:
    """An app slower than the lease: its commit still keeps the id a full retention."""
    clock = Clock()
    store = _store(tmp_path / "d.sqlite3", clock)
    claim = store.claim("slow")
    clock.now += LEASE.total_seconds() * 3
    store.commit(claim)
    clock.now += RETENTION.total_seconds() - 1
    assert store.claim("slow").state is ClaimState.DONE
    store.close()


def test_the_usual_commit_leaves_the_expiry_index_alone(tmp_path: Path) -> None:
    """The commit of a held claim flips ``done`` only: the row's expiry (and its index
    entry) were written by the claim."""
    clock = Clock()
    store = _store(tmp_path / "d.sqlite3", clock)
    claim = store.claim("m")
    connection = sqlite3.connect(store.path)
    before = connection.execute("SELECT expires FROM sns_claims WHERE key = 'm'").fetchone()
    clock.now += 5
    store.commit(claim)
    after = connection.execute("SELECT done, expires FROM sns_claims WHERE key = 'm'").fetchone()
    connection.close()
    assert after == (1, before[0])
    assert before[0] >= clock.now + RETENTION.total_seconds()
    store.close()


def test_purging_is_bounded_per_claim_and_catches_up(tmp_path: Path) -> None:
    clock = Clock()
    store = _store(tmp_path / "d.sqlite3", clock)
    store.claim("first")  # the first claim's purge finds nothing and waits a while
    expired = PURGE_BATCH * 5 + 7
    connection = sqlite3.connect(store.path)
    with connection:
        connection.executemany(
            "INSERT INTO sns_claims (key, done, expires, token) VALUES (?, 1, ?, '')",
            [(f"old-{index}", clock.now + 1) for index in range(expired)],
        )
    connection.close()
    clock.now += PURGE_INTERVAL_SECONDS + 1  # the old rows expired, the purge is due again
    sizes = [len(store)]
    for index in range(7):
        store.claim(f"new-{index}")
        sizes.append(len(store))
    # Each claim adds its row and deletes at most one batch, until none are left.
    assert sizes[1] == sizes[0] + 1 - PURGE_BATCH
    assert all(b >= a + 1 - PURGE_BATCH for a, b in zip(sizes, sizes[1:], strict=False))
    assert sizes[-1] == 8  # "first" and the seven new claims
    store.close()


def test_effect_records_are_synced_and_the_connection_goes_back_to_normal(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path / "d.sqlite3", Clock())
    store.record_effect("m", "email")
    assert store.effect_recorded("m", "email")
    # 1 = NORMAL: claims and commits stay cheap after an effect record.
    assert store._connection().execute("PRAGMA synchronous").fetchone()[0] == 1
    store.close()


def test_tokens_are_unique_and_a_forked_child_names_itself() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    read, write = os.pipe()
    hold, release = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: hand over a token, then wait to be told to exit
        os.close(read)
        os.write(write, new_token().encode())
        os.read(hold, 1)
        os._exit(0)
    os.close(write)
    token = os.read(read, 4096).decode()
    os.close(read)
    try:
        parts = token.split(".")
        assert parts[2] == str(pid)  # the child's PID, and its own start time
        assert token[:32] != next(iter(tokens))[:32]  # its own random prefix
        assert not holder_is_dead(token)  # alive: its claims must not be taken over
    finally:
        os.write(release, b"x")
        os.waitpid(pid, 0)
    assert holder_is_dead(token)


def test_a_store_opened_before_a_fork_opens_its_own_connection_in_the_child(
    tmp_path: Path,
) -> None:
    """gunicorn --preload builds the app (and opens the store) before forking its workers."""
    store = SQLiteDedupeStore(tmp_path / "d.sqlite3")
    store.commit(store.claim("before"))
    inherited = store._connection()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        ok = store._connection() is not inherited
        ok = ok and store.claim("before").state is ClaimState.DONE
        claim = store.claim("child")
        store.commit(claim)
        os.write(write, b"1" if ok and claim.state is ClaimState.CLAIMED else b"0")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert store._connection() is inherited  # the parent's own is untouched
    assert store.claim("child").state is ClaimState.DONE
    store.close()


def _hold_write_lock(path: Path, seconds: float) -> threading.Thread:
    """Another connection (another process's, as far as SQLite can tell) holds the write
    lock for ``seconds``, from a thread; returns once the lock is held."""
    holding = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        holding.set()
        time.sleep(seconds)
        other.execute("ROLLBACK")
        other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait()
    return thread


def test_a_claim_waits_for_another_writer_and_then_takes_the_id(tmp_path: Path) -> None:
    store = SQLiteDedupeStore(tmp_path / "d.sqlite3")
    store.commit(store.claim("warm"))
    holder = _hold_write_lock(tmp_path / "d.sqlite3", 0.3)
    claim = store.claim("waited")  # busy for 0.3 s: retried in short pauses, not refused
    holder.join()
    assert claim.state is ClaimState.CLAIMED
    holder = _hold_write_lock(tmp_path / "d.sqlite3", 0.3)
    store.commit(claim)  # the commit waits likewise
    holder.join()
    holder = _hold_write_lock(tmp_path / "d.sqlite3", 0.3)
    store.release(store.claim("other"))  # and every other statement
    holder.join()
    assert store.claim("waited").state is ClaimState.DONE
    store.close()


def test_a_store_opened_while_another_process_writes_waits_to_migrate(tmp_path: Path) -> None:
    """Start-up (a worker started during another's writes) waits for the lock as a claim
    does, rather than failing with a configuration error."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(_PREVIOUS_SCHEMA)
        old.execute("PRAGMA journal_mode=WAL")
    old.close()
    holder = _hold_write_lock(path, 0.3)
    store = SQLiteDedupeStore(path)  # its ALTER TABLE needs the write lock
    holder.join()
    columns = {row[1] for row in store._connection().execute("PRAGMA table_info(sns_claims)")}
    assert "held_until" in columns
    store.close()


def test_a_claim_gives_up_once_the_busy_timeout_has_passed(tmp_path: Path) -> None:
    store = SQLiteDedupeStore(tmp_path / "d.sqlite3", busy_timeout=timedelta(milliseconds=100))
    holder = _hold_write_lock(tmp_path / "d.sqlite3", 1.0)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            store.claim("too-late")  # the middleware answers 503: SNS retries
    finally:
        holder.join()
    assert store.claim("too-late").state is ClaimState.CLAIMED  # nothing was written
    store.close()


def test_two_processes_claiming_one_file_at_once_lose_nothing_to_collisions(
    tmp_path: Path,
) -> None:
    """Every claim + commit of two writers on one file succeeds, each id claimed once."""
    path = tmp_path / "d.sqlite3"
    SQLiteDedupeStore(path).close()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child = SQLiteDedupeStore(path)
            for index in range(400):
                child.commit(child.claim(f"shared-{index}"))
            code = 0
        finally:
            os._exit(code)
    store = SQLiteDedupeStore(path)
    won = 0
    for index in range(400):
        claim = store.claim(f"shared-{index}")
        if claim.state is ClaimState.CLAIMED:
            won += 1
            store.commit(claim)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # no claim of the child failed either
    assert all(store.claim(f"shared-{i}").state is ClaimState.DONE for i in range(400))
    assert 0 < won <= 400
    store.close()
