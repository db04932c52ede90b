"""SnsVerifier on its own, without WSGI: its configuration errors, and the order of its checks.

The security design is that everything cheap and local runs before the only network I/O,
the certificate download: a message from a topic that is not ours, with a SignatureVersion
we refuse, a certificate URL off the pinned host or a stale Timestamp never costs a
download. The signer records every URL it is asked for, so each case can prove it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from snsmiddleware import CertificateStore, ConfigurationError, SnsVerifier
from snsmiddleware.errors import SnsError
from snsmiddleware.testing import FrozenClock, MessageSigner, SignedMessage

from .conftest import TOPIC

OTHER_TOPIC = "arn:aws:sns:us-east-1:123456789012:not-ours"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"topics": []}, "topics is empty", id="no-topics"),
        pytest.param({"topics": TOPIC}, "not one string", id="topics-as-one-string"),
        pytest.param({"topics": [TOPIC, 3]}, "TopicArn string", id="topic-not-a-string"),
        pytest.param(
            {"topics": [TOPIC], "signature_versions": ()}, "non-empty subset", id="no-versions"
        ),
        pytest.param(
            {"topics": [TOPIC], "signature_versions": ("3",)}, "non-empty subset", id="version-3"
        ),
        pytest.param(
            {"topics": [TOPIC], "max_age": timedelta(0)}, "max_age must be positive", id="max-age"
        ),
        pytest.param(
            {"topics": [TOPIC], "clock_skew": timedelta(seconds=-1)},
            "clock_skew not negative",
            id="negative-skew",
        ),
        pytest.param(
            {
                "topics": [TOPIC],
                "certificates": CertificateStore(lambda url: b""),
                "fetch_certificate": lambda url: b"",
            },
            "not both",
            id="store-and-fetcher",
        ),
    ],
)
def test_bad_configuration_fails_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SnsVerifier(**options)


def test_freshness_window_is_max_age_plus_twice_the_skew() -> None:
    verifier = SnsVerifier(
        topics=[TOPIC], max_age=timedelta(minutes=30), clock_skew=timedelta(minutes=2)
    )
    assert verifier.freshness_window == timedelta(minutes=34)


@pytest.fixture
def verifier(signer: MessageSigner, clock: FrozenClock) -> SnsVerifier:
    return SnsVerifier(
        topics=[TOPIC],
        signature_versions=("2",),
        fetch_certificate=signer.fetch_certificate,
        clock=clock,
    )


def refused_without_download(
    verifier: SnsVerifier, signer: MessageSigner, message: SignedMessage, reason: str
) -> None:
    with pytest.raises(SnsError) as raised:
        verifier.verify(message.body, message.headers)
    assert raised.value.reason == reason
    assert signer.fetched == []


def test_a_genuine_message_costs_one_download(verifier: SnsVerifier, signer: MessageSigner) -> None:
    """The other cases' ``fetched == []`` can fail: a message that passes is downloaded for."""
    message = signer.notification("hello")
    assert verifier.verify(message.body, message.headers).message == "hello"
    assert signer.fetched == [message.fields["SigningCertURL"]]


Tamper = Callable[[MessageSigner, FrozenClock], SignedMessage]


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        pytest.param(
            lambda signer, clock: signer.notification("x", TopicArn=OTHER_TOPIC),
            "topic_not_allowed",
            id="other-topic",
        ),
        pytest.param(
            lambda signer, clock: signer.notification("x", SignatureVersion="1"),
            "signature_version_not_allowed",
            id="refused-version",
        ),
        pytest.param(
            lambda signer, clock: signer.notification(
                "x",
                SigningCertURL="https://evil.example/SimpleNotificationService-"
                + signer.certificate_digest
                + ".pem",
            ),
            "bad_cert_url",
            id="off-host-certificate",
        ),
        pytest.param(
            lambda signer, clock: signer.subscription_confirmation(
                SubscribeURL="https://evil.example/?Action=ConfirmSubscription"
            ),
            "bad_subscribe_url",
            id="off-host-subscribe-url",
        ),
    ],
)
def test_no_download_before_the_local_checks_pass(
    verifier: SnsVerifier, signer: MessageSigner, clock: FrozenClock, build: Tamper, reason: str
) -> None:
    refused_without_download(verifier, signer, build(signer, clock), reason)


def test_no_download_for_a_stale_message(
    verifier: SnsVerifier, signer: MessageSigner, clock: FrozenClock
) -> None:
    message = signer.notification("x")
    clock.advance(verifier.max_age + verifier.clock_skew + timedelta(seconds=1))
    refused_without_download(verifier, signer, message, "stale_message")
