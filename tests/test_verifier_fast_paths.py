"""SnsVerifier.verify_message's shortcuts, each against the check it stands in for.

A (TopicArn, SigningCertURL) pair that passed is remembered, so later messages skip the
allowlist and URL checks; freshness and certificate validity are compared in line and only
explained by the full checks when they fail. These tests fail if a shortcut outlives what it
was computed from (the allowlist, the emulator, max_age, clock_skew) or moves a boundary.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from snsmiddleware import ConfigurationError, SnsVerifier
from snsmiddleware.errors import SnsError
from snsmiddleware.policy import EmulatorEndpoint, TopicAllowlist
from snsmiddleware.testing import FrozenClock, MessageSigner, SignedMessage, TestCA

from .conftest import TOPIC

OTHER_TOPIC = "arn:aws:sns:us-east-1:123456789012:not-ours"
TICK = timedelta(microseconds=1)


def _verifier(signer: MessageSigner, clock: FrozenClock, **options: Any) -> SnsVerifier:
    return SnsVerifier(
        topics=[TOPIC], fetch_certificate=signer.fetch_certificate, clock=clock, **options
    )


def _reason(verifier: SnsVerifier, message: SignedMessage) -> tuple[int, str]:
    with pytest.raises(SnsError) as raised:
        verifier.verify(message.body, message.headers)
    return raised.value.status, raised.value.reason


# --- the remembered (TopicArn, SigningCertURL) pair ---------------------------------------------


def test_a_remembered_pair_still_has_its_signature_version_checked(
    signer: MessageSigner, clock: FrozenClock
) -> None:
    verifier = _verifier(signer, clock, signature_versions=("2",))
    v1 = MessageSigner(signer.ca, topic_arn=TOPIC, clock=clock, signature_version="1")
    verifier.verify(signer.notification("v2").body)  # the pair is remembered now
    assert _reason(verifier, v1.notification("v1")) == (403, "signature_version_not_allowed")
    verifier.signature_versions = frozenset({"1", "2"})
    assert verifier.verify(v1.notification("v1 now").body).message == "v1 now"


def test_a_new_allowlist_forgets_the_remembered_pairs(
    signer: MessageSigner, clock: FrozenClock
) -> None:
    verifier = _verifier(signer, clock)
    verifier.verify(signer.notification("first").body)
    verifier.topics = TopicAllowlist([OTHER_TOPIC])
    assert _reason(verifier, signer.notification("second")) == (403, "topic_not_allowed")


def test_a_new_emulator_forgets_the_remembered_pairs(
    signer: MessageSigner, clock: FrozenClock
) -> None:
    verifier = _verifier(signer, clock)
    verifier.verify(signer.notification("first").body)
    verifier.emulator = EmulatorEndpoint("http://127.0.0.1:4566")
    assert _reason(verifier, signer.notification("second")) == (403, "bad_cert_url")


def test_only_pairs_that_passed_are_remembered(signer: MessageSigner, clock: FrozenClock) -> None:
    verifier = _verifier(signer, clock)
    off_host = signer.notification(
        "x",
        SigningCertURL="https://evil.example/SimpleNotificationService-"
        + signer.certificate_digest
        + ".pem",
    )
    for _ in range(2):
        assert _reason(verifier, off_host) == (403, "bad_cert_url")
    assert signer.fetched == []


def test_many_remembered_pairs_still_check_each_url(
    signer: MessageSigner, clock: FrozenClock
) -> None:
    """Past the bound the memory starts afresh; each new pair is checked in full."""
    verifier = _verifier(signer, clock)
    good_url = signer.certificate_url()
    for index in range(600):
        url = good_url.replace(signer.certificate_digest, f"{index:x}")
        message = signer.notification("x", SigningCertURL=url)
        assert _reason(verifier, message) == (403, "certificate_not_found")
    assert verifier.verify(signer.notification("genuine").body).message == "genuine"
    evil = good_url.replace("https://sns.us-east-1.", "https://sns.us-east-2.")
    assert _reason(verifier, signer.notification("x", SigningCertURL=evil)) == (
        403,
        "bad_cert_url",
    )


# --- freshness, compared in line ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        pytest.param(timedelta(hours=1, minutes=5), None, id="oldest-accepted"),
        pytest.param(timedelta(hours=1, minutes=5) + TICK, (403, "stale_message"), id="stale"),
        pytest.param(-timedelta(minutes=5), None, id="most-future-accepted"),
        pytest.param(-timedelta(minutes=5) - TICK, (503, "future_message"), id="future"),
    ],
)
def test_freshness_boundaries(
    signer: MessageSigner, clock: FrozenClock, age: timedelta, expected: tuple[int, str] | None
) -> None:
    verifier = _verifier(signer, clock)
    message = signer.notification("x")
    sent_at = verifier.verify(message.body).sent_at
    clock.now = sent_at + age
    if expected is None:
        assert verifier.verify(message.body).sent_at == sent_at
    else:
        assert _reason(verifier, message) == expected


def test_changed_max_age_and_clock_skew_take_effect(
    signer: MessageSigner, clock: FrozenClock
) -> None:
    verifier = _verifier(signer, clock)
    message = signer.notification("x")
    sent_at = verifier.verify(message.body).sent_at
    clock.now = sent_at + timedelta(minutes=2)
    verifier.verify(message.body)
    verifier.clock_skew = timedelta(0)
    verifier.max_age = timedelta(minutes=1)
    assert _reason(verifier, message) == (403, "stale_message")
    verifier.max_age = timedelta(minutes=3)
    verifier.verify(message.body)
    clock.now = sent_at - TICK
    assert _reason(verifier, message) == (503, "future_message")
    verifier.clock_skew = timedelta(seconds=1)
    verifier.verify(message.body)
    assert verifier.freshness_window == timedelta(minutes=3, seconds=2)


def test_a_naive_clock_is_a_configuration_error(signer: MessageSigner, clock: FrozenClock) -> None:
    message = signer.notification("x")
    verifier = _verifier(signer, clock)
    verifier.clock = lambda: clock.now.replace(tzinfo=None)
    with pytest.raises(ConfigurationError, match="aware datetime"):
        verifier.verify(message.body)


# --- certificate validity, compared in line -------------------------------------------------


@pytest.mark.parametrize(
    ("end", "shift", "expected"),
    [
        pytest.param(False, timedelta(0), None, id="first-moment"),
        pytest.param(False, -TICK, (503, "certificate_not_yet_valid"), id="before"),
        pytest.param(True, timedelta(0), None, id="last-moment"),
        pytest.param(True, TICK, (403, "certificate_expired"), id="after"),
    ],
)
def test_certificate_validity_boundaries_through_the_verifier(
    test_ca: TestCA, end: bool, shift: timedelta, expected: tuple[int, str] | None
) -> None:
    certificate = test_ca.certificate
    clock = FrozenClock(
        (certificate.not_valid_after_utc if end else certificate.not_valid_before_utc) + shift
    )
    signer = MessageSigner(test_ca, topic_arn=TOPIC, clock=clock)  # signed "now": fresh
    verifier = _verifier(signer, clock)
    message = signer.notification("x")
    if expected is None:
        assert verifier.verify(message.body).message == "x"
    else:
        assert _reason(verifier, message) == expected
