"""WalCheckpointer: moves SQLite's WAL checkpoints off the request path, into one thread.

In WAL mode every committed transaction is appended to the ``-wal`` file; a *checkpoint*
copies those pages back into the database file and syncs both files. SQLite runs one
automatically inside whichever commit takes the WAL past 1,000 pages, so with the
de-duplication store every 250th delivery or so paid for copying several hundred scattered
pages and waiting for the disk to sync them: 5–20 ms on this project's test machine
(``benchmarks`` part ``checkpoint``: claim + commit 1.2× faster with this thread, p99
halved).

Here a daemon thread per store and process checkpoints instead, every ``interval``, in
``PASSIVE`` mode: it copies whatever the WAL holds and syncs, and blocks no one (writers
go on appending meanwhile, readers go on reading). The WAL is reused from its start by the
first writer that finds it completely copied, which happens whenever a round ends between
two writes. Under a writer that never pauses that may not happen, so the request
connections keep SQLite's own automatic checkpoint as a safety net, at
:data:`SAFETY_NET_FRAMES` pages: it bounds the WAL, and by then the thread has copied all
but the last pages, so it is short.

Durability improves: with ``synchronous=NORMAL`` the WAL is synced only by a checkpoint, so
what a power cut can lose is what was written since the last one. SQLite's automatic
checkpoint comes after 1,000 pages, which at an alert a minute is many hours; here it is at
most ``interval`` (plus the checkpoint's own time) whatever the rate.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

#: How often the thread checkpoints: the longest a committed claim waits to be synced.
DEFAULT_CHECKPOINT_INTERVAL: Final = timedelta(milliseconds=200)
#: The request connections' own automatic checkpoint, at 4,000 WAL pages (16 MB; SQLite's
#: default is 1,000): by then this thread has usually copied all but the last few pages.
SAFETY_NET_FRAMES: Final = 4000


@dataclass(frozen=True, slots=True)
class CheckpointPass:
    """What one round did: the WAL's length, in pages, how many of them are now copied into
    the database file, and whether another checkpoint was running (nothing done)."""

    wal_frames: int
    copied_frames: int
    busy: bool


def checkpoint(connection: sqlite3.Connection) -> CheckpointPass:
    """One round: a passive checkpoint (``connection`` in autocommit mode, outside any
    transaction)."""
    busy, frames, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return CheckpointPass(frames, copied, busy=bool(busy))


#: Every checkpointer of this process, so that a fork waits for their rounds to finish.
_CHECKPOINTERS: Final[weakref.WeakSet[WalCheckpointer]] = weakref.WeakSet()


def _hold_rounds_for_fork() -> None:
    # A round in progress holds SQLite's process-wide locks; a child forked in the middle
    # of one would inherit them held, and its first connection would wait forever.
    for checkpointer in list(_CHECKPOINTERS):
        checkpointer._round.acquire()
        checkpointer._held_for_fork = True


def _release_rounds_after_fork() -> None:
    for checkpointer in list(_CHECKPOINTERS):
        if checkpointer._held_for_fork:
            checkpointer._held_for_fork = False
            checkpointer._round.release()


os.register_at_fork(
    before=_hold_rounds_for_fork,
    after_in_parent=_release_rounds_after_fork,
    after_in_child=_release_rounds_after_fork,
)


class WalCheckpointer:
    """One daemon thread checkpointing one database file every ``interval``.

    Started by a store at its first claim (:meth:`start` is idempotent), stopped by
    :meth:`stop`. Its own connection never writes rows. A failing round (disk full, file
    removed) is logged once per kind of failure and retried at the next round; the requests'
    safety-net checkpoint still bounds the WAL meanwhile. The thread does not survive a
    fork (no thread does): the store starts another one in the child.
    """

    def __init__(self, path: Path, interval: timedelta) -> None:
        if interval <= timedelta(0):
            raise ValueError("the checkpoint interval must be positive")
        self.path = path
        self.interval = interval.total_seconds()
        #: Rounds completed, and the last one (for tests, health and metrics).
        self.rounds = 0
        self.last: CheckpointPass | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._round = threading.Lock()  # held during a round, and across a fork
        self._held_for_fork = False
        self._failures: set[str] = set()
        _CHECKPOINTERS.add(self)

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Start the thread unless it runs already."""
        with self._lock:
            if self.running or self._stop.is_set():
                return
            self._thread = threading.Thread(
                target=self._run, name=f"sqlite-checkpoint {self.path.name}", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (finishing its current round) and wait for it."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(self.interval):
                with self._round:
                    try:
                        if connection is None:
                            connection = sqlite3.connect(
                                self.path, isolation_level=None, check_same_thread=False
                            )
                        self.last = checkpoint(connection)
                        self.rounds += 1
                    except sqlite3.Error as exc:
                        self._log_failure(exc)
        finally:
            if connection is not None:
                connection.close()

    def _log_failure(self, exc: sqlite3.Error) -> None:
        kind = f"{type(exc).__name__}: {exc}"
        if kind not in self._failures:
            self._failures.add(kind)
            log.warning(
                "checkpointing %s failed (%s); retrying every %.1f s, and the requests "
                "checkpoint themselves past %d WAL pages",
                self.path,
                kind,
                self.interval,
                SAFETY_NET_FRAMES,
            )
