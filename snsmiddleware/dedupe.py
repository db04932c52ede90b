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
  It removes only *its own* claim (the :class:`Claim` carries a token): a request whose
  lease lapsed must not delete the claim of the request that took over.

Store failures are raised as :class:`~snsmiddleware.errors.TransientError` by the caller's
wrapper (503): processing without de-duplication could send an email twice.
"""

from __future__ import annotations

import enum
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Protocol, runtime_checkable

from .policy import DEFAULT_FRESHNESS_WINDOW

#: A claim outlives SNS's 15 s answer deadline with room to spare.
DEFAULT_LEASE: Final = timedelta(minutes=2)
#: SNS retries for at most one hour; the verifier refuses older messages (+ skew). The
#: default verifier's freshness window, by definition (see ``policy.freshness_window``).
DEFAULT_RETENTION: Final = DEFAULT_FRESHNESS_WINDOW
#: About 200 bytes each: 100,000 ids stay near 20 MB.
DEFAULT_MAX_ENTRIES: Final = 100_000


class ClaimState(enum.Enum):
    """What :meth:`DedupeStore.claim` found."""

    CLAIMED = "claimed"
    IN_PROGRESS = "in_progress"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Claim:
    """What :meth:`DedupeStore.claim` found for ``key``.

    ``token`` identifies this caller's claim when ``state`` is ``CLAIMED``; commit and
    release take the claim back so that a store acts only on the claim it handed out.
    """

    key: str
    state: ClaimState
    token: str = ""


@runtime_checkable
class DedupeStore(Protocol):
    """Claim/commit/release by key; implementations must be safe under concurrency.

    A store should also expose ``retention`` (a :class:`~datetime.timedelta`: how long a
    committed key is remembered), as the stores here do. :class:`~snsmiddleware.SnsMiddleware`
    then refuses, at build time, a store that would forget inside its freshness window. The
    attribute is not part of this protocol, so that stores written before it still pass
    ``isinstance`` checks; without it the middleware warns that it cannot check.
    """

    def claim(self, key: str) -> Claim:
        """Atomically claim ``key`` for processing, unless it is held or done."""
        ...

    def commit(self, claim: Claim) -> None:
        """Mark the claimed key processed; remember it for the retention period."""
        ...

    def release(self, claim: Claim) -> None:
        """Drop this claim (only if it is still the current one) so a redelivery runs."""
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
        # key -> (done, expires_at, claim token); ordered by last write, oldest first.
        self._entries: OrderedDict[str, tuple[bool, float, str]] = OrderedDict()
        self._tokens = itertools.count(1)  # unique per store: next() is atomic under the GIL

    @property
    def retention(self) -> timedelta:
        """How long a processed id is remembered."""
        return timedelta(seconds=self._retention)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"MemoryDedupeStore(max_entries={self._max_entries})"

    def claim(self, key: str) -> Claim:
        now = self._monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                done, expires, _ = entry
                if now < expires:
                    return Claim(key, ClaimState.DONE if done else ClaimState.IN_PROGRESS)
            token = str(next(self._tokens))
            self._entries[key] = (False, now + self._lease, token)
            self._entries.move_to_end(key)
            self._evict(now)
            return Claim(key, ClaimState.CLAIMED, token)

    def commit(self, claim: Claim) -> None:
        # Done is done, whoever holds the claim now: the work happened.
        now = self._monotonic()
        with self._lock:
            self._entries[claim.key] = (True, now + self._retention, claim.token)
            self._entries.move_to_end(claim.key)
            self._evict(now)

    def release(self, claim: Claim) -> None:
        with self._lock:
            entry = self._entries.get(claim.key)
            if entry is not None and not entry[0] and entry[2] == claim.token:
                del self._entries[claim.key]

    def _evict(self, now: float) -> None:
        entries = self._entries
        while len(entries) > self._max_entries:
            entries.popitem(last=False)
        # Expired entries at the front go too: amortised O(1) per call.
        while entries:
            _, (_, expires, _) = next(iter(entries.items()))
            if expires > now:
                break
            entries.popitem(last=False)


class CommitBacklog:
    """Commits the store refused, kept in this process until the store takes them.

    When the store fails on commit after the app succeeded, neither answer is good:
    an error makes SNS redeliver and the work happen twice, and forgetting the commit lets a
    redelivery after the claim's lease run it again. The backlog remembers such claims
    (bounded, for the retention period): this process answers their redeliveries as
    duplicates, and every later request first retries a few pending commits.

    :param retention: how long a pending commit is remembered (the store's retention).
    :param max_entries: bound on pending commits (oldest dropped first).
    """

    def __init__(
        self,
        *,
        retention: timedelta = DEFAULT_RETENTION,
        max_entries: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._retention = retention.total_seconds()
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, tuple[Claim, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, key: object) -> bool:
        entry = self._pending.get(key) if isinstance(key, str) else None
        return entry is not None and self._monotonic() < entry[1]

    def add(self, claim: Claim) -> None:
        """Remember a commit the store refused."""
        with self._lock:
            self._pending[claim.key] = (claim, self._monotonic() + self._retention)
            self._pending.move_to_end(claim.key)
            while len(self._pending) > self._max_entries:
                self._pending.popitem(last=False)

    def flush(self, store: DedupeStore, limit: int = 8) -> None:
        """Retry up to ``limit`` pending commits; stop at the first failure (still down)."""
        now = self._monotonic()
        with self._lock:
            batch = list(self._pending.values())[:limit]
        for claim, expires in batch:
            if now < expires:
                try:
                    store.commit(claim)
                except Exception:
                    return
            with self._lock:
                if self._pending.get(claim.key, (None, 0.0))[0] is claim:
                    del self._pending[claim.key]
