"""De-duplication of notifications by MessageId: SNS delivers at least once.

The contract every store implements (claim, then commit or release) is what makes "exactly
one email per alert" hold:

* :meth:`DedupeStore.claim` is atomic. It returns ``CLAIMED`` to exactly one caller, ``DONE``
  when the id was already processed, ``IN_PROGRESS`` while another request holds the claim.
  The middleware answers ``DONE`` with 200 (SNS may stop) and ``IN_PROGRESS`` with 503 (SNS
  must come back: the first attempt may still fail).
* A claim is a *lease*: if its holder dies without committing or releasing, the claim lapses
  and a redelivery can run. The lease must be longer than one live attempt and shorter than
  SNS's retry interval (see :data:`DEFAULT_LEASE`); a claim also names its holder process
  (:func:`new_token`), so a store on the same host takes over the claim of a holder that has
  died (:func:`holder_is_dead`) at once, without waiting for the lease.
* :meth:`DedupeStore.commit` keeps the id for the retention period, which must cover SNS's
  redelivery span (the verifier's freshness window: older replays are refused there).
* :meth:`DedupeStore.release` forgets the claim so a redelivery after a failure retries.
  It removes only *its own* claim (the :class:`Claim` carries a token): a request whose
  lease lapsed must not delete the claim of the request that took over.

Store failures are raised as :class:`~snsmiddleware.errors.TransientError` by the caller's
wrapper (503): processing without de-duplication could send an email twice.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import itertools
import logging
import os
import secrets
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar, runtime_checkable

from .errors import ConfigurationError, TransientError
from .hooks import HookGuard
from .policy import DEFAULT_FRESHNESS_WINDOW, InsecureConfigurationWarning
from .reasons import Reason

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_Record = TypeVar("_Record", bound="DataclassInstance")

#: How long a claim blocks redeliveries when its holder neither commits nor releases it.
#: The rule: longer than any live attempt can still act, shorter than SNS's retry interval.
#: An attempt goes on after SNS stops waiting for it (SNS abandons it after
#: :data:`~snsmiddleware.policy.SNS_ANSWER_DEADLINE`, our send does not stop), so the claim
#: must outlast the slowest built-in send plus the store call that records it (SES 11 s or
#: SMTP 10 s, then up to 7 s for DynamoDB: 18 s; ``tests/test_time_budget.py`` computes it
#: from the real defaults); a redelivery arriving meanwhile is told ``in_progress``, never
#: run a second time. And SNS's default HTTP policy retries
#: :data:`~snsmiddleware.policy.SNS_DEFAULT_RETRY_DELAY` (20 s) apart, so a claim left by a
#: dead process has lapsed before the next retry arrives.
DEFAULT_LEASE: Final = timedelta(seconds=19)
#: SNS retries for at most one hour; the verifier refuses older messages (+ skew). The
#: default verifier's freshness window, by definition (see ``policy.freshness_window``).
DEFAULT_RETENTION: Final = DEFAULT_FRESHNESS_WINDOW
#: About 200 bytes each: 100,000 ids stay near 20 MB.
DEFAULT_MAX_ENTRIES: Final = 100_000


def _proc_stat(pid: int | str) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a process, from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # the name may contain spaces and ")"
    return (fields[0], fields[19]) if len(fields) > 19 else None


def _pid_namespace() -> str:
    """Where a PID names one process: this boot of this kernel and this PID namespace
    (two containers on one kernel have separate namespaces); empty when unknown."""
    try:
        with open("/proc/sys/kernel/random/boot_id", "rb") as handle:
            boot = handle.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return hashlib.sha256(boot + b"|" + namespace.encode()).hexdigest()[:16]


_NAMESPACE: Final = _pid_namespace()


class _ProcessIdentity:
    """This process as claim tokens name it, computed once per process: a forked child
    (``serve --workers``, gunicorn with ``--preload``) computes its own, since its PID and
    start time are not its parent's (a child naming its parent's start time would be
    declared dead by its siblings, and its live claims taken over)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.stat = _proc_stat("self")
        self.pid = os.getpid()
        holder = f"{_NAMESPACE}.{self.pid}.{self.stat[1]}" if _NAMESPACE and self.stat else ""
        # Tokens are this process's random prefix and a counter: unique across processes
        # (128 random bits per process) and within it (next() is atomic under the GIL),
        # without a uuid4 (a system call and an object) per claim.
        self.suffix = f".{holder}" if holder else ""
        self.prefix = secrets.token_hex(16)
        self.counter = itertools.count(1)


