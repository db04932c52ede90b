"""Shared fixtures: a test CA and signer from the public testing kit, a frozen clock, an echo
app that records what it saw, and a middleware factory wired to them (no network)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest

from snsmiddleware import SnsMiddleware
from snsmiddleware.mail import FileOutbox, SesMailer, SmtpMailer
from snsmiddleware.message import SubscriptionConfirmation
from snsmiddleware.testing import FrozenClock, MessageSigner, TestCA

from ._aws_wiring_helpers import MotoAws, fresh_moto, running_moto_aws
from ._dynamodb_helpers import MotoDynamoDB, running_moto_dynamodb
from ._mail_helpers import (
    LOCALHOST,
    SES_REGION,
    SMTP_PASSWORD,
    SMTP_USER,
    MailRoute,
    MotoSes,
    TlsFiles,
    fresh_ses,
    parse_email,
    running_moto_ses,
    smtp_server,
    tls_contexts,
)
from ._redis_helpers import start_redis

TOPIC = "arn:aws:sns:us-east-1:123456789012:budget-alerts"
PATH = "/sns/budgets"


class EchoApp:
    """A WSGI app that records every environ and body it receives and answers 200."""

    def __init__(self, status: str = "200 OK") -> None:
        self.status = status
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        self.calls.append({"environ": environ, "body": body})
        payload = b"app saw " + environ["PATH_INFO"].encode()
        start_response(
            self.status, [("Content-Type", "text/plain"), ("Content-Length", str(len(payload)))]
        )
        return [payload]


class RecordingConfirmer:
    def __init__(self) -> None:
        self.confirmed: list[SubscriptionConfirmation] = []

    def __call__(self, message: SubscriptionConfirmation) -> None:
        self.confirmed.append(message)


@pytest.fixture(autouse=True)
def _isolated_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test in its own directory: defaults such as ./outbox never touch the repo."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def outbox(tmp_path: Path) -> FileOutbox:
    """The file outbox of the test's emails."""
    return FileOutbox(tmp_path / "outbox")


@pytest.fixture
def dead_letter(tmp_path: Path) -> FileOutbox:
    """The dead-letter outbox, beside :func:`outbox`."""
    return FileOutbox(tmp_path / "dead-letter")


@pytest.fixture(scope="session")
def test_ca() -> TestCA:
    return TestCA()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture(params=["1", "2"], ids=["sigv1", "sigv2"])
def signature_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def signer(test_ca: TestCA, clock: FrozenClock) -> MessageSigner:
    return MessageSigner(test_ca, topic_arn=TOPIC, clock=clock)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on 127.0.0.1, one per test module that asks for it."""
    yield from start_redis(tmp_path_factory.mktemp("redis"))


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[MotoDynamoDB]:
    """moto's server (DynamoDB) on 127.0.0.1, one per test module that asks for it."""
    with running_moto_dynamodb() as server:
        yield server


@pytest.fixture(scope="module")
def moto_aws_server() -> Iterator[MotoAws]:
    """moto's server (SNS, STS, Budgets; doctor and connect) on 127.0.0.1, one per module."""
    with running_moto_aws() as server:
        yield server


@pytest.fixture
def moto(moto_aws_server: MotoAws, monkeypatch: pytest.MonkeyPatch) -> MotoAws:
    """:func:`moto_aws_server`, emptied, with boto3 on fake credentials."""
    return fresh_moto(moto_aws_server, monkeypatch)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoSes]:
    """moto's server (SES) on 127.0.0.1, one per test module that asks for it."""
    with running_moto_ses() as server:
        yield server


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throwaway certificate for 127.0.0.1 and the contexts of both ends."""
    return tls_contexts(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def ses(moto_server: MotoSes, monkeypatch: pytest.MonkeyPatch) -> MotoSes:
    """moto's SES, emptied, with the verified sender and fake credentials."""
    return fresh_ses(moto_server, monkeypatch)


@pytest.fixture(params=["file", "smtp", "ses"])
def mail_route(
    request: pytest.FixtureRequest, outbox: FileOutbox, tls: TlsFiles
) -> Iterator[MailRoute]:
    """(mailer, delivered emails) for each kind of mailer, with a real receiving end: the
    outbox, an aiosmtpd server behind STARTTLS and AUTH, or moto's SES."""
    if request.param == "file":
        yield outbox, lambda: [parse_email(path.read_bytes()) for path in outbox.messages()]
    elif request.param == "smtp":
        with smtp_server("starttls", tls) as server:
            mailer = SmtpMailer(
                LOCALHOST,
                server.port,
                username=SMTP_USER,
                password=SMTP_PASSWORD,
                ssl_context=tls.client,
            )
            yield mailer, lambda: [received.message for received in server.received]
    else:
        moto: MotoSes = request.getfixturevalue("ses")
        mailer = SesMailer(region=SES_REGION, endpoint_url=moto.url)
        yield mailer, lambda: [parse_email(sent.raw_data) for sent in moto.sent()]


@pytest.fixture
def versioned_signer(signer: MessageSigner, signature_version: str) -> MessageSigner:
    """The :func:`signer`, signing with SignatureVersion 1 and then 2 (the test runs twice)."""
    signer.signature_version = signature_version
    return signer


@pytest.fixture
def echo_app() -> EchoApp:
    return EchoApp()


@pytest.fixture
def confirmer() -> RecordingConfirmer:
    return RecordingConfirmer()


@pytest.fixture
def make_middleware(
    echo_app: EchoApp, signer: MessageSigner, clock: FrozenClock, confirmer: RecordingConfirmer
) -> Callable[..., SnsMiddleware]:
    def make(**overrides: Any) -> SnsMiddleware:
        options: dict[str, Any] = {
            "paths": [PATH],
            "topics": [TOPIC],
            "fetch_certificate": signer.fetch_certificate,
            "clock": clock,
            "confirm": confirmer,
        }
        options.update(overrides)
        app = options.pop("app", echo_app)
        return SnsMiddleware(app, **options)

    return make


@pytest.fixture
def testapp(make_middleware: Callable[..., SnsMiddleware]) -> webtest.TestApp:
    return webtest.TestApp(make_middleware(), lint=True)
