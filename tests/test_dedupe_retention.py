"""The de-duplication store must remember processed MessageIds for the whole freshness window
(``max_age + 2 × clock_skew``): a store that forgets earlier lets a redelivery or a replay the
verifier still accepts be processed a second time. The middleware checks the store's
``retention`` when it is built."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import webtest

from snsmiddleware import (
    Claim,
    ConfigurationError,
    InsecureConfigurationWarning,
    MemoryDedupeStore,
    SnsMiddleware,
    SnsVerifier,
)
from snsmiddleware.dedupe import DEFAULT_RETENTION
from snsmiddleware.dedupe_sqlite import SQLiteDedupeStore
from snsmiddleware.testing import FrozenClock, MessageSigner, post_sns

from .conftest import PATH, TOPIC, EchoApp

THREE_HOURS = timedelta(hours=3)


def build(
    signer: MessageSigner, clock: FrozenClock, echo_app: EchoApp, **options: object
) -> SnsMiddleware:
    return SnsMiddleware(
        echo_app,
        paths=[PATH],
        topics=[TOPIC],
        fetch_certificate=signer.fetch_certificate,
        clock=clock,
        confirm=lambda message: None,
        **options,  # type: ignore[arg-type]
    )


def test_store_shorter_than_the_window_is_refused_at_build(
    tmp_path: Path, signer: MessageSigner, clock: FrozenClock, echo_app: EchoApp
) -> None:
    """The reported case: max_age of three hours with a default SQLite store (70 minutes)."""
    store = SQLiteDedupeStore(tmp_path / "dedupe.sqlite3")
    with pytest.raises(ConfigurationError, match=r"3:10:00") as caught:
        build(signer, clock, echo_app, max_age=THREE_HOURS, dedupe=store)
    assert "retention" in str(caught.value)
    store.close()


def test_store_covering_the_window_remembers_a_replay_two_hours_later(
    tmp_path: Path, signer: MessageSigner, clock: FrozenClock, echo_app: EchoApp
) -> None:
    window = THREE_HOURS + 2 * timedelta(minutes=5)
    store = SQLiteDedupeStore(
        tmp_path / "dedupe.sqlite3", retention=window, clock=lambda: clock().timestamp()
    )
    app = webtest.TestApp(build(signer, clock, echo_app, max_age=THREE_HOURS, dedupe=store))
    message = signer.notification("budget exceeded")
    assert post_sns(app, PATH, message).status_int == 200
    clock.advance(timedelta(hours=2))
    replay = post_sns(app, PATH, message)
    assert (replay.status_int, replay.headers["X-SNS-Reason"]) == (200, "duplicate")
    assert len(echo_app.calls) == 1
    store.close()


def test_the_window_of_a_given_verifier_is_the_one_checked(
    signer: MessageSigner, clock: FrozenClock, echo_app: EchoApp
) -> None:
    verifier = SnsVerifier(
        topics=[TOPIC],
        fetch_certificate=signer.fetch_certificate,
        clock=clock,
        clock_skew=timedelta(minutes=30),
    )
    with pytest.raises(ConfigurationError, match="2:00:00"):
        SnsMiddleware(echo_app, paths=[PATH], verifier=verifier, dedupe=MemoryDedupeStore())
    store = MemoryDedupeStore(retention=timedelta(hours=2))
    SnsMiddleware(echo_app, paths=[PATH], verifier=verifier, dedupe=store)


def test_default_retention_is_the_default_window() -> None:
    """One definition: the stores' default retention is the default verifier's window."""
    assert SnsVerifier(topics=[TOPIC]).freshness_window == DEFAULT_RETENTION
    assert timedelta(hours=1, minutes=10) == DEFAULT_RETENTION
    assert MemoryDedupeStore().retention == DEFAULT_RETENTION


class StoreWithoutRetention:
    """A store written against the original protocol: claim, commit, release only."""

    def __init__(self) -> None:
        self.inner = MemoryDedupeStore()

    def claim(self, key: str) -> Claim:
        return self.inner.claim(key)

    def commit(self, claim: Claim) -> None:
        self.inner.commit(claim)

    def release(self, claim: Claim) -> None:
        self.inner.release(claim)


def test_store_without_retention_is_accepted_with_a_warning(
    signer: MessageSigner, clock: FrozenClock, echo_app: EchoApp
) -> None:
    with pytest.warns(InsecureConfigurationWarning, match="1:10:00"):
        middleware = build(signer, clock, echo_app, dedupe=StoreWithoutRetention())
    message = signer.notification("x")
    app = webtest.TestApp(middleware)
    assert post_sns(app, PATH, message).status_int == 200
    assert post_sns(app, PATH, message).headers["X-SNS-Reason"] == "duplicate"


def test_retention_that_is_not_a_duration_is_refused(
    signer: MessageSigner, clock: FrozenClock, echo_app: EchoApp
) -> None:
    store = StoreWithoutRetention()
    store.retention = 3600  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="timedelta"):
        build(signer, clock, echo_app, dedupe=store)