_SELF = _ProcessIdentity()
os.register_at_fork(after_in_child=_SELF.reset)


def _holder() -> str:
    """This process, as ``namespace.pid.start`` (empty when /proc cannot tell)."""
    return _SELF.suffix[1:]


def new_token() -> str:
    """A claim token, unique across processes, naming the process that holds the claim."""
    return f"{_SELF.prefix}{next(_SELF.counter):x}{_SELF.suffix}"


def holder_is_dead(token: str) -> bool:
    """True only when the claim's holder is certainly dead: a process of this PID namespace
    that no longer runs (exited, killed, a zombie, or its PID reused by another process).

    A holder elsewhere (another host or container) or a token without a holder (older
    versions, other platforms) is never declared dead: its claim waits for the lease.
    """
    parts = token.split(".")
    if len(parts) != 4 or not _NAMESPACE or parts[1] != _NAMESPACE or not parts[2].isdigit():
        return False
    pid, started = int(parts[2]), parts[3]
    if pid == os.getpid():
        return _SELF.stat is not None and started != _SELF.stat[1]  # a previous incarnation
    stat = _proc_stat(pid)
    if stat is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False  # exists, not ours to signal (or /proc hidden): alive
        return False
    state, running_since = stat
    return state in {"Z", "X", "x"} or running_since != started


class ClaimState(enum.Enum):
    """What :meth:`DedupeStore.claim` found."""

    CLAIMED = "claimed"
    IN_PROGRESS = "in_progress"
    DONE = "done"


# An enum member read from its class costs several times a module global on the hot path.
_CLAIMED: Final = ClaimState.CLAIMED
_IN_PROGRESS: Final = ClaimState.IN_PROGRESS
_DONE: Final = ClaimState.DONE


@dataclass(frozen=True, slots=True)
class Claim:
    """What :meth:`DedupeStore.claim` found for ``key``.

    ``token`` identifies this caller's claim when ``state`` is ``CLAIMED``; commit and
    release take the claim back so that a store acts only on the claim it handed out.
    """

    key: str
    state: ClaimState
    token: str = ""


def _builder(cls: type[_Record]) -> Callable[[Any, Any, Any], _Record]:
    """``cls(a, b, c)`` for a frozen, slotted dataclass of three fields, in half the time.

    The generated ``__init__`` of a frozen dataclass stores each field through
    ``object.__setattr__`` (its own ``__setattr__`` refuses); storing through each slot's
    descriptor is the same store by a shorter way. For the records every delivery builds;
    what it builds is indistinguishable from ``cls(a, b, c)``."""
    first, second, third = (vars(cls)[field.name].__set__ for field in dataclasses.fields(cls))
    new = object.__new__

    def build(a: Any, b: Any, c: Any) -> _Record:
        record = new(cls)
        first(record, a)
        second(record, b)
        third(record, c)
        return record

    return build


_new_claim: Final = _builder(Claim)


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


@runtime_checkable
class EffectLedger(Protocol):
    """A store that also remembers a message's side effects (every built-in store does).

    An app whose effect cannot be made idempotent (an email handed to SMTP or SES) records
    it here right after it happened and checks here before doing it: a process that dies
    after the effect and before :meth:`DedupeStore.commit` then does not repeat it when the
    redelivery runs. Records are kept for the store's retention, like commits.
    """

    def record_effect(self, key: str, effect: str) -> None:
        """Durably note that ``effect`` of message ``key`` has happened."""
        ...

    def effect_recorded(self, key: str, effect: str) -> bool:
        """Whether ``effect`` of message ``key`` was recorded (within the retention)."""
        ...


def effect_key(key: str, effect: str) -> str:
    """The store key of an effect record; ``|`` never occurs in a MessageId."""
    return f"{key}|{effect}"


