"""SQLiteDedupeStore: durable de-duplication for one host, across restarts and processes.

The embedded default of the standalone server. SQLite in WAL mode lets several processes on
one host share the file safely; every operation is a single statement, so it is atomic
without holding a transaction open across the app call:

* claim is an upsert that only takes a row that is absent or whose claim or retention has
  expired; whether it changed the row says who won;
* commit marks the row done with the retention period; release deletes the row only if it
  still holds *this* claim (its token) and is not done;
* a claim held by a process of this host that has died (:func:`~.dedupe.holder_is_dead`)
  is taken over at once by a compare-and-set on its token, so a restarted server does not
  wait for the lease of its previous incarnation's claims;
* an effect record (:class:`~.dedupe.EffectLedger`) is a done row under its own key.

Times are wall-clock seconds (``time.time``): a monotonic clock means nothing to another
process or after a restart. Expired rows are purged now and then, in bounded batches, so the
file does not grow without limit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Final

from .dedupe import (
    DEFAULT_LEASE,
    DEFAULT_RETENTION,
    Claim,
    ClaimState,
    effect_key,
    holder_is_dead,
    new_token,
)
from .errors import ConfigurationError

log = logging.getLogger(__name__)

#: How long a statement waits for another process's write lock before failing (503).
DEFAULT_BUSY_TIMEOUT: Final = timedelta(seconds=5)
#: Expired rows are purged at most this often, this many at a time.
PURGE_INTERVAL_SECONDS: Final = 60.0
PURGE_BATCH: Final = 10_000

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS sns_claims (
    key TEXT PRIMARY KEY,
    done INTEGER NOT NULL,
    expires REAL NOT NULL,
    token TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sns_claims_expires ON sns_claims (expires);
"""
_CLAIM: Final = """
INSERT INTO sns_claims (key, done, expires, token) VALUES (?, 0, ?, ?)
ON CONFLICT (key) DO UPDATE SET done = 0, expires = excluded.expires, token = excluded.token
WHERE sns_claims.expires <= ?
"""
_STATE: Final = "SELECT done, token, expires FROM sns_claims WHERE key = ?"
_TAKE_OVER: Final = (
    "UPDATE sns_claims SET expires = ?, token = ? WHERE key = ? AND token = ? AND done = 0"
)
_COMMIT: Final = """
INSERT INTO sns_claims (key, done, expires, token) VALUES (?, 1, ?, ?)
ON CONFLICT (key) DO UPDATE SET done = 1, expires = excluded.expires, token = excluded.token
"""
_RELEASE: Final = "DELETE FROM sns_claims WHERE key = ? AND token = ? AND done = 0"
_PURGE: Final = (
    "DELETE FROM sns_claims WHERE key IN (SELECT key FROM sns_claims WHERE expires <= ? LIMIT ?)"
)


class SQLiteDedupeStore:
    """De-duplication in a SQLite file, shared by the threads and processes of one host.

    :param path: the database file (its directory is created if missing).
    :param lease: how long an unfinished claim blocks redeliveries.
    :param retention: how long a processed id is remembered.
    :param busy_timeout: how long to wait for another writer before failing.
    :param clock: wall-clock seconds (tests inject a fake one).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lease: timedelta = DEFAULT_LEASE,
        retention: timedelta = DEFAULT_RETENTION,
        busy_timeout: timedelta = DEFAULT_BUSY_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self._lease = lease.total_seconds()
        self._retention = retention.total_seconds()
        self._busy_timeout = busy_timeout.total_seconds()
        self._clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._next_purge = 0.0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connection().executescript(_SCHEMA)  # fail at startup, not on an alert
        except (OSError, sqlite3.Error) as exc:
            raise ConfigurationError(
                f"the de-duplication store {self.path} is unusable: {exc}"
            ) from None

    def __repr__(self) -> str:
        return f"SQLiteDedupeStore({str(self.path)!r})"

    @property
    def retention(self) -> timedelta:
        """How long a processed id is remembered."""
        return timedelta(seconds=self._retention)

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            # Autocommit: each statement is its own transaction, and none stays open.
            # One connection per thread; check_same_thread=False only lets close() (from
            # any thread) close them all.
            connection = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def claim(self, key: str) -> Claim:
        now = self._clock()
        connection = self._connection()
        token = new_token()  # unique across processes, and names this one
        cursor = connection.execute(_CLAIM, (key, now + self._lease, token, now))
        if cursor.rowcount == 1:
            self._maybe_purge(connection, now)
            return Claim(key, ClaimState.CLAIMED, token)
        row = connection.execute(_STATE, (key,)).fetchone()
        if row is not None and row[0]:
            return Claim(key, ClaimState.DONE)
        # A row released between the two statements counts as held: SNS retries soon.
        if row is not None and holder_is_dead(row[1]):
            taken = connection.execute(_TAKE_OVER, (now + self._lease, token, key, row[1]))
            if taken.rowcount == 1:
                log.warning("took over the claim of a dead process message_id=%s", key)
                return Claim(key, ClaimState.CLAIMED, token)
        return Claim(key, ClaimState.IN_PROGRESS)

    def commit(self, claim: Claim) -> None:
        now = self._clock()
        self._connection().execute(_COMMIT, (claim.key, now + self._retention, claim.token))

    def release(self, claim: Claim) -> None:
        self._connection().execute(_RELEASE, (claim.key, claim.token))

    def record_effect(self, key: str, effect: str) -> None:
        now = self._clock()
        self._connection().execute(_COMMIT, (effect_key(key, effect), now + self._retention, ""))

    def effect_recorded(self, key: str, effect: str) -> bool:
        row = self._connection().execute(_STATE, (effect_key(key, effect),)).fetchone()
        return row is not None and bool(row[0]) and row[2] > self._clock()

    def ping(self) -> bool:
        """True when the file takes a write lock now (for health endpoints): a read-only,
        vanished or locked-up database fails here as a claim would."""
        connection = None
        try:
            connection = self._connection()
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
        except sqlite3.Error:
            if connection is not None and connection.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # never leave this thread's open
                    connection.execute("ROLLBACK")
            return False
        return self.path.is_file()

    def _maybe_purge(self, connection: sqlite3.Connection, now: float) -> None:
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_INTERVAL_SECONDS
        connection.execute(_PURGE, (now, PURGE_BATCH))

    def __len__(self) -> int:
        """Rows in the file, expired ones included until purged (for tests and metrics)."""
        return int(self._connection().execute("SELECT count(*) FROM sns_claims").fetchone()[0])

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()
