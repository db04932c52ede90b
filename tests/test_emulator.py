"""Emulator mode: certificate and confirmation URLs trusted only under one explicit base."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import webtest

from snsmiddleware import ConfigurationError, SnsMiddleware
from snsmiddleware.errors import PolicyError
from snsmiddleware.policy import EmulatorEndpoint
from snsmiddleware.testing import MessageSigner, TestCA, post_sns

from .conftest import PATH, TOPIC, EchoApp

BASE = "http://127.0.0.1:4566"
CERT_URL = f"{BASE}/_aws/sns/SimpleNotificationService-6c6f63616c737461636b69736e696365.pem"


@pytest.fixture
def emulator_ca() -> TestCA:
    # An emulator signs with a certificate of its own name, which emulator mode accepts.
    return TestCA(common_name="localhost.localstack.cloud")


@pytest.fixture
def emulated(
    emulator_ca: TestCA, make_middleware: Callable[..., SnsMiddleware]
) -> tuple[MessageSigner, list[str], webtest.TestApp]:
    signer = MessageSigner(emulator_ca, topic_arn=TOPIC)
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        assert url == CERT_URL
        return emulator_ca.certificate_pem

    app = webtest.TestApp(make_middleware(emulator=BASE, fetch_certificate=fetch))
    return signer, fetched, app


def test_emulator_signed_notification_is_accepted(
    emulated: tuple[MessageSigner, list[str], webtest.TestApp], echo_app: EchoApp
) -> None:
    signer, fetched, app = emulated
    response = post_sns(app, PATH, signer.notification("hi", SigningCertURL=CERT_URL))
    assert response.status_int == 200
    assert fetched == [CERT_URL] and len(echo_app.calls) == 1


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1:4567/_aws/sns/x.pem", id="other-port"),
        pytest.param("https://127.0.0.1:4566/_aws/sns/x.pem", id="other-scheme"),
        pytest.param("http://127.0.0.1:4566@evil.example/x.pem", id="userinfo"),
        pytest.param("http://127.0.0.1:45661/x.pem", id="port-prefix"),
        pytest.param("http://127.0.0.1:4566/../etc/x.pem", id="traversal"),
        pytest.param("http://127.0.0.1:4566/x.pem?y=1", id="query"),
        pytest.param("http://127.0.0.1:4566/x.pem#f", id="fragment"),
        pytest.param(
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-ab.pem",
            id="aws-url-not-trusted-in-emulator-mode",
        ),
    ],
)
def test_emulator_mode_trusts_only_its_base(
    emulated: tuple[MessageSigner, list[str], webtest.TestApp], url: str
) -> None:
    signer, fetched, app = emulated
    response = post_sns(app, PATH, signer.notification("hi", SigningCertURL=url))
    assert (response.status_int, response.headers["X-SNS-Reason"]) == (403, "bad_cert_url")
    assert fetched == []


def test_emulator_mode_keeps_signature_and_topic_checks(
    emulated: tuple[MessageSigner, list[str], webtest.TestApp],
) -> None:
    signer, _, app = emulated
    forged = signer.notification("hi", SigningCertURL=CERT_URL).tampered(Message="changed")
    assert post_sns(app, PATH, forged).headers["X-SNS-Reason"] == "bad_signature"
    other = signer.notification(
        "hi", SigningCertURL=CERT_URL, TopicArn="arn:aws:sns:us-east-1:000000000000:other"
    )
    assert post_sns(app, PATH, other).headers["X-SNS-Reason"] == "topic_not_allowed"


def test_aws_mode_refuses_emulator_certificate_name(
    emulator_ca: TestCA, make_middleware: Callable[..., SnsMiddleware]
) -> None:
    signer = MessageSigner(emulator_ca, topic_arn=TOPIC)
    app = webtest.TestApp(make_middleware(fetch_certificate=signer.fetch_certificate))
    response = post_sns(app, PATH, signer.notification("hi"))
    assert response.headers["X-SNS-Reason"] == "certificate_name_mismatch"


def test_emulator_subscribe_url_is_validated_and_rebuilt(
    emulator_ca: TestCA, make_middleware: Callable[..., SnsMiddleware]
) -> None:
    signer = MessageSigner(emulator_ca, topic_arn=TOPIC)
    confirmed: list[str] = []
    middleware = make_middleware(
        emulator=BASE,
        fetch_certificate=lambda url: emulator_ca.certificate_pem,
        confirm=lambda message: confirmed.append(middleware.verifier.confirmation_url(message)),
    )
    app = webtest.TestApp(middleware)
    token = "ab" * 32
    good = f"{BASE}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={token}"
    message = signer.subscription_confirmation(
        SigningCertURL=CERT_URL, Token=token, SubscribeURL=good
    )
    assert post_sns(app, PATH, message).status_int == 200
    assert confirmed == [
        f"{BASE}/?Action=ConfirmSubscription&TopicArn={TOPIC.replace(':', '%3A')}&Token={token}"
    ]
    evil = signer.subscription_confirmation(
        SigningCertURL=CERT_URL,
        Token=token,
        SubscribeURL=f"http://169.254.169.254/?Action=ConfirmSubscription&TopicArn={TOPIC}"
        f"&Token={token}",
    )
    assert post_sns(app, PATH, evil).headers["X-SNS-Reason"] == "bad_subscribe_url"
    assert len(confirmed) == 1


@pytest.mark.parametrize(
    "base",
    [
        "127.0.0.1:4566",
        "http://127.0.0.1:4566/path",
        "http://u@127.0.0.1:4566",
        "ftp://127.0.0.1",
        "http://127.0.0.1:4566?x",
    ],
)
def test_bad_emulator_base_fails_at_startup(
    make_middleware: Callable[..., SnsMiddleware], base: str
) -> None:
    with pytest.raises(ConfigurationError):
        make_middleware(emulator=base)


def test_emulator_mode_is_logged_loudly(
    make_middleware: Callable[..., SnsMiddleware],
    caplog: pytest.LogCaptureFixture,
    signer: MessageSigner,
) -> None:
    caplog.set_level(logging.INFO, logger="snsmiddleware")
    app = webtest.TestApp(make_middleware(emulator=BASE + "/"))
    assert "EMULATOR MODE" in caplog.text and BASE in caplog.text
    caplog.clear()
    post_sns(app, PATH, signer.notification("x"))
    assert f"emulator={BASE}" in caplog.text


def test_emulator_endpoint_normalises_trailing_slash() -> None:
    endpoint = EmulatorEndpoint("http://localhost:4566/")
    assert endpoint.base == "http://localhost:4566"
    assert (
        endpoint.certificate_url("http://localhost:4566/a/b.pem") == "http://localhost:4566/a/b.pem"
    )
    with pytest.raises(PolicyError):
        endpoint.certificate_url("http://localhost:4566/a/.pem/../b.pem")