class MessageEffects:
    """The effects of one message, as the middleware hands them to the app
    (:func:`snsmiddleware.get_effects`)."""

    __slots__ = ("key", "ledger")  # one per delivery: slots are quicker to build

    def __init__(self, ledger: EffectLedger, key: str) -> None:
        self.ledger = ledger
        self.key = key

    def __repr__(self) -> str:
        return f"MessageEffects({self.key!r})"

    def done(self, effect: str) -> bool:
        """Whether an earlier attempt at this message recorded ``effect``."""
        return self.ledger.effect_recorded(self.key, effect)

    def record(self, effect: str) -> None:
        """Record that ``effect`` happened (raises if the store fails)."""
        self.ledger.record_effect(self.key, effect)


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
        # When the front entry expires (as of the last look at it): until then no write
        # needs to look at the front, which is one comparison instead of a peek per write.
        self._sweep_at = 0.0

    @property
    def retention(self) -> timedelta:
        """How long a processed id is remembered."""
        return timedelta(seconds=self._retention)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"MemoryDedupeStore(max_entries={self._max_entries})"

    # The lock is taken with acquire/release rather than ``with``: a third cheaper, and
    # these run twice per delivery. A new key is appended (no move needed).

    def claim(self, key: str) -> Claim:
        now = self._monotonic()
        entries = self._entries
        lock = self._lock
        lock.acquire()
        try:
            entry = entries.get(key)
            if entry is not None:
                if now < entry[1]:
                    return Claim(key, _DONE if entry[0] else _IN_PROGRESS)
                del entries[key]  # lapsed: written anew, at the end
            token = str(next(self._tokens))
            entries[key] = (False, now + self._lease, token)
            if now >= self._sweep_at or len(entries) > self._max_entries:
                self._evict(now)
        finally:
            lock.release()
        return _new_claim(key, _CLAIMED, token)

    def commit(self, claim: Claim) -> None:
        # Done is done, whoever holds the claim now: the work happened.
        now = self._monotonic()
        entries = self._entries
        key = claim.key
        lock = self._lock
        lock.acquire()
        try:
            entries[key] = (True, now + self._retention, claim.token)
            entries.move_to_end(key)
            if now >= self._sweep_at or len(entries) > self._max_entries:
                self._evict(now)
        finally:
            lock.release()

    def release(self, claim: Claim) -> None:
        with self._lock:
            entry = self._entries.get(claim.key)
            if entry is not None and not entry[0] and entry[2] == claim.token:
                del self._entries[claim.key]

    def record_effect(self, key: str, effect: str) -> None:
        name, now = effect_key(key, effect), self._monotonic()
        with self._lock:
            self._entries[name] = (True, now + self._retention, "")
            self._entries.move_to_end(name)
            self._evict(now)

    def effect_recorded(self, key: str, effect: str) -> bool:
        entry = self._entries.get(effect_key(key, effect))
        return entry is not None and entry[0] and self._monotonic() < entry[1]

    def _evict(self, now: float) -> None:
        """Drop the oldest entries beyond ``max_entries``, and the expired ones at the front
        (amortised O(1) per write); note when the front expires. With the lock held.

        Entries are in write order, so the front is the oldest write, not always the first
        to expire (a claim's lease is shorter than a commit's retention): an entry behind a
        live one waits for it, as ``max_entries`` bounds the store whatever expires."""
        entries = self._entries
        while len(entries) > self._max_entries:
            entries.popitem(last=False)
        while entries:
            for entry in entries.values():  # the front entry (no iter() or next() calls)
                if entry[1] > now:
                    self._sweep_at = entry[1]
                    return
                break
            entries.popitem(last=False)
        self._sweep_at = now  # empty: look again at the next write


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


def check_retention(store: DedupeStore, window: timedelta) -> None:
    """Refuse a store that forgets processed MessageIds inside the freshness ``window``.

    A shorter retention lets a redelivery (or a replay) that the verifier still accepts be
    processed a second time. This refuses (``ConfigurationError``) rather than changing the
    store: the store may be shared, and its retention is also a storage decision its owner
    made. A store that does not say (no ``retention`` attribute) is accepted with an
    :class:`InsecureConfigurationWarning`.
    """
    retention = getattr(store, "retention", None)
    if retention is None:
        warnings.warn(
            f"the de-duplication store {store!r} has no retention attribute, so it cannot be "
            f"checked: it must remember processed MessageIds for at least {window} "
            "(max_age + 2 x clock_skew), or late redeliveries are processed twice",
            InsecureConfigurationWarning,
            stacklevel=4,
        )
        return
    if not isinstance(retention, timedelta):
        raise ConfigurationError("the de-duplication store's retention must be a timedelta")
    if retention < window:
        raise ConfigurationError(
            f"the de-duplication store {store!r} remembers MessageIds for {retention}, less "
            f"than the freshness window of {window} (max_age + 2 x clock_skew): a redelivery "
            f"after that would be processed twice; build the store with retention={window!r} "
            "or more"
        )


