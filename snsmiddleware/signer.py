"""Sign SNS messages the way AWS does, with a certificate authority you hold.

Two users share this module: the test kit (:mod:`snsmiddleware.testing` re-exports
:class:`TestCA`, :class:`MessageSigner` and :class:`SignedMessage`) and development mode
(:mod:`snsmiddleware.devmode`, behind ``serve --dev`` and ``send-test-alert``). It lives
apart from the test kit so that the production server never imports testing code.

:class:`TestCA` makes a throwaway CA and an ``sns.amazonaws.com`` signing certificate it
issued; :class:`MessageSigner` builds and signs all three message types with
SignatureVersion 1 or 2; :meth:`MessageSigner.fetch_certificate` serves the certificate for
the URLs the signer put in its messages (and refuses any other URL, recording every call
so tests can assert that no download happened).

Never make a production server trust one of these CAs: it would accept messages signed by
a key that is not AWS's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from .errors import CertificateError
from .message import (
    NOTIFICATION,
    SUBSCRIPTION_CONFIRMATION,
    TOPIC_VERIFIED_SUBJECT,
    UNSUBSCRIBE_CONFIRMATION,
)
from .partitions import aws_certificate_name
from .policy import parse_topic_arn
from .reasons import Reason
from .signing import hash_for, string_to_sign
from .verifier import Clock, utc_now

__all__ = [
    "DEFAULT_TOPIC_ARN",
    "SNS_CERTIFICATE_NAME",
    "MessageSigner",
    "SignedMessage",
    "TestCA",
    "format_timestamp",
]

DEFAULT_TOPIC_ARN: Final = "arn:aws:sns:us-east-1:123456789012:snsmiddleware-test"
SNS_CERTIFICATE_NAME: Final = "sns.amazonaws.com"

# The order SNS writes fields in (cosmetic: verification never depends on it).
_FIELD_ORDER: Final = (
    "Type",
    "MessageId",
    "Token",
    "TopicArn",
    "Subject",
    "Message",
    "SubscribeURL",
    "Timestamp",
    "SignatureVersion",
    "Signature",
    "SigningCertURL",
    "UnsubscribeURL",
    "MessageAttributes",
)


def format_timestamp(moment: datetime) -> str:
    """Write a datetime the way SNS does: UTC, milliseconds, ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _new_key(key_size: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=key_size)


class TestCA:
    """A throwaway certificate authority and the SNS signing certificate it issued.

    :param common_name: the name of the signing certificate (SNS uses ``sns.amazonaws.com``).
    :param not_before: start of the signing certificate's validity (default: a day ago).
    :param not_after: end of its validity (default: in a year).
    :param key_size: RSA key size of the signing key.
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(
        self,
        *,
        common_name: str = SNS_CERTIFICATE_NAME,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        key_size: int = 2048,
    ) -> None:
        now = utc_now()
        self.ca_key = _new_key(2048)
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "snsmiddleware Test CA")])
        self.ca_certificate = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=2))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.private_key, self.certificate = self.issue(
            common_name=common_name,
            not_before=not_before,
            not_after=not_after,
            key_size=key_size,
        )

    def issue(
        self,
        *,
        common_name: str = SNS_CERTIFICATE_NAME,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        key_size: int = 2048,
        key: rsa.RSAPrivateKey | None = None,
    ) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        """Issue another leaf certificate (another name, an expired one...) and its key.

        :param key: certify this key instead of a new one (generating keys is slow).
        """
        now = utc_now()
        key = key if key is not None else _new_key(key_size)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.ca_certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - timedelta(days=1))
            .not_valid_after(not_after or now + timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), False)
            .sign(self.ca_key, hashes.SHA256())
        )
        return key, certificate

    def with_name(self, common_name: str) -> TestCA:
        """A copy whose signing certificate (same CA, same key) is named ``common_name``:
        for example the name AWS uses in another region (see :meth:`MessageSigner.for_topic`).
        """
        copy = TestCA.__new__(TestCA)
        copy.ca_key, copy.ca_certificate = self.ca_key, self.ca_certificate
        copy.private_key, copy.certificate = self.issue(
            common_name=common_name, key=self.private_key
        )
        return copy

    @property
    def certificate_pem(self) -> bytes:
        """The signing certificate as the single PEM block SNS serves."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    _FILES: Final = ("ca-key.pem", "ca-cert.pem", "signing-key.pem", "signing-cert.pem")

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write the CA and signing keys and certificates to ``directory`` (keys mode 0600)."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        contents = (
            _private_pem(self.ca_key),
            self.ca_certificate.public_bytes(serialization.Encoding.PEM),
            _private_pem(self.private_key),
            self.certificate_pem,
        )
        for name, data in zip(self._FILES, contents, strict=True):
            path = folder / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(data)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> TestCA:
        """Read a CA written by :meth:`save` (so a signer and a server can share it)."""
        folder = Path(directory)
        ca_key, ca_cert, key, cert = ((folder / name).read_bytes() for name in cls._FILES)
        loaded = cls.__new__(cls)
        loaded.ca_key = _load_rsa_key(ca_key)
        loaded.ca_certificate = x509.load_pem_x509_certificate(ca_cert)
        loaded.private_key = _load_rsa_key(key)
        loaded.certificate = x509.load_pem_x509_certificate(cert)
        return loaded


