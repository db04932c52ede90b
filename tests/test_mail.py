"""The mailers: one shared contract run against every implementation with a real receiving
end (a directory, an aiosmtpd server on 127.0.0.1 in plain, STARTTLS and implicit-TLS modes,
moto's SES emulator in server mode over HTTP), then each mailer's own failure paths and how
they are classified: transient (503, SNS retries) or permanent (dead letter) (issue 3).

botocore's Stubber is used only for SES answers moto cannot produce (throttling, 5xx,
unverified MAIL FROM domain, suspended or paused sending, a missing configuration set, and
checking the request's ConfigurationSetName); everything moto can express runs against it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import pytest

from snsmiddleware.errors import ConfigurationError
from snsmiddleware.mail import (
    FileOutbox,
    Mailer,
    MailRejectedError,
    MailUnavailableError,
    SesMailer,
    SmtpMailer,
    SmtpSecurity,
)

from ._mail_helpers import (
    FAKE_AWS_ENV,
    LOCALHOST,
    SES_REGION,
    SMTP_PASSWORD,
    SMTP_USER,
    VERIFIED_SENDER,
    MotoSes,
    TlsFiles,
    free_port,
    parse_email,
    smtp_server,
    tls_contexts,
)

SUBJECT = "Cost control alert - 80% warning threshold exceeded - Café ☕ budget"


def sample_email(
    to: tuple[str, ...] = ("Ana Lima <ana@example.com>",),
    sender: str = f"Budget alerts <{VERIFIED_SENDER}>",
    subject: str = SUBJECT,
) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = ", ".join(to)
    message.set_content("Plain text: 0.59 USD ✓\n")
    message.add_alternative("<p>HTML: 0.59 USD &amp; ✓</p>\n", subtype="html")
    return message


@dataclass
class Delivered:
    """What the receiving end got: the parsed email and the envelope recipients."""

    message: EmailMessage
    recipients: list[str]


@dataclass
class Backend:
    name: str
    mailer: Mailer
    delivered: Callable[[], list[Delivered]]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return tls_contexts(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def ses(moto_server: MotoSes, aws_env: None) -> MotoSes:
    moto_server.reset()
    moto_server.verify(VERIFIED_SENDER)
    return moto_server


def _file_backend(tmp_path: Path) -> Backend:
    outbox = FileOutbox(tmp_path / "outbox")

    def delivered() -> list[Delivered]:
        result = []
        for path in outbox.messages():
            message = parse_email(path.read_bytes())
            recipients = [a.addr_spec for a in message["To"].addresses]
            result.append(Delivered(message, recipients))
        return result

    return Backend("file", outbox, delivered)


@pytest.fixture(params=["file", "smtp-plain", "smtp-starttls", "smtp-tls", "ses", "ses-v1"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, tls: TlsFiles) -> Iterator[Backend]:
    name = str(request.param)
    if name == "file":
        yield _file_backend(tmp_path)
    elif name.startswith("smtp-"):
        security = name.removeprefix("smtp-")
        with smtp_server("none" if security == "plain" else security, tls) as server:
            login: dict[str, Any] = (
                {"username": SMTP_USER, "password": SMTP_PASSWORD} if security == "starttls" else {}
            )
            mailer = SmtpMailer(
                LOCALHOST,
                server.port,
                security="none" if security == "plain" else security,  # type: ignore[arg-type]
                ssl_context=tls.client,
                **login,
            )

            def delivered() -> list[Delivered]:
                for received in server.received:
                    assert received.tls is (security != "plain")
                    assert received.login == login.get("username")
                return [Delivered(r.message, r.rcpt_tos) for r in server.received]

            yield Backend(name, mailer, delivered)
    else:
        moto: MotoSes = request.getfixturevalue("ses")
        mailer = SesMailer(
            region=SES_REGION, endpoint_url=moto.url, api="v1" if name == "ses-v1" else "v2"
        )

        def delivered() -> list[Delivered]:
            # moto adds the To header's addresses to the Destination it was given.
            return [
                Delivered(
                    parse_email(sent.raw_data),
                    sorted({address for _, address in getaddresses(sent.destinations)}),
                )
                for sent in moto.sent()
            ]

        yield Backend(name, mailer, delivered)


# --- the contract every mailer meets ------------------------------------------------------


def test_mailer_satisfies_the_protocol(backend: Backend) -> None:
    assert isinstance(backend.mailer, Mailer)


def test_sends_exactly_one_intact_email(backend: Backend) -> None:
    backend.mailer.send(sample_email())
    [got] = backend.delivered()
    assert got.message["Subject"] == SUBJECT
    assert got.message["From"].addresses[0].addr_spec == VERIFIED_SENDER
    assert str(got.message["To"]) == "Ana Lima <ana@example.com>"
    assert got.recipients == ["ana@example.com"]
    text = got.message.get_body(("plain",))
    html = got.message.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content() == "Plain text: 0.59 USD ✓\n"
    assert html.get_content() == "<p>HTML: 0.59 USD &amp; ✓</p>\n"


def test_one_email_reaches_several_recipients(backend: Backend) -> None:
    to = ("Ana Lima <ana@example.com>", "finops@example.com", '"Lima, Bo" <bo@example.com>')
    backend.mailer.send(sample_email(to=to))
    [got] = backend.delivered()
    assert sorted(got.recipients) == ["ana@example.com", "bo@example.com", "finops@example.com"]
    assert [a.addr_spec for a in got.message["To"].addresses] == [
        "ana@example.com",
        "finops@example.com",
        "bo@example.com",
    ]


def test_concurrent_sends_are_each_delivered_once(backend: Backend) -> None:
    errors: list[BaseException] = []

    def send(index: int) -> None:
        try:
            backend.mailer.send(sample_email(subject=f"email {index}"))
        except BaseException as exc:  # collected and re-checked in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    subjects = sorted(d.message["Subject"] for d in backend.delivered())
    assert subjects == [f"email {i}" for i in range(6)]


# --- FileOutbox -----------------------------------------------------------------------------


def test_file_outbox_writes_rfc5322_files_with_unique_sorted_names(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path / "deep" / "outbox")
    paths = [outbox.write(sample_email(subject=f"n{i}")) for i in range(3)]
    assert outbox.messages() == paths
    assert len(set(paths)) == 3
    data = paths[0].read_bytes()
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    assert parse_email(data)["Subject"] == "n0"
    assert sorted(p.name for p in (tmp_path / "deep" / "outbox").iterdir()) == [
        p.name for p in paths
    ]


def test_file_outbox_failure_is_transient_and_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = FileOutbox(tmp_path)

    def fail(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(MailUnavailableError) as info:
        outbox.send(sample_email())
    assert info.value.status == 503
    assert info.value.reason == "outbox_unavailable"
    assert list(tmp_path.iterdir()) == []


def test_file_outbox_whose_directory_disappeared_is_transient(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path / "outbox")
    (tmp_path / "outbox").rmdir()
    (tmp_path / "outbox").write_text("not a directory")
    with pytest.raises(MailUnavailableError):
        outbox.send(sample_email())


def test_file_outbox_on_a_file_fails_at_startup(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigurationError):
        FileOutbox(tmp_path / "file")


# --- SmtpMailer -----------------------------------------------------------------------------


@pytest.fixture
def plain_smtp() -> Iterator[Any]:
    with smtp_server("none") as server:
        yield server


def plain_mailer(port: int, **options: Any) -> SmtpMailer:
    return SmtpMailer(LOCALHOST, port, security="none", **options)


def test_smtp_connection_refused_is_transient() -> None:
    with pytest.raises(MailUnavailableError) as info:
        plain_mailer(free_port()).send(sample_email())
    assert info.value.status == 503


def test_smtp_server_that_never_answers_times_out_as_transient() -> None:
    with socket.socket() as listener:
        listener.bind((LOCALHOST, 0))
        listener.listen(1)  # accepts the TCP handshake, never says hello
        mailer = plain_mailer(listener.getsockname()[1], timeout=0.3)
        with pytest.raises(MailUnavailableError):
            mailer.send(sample_email())


@contextlib.contextmanager
def dripping_server(head: bytes, filler: bytes, tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """A server that sends ``head``, then ``filler`` one byte every 20 ms to each client
    (after a TLS handshake with ``tls``): every byte well inside any per-operation
    time-out, so only a deadline ends it."""
    stop = threading.Event()
    listener = socket.socket()
    listener.bind((LOCALHOST, 0))
    listener.listen(4)
    listener.settimeout(0.1)

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError):
                if tls is not None:
                    client.settimeout(5)
                    client = tls.wrap_socket(client, server_side=True)
            with client, contextlib.suppress(OSError):
                client.sendall(head)
                while not stop.is_set():
                    for byte in filler:
                        client.sendall(bytes([byte]))
                        time.sleep(0.02)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()


@pytest.mark.parametrize("security", ["none", "tls"])
def test_an_smtp_server_that_drips_is_cut_off_at_the_deadline(
    security: SmtpSecurity, tmp_path: Path
) -> None:
    """A greeting that never ends (one more character of "220 welcome..." every 20 ms, in
    clear or after an implicit-TLS handshake): each byte arrives inside the 0.5 s operation
    time-out, so the 1 s deadline on the whole exchange is what ends the send (transient:
    SNS retries). With TLS the socket cut is the one registered before the handshake."""
    tls = tls_contexts(tmp_path) if security == "tls" else None
    with dripping_server(b"220", b" welcome", tls.server if tls else None) as port:
        mailer = SmtpMailer(
            LOCALHOST,
            port,
            security=security,
            timeout=0.5,
            deadline=1.0,
            ssl_context=tls.client if tls else None,
        )
        with pytest.raises(MailUnavailableError, match="longer than 1 s and was cut off") as info:
            mailer.send(sample_email())  # without the deadline: until the server stops
    assert info.value.status == 503


def test_the_smtp_deadline_must_be_positive() -> None:
    with pytest.raises(ConfigurationError):
        SmtpMailer(LOCALHOST, 25, security="none", deadline=0)


@pytest.mark.parametrize(
    ("reply", "error", "code"),
    [
        pytest.param("550 5.1.1 No such user", MailRejectedError, "550", id="550-rejected"),
        pytest.param("553 5.1.3 Bad address", MailRejectedError, "553", id="553-rejected"),
        pytest.param("450 4.2.1 Mailbox busy", MailUnavailableError, "450", id="450-deferred"),
        pytest.param("452 4.3.1 Out of space", MailUnavailableError, "452", id="452-deferred"),
    ],
)
def test_smtp_recipient_refusals_are_classified_by_reply_code(
    plain_smtp: Any, reply: str, error: type[Exception], code: str
) -> None:
    plain_smtp.handler.rcpt_replies["ana@example.com"] = reply
    with pytest.raises(error) as info:
        plain_mailer(plain_smtp.port).send(sample_email())
    assert getattr(info.value, "code", None) == code
    assert plain_smtp.received == []


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        pytest.param("451 4.3.0 Try again later", MailUnavailableError, id="451"),
        pytest.param("554 5.6.0 Content rejected", MailRejectedError, id="554"),
    ],
)
def test_smtp_data_refusals_are_classified_by_reply_code(
    plain_smtp: Any, reply: str, error: type[Exception]
) -> None:
    plain_smtp.handler.data_reply = reply
    with pytest.raises(error):
        plain_mailer(plain_smtp.port).send(sample_email())


def test_smtp_partial_refusal_delivers_to_the_others_and_logs(
    plain_smtp: Any, caplog: pytest.LogCaptureFixture
) -> None:
    plain_smtp.handler.rcpt_replies["bo@example.com"] = "550 5.1.1 No such user"
    with caplog.at_level(logging.WARNING, logger="snsmiddleware.mail"):
        plain_mailer(plain_smtp.port).send(sample_email(to=("ana@example.com", "bo@example.com")))
    [received] = plain_smtp.received
    assert received.rcpt_tos == ["ana@example.com"]
    assert "bo@example.com (550)" in caplog.text


def test_smtp_wrong_password_is_permanent(tls: TlsFiles) -> None:
    with smtp_server("starttls", tls) as server:
        mailer = SmtpMailer(
            LOCALHOST, server.port, username=SMTP_USER, password="wrong", ssl_context=tls.client
        )
        with pytest.raises(MailRejectedError) as info:
            mailer.send(sample_email())
        assert info.value.code == "535"
        assert server.received == []


def test_smtp_starttls_never_falls_back_to_clear_text(plain_smtp: Any) -> None:
    mailer = SmtpMailer(LOCALHOST, plain_smtp.port, security="starttls")
    with pytest.raises(MailRejectedError) as info:
        mailer.send(sample_email())
    assert info.value.reason == "smtp_unsupported"
    assert plain_smtp.received == []


def test_smtp_untrusted_certificate_is_refused(tls: TlsFiles) -> None:
    with smtp_server("tls", tls) as server:
        mailer = SmtpMailer(LOCALHOST, server.port, security="tls")  # system trust store only
        with pytest.raises(MailRejectedError) as info:
            mailer.send(sample_email())
        assert info.value.reason == "smtp_certificate"
        assert server.received == []


def test_smtp_bcc_is_delivered_but_never_transmitted(plain_smtp: Any) -> None:
    message = sample_email()
    message["Bcc"] = "audit@example.com"
    plain_mailer(plain_smtp.port).send(message)
    [received] = plain_smtp.received
    assert received.rcpt_tos == ["ana@example.com", "audit@example.com"]
    assert received.message["Bcc"] is None


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"security": "ssl"}, id="unknown-security"),
        pytest.param({"username": "u"}, id="user-without-password"),
        pytest.param({"timeout": 0}, id="zero-timeout"),
    ],
)
def test_smtp_bad_options_fail_at_startup(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        SmtpMailer(LOCALHOST, **options)


def test_smtp_default_ports_follow_security() -> None:
    assert SmtpMailer("mail.example.com").port == 587
    assert SmtpMailer("mail.example.com", security="tls").port == 465
    assert SmtpMailer("mail.example.com", security="none").port == 25


# --- SesMailer ------------------------------------------------------------------------------


def test_ses_unverified_sender_is_permanent(ses: MotoSes) -> None:
    """moto answers MessageRejected, as SES does for an unverified identity."""
    mailer = SesMailer(region=SES_REGION, endpoint_url=ses.url)
    with pytest.raises(MailRejectedError) as info:
        mailer.send(sample_email(sender="Nobody <nobody@unverified.example>"))
    assert info.value.code == "MessageRejected"
    assert ses.sent() == []


def test_ses_unreachable_endpoint_is_transient(aws_env: None) -> None:
    mailer = SesMailer(region=SES_REGION, endpoint_url=f"http://{LOCALHOST}:{free_port()}")
    with pytest.raises(MailUnavailableError) as info:
        mailer.send(sample_email())
    assert info.value.status == 503


def test_ses_without_a_region_fails_at_startup(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigurationError):
        SesMailer()


def _stubbed(aws_env: None) -> tuple[SesMailer, Any]:
    import boto3
    from botocore.stub import Stubber

    client = boto3.session.Session().client("sesv2", region_name=SES_REGION)
    stubber = Stubber(client)
    stubber.activate()
    return SesMailer(client=client, configuration_set="budget-alerts"), stubber


# Stubber: moto cannot make SES throttle, fail, or refuse for these reasons.
@pytest.mark.parametrize(
    ("code", "message", "status", "error"),
    [
        pytest.param(
            "TooManyRequestsException", "Too many requests", 429, MailUnavailableError, id="429"
        ),
        pytest.param(
            "Throttling", "Maximum sending rate exceeded.", 400, MailUnavailableError, id="rate"
        ),
        pytest.param(
            "Throttling", "Daily message quota exceeded.", 400, MailRejectedError, id="daily-quota"
        ),
        pytest.param("InternalFailure", "oops", 500, MailUnavailableError, id="500"),
        pytest.param("ServiceUnavailable", "later", 503, MailUnavailableError, id="503"),
        pytest.param("SomethingNew", "?", 502, MailUnavailableError, id="unknown-5xx"),
        pytest.param(
            "MailFromDomainNotVerifiedException", "no", 400, MailRejectedError, id="mail-from"
        ),
        pytest.param("NotFoundException", "no config set", 404, MailRejectedError, id="not-found"),
        pytest.param("SendingPausedException", "paused", 400, MailRejectedError, id="paused"),
        pytest.param("AccountSuspendedException", "bye", 400, MailRejectedError, id="suspended"),
        pytest.param("MessageRejected", "Email address is not verified.", 400, MailRejectedError),
    ],
)
def test_ses_errors_are_classified_by_code(
    aws_env: None, code: str, message: str, status: int, error: type[Exception]
) -> None:
    mailer, stubber = _stubbed(aws_env)
    stubber.add_client_error(
        "send_email", service_error_code=code, service_message=message, http_status_code=status
    )
    with pytest.raises(error) as info:
        mailer.send(sample_email())
    assert getattr(info.value, "code", None) == code
    stubber.assert_no_pending_responses()


def test_ses_request_carries_raw_mime_recipients_and_configuration_set(aws_env: None) -> None:
    mailer, stubber = _stubbed(aws_env)
    email = sample_email(to=("Ana Lima <ana@example.com>", "bo@example.com"))
    stubber.add_response(
        "send_email",
        {"MessageId": "m-1"},
        {
            "FromEmailAddress": VERIFIED_SENDER,
            "Destination": {"ToAddresses": ["ana@example.com", "bo@example.com"]},
            "Content": {"Raw": {"Data": email.as_bytes(policy=policy.SMTP)}},
            "ConfigurationSetName": "budget-alerts",
        },
    )
    mailer.send(email)
    stubber.assert_no_pending_responses()


def test_importing_the_package_and_mailers_does_not_import_boto3() -> None:
    code = (
        "import sys, snsmiddleware, snsmiddleware.mail, snsmiddleware.budget_app; "
        "assert 'boto3' not in sys.modules, 'boto3 imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