@runtime_checkable
class StoreFactory(Protocol):
    """Builds a store once the freshness window it must cover is known.

    The INI, environment and command-line layers name a store (``dedupe = sqlite:...``) but
    cannot know the window: the verifier that owns ``max_age`` and ``clock_skew`` does.
    Handing the middleware a factory instead of a store keeps one definition of the window
    (``SnsVerifier.freshness_window``); see :class:`snsmiddleware.config.StoreSpec`.
    """

    def build(self, retention: timedelta) -> DedupeStore:
        """The store, remembering processed ids for ``retention``."""
        ...


def store_for_window(store: DedupeStore | StoreFactory | None, window: timedelta) -> DedupeStore:
    """The de-duplication store that covers the freshness ``window``: the one place where a
    window becomes a retention.

    ``None`` is a bounded in-memory store remembering ids for ``window``; a
    :class:`StoreFactory` is built with that retention; a store given ready-made must already
    cover it (:func:`check_retention`).
    """
    if store is None:
        return MemoryDedupeStore(retention=window)
    if not isinstance(store, DedupeStore) and isinstance(store, StoreFactory):
        return store.build(window)
    check_retention(store, window)
    return store


class Admission(enum.Enum):
    """What :meth:`DeliveryLedger.claim` decided about one delivery."""

    #: First seen: the claim is this caller's; run the work, then :meth:`~DeliveryLedger.finish`.
    FIRST = "first"
    #: Already processed: answer it as a duplicate, do not run the work.
    DUPLICATE = "duplicate"
    #: Processed here, but its commit is still waiting for the store (see
    #: :class:`CommitBacklog`): a duplicate all the same.
    COMMIT_PENDING = "commit_pending"


class DedupeEvent(enum.Enum):
    """What :class:`DeliveryLedger` did with one delivery's claim (for its ``observer``)."""

    #: first seen: the claim is this delivery's
    CLAIMED = "claimed"
    #: already processed (or its commit is pending here): answered as a duplicate
    DUPLICATE = "duplicate"
    #: another request holds the claim: 503, SNS retries
    IN_PROGRESS = "in_progress"
    #: the work succeeded and the store committed it
    COMMITTED = "committed"
    #: the work failed (or a shutdown abandoned it): the claim was released for a retry
    RELEASED = "released"
    #: the work succeeded but the store refused the commit: kept in the backlog
    DEFERRED = "deferred"
    #: the store failed on a claim (503 ``dedupe_unavailable``) or a release
    UNAVAILABLE = "unavailable"


_FIRST: Final = Admission.FIRST
_EVENT_CLAIMED: Final = DedupeEvent.CLAIMED
_EVENT_COMMITTED: Final = DedupeEvent.COMMITTED

