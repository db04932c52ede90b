"""Real mail servers for the mailer tests, all on 127.0.0.1 and started by the tests:

* :class:`SmtpServer`: an aiosmtpd server (plain, STARTTLS or implicit TLS, optional AUTH)
  that records every email it accepts and can be told to refuse recipients or data;
* :class:`MotoSes`: moto's AWS emulator in server mode, reached by boto3 over real HTTP;
* :func:`tls_contexts`: a throwaway certificate for 127.0.0.1 and the client context that
  trusts it (so TLS is verified for real, host name included).
"""

from __future__ import annotations

import asyncio
import email
import ipaddress
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import requests
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from snsmiddleware.mail import Mailer

from ._net import free_port

LOCALHOST = "127.0.0.1"
SMTP_USER = "alerts"
SMTP_PASSWORD = "correct horse battery staple"
SES_REGION = "us-east-1"
VERIFIED_SENDER = "alerts@example.com"


def parse_email(data: bytes | str) -> EmailMessage:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    # On the wire and in .eml files lines end in CRLF; the parser's policy expects LF.
    message = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=default_policy)
    assert isinstance(message, EmailMessage)
    return message


def text_and_html(message: EmailMessage) -> tuple[str, str]:
    """The plain-text and HTML parts of an alert email (both must be there)."""
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def to_addresses(message: EmailMessage) -> list[str]:
    """The To addresses as written (``Ana Lima <ana@example.com>``)."""
    return [str(address) for address in message["To"].addresses]


@dataclass(frozen=True)
class TlsFiles:
    server: ssl.SSLContext
    client: ssl.SSLContext


def tls_contexts(directory: Path) -> TlsFiles:
    """A self-signed certificate for 127.0.0.1 (IP SAN) and contexts for both ends."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOCALHOST)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOCALHOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "smtp-cert.pem"
    key_file = directory / "smtp-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return TlsFiles(server=server, client=client)


@dataclass(frozen=True)
class Received:
    """One email an SMTP server accepted, as it arrived."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        return parse_email(self.data)


@dataclass
class RecordingHandler:
    """aiosmtpd handler: records accepted emails; refuses what it is told to refuse."""

    received: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    #: seconds to wait before answering DATA (a slow server; a send in flight)
    data_delay: float = 0.0
    #: set when a DATA command arrives (a send is in flight)
    data_started: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_started.set()
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_reply is not None:
            return self.data_reply
        login = session.auth_data.login.decode() if session.auth_data is not None else None
        with self._lock:
            self.received.append(
                Received(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    data=bytes(envelope.original_content),
                    # STARTTLS sets session.ssl; implicit TLS shows on the transport.
                    tls=session.ssl is not None
                    or server.transport.get_extra_info("ssl_object") is not None,
                    login=login,
                )
            )
        return "250 OK"


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login.decode(),
        auth_data.password.decode(),
    ) == (SMTP_USER, SMTP_PASSWORD)
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


@dataclass
class SmtpServer:
    """A running aiosmtpd server; ``security`` is what it offers: none, starttls or tls."""

    handler: RecordingHandler
    port: int
    security: str
    controller: Any

    @property
    def received(self) -> list[Received]:
        return self.handler.received


@contextmanager
def smtp_server(
    security: str, tls: TlsFiles | None = None, port: int | None = None
) -> Iterator[SmtpServer]:
    """Start an SMTP server on 127.0.0.1.

    ``starttls`` requires STARTTLS and AUTH (as a submission server does); ``tls`` is
    implicit TLS (SMTPS) without AUTH; ``none`` is plain SMTP.
    """
    handler = RecordingHandler()
    port = port or free_port()
    options: dict[str, Any] = {}
    if security == "starttls":
        assert tls is not None
        options = {
            "tls_context": tls.server,
            "require_starttls": True,
            "authenticator": _authenticate,
            "auth_required": True,
        }
    elif security == "tls":
        assert tls is not None
        options = {"ssl_context": tls.server}
    controller = Controller(handler, hostname=LOCALHOST, port=port, ready_timeout=10, **options)
    controller.start()
    try:
        yield SmtpServer(handler=handler, port=port, security=security, controller=controller)
    finally:
        controller.stop()


class MotoSes:
    """moto's server mode on 127.0.0.1: SES (v1 and v2) over real HTTP."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.url = f"http://{LOCALHOST}:{self.port}"
        self._server = ThreadedMotoServer(ip_address=LOCALHOST, port=self.port, verbose=False)

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Forget every identity and sent email (moto's own reset endpoint)."""
        requests.post(f"{self.url}/moto-api/reset", timeout=5).raise_for_status()

    def verify(self, identity: str) -> None:
        import boto3

        client = boto3.session.Session().client(
            "sesv2", region_name=SES_REGION, endpoint_url=self.url
        )
        client.create_email_identity(EmailIdentity=identity)

    def sent(self) -> list[Any]:
        """moto's record of sent raw emails (source, destinations, raw_data)."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ses.models import ses_backends

        return list(ses_backends[DEFAULT_ACCOUNT_ID][SES_REGION].sent_messages)


@contextmanager
def running_moto_ses() -> Iterator[MotoSes]:
    """moto's server on 127.0.0.1 for as long as the block runs."""
    server = MotoSes()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def fresh_ses(server: MotoSes, monkeypatch: Any) -> MotoSes:
    """``server`` emptied, with the verified sender, and boto3 pointed at fake credentials
    only (``monkeypatch``: pytest's fixture, so the environment is restored afterwards)."""
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    server.reset()
    server.verify(VERIFIED_SENDER)
    return server


FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": SES_REGION,
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


#: A mailer and what its receiving end got (every email, parsed).
MailRoute = tuple[Mailer, Callable[[], list[EmailMessage]]]
