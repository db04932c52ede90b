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
process or after a restart. Expired rows are purged in small batches (:data:`PURGE_BATCH`
rows, about a millisecond), one batch per claim while any are due, so the file does not grow
without limit and no request waits behind a long purge.

Durability: WAL with ``synchronous=NORMAL``. Every statement is in the WAL (the operating
system's page cache) before it returns, so a crash of the process loses nothing; a power cut
(or a kernel crash) can lose the last transactions written since the WAL was last synced,
never corrupt the file. The WAL is synced by each checkpoint, which a thread of the store
runs every ``checkpoint_interval`` (0.2 s; :mod:`~snsmiddleware.sqlite_checkpoint`), off the
request path, so that window is a fraction of a second. What that can cost: claims
(harmless: nobody holds them after a reboot) and commits of deliveries just processed. A
lost commit matters only if SNS redelivers the message, which it does only when our 2xx did
not reach it, the same case as a process dying just before its commit, which the contract
already covers: the app runs again, and an app whose effect cannot be repeated checks its
effect record first. Effect records are therefore written with ``synchronous=FULL`` (synced
before :meth:`SQLiteDedupeStore.record_effect` returns, together with everything before them
in the WAL); they are one per email, not one per delivery.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

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
from .sqlite_checkpoint import DEFAULT_CHECKPOINT_INTERVAL, SAFETY_NET_FRAMES, WalCheckpointer

log = logging.getLogger(__name__)

#: How long a statement waits for another process's write lock before failing (503).
DEFAULT_BUSY_TIMEOUT: Final = timedelta(seconds=5)
#: A statement that finds the file locked tries again after this pause, doubled after each
#: try up to :data:`BUSY_PAUSE_MAX`. SQLite's own busy handler sleeps 1 ms, then 2, 5, 10...:
#: ages next to a lock held for some tens of microseconds (one claim), so two writers (two
#: processes, or two threads of one) lost a millisecond or more at every collision.
BUSY_PAUSE_FIRST: Final = 0.00005
BUSY_PAUSE_MAX: Final = 0.002
#: Expired rows are purged at most this many at a time (about a millisecond of work), so no
#: request waits long behind a purge; a full batch means more are due, and the next claim
#: purges again, so the purge keeps up with any rate of claims (each adds one row).
PURGE_BATCH: Final = 100
#: With nothing (more) to purge, look again this much later.
PURGE_INTERVAL_SECONDS: Final = 60.0

# ``expires`` is when a row may be forgotten: a claim writes it once, as the retention it
# will need when committed (plus the lease, so a commit at the lease's end still finds its
# full retention), so that the commit only flips ``done`` and touches no index. The lease
# has its own, unindexed column ``held_until`` (NULL in rows written before it existed,
# whose lease was ``expires``).
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS sns_claims (
    key TEXT PRIMARY KEY,
    done INTEGER NOT NULL,
    expires REAL NOT NULL,
    token TEXT NOT NULL,
    held_until REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sns_claims_expires ON sns_claims (expires);
"""
_ADD_LEASE_COLUMN: Final = "ALTER TABLE sns_claims ADD COLUMN held_until REAL"
_CLAIM: Final = """
INSERT INTO sns_claims (key, done, expires, token, held_until) VALUES (?1, 0, ?2, ?3, ?4)
ON CONFLICT (key) DO UPDATE SET
    done = 0, expires = excluded.expires, token = excluded.token,
    held_until = excluded.held_until
WHERE sns_claims.expires <= ?5
   OR (sns_claims.done = 0 AND coalesce(sns_claims.held_until, sns_claims.expires) <= ?5)
"""
_STATE: Final = "SELECT done, token, expires FROM sns_claims WHERE key = ?"
_TAKE_OVER: Final = (
    "UPDATE sns_claims SET held_until = ?, token = ? WHERE key = ? AND token = ? AND done = 0"
)
# The usual commit: this claim, still held, whose row already lasts the retention.
_COMMIT_HELD: Final = (
    "UPDATE sns_claims SET done = 1 WHERE key = ? AND token = ? AND done = 0 AND expires >= ?"
)
# Any other commit (the lease lapsed and another request took over, the app outlived the
# lease, a row of an older version): done is done, whoever holds the claim now.
_COMMIT: Final = """
INSERT INTO sns_claims (key, done, expires, token) VALUES (?, 1, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    done = 1, expires = excluded.expires, token = excluded.token, held_until = NULL
"""
_RELEASE: Final = "DELETE FROM sns_claims WHERE key = ? AND token = ? AND done = 0"
_PURGE: Final = (
    "DELETE FROM sns_claims WHERE key IN (SELECT key FROM sns_claims WHERE expires <= ? LIMIT ?)"
)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY  # any SQLITE_BUSY_* as well


#: SQLite's own ``execute``, one try, whatever the class of the connection.
_execute_once: Final = sqlite3.Connection.execute


class _PatientConnection(sqlite3.Connection):
    """A connection that waits for a locked file in short pauses of its own, up to
    ``busy_timeout`` seconds (SQLite's busy timeout is 0 on it: see :data:`BUSY_PAUSE_FIRST`).

    A statement that fails with ``SQLITE_BUSY`` did nothing, so running it again is safe;
    every statement of the store is a transaction of its own (autocommit).
    """

    busy_timeout = DEFAULT_BUSY_TIMEOUT.total_seconds()

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return _execute_once(self, sql, parameters)
        except sqlite3.OperationalError as exc:
            return self.execute_again(exc, sql, parameters)

    def execute_again(
        self, failure: sqlite3.OperationalError, sql: str, parameters: Any = (), /
    ) -> sqlite3.Cursor:
        """After ``failure`` of one try: raise it, or retry patiently if it was busy.

        The two statements of every delivery call :data:`_execute_once` themselves, and
        this only when it fails: a Python ``execute`` on their way cost about 4,000
        instructions a delivery (a twentieth of the store's work)."""
        if not _is_busy(failure):
            raise failure
        return self._patiently(lambda: _execute_once(self, sql, parameters))

    def executescript(self, script: str, /) -> sqlite3.Cursor:
        # Only the migration's CREATE ... IF NOT EXISTS script: safe to run again as a whole.
        try:
            return super().executescript(script)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
        return self._patiently(lambda: super(_PatientConnection, self).executescript(script))

    def _patiently(self, run: Callable[[], sqlite3.Cursor]) -> sqlite3.Cursor:
        """Run again after a pause until it is not busy or ``busy_timeout`` has passed."""
        deadline = time.monotonic() + self.busy_timeout
        pause = BUSY_PAUSE_FIRST
        while True:
            time.sleep(pause)
            try:
                return run()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
            pause = min(2 * pause, BUSY_PAUSE_MAX)


def _migrate(connection: sqlite3.Connection) -> None:
    """Create the table, or bring a file of an earlier version up to date (in place: its
    rows keep working, and processes of that version can go on sharing the file)."""
    connection.executescript(_SCHEMA)
    columns = {row[1] for row in connection.execute("PRAGMA table_info(sns_claims)")}
    if "held_until" in columns:
        return
    try:
        connection.execute(_ADD_LEASE_COLUMN)
    except sqlite3.OperationalError:  # another process added it first
        columns = {row[1] for row in connection.execute("PRAGMA table_info(sns_claims)")}
        if "held_until" not in columns:
            raise


#: Every open store, so that a forked child (gunicorn ``--preload``, ``os.fork``) opens
#: connections of its own: SQLite forbids using a connection across a fork.
_STORES: Final[weakref.WeakSet[SQLiteDedupeStore]] = weakref.WeakSet()


def _forget_connections_after_fork() -> None:
    for store in list(_STORES):
        store._local = threading.local()
        store._connections = []  # the parent's: neither used nor closed here
        store._checkpointer = None  # the parent's thread does not exist here


os.register_at_fork(after_in_child=_forget_connections_after_fork)


class SQLiteDedupeStore:
    """De-duplication in a SQLite file, shared by the threads and processes of one host.

    :param path: the database file (its directory is created if missing).
    :param lease: how long an unfinished claim blocks redeliveries.
    :param retention: how long a processed id is remembered.
    :param busy_timeout: how long to wait for another writer before failing.
    :param clock: wall-clock seconds (tests inject a fake one).
    :param checkpoint_interval: how often a thread of this store checkpoints the WAL into
        the database file (:mod:`~snsmiddleware.sqlite_checkpoint`); ``None`` leaves it to
        SQLite's automatic checkpoint inside a request, every 1,000 pages.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lease: timedelta = DEFAULT_LEASE,
        retention: timedelta = DEFAULT_RETENTION,
        busy_timeout: timedelta = DEFAULT_BUSY_TIMEOUT,
        clock: Callable[[], float] = time.time,
        checkpoint_interval: timedelta | None = DEFAULT_CHECKPOINT_INTERVAL,
    ) -> None:
        if checkpoint_interval is not None and checkpoint_interval <= timedelta(0):
            raise ConfigurationError("checkpoint_interval must be positive (or None)")
        self.path = Path(path)
        self._checkpoint_interval = checkpoint_interval
        self._checkpointer: WalCheckpointer | None = None
        self._lease = lease.total_seconds()
        self._retention = retention.total_seconds()
        self._busy_timeout = busy_timeout.total_seconds()
        self._clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._next_purge = 0.0
        _STORES.add(self)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _migrate(self._connection())  # fail at startup, not on an alert
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

    def _connection(self) -> _PatientConnection:
        connection: _PatientConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            # Autocommit: each statement is its own transaction, and none stays open.
            # One connection per thread; check_same_thread=False only lets close() (from
            # any thread) close them all.
            connection = sqlite3.connect(
                self.path,
                timeout=0,  # _PatientConnection waits, in shorter pauses than SQLite's
                isolation_level=None,
                check_same_thread=False,
                factory=_PatientConnection,
            )
            connection.busy_timeout = self._busy_timeout
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            if self._checkpoint_interval is not None:
                connection.execute(f"PRAGMA wal_autocheckpoint={SAFETY_NET_FRAMES}")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _start_checkpointer(self, interval: timedelta) -> None:
        """Start this process's checkpointing thread, at its first claim (not when the store
        is built: gunicorn ``--preload`` builds it before forking the workers)."""
        with self._lock:
            if self._checkpointer is None:
                checkpointer = WalCheckpointer(self.path, interval)
                weakref.finalize(self, checkpointer.stop, 0)
                checkpointer.start()
                self._checkpointer = checkpointer

    @property
    def checkpointer(self) -> WalCheckpointer | None:
        """This process's checkpointing thread (``None`` before the first claim, after
        :meth:`close`, or with ``checkpoint_interval=None``)."""
        return self._checkpointer

    def claim(self, key: str) -> Claim:
        if self._checkpointer is None and self._checkpoint_interval is not None:
            self._start_checkpointer(self._checkpoint_interval)
        now = self._clock()
        connection = self._connection()
        token = new_token()  # unique across processes, and names this one
        held_until = now + self._lease
        values = (key, held_until + self._retention, token, held_until, now)
        try:
            cursor = _execute_once(connection, _CLAIM, values)
        except sqlite3.OperationalError as exc:
            cursor = connection.execute_again(exc, _CLAIM, values)
        if cursor.rowcount == 1:
            if now >= self._next_purge:
                self._purge(connection, now)
            return Claim(key, ClaimState.CLAIMED, token)
        row = connection.execute(_STATE, (key,)).fetchone()
        if row is not None and row[0]:
            return Claim(key, ClaimState.DONE)
        # A row released between the two statements counts as held: SNS retries soon.
        if row is not None and holder_is_dead(row[1]):
            taken = connection.execute(_TAKE_OVER, (held_until, token, key, row[1]))
            if taken.rowcount == 1:
                log.warning("took over the claim of a dead process message_id=%s", key)
                return Claim(key, ClaimState.CLAIMED, token)
        return Claim(key, ClaimState.IN_PROGRESS)

    def commit(self, claim: Claim) -> None:
        expires = self._clock() + self._retention
        connection = self._connection()
        values = (claim.key, claim.token, expires)
        try:
            held = _execute_once(connection, _COMMIT_HELD, values)
        except sqlite3.OperationalError as exc:
            held = connection.execute_again(exc, _COMMIT_HELD, values)
        if held.rowcount != 1:
            connection.execute(_COMMIT, (claim.key, expires, claim.token))

    def release(self, claim: Claim) -> None:
        self._connection().execute(_RELEASE, (claim.key, claim.token))

    def record_effect(self, key: str, effect: str) -> None:
        """Durable at once, also against a power cut (``synchronous=FULL`` for this one
        statement): the effect (an email handed over) cannot be taken back."""
        now = self._clock()
        connection = self._connection()
        connection.execute("PRAGMA synchronous=FULL")
        try:
            connection.execute(_COMMIT, (effect_key(key, effect), now + self._retention, ""))
        finally:
            connection.execute("PRAGMA synchronous=NORMAL")

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

    def _purge(self, connection: sqlite3.Connection, now: float) -> None:
        """Delete at most :data:`PURGE_BATCH` expired rows; come back at the next claim
        while there are more, else after :data:`PURGE_INTERVAL_SECONDS`."""
        self._next_purge = now + PURGE_INTERVAL_SECONDS
        if connection.execute(_PURGE, (now, PURGE_BATCH)).rowcount >= PURGE_BATCH:
            self._next_purge = now

    def __len__(self) -> int:
        """Rows in the file, expired ones included until purged (for tests and metrics)."""
        return int(self._connection().execute("SELECT count(*) FROM sns_claims").fetchone()[0])

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        with self._lock:
            connections, self._connections = self._connections, []
            checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
        for connection in connections:
            connection.close()
        self._local = threading.local()