#: ``event -> None``, called by :class:`DeliveryLedger` (never raises into it).
DedupeObserver = Callable[[DedupeEvent], object]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery as the :class:`DeliveryLedger` admitted it."""

    key: str
    admission: Admission
    claim: Claim | None = None

    @property
    def duplicate(self) -> bool:
        """Whether the work was already done (the answer is 200 ``duplicate``)."""
        return self.admission is not Admission.FIRST


_new_delivery: Final = _builder(Delivery)


class DeliveryLedger:
    """The de-duplication bookkeeping of deliveries, around one :class:`DedupeStore`.

    It turns the store's claim/commit/release into the decisions a delivery needs, so that
    the caller (the middleware) reads: claim, answer duplicates, do the work, finish.

    * :meth:`claim` first retries commits the store refused earlier (and answers their
      redeliveries as duplicates); a claim held by another request is a
      :class:`~snsmiddleware.errors.TransientError` ``in_progress`` (503: the first attempt
      may still fail), a store that fails is ``dedupe_unavailable`` (503: processing without
      de-duplication could do the work twice), and after :meth:`begin_shutdown` every new
      delivery is ``shutting_down`` (503: SNS retries, reaching the successor).
    * :meth:`finish` commits after success; a commit the store refuses is kept in the
      backlog (answering an error would make SNS redeliver and the work happen twice).
      After a failure it releases the claim, so a redelivery retries.
    * The claims of the deliveries running now are registered, so a shutdown that cannot
      wait can release them (:meth:`release_in_flight`) and their redeliveries run at once.

    Store failures on commit and release are logged here, never raised: the work's outcome
    has been decided by then. Safe to use from many threads.

    :param store: the de-duplication store (see :func:`store_for_window`).
    :param retention: how long a commit the store refused is remembered here.
    :param observer: called with a :class:`DedupeEvent` for each claim's outcome; what it
        raises is logged (rate-limited) and changes nothing. Settable as ``observer``.
    """

    def __init__(
        self,
        store: DedupeStore,
        *,
        retention: timedelta = DEFAULT_RETENTION,
        observer: DedupeObserver | None = None,
    ) -> None:
        self.store = store
        self.observer = observer
        self._observer_guard = HookGuard("the DeliveryLedger observer")
        self.backlog = CommitBacklog(retention=retention)
        # token -> claim of the deliveries running now; read and written only with single
        # dict operations (atomic), so the hot path takes no lock of its own
        self._active: dict[str, Claim] = {}
        self.draining = False
        self._keeps_effects: tuple[object, bool] = (None, False)

    def __repr__(self) -> str:
        return f"DeliveryLedger({self.store!r})"

    @property
    def in_flight(self) -> int:
        """How many claimed deliveries have not finished yet."""
        return len(self._active)

    def claim(self, key: str) -> Delivery:
        """Admit a delivery of message ``key``: first seen, or a duplicate; raises
        :class:`~snsmiddleware.errors.TransientError` when it must be retried later."""
        if self.draining:
            raise TransientError("the server is shutting down", reason=Reason.SHUTTING_DOWN)
        backlog = self.backlog
        if backlog:  # commits the store refused earlier: retry, and honour them
            backlog.flush(self.store)
            if key in backlog:
                self._notify(DedupeEvent.DUPLICATE)
                return Delivery(key, Admission.COMMIT_PENDING)
        try:
            claim = self.store.claim(key)
        except Exception as exc:
            log.exception("de-duplication store failed on claim")
            self._notify(DedupeEvent.UNAVAILABLE)
            raise TransientError(
                "the de-duplication store is unavailable", reason=Reason.DEDUPE_UNAVAILABLE
            ) from exc
        state = claim.state
        if state is not _CLAIMED:
            if state is _DONE:
                self._notify(DedupeEvent.DUPLICATE)
                return Delivery(key, Admission.DUPLICATE)
            self._notify(DedupeEvent.IN_PROGRESS)
            raise TransientError(
                "this message is being processed; try again later", reason=Reason.IN_PROGRESS
            )
        self._active[claim.token] = claim  # one dict operation: atomic, no lock needed
        if self.observer is not None:
            self._notify(_EVENT_CLAIMED)
        return _new_delivery(key, _FIRST, claim)

    def _notify(self, event: DedupeEvent) -> None:
        observer = self.observer
        if observer is not None:
            self._observer_guard.call(observer, event)

    def effects(self, delivery: Delivery) -> MessageEffects | None:
        """The effect records of this delivery's message, when the store keeps them."""
        store = self.store
        known, keeps = self._keeps_effects
        if known is not store:  # isinstance of a Protocol is slow: once per store
            keeps = isinstance(store, EffectLedger)
            self._keeps_effects = (store, keeps)
        return MessageEffects(store, delivery.key) if keeps else None  # type: ignore[arg-type]

    def finish(self, delivery: Delivery, *, succeeded: bool) -> None:
        """Commit (``succeeded``) or release the claim of a first-seen delivery."""
        claim = delivery.claim
        if claim is None:
            return  # a duplicate holds no claim
        self._active.pop(claim.token, None)
        if not succeeded:
            self._release(claim)
            return
        try:
            self.store.commit(claim)
        except Exception:
            # The work is done: keep the commit here and retry it later.
            log.exception("de-duplication store failed on commit message_id=%s", claim.key)
            self.backlog.add(claim)
            self._notify(DedupeEvent.DEFERRED)
            return
        if self.observer is not None:
            self._notify(_EVENT_COMMITTED)

    def begin_shutdown(self) -> None:
        """From now on :meth:`claim` answers ``shutting_down``; running deliveries go on."""
        self.draining = True

    def release_in_flight(self) -> int:
        """Release the claims of every delivery still running (a shutdown that cannot wait
        any longer), so their redeliveries run at once; returns how many."""
        abandoned = []
        active = self._active
        while active:  # each popitem() is atomic: a delivery finishing meanwhile is skipped
            try:
                abandoned.append(active.popitem()[1])
            except KeyError:
                break
        for claim in abandoned:
            self._release(claim)
            log.warning("shutdown abandoned a delivery; claim released message_id=%s", claim.key)
        return len(abandoned)

    def _release(self, claim: Claim) -> None:
        try:
            self.store.release(claim)
        except Exception:
            log.exception("de-duplication store failed on release message_id=%s", claim.key)
            self._notify(DedupeEvent.UNAVAILABLE)
            return
        self._notify(DedupeEvent.RELEASED)
