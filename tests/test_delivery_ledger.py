"""The de-duplication bookkeeping of deliveries (``dedupe.DeliveryLedger``), without WSGI:
what the middleware's delivery path relies on when it reads "claim, answer duplicates, call
the app, finish"."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from snsmiddleware import ConfigurationError, MemoryDedupeStore
from snsmiddleware.dedupe import (
    Admission,
    Claim,
    ClaimState,
    DedupeStore,
    DeliveryLedger,
    MessageEffects,
    store_for_window,
)
from snsmiddleware.errors import TransientError

WINDOW = timedelta(hours=1, minutes=10)


class FlakyStore:
    """A memory store whose operations fail while ``down`` names them."""

    retention = WINDOW

    def __init__(self) -> None:
        self.inner = MemoryDedupeStore()
        self.down: set[str] = set()

    def _check(self, operation: str) -> None:
        if operation in self.down:
            raise ConnectionError(f"store down on {operation}")

    def claim(self, key: str) -> Claim:
        self._check("claim")
        return self.inner.claim(key)

    def commit(self, claim: Claim) -> None:
        self._check("commit")
        self.inner.commit(claim)

    def release(self, claim: Claim) -> None:
        self._check("release")
        self.inner.release(claim)


def reason_of(caught: pytest.ExceptionInfo[TransientError]) -> str:
    return caught.value.reason


def test_first_delivery_is_claimed_and_its_redelivery_after_success_is_a_duplicate() -> None:
    ledger = DeliveryLedger(MemoryDedupeStore())
    first = ledger.claim("m-1")
    assert (first.admission, first.duplicate) == (Admission.FIRST, False)
    assert first.claim is not None and first.claim.state is ClaimState.CLAIMED
    ledger.finish(first, succeeded=True)
    again = ledger.claim("m-1")
    assert (again.admission, again.duplicate, again.claim) == (Admission.DUPLICATE, True, None)
    ledger.finish(again, succeeded=True)  # a duplicate holds nothing: finishing is harmless


def test_a_delivery_held_by_another_request_must_be_retried() -> None:
    ledger = DeliveryLedger(MemoryDedupeStore())
    ledger.claim("m-1")
    with pytest.raises(TransientError) as caught:
        ledger.claim("m-1")
    assert (caught.value.status, reason_of(caught)) == (503, "in_progress")


def test_a_failed_delivery_is_released_so_the_redelivery_runs() -> None:
    ledger = DeliveryLedger(MemoryDedupeStore())
    ledger.finish(ledger.claim("m-1"), succeeded=False)
    assert ledger.claim("m-1").admission is Admission.FIRST


def test_a_store_failing_on_claim_is_dedupe_unavailable() -> None:
    store = FlakyStore()
    store.down.add("claim")
    with pytest.raises(TransientError) as caught:
        DeliveryLedger(store).claim("m-1")
    assert (caught.value.status, reason_of(caught)) == (503, "dedupe_unavailable")


def test_a_commit_the_store_refuses_is_kept_and_honoured_then_retried() -> None:
    store = FlakyStore()
    ledger = DeliveryLedger(store, retention=WINDOW)
    store.down.add("commit")
    ledger.finish(ledger.claim("m-1"), succeeded=True)  # logged, not raised
    assert len(ledger.backlog) == 1
    # Still down: the redelivery is a duplicate all the same, answered from the backlog.
    assert ledger.claim("m-1").admission is Admission.COMMIT_PENDING
    store.down.clear()
    # The next delivery first retries the pending commit; the store then knows it.
    assert ledger.claim("m-2").admission is Admission.FIRST
    assert len(ledger.backlog) == 0
    assert store.inner.claim("m-1").state is ClaimState.DONE


def test_a_store_failing_on_release_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    store = FlakyStore()
    ledger = DeliveryLedger(store)
    delivery = ledger.claim("m-1")
    store.down.add("release")
    with caplog.at_level(logging.ERROR, logger="snsmiddleware.dedupe"):
        ledger.finish(delivery, succeeded=False)
    assert "failed on release message_id=m-1" in caplog.text
    assert ledger.in_flight == 0


def test_shutdown_refuses_new_deliveries_and_releases_the_ones_in_flight() -> None:
    store = MemoryDedupeStore()
    ledger = DeliveryLedger(store)
    running = ledger.claim("m-1")
    ledger.claim("m-2")
    assert ledger.in_flight == 2
    ledger.begin_shutdown()
    assert ledger.draining
    with pytest.raises(TransientError) as caught:
        ledger.claim("m-3")
    assert reason_of(caught) == "shutting_down"
    assert ledger.release_in_flight() == 2
    assert (ledger.in_flight, ledger.release_in_flight()) == (0, 0)
    assert store.claim("m-2").state is ClaimState.CLAIMED  # released: the redelivery runs
    ledger.finish(running, succeeded=True)  # the abandoned one ended after all: done is done
    assert store.claim("m-1").state is ClaimState.DONE


def test_effects_are_offered_when_the_store_keeps_them() -> None:
    ledger = DeliveryLedger(MemoryDedupeStore())
    effects = ledger.effects(ledger.claim("m-1"))
    assert isinstance(effects, MessageEffects)
    effects.record("email")
    assert effects.done("email") and not effects.done("sms")
    assert DeliveryLedger(FlakyStore()).effects(ledger.claim("m-2")) is None


class Factory:
    def __init__(self) -> None:
        self.retentions: list[timedelta] = []

    def build(self, retention: timedelta) -> DedupeStore:
        self.retentions.append(retention)
        return MemoryDedupeStore(retention=retention)


def test_store_for_window_is_where_a_window_becomes_a_retention() -> None:
    default = store_for_window(None, WINDOW)
    assert isinstance(default, MemoryDedupeStore) and default.retention == WINDOW
    factory = Factory()
    built = store_for_window(factory, WINDOW)
    assert factory.retentions == [WINDOW] and isinstance(built, MemoryDedupeStore)
    covering = MemoryDedupeStore(retention=WINDOW)
    assert store_for_window(covering, WINDOW) is covering
    with pytest.raises(ConfigurationError, match="retention"):
        store_for_window(MemoryDedupeStore(retention=timedelta(minutes=5)), WINDOW)