def _private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_rsa_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


@dataclass(frozen=True)
class SignedMessage:
    """A signed SNS message: its fields, the JSON body and the headers SNS would send."""

    fields: Mapping[str, Any]

    @property
    def body(self) -> bytes:
        """The JSON document SNS POSTs."""
        ordered = {key: self.fields[key] for key in _FIELD_ORDER if key in self.fields}
        ordered.update({k: v for k, v in self.fields.items() if k not in ordered})
        return json.dumps(ordered, indent=2).encode("utf-8")

    @property
    def headers(self) -> dict[str, str]:
        """The ``x-amz-sns-*`` headers and the Content-Type SNS sends with this message."""
        headers = {"Content-Type": "text/plain; charset=UTF-8"}
        for header, key in (
            ("x-amz-sns-message-type", "Type"),
            ("x-amz-sns-message-id", "MessageId"),
            ("x-amz-sns-topic-arn", "TopicArn"),
        ):
            value = self.fields.get(key)
            if isinstance(value, str):
                headers[header] = value
        return headers

    def lambda_record(self) -> dict[str, Any]:
        """This message as an SNS-triggered Lambda function receives it: one entry of
        ``event["Records"]``, spelled as Lambda spells it (``SigningCertUrl``,
        ``UnsubscribeUrl``, ``"Subject": null`` and ``"MessageAttributes": {}`` when absent).
        """
        renamed = {"SigningCertURL": "SigningCertUrl", "UnsubscribeURL": "UnsubscribeUrl"}
        sns = {renamed.get(key, key): value for key, value in self.fields.items()}
        if sns.get("Type") == NOTIFICATION:
            sns.setdefault("Subject", None)
            sns.setdefault("MessageAttributes", {})
        return {
            "EventSource": "aws:sns",
            "EventVersion": "1.0",
            "EventSubscriptionArn": f"{self.fields.get('TopicArn')}:{uuid.uuid4()}",
            "Sns": sns,
        }

    def tampered(self, **fields: Any) -> SignedMessage:
        """A copy with fields changed (``None`` removes one) and the old signature kept."""
        changed = dict(self.fields)
        for key, value in fields.items():
            if value is None:
                changed.pop(key, None)
            else:
                changed[key] = value
        return replace(self, fields=changed)


