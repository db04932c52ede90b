"""The SNS string to sign and the RSA signature check.

The string to sign is ``Key\\nValue\\n`` for a fixed list of keys, in a fixed order, using
the values *exactly as received* (never re-formatted: the Java v2 SDK once rebuilt it from a
parsed timestamp and rejected genuine messages whose milliseconds were ``.000``). A
Notification includes ``Subject`` only when the key is present.

SignatureVersion 1 is RSA PKCS#1 v1.5 over SHA1, version 2 the same over SHA256.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .errors import MessageFormatError, SignatureError
from .message import NOTIFICATION, Notification, SnsMessage
from .reasons import Reason

_NOTIFICATION_KEYS: Final = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_KEYS: Final = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
# Hash objects carry no state between uses, so one instance of each serves every call.
_HASHES: Final[dict[str, hashes.HashAlgorithm]] = {"1": hashes.SHA1(), "2": hashes.SHA256()}
_PADDING: Final = padding.PKCS1v15()


def signed_keys(message_type: str) -> tuple[str, ...]:
    """The keys whose values the signature covers, in signing order."""
    return _NOTIFICATION_KEYS if message_type == NOTIFICATION else _CONFIRMATION_KEYS


def string_to_sign(fields: Mapping[str, str] | SnsMessage) -> bytes:
    """Build the canonical bytes SNS signed, from the fields exactly as received.

    Accepts a parsed message or a plain mapping of fields (the testing kit signs those).
    """
    if isinstance(fields, Notification):  # the hot path: straight from the parsed fields
        # One f-string for each shape (with and without Subject), encoded in place: this
        # runs for every message.
        if fields.subject is None:
            text = (
                f"Message\n{fields.message}\nMessageId\n{fields.message_id}\n"
                f"Timestamp\n{fields.timestamp}\nTopicArn\n{fields.topic_arn}\n"
                f"Type\n{fields.type}\n"
            )
        else:
            text = (
                f"Message\n{fields.message}\nMessageId\n{fields.message_id}\n"
                f"Subject\n{fields.subject}\nTimestamp\n{fields.timestamp}\n"
                f"TopicArn\n{fields.topic_arn}\nType\n{fields.type}\n"
            )
        try:
            return text.encode()  # UTF-8, strict; naming the codec costs a look-up per call
        except UnicodeEncodeError:
            return _encode(text)  # raises the 400 that says why
    values = fields.fields if isinstance(fields, SnsMessage) else fields
    text = "".join(
        [f"{key}\n{values[key]}\n" for key in signed_keys(values["Type"]) if key in values]
    )
    return _encode(text)


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A JSON "\\ud800" escape decodes to a lone surrogate, which no signer could sign.
        raise MessageFormatError(
            "a signed field holds an unpaired surrogate", reason=Reason.BAD_ENCODING
        ) from None


def hash_for(signature_version: str) -> hashes.HashAlgorithm:
    """The digest for a SignatureVersion (validated earlier by policy)."""
    return _HASHES[signature_version]


def decode_signature(signature: str) -> bytes:
    """Decode the base64 ``Signature`` strictly (no stray characters, correct padding)."""
    try:
        return binascii.a2b_base64(signature, strict_mode=True)
    except (binascii.Error, ValueError):
        raise SignatureError("Signature is not valid base64", reason=Reason.BAD_SIGNATURE) from None


def verify_signature(public_key: rsa.RSAPublicKey, message: SnsMessage) -> None:
    """Raise 403 ``bad_signature`` unless ``message`` was signed by ``public_key``."""
    signature = decode_signature(message.signature)
    try:
        public_key.verify(
            signature,
            string_to_sign(message),
            _PADDING,
            _HASHES[message.signature_version],  # hash_for, without a call per message
        )
    except InvalidSignature:
        raise SignatureError(
            "the signature does not match the message", reason=Reason.BAD_SIGNATURE
        ) from None
