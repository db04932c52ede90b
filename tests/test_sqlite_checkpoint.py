"""The SQLite store's WAL checkpoints run in a thread of the store, not inside requests:
what one round copies and when it restarts the WAL, that the rows really reach the database
file, the safety net, and the thread's life (close, garbage collection, fork, failures)."""

from __future__ import annotations

import gc
import logging
import os
import shutil
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pytest

from snsmiddleware import sqlite_checkpoint
from snsmiddleware.dedupe_sqlite import SQLiteDedupeStore
from snsmiddleware.errors import ConfigurationError
from snsmiddleware.sqlite_checkpoint import SAFETY_NET_FRAMES, checkpoint

from ._localstack import wait_for

#: A thread that never wakes during a test: its rounds are run by hand.
NEVER = timedelta(hours=1)
#: SQLite's own automatic checkpoint size, in WAL pages.
SQLITE_DEFAULT_FRAMES = 1000
#: Claims + commits that take the WAL past it (each appends about four pages).
PAIRS_PAST_SQLITE_DEFAULT = 300


def _deliver(store: SQLiteDedupeStore, count: int, prefix: str = "m") -> None:
    for index in range(count):
        store.commit(store.claim(f"{prefix}-{index:06d}"))


def _wal_frames(path: Path) -> int:
    """Pages in the WAL now, read by a passive checkpoint of a connection of its own."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        return int(connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    finally:
        connection.close()


def _done_rows_in_database_file_alone(path: Path, work: Path) -> int:
    """Committed rows in the database file without its WAL: what a checkpoint has copied."""
    copy = work / "copy.sqlite3"
    for leftover in (copy, work / "copy.sqlite3-wal", work / "copy.sqlite3-shm"):
        leftover.unlink(missing_ok=True)
    shutil.copyfile(path, copy)
    connection = sqlite3.connect(copy)
    try:
        tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if ("sns_claims",) not in tables.fetchall():
            return 0  # not even the table has been copied yet
        return int(connection.execute("SELECT count(*) FROM sns_claims WHERE done").fetchone()[0])
    finally:
        connection.close()


def test_a_round_copies_the_wal_into_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    store = SQLiteDedupeStore(path, checkpoint_interval=NEVER)
    _deliver(store, 20)
    assert _done_rows_in_database_file_alone(path, tmp_path) == 0  # all still in the WAL
    connection = sqlite3.connect(path, isolation_level=None)
    result = checkpoint(connection)
    connection.close()
    assert result.wal_frames > 0 and result.copied_frames == result.wal_frames
    assert not result.busy
    assert _done_rows_in_database_file_alone(path, tmp_path) == 20
    store.close()


def test_after_a_complete_round_the_next_write_reuses_the_wal_from_its_start(
    tmp_path: Path,
) -> None:
    """What keeps the WAL short without any checkpoint inside a request."""
    path = tmp_path / "d.sqlite3"
    store = SQLiteDedupeStore(path, checkpoint_interval=NEVER)
    _deliver(store, PAIRS_PAST_SQLITE_DEFAULT)
    connection = sqlite3.connect(path, isolation_level=None)
    result = checkpoint(connection)
    connection.close()
    assert result.wal_frames > SQLITE_DEFAULT_FRAMES
    assert result.copied_frames == result.wal_frames
    _deliver(store, 1, prefix="after")
    assert _wal_frames(path) < 10  # written at the WAL's start, not after its pages
    store.close()


def test_requests_leave_checkpoints_to_the_thread_up_to_the_safety_net(tmp_path: Path) -> None:
    threaded = SQLiteDedupeStore(tmp_path / "threaded.sqlite3", checkpoint_interval=NEVER)
    _deliver(threaded, PAIRS_PAST_SQLITE_DEFAULT)
    # No request checkpointed at SQLite's usual 1,000 pages: the WAL simply grew.
    assert SQLITE_DEFAULT_FRAMES < _wal_frames(tmp_path / "threaded.sqlite3") < SAFETY_NET_FRAMES
    _deliver(threaded, SAFETY_NET_FRAMES // 2, prefix="more")
    # Past the safety net a request checkpoints after all, so the WAL stays bounded.
    assert _wal_frames(tmp_path / "threaded.sqlite3") < SAFETY_NET_FRAMES
    threaded.close()

    unthreaded = SQLiteDedupeStore(tmp_path / "plain.sqlite3", checkpoint_interval=None)
    assert unthreaded.checkpointer is None
    _deliver(unthreaded, PAIRS_PAST_SQLITE_DEFAULT)
    # SQLite's own automatic checkpoint ran inside a request and the WAL started over.
    assert _wal_frames(tmp_path / "plain.sqlite3") < SQLITE_DEFAULT_FRAMES
    unthreaded.close()


def test_the_thread_copies_commits_into_the_database_file_and_stops_with_close(
    tmp_path: Path,
) -> None:
    path = tmp_path / "d.sqlite3"
    store = SQLiteDedupeStore(path, checkpoint_interval=timedelta(milliseconds=10))
    assert store.checkpointer is None  # started by the first claim, not by the constructor
    _deliver(store, 50)
    checkpointer = store.checkpointer
    assert checkpointer is not None and checkpointer.running
    wait_for(
        lambda: _done_rows_in_database_file_alone(path, tmp_path) == 50,
        "the checkpointing thread to copy the 50 commits into the database file",
    )
    wait_for(lambda: checkpointer.rounds >= 1, "the round's count (after its checkpoint)")
    store.close()
    assert store.checkpointer is None
    assert not checkpointer.running
    # The store can be used again after close(): with a thread of its own again.
    _deliver(store, 1, prefix="again")
    assert store.checkpointer is not None and store.checkpointer is not checkpointer
    assert store.checkpointer.running
    store.close()


def test_a_store_dropped_without_close_stops_its_thread(tmp_path: Path) -> None:
    store = SQLiteDedupeStore(tmp_path / "d.sqlite3", checkpoint_interval=timedelta(seconds=0.01))
    _deliver(store, 1)
    checkpointer = store.checkpointer
    assert checkpointer is not None and checkpointer.running
    del store
    gc.collect()
    wait_for(lambda: not checkpointer.running, "the thread of a collected store to stop")


def test_a_forked_child_checkpoints_with_a_thread_of_its_own(tmp_path: Path) -> None:
    """gunicorn --preload opens the store before forking; threads do not survive a fork."""
    path = tmp_path / "d.sqlite3"
    store = SQLiteDedupeStore(path, checkpoint_interval=timedelta(milliseconds=10))
    _deliver(store, 5, prefix="parent")  # its thread runs rounds every 10 ms while we fork
    parent_thread = store.checkpointer
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            _deliver(store, 5, prefix="child")
            mine = store.checkpointer
            ok = mine is not None and mine is not parent_thread and mine.running
            deadline = time.monotonic() + 30
            while ok and (mine is None or mine.rounds == 0) and time.monotonic() < deadline:
                time.sleep(0.01)
            ok = ok and mine is not None and mine.rounds > 0
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert store.checkpointer is parent_thread and parent_thread is not None
    assert parent_thread.running
    store.close()


def test_a_failing_round_is_logged_once_and_the_thread_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_checkpoint = sqlite_checkpoint.checkpoint
    failures = []

    def failing_twice(connection: sqlite3.Connection) -> sqlite_checkpoint.CheckpointPass:
        if len(failures) < 2:
            failures.append(1)
            raise sqlite3.OperationalError("disk I/O error")
        return real_checkpoint(connection)

    monkeypatch.setattr(sqlite_checkpoint, "checkpoint", failing_twice)
    caplog.set_level(logging.WARNING, logger="snsmiddleware.sqlite_checkpoint")
    store = SQLiteDedupeStore(tmp_path / "d.sqlite3", checkpoint_interval=timedelta(seconds=0.01))
    _deliver(store, 1)
    checkpointer = store.checkpointer
    assert checkpointer is not None
    wait_for(lambda: checkpointer.rounds > 0, "a round after two failed ones")
    warnings = [r for r in caplog.records if r.name == "snsmiddleware.sqlite_checkpoint"]
    assert len(warnings) == 1
    assert "disk I/O error" in warnings[0].getMessage()
    assert checkpointer.running
    store.close()


@pytest.mark.parametrize("interval", [timedelta(0), timedelta(seconds=-1)])
def test_a_checkpoint_interval_must_be_positive(tmp_path: Path, interval: timedelta) -> None:
    with pytest.raises(ConfigurationError, match="checkpoint_interval"):
        SQLiteDedupeStore(tmp_path / "d.sqlite3", checkpoint_interval=interval)