@dataclass
class MessageSigner:
    """Builds and signs SNS messages as AWS does, for one topic.

    :param ca: the :class:`TestCA` whose signing key signs (a new one by default).
    :param topic_arn: the topic every message comes from (override per message).
    :param signature_version: ``"1"`` (SHA1) or ``"2"`` (SHA256).
    :param clock: gives the Timestamp of new messages.
    """

    ca: TestCA = field(default_factory=TestCA)
    topic_arn: str = DEFAULT_TOPIC_ARN
    signature_version: str = "2"
    clock: Clock = utc_now
    fetched: list[str] = field(default_factory=list, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def certificate_digest(self) -> str:
        """The hex part of the certificate URL (derived from the certificate)."""
        return hashlib.sha256(self.ca.certificate_pem).hexdigest()[:32]

    def certificate_url(self, topic_arn: str | None = None) -> str:
        """The SigningCertURL SNS would use for ``topic_arn``'s region."""
        topic = parse_topic_arn(topic_arn or self.topic_arn)
        return f"https://{topic.sns_host}/SimpleNotificationService-{self.certificate_digest}.pem"

    @classmethod
    def for_topic(cls, topic_arn: str, ca: TestCA | None = None, **options: Any) -> MessageSigner:
        """A signer for ``topic_arn`` whose certificate carries the name AWS gives SNS signing
        certificates in that topic's region and partition (``sns-cn-north-1.amazonaws.com.cn``
        in Beijing, ``sns-signing.af-south-1.amazonaws.com`` in Cape Town...).

        :param ca: the CA (and key) to reuse; a new one by default.
        :param options: ``signature_version=``, ``clock=``.
        """
        topic = parse_topic_arn(topic_arn)
        name = aws_certificate_name(topic.partition, topic.region)
        return cls((ca or TestCA()).with_name(name), topic_arn=topic_arn, **options)

    def fetch_certificate(self, url: str) -> bytes:
        """Serve the signing certificate at its URLs (any region); refuse other URLs.

        Every call is recorded in :attr:`fetched`.
        """
        with self._lock:
            self.fetched.append(url)
        suffix = f"/SimpleNotificationService-{self.certificate_digest}.pem"
        if url.startswith("https://sns.") and url.endswith(suffix):
            return self.ca.certificate_pem
        raise CertificateError("no such certificate", reason=Reason.CERTIFICATE_NOT_FOUND)

    def sign(self, fields: Mapping[str, Any]) -> SignedMessage:
        """Sign ``fields`` (which name their own Type, SignatureVersion...) and return them."""
        signed = dict(fields)
        signature = self.ca.private_key.sign(
            string_to_sign(signed),
            padding.PKCS1v15(),
            hash_for(str(signed["SignatureVersion"])),
        )
        signed["Signature"] = base64.b64encode(signature).decode("ascii")
        return SignedMessage(signed)

    def _common(
        self, message_type: str, message: str, overrides: Mapping[str, Any]
    ) -> dict[str, Any]:
        topic_arn = overrides.get("TopicArn", self.topic_arn)
        return {
            "Type": message_type,
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic_arn,
            "Message": message,
            "Timestamp": format_timestamp(self.clock()),
            "SignatureVersion": self.signature_version,
            "SigningCertURL": self.certificate_url(topic_arn),
        }

    def _build(self, fields: dict[str, Any], overrides: Mapping[str, Any]) -> SignedMessage:
        for key, value in overrides.items():
            if value is None:
                fields.pop(key, None)
            else:
                fields[key] = value
        return self.sign(fields)

    def notification(self, message: str = "Hello from SNS", **overrides: Any) -> SignedMessage:
        """A signed Notification; pass ``Subject=...`` for one, any field to override it."""
        fields = self._common(NOTIFICATION, message, overrides)
        topic = parse_topic_arn(fields["TopicArn"])
        fields["UnsubscribeURL"] = (
            f"https://{topic.sns_host}/?Action=Unsubscribe&SubscriptionArn="
            f"{fields['TopicArn']}:{uuid.uuid4()}"
        )
        return self._build(fields, overrides)

    def _confirmation(
        self, message_type: str, message: str, overrides: Mapping[str, Any]
    ) -> SignedMessage:
        fields = self._common(message_type, message, overrides)
        token = overrides.get("Token") or uuid.uuid4().hex * 4
        topic = parse_topic_arn(fields["TopicArn"])
        fields["Token"] = token
        fields["SubscribeURL"] = f"https://{topic.sns_host}/?" + urlencode(
            [("Action", "ConfirmSubscription"), ("TopicArn", fields["TopicArn"]), ("Token", token)],
            safe=":",
        )
        return self._build(fields, overrides)

    def subscription_confirmation(self, **overrides: Any) -> SignedMessage:
        """A signed SubscriptionConfirmation with a fresh Token and a matching SubscribeURL."""
        message = (
            "You have chosen to subscribe to the topic "
            f"{overrides.get('TopicArn', self.topic_arn)}.\n"
            "To confirm the subscription, visit the SubscribeURL included in this message."
        )
        return self._confirmation(SUBSCRIPTION_CONFIRMATION, message, overrides)

    def unsubscribe_confirmation(self, **overrides: Any) -> SignedMessage:
        """A signed UnsubscribeConfirmation."""
        message = (
            "You have chosen to deactivate subscription to the topic "
            f"{overrides.get('TopicArn', self.topic_arn)}.\n"
            "To cancel this operation and restore the subscription, visit the SubscribeURL "
            "included in this message."
        )
        return self._confirmation(UNSUBSCRIBE_CONFIRMATION, message, overrides)

    def budgets_verification(self, **overrides: Any) -> SignedMessage:
        """The Notification AWS Budgets publishes when a topic is attached to a budget."""
        overrides.setdefault("Subject", TOPIC_VERIFIED_SUBJECT)
        return self.notification("Your SNS topic is verified for AWS Budgets.", **overrides)
