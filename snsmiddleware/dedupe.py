"""De-duplication of notifications by MessageId: SNS delivers at least once.

The contract every store implements (claim, then commit or release) is what makes "exactly
one email per alert" hold:

* :meth:`DedupeStore.claim` is atomic. It returns ``CLAIMED`` to exactly one caller, ``DONE``
  when the id was already processed, ``IN_PROGRESS`` while another request holds the claim.
  The middleware answers ``DONE`` with 200 (SNS may stop) and ``IN_PROGRESS`` with 503 (SNS
  must come back: the first attempt may still fail).
* A claim is a *lease*: if its holder dies without committing or releasing, the claim lapses
  and a redelivery can run.
* :meth:`DedupeStore.commit` keeps the id for the retention period, which must cover SNS's
  redelivery span (the verifier's freshness window: older replays are refused there).
* :meth:`DedupeStore.release` forgets the claim so a redelivery after a failure retries.

Store failures are raised as :class:`~snsmiddleware.errors.TransientError` by the caller's
wrapper (503): processing without de-duplication could send an email twice.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from typing import Final, Protocol, runtime_checkable

#: A claim outlives SNS's 15 s answer deadline with room to spare.
DEFAULT_LEASE: Final = timedelta(minutes=2)
#: SNS retries for at most one hour; the verifier refuses older messages (+ skew).
DEFAULT_RETENTION: Final = timedelta(hours=1, minutes=15)
#: About 200 bytes each: 100,000 ids stay near 20 MB.
DEFAULT_MAX_ENTRIES: Final = 100_000


class ClaimState(enum.Enum):
    """What :meth:`DedupeStore.claim` found."""

    CLAIMED = "claimed"
    IN_PROGRESS = "in_progress"
    DONE = "done"


@runtime_checkable
class DedupeStore(Protocol):
    """Claim/commit/release by key; implementations must be safe under concurrency."""

    def claim(self, key: str) -> ClaimState:
        """Atomically claim ``key`` for processing, unless it is held or done."""
        ...

    def commit(self, key: str) -> None:
        """Mark ``key`` processed; remember it for the retention period."""
        ...

    def release(self, key: str) -> None:
        """Drop the claim on ``key`` so that a redelivery is processed."""
        ...


class MemoryDedupeStore:
    """A bounded in-process store (LRU + TTL): the default for a single process.

    Memory stays bounded under a flood of distinct ids: beyond ``max_entries`` the oldest
    entries are dropped (which only weakens de-duplication of those old ids, never blocks
    new ones). It does not survive a restart and is not shared between processes; use a
    SQLite or Redis store for that.

    :param lease: how long an unfinished claim blocks redeliveries.
    :param retention: how long a processed id is remembered.
    :param max_entries: hard bound on remembered ids.
    :param monotonic: time source (tests inject a fake one).
    """

    def __init__(
        self,
        *,
        lease: timedelta = DEFAULT_LEASE,
        retention: timedelta = DEFAULT_RETENTION,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._lease = lease.total_seconds()
        self._retention = retention.total_seconds()
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # key -> (done, expires_at); ordered by last write, so the front is the oldest.
        self._entries: OrderedDict[str, tuple[bool, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def claim(self, key: str) -> ClaimState:
        now = self._monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                done, expires = entry
                if now < expires:
                    return ClaimState.DONE if done else ClaimState.IN_PROGRESS
            self._entries[key] = (False, now + self._lease)
            self._entries.move_to_end(key)
            self._evict(now)
            return ClaimState.CLAIMED

    def commit(self, key: str) -> None:
        now = self._monotonic()
        with self._lock:
            self._entries[key] = (True, now + self._retention)
            self._entries.move_to_end(key)
            self._evict(now)

    def release(self, key: str) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and not entry[0]:
                del self._entries[key]

    def _evict(self, now: float) -> None:
        entries = self._entries
        while len(entries) > self._max_entries:
            entries.popitem(last=False)
        # Expired entries at the front go too: amortised O(1) per call.
        while entries:
            _, (_, expires) = next(iter(entries.items()))
            if expires > now:
                break
            entries.popitem(last=False)
