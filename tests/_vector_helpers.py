"""The real AWS-signed messages in ``tests/vectors/`` (provenance in its README) and the
offline certificate fetcher and headers that go with them.

Every vector verifies with the certificate whose file name carries the hex digest of its
SigningCertURL, and a clock frozen at the vector's own Timestamp (the certificates are long
expired).
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

from snsmiddleware.errors import CertificateError
from snsmiddleware.message import parse_timestamp
from snsmiddleware.testing import FrozenClock

VECTOR_DIR = Path(__file__).parent / "vectors"
VECTOR_NAMES = tuple(sorted(path.name for path in VECTOR_DIR.glob("*.json")))
assert len(VECTOR_NAMES) == 8, "tests/vectors/ lost a vector"

SUBSCRIPTION_VECTOR = "14-subscriptionconfirmation-v1-2022-us-east-1.json"
_DIGEST_IN_URL = re.compile(r"/SimpleNotificationService-([0-9a-f]+)\.pem\Z")


def vector_body(name: str) -> bytes:
    """The vector's bytes, exactly as stored."""
    return (VECTOR_DIR / name).read_bytes()


def vector_fields(name: str) -> dict[str, Any]:
    """The vector's JSON document, key order kept."""
    fields: dict[str, Any] = json.loads(vector_body(name))
    return fields


def to_body(fields: dict[str, Any]) -> bytes:
    """Serialise (possibly changed) fields back into an SNS-like body."""
    return json.dumps(fields, indent=2).encode("utf-8")


def vector_clock(name: str) -> FrozenClock:
    """A clock frozen at the vector's Timestamp, inside its certificate's validity."""
    return FrozenClock(parse_timestamp(vector_fields(name)["Timestamp"]))


def sns_headers(body: bytes) -> dict[str, str]:
    """The headers SNS sends with ``body``, built from the body's own fields."""
    fields = json.loads(body)
    return {
        "Content-Type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": fields["Type"],
        "x-amz-sns-message-id": fields["MessageId"],
        "x-amz-sns-topic-arn": fields["TopicArn"],
    }


def lower_headers(body: bytes) -> dict[str, str]:
    """:func:`sns_headers` as :meth:`SnsVerifier.verify` wants them (lower-case names)."""
    return {name.lower(): value for name, value in sns_headers(body).items()}


class VectorCertificates:
    """``fetch_certificate`` serving the vector ``.pem`` whose name holds the URL's hex.

    Records every URL asked for in :attr:`fetched`; an unknown digest is a definitive "no".
    """

    def __init__(self) -> None:
        self.fetched: list[str] = []
        self._lock = threading.Lock()
        self.pems = {path.name: path.read_bytes() for path in VECTOR_DIR.rglob("*.pem")}

    def __call__(self, url: str) -> bytes:
        with self._lock:
            self.fetched.append(url)
        match = _DIGEST_IN_URL.search(url)
        if match is not None:
            for name, pem in self.pems.items():
                if match[1] in name:
                    return pem
        raise CertificateError("no such vector certificate", reason="certificate_not_found")


#: What the signature covers, per AWS's documentation of the string to sign (written out
#: here rather than taken from snsmiddleware.signing, so the tests do not trust the code).
SIGNED_KEYS: dict[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
SIGNED_KEYS["UnsubscribeConfirmation"] = SIGNED_KEYS["SubscriptionConfirmation"]
