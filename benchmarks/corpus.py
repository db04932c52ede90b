"""The realistic corpus of issue 17: distinct, freshly signed messages of about 1.5 KB with
non-ASCII text, both signature versions, with and without Subject; and the RSA-2048 verify
of the same messages (the limit every ratio is taken against).

Bodies are written as SNS writes them: UTF-8, non-ASCII characters as themselves (not
``\\uXXXX`` escapes), so the UTF-8 decode and the JSON scan see what production sees.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import padding

from snsmiddleware.signing import decode_signature, hash_for, string_to_sign
from snsmiddleware.testing import MessageSigner, TestCA

TOPIC = "arn:aws:sns:us-east-1:123456789012:budget-alerts"
PATH = "/sns/budgets"
_TEXT = (
    "Budget « Équipe données » — dépassement prévu : 1 234,56 € sur 1 000,00 € (123 %). "
    "予算アラート：実際のコストが閾値を超えました。 Ünïcödé ☃ ✓ — "
)


@dataclass(frozen=True)
class Delivery:
    """One signed message: the body and headers SNS would POST, and its RSA check alone."""

    body: bytes
    headers: dict[str, str]  # lower-case names, as SnsVerifier.verify takes them
    signature: bytes
    signed_data: bytes
    version: str

    def environ(self, path: str = PATH) -> dict[str, Any]:
        """The WSGI environ of this delivery (a fresh input stream each call)."""
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(self.body),
            "CONTENT_LENGTH": str(len(self.body)),
            "CONTENT_TYPE": "text/plain; charset=UTF-8",
        }
        for name, value in self.headers.items():
            if name != "content-type":
                environ[f"HTTP_{name.upper().replace('-', '_')}"] = value
        return environ


def text_of(size: int, index: int) -> str:
    """A distinct message text of about ``size`` UTF-8 bytes, non-ASCII throughout."""
    text = f"alert {index}: " + _TEXT * (size // len(_TEXT.encode("utf-8")) + 1)
    return text.encode("utf-8")[:size].decode("utf-8", "ignore")


def realistic(count: int, ca: TestCA | None = None, *, body_bytes: int = 1536) -> list[Delivery]:
    """``count`` distinct deliveries of about ``body_bytes`` each, alternating SignatureVersion
    1 and 2, and with and without Subject (every combination equally often)."""
    ca = ca or TestCA()
    signers = {v: MessageSigner(ca, topic_arn=TOPIC, signature_version=v) for v in ("1", "2")}
    envelope = 1000  # the rest of a notification's JSON: ids, URLs, the signature
    deliveries = []
    for index in range(count):
        version = "2" if index % 2 else "1"
        overrides = {"Subject": "AWS Budgets: Équipe données 🚨"} if index % 4 < 2 else {}
        text = text_of(max(64, body_bytes - envelope), index)
        signed = signers[version].notification(text, **overrides)
        fields = dict(signed.fields)
        body = json.dumps(fields, indent=2, ensure_ascii=False).encode("utf-8")
        headers = {k.lower(): v for k, v in signed.headers.items()}
        deliveries.append(
            Delivery(
                body,
                headers,
                decode_signature(fields["Signature"]),
                string_to_sign(fields),
                version,
            )
        )
    return deliveries


def rsa_verifier(ca: TestCA) -> Callable[[Delivery], None]:
    """The RSA-2048 PKCS#1 v1.5 verify of one delivery, nothing else (the limit)."""
    key: Any = ca.certificate.public_key()
    pad = padding.PKCS1v15()
    algorithms = {v: hash_for(v) for v in ("1", "2")}

    def verify(delivery: Delivery) -> None:
        key.verify(delivery.signature, delivery.signed_data, pad, algorithms[delivery.version])

    return verify


def certificate_fetcher(ca: TestCA) -> Callable[[str], bytes]:
    """Serves ``ca``'s signing certificate at its SNS URLs (no network)."""
    return MessageSigner(ca, topic_arn=TOPIC).fetch_certificate
