"""The string to sign, byte for byte, and the RSA check around it.

Known answers come from real AWS-signed vectors: each expected byte string below is written
out by hand from the SNS documentation's recipe, and is shown to be exactly what AWS signed by
verifying the vector's real signature over it with the vector's real certificate, without
going through our parser at all.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import webtest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from snsmiddleware import SnsMiddleware, SnsVerifier
from snsmiddleware.errors import MessageFormatError, SignatureError
from snsmiddleware.message import parse_message
from snsmiddleware.signing import (
    decode_signature,
    hash_for,
    signed_keys,
    string_to_sign,
    verify_signature,
)
from snsmiddleware.testing import FrozenClock, MessageSigner, TestCA, post_sns

from ._vector_helpers import SIGNED_KEYS, VectorCertificates, vector_body, vector_fields
from .conftest import PATH, TOPIC, EchoApp, RecordingConfirmer

TOKEN_14 = (
    "2336412f37fb687f5d51e6e2425dacbbab295b8a534f477ee003773c6e75c0d88a6c9815b86decae2b9971ea"
    "081e4ee21ae55607e07f98967730fb0eefbd1dec7fa7974f226c2b2b9f4adbce689a2ce4ed3bfb0f84af3e44"
    "141f5287f0f377dcb873584bc3004c9214b4572d38d6a1e7a9e7a7d154e4fff7a0d582aabc12d19f"
)
TOPIC_14 = "arn:aws:sns:us-east-1:820710015775:MyTestingTopic"
TOPIC_17 = (
    "arn:aws:sns:us-east-2:295079676684:publish-and-verify-892f85fe-4836-424d-8188-ab85bef0f362"
)
TOPIC_20 = (
    "arn:aws:sns:us-east-2:295079676684:publish-and-verify-530b26da-0687-4fe4-9f71-780bad3181e2"
)

KNOWN_ANSWERS = {
    "14-subscriptionconfirmation-v1-2022-us-east-1.json": (
        b"Message\n"
        b"You have chosen to subscribe to the topic " + TOPIC_14.encode() + b".\n"
        b"To confirm the subscription, visit the SubscribeURL included in this message.\n"
        b"MessageId\nf99d8b74-656a-46a8-a194-545b31229e26\n"
        b"SubscribeURL\nhttps://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
        b"&TopicArn=" + TOPIC_14.encode() + b"&Token=" + TOKEN_14.encode() + b"\n"
        b"Timestamp\n2022-04-07T11:50:06.563Z\n"
        b"Token\n" + TOKEN_14.encode() + b"\n"
        b"TopicArn\n" + TOPIC_14.encode() + b"\n"
        b"Type\nSubscriptionConfirmation\n"
    ),
    "17-notification-v1-2022-nosubject-us-east-2.json": (
        b"Message\nHello world\n"
        b"MessageId\n792cda85-518f-5dd3-9163-81d851212f3a\n"
        b"Timestamp\n2022-07-28T21:23:58.317Z\n"
        b"TopicArn\n" + TOPIC_17.encode() + b"\n"
        b"Type\nNotification\n"
    ),
    "20-notification-v2-2022-subject-us-east-2.json": (
        b"Message\nHello world\n"
        b"MessageId\n4504e649-d933-5aa9-8199-bd14ccf05f0b\n"
        b"Subject\nHello world\n"
        b"Timestamp\n2022-07-28T22:53:55.086Z\n"
        b"TopicArn\n" + TOPIC_20.encode() + b"\n"
        b"Type\nNotification\n"
    ),
}


@pytest.mark.parametrize("name", list(KNOWN_ANSWERS))
def test_known_answer_is_what_aws_signed(name: str) -> None:
    fields = vector_fields(name)
    pem = VectorCertificates()(fields["SigningCertURL"])
    public_key: Any = x509.load_pem_x509_certificate(pem).public_key()
    digest = hashes.SHA1() if fields["SignatureVersion"] == "1" else hashes.SHA256()
    # Independent of snsmiddleware: AWS's signature over the hand-written bytes.
    public_key.verify(
        base64.b64decode(fields["Signature"]), KNOWN_ANSWERS[name], padding.PKCS1v15(), digest
    )


@pytest.mark.parametrize("name", list(KNOWN_ANSWERS))
def test_string_to_sign_known_answer(name: str) -> None:
    assert string_to_sign(parse_message(vector_body(name))) == KNOWN_ANSWERS[name]
    # A plain mapping of the fields (what the testing kit signs) gives the same bytes.
    fields = {k: v for k, v in vector_fields(name).items() if isinstance(v, str)}
    assert string_to_sign(fields) == KNOWN_ANSWERS[name]


@pytest.mark.parametrize("message_type", sorted(SIGNED_KEYS))
def test_signed_keys_per_type(message_type: str) -> None:
    assert signed_keys(message_type) == SIGNED_KEYS[message_type]


BASE: dict[str, str] = {
    "Type": "Notification",
    "MessageId": "m-1",
    "TopicArn": TOPIC,
    "Message": "hi",
    "Timestamp": "2024-01-31T12:00:00.000Z",
}
BASE_BYTES = (
    b"Message\nhi\nMessageId\nm-1\nTimestamp\n2024-01-31T12:00:00.000Z\n"
    b"TopicArn\n" + TOPIC.encode() + b"\nType\nNotification\n"
)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param({}, BASE_BYTES, id="no-subject"),
        pytest.param(
            {"Subject": ""},
            BASE_BYTES.replace(b"Timestamp", b"Subject\n\nTimestamp"),
            id="empty-subject",
        ),
        pytest.param(
            {"Subject": "S"},
            BASE_BYTES.replace(b"Timestamp", b"Subject\nS\nTimestamp"),
            id="subject",
        ),
        pytest.param(
            {
                "Signature": "x",
                "SignatureVersion": "2",
                "SigningCertURL": "u",
                "UnsubscribeURL": "u",
                "Token": "t",
                "SubscribeURL": "s",
                "Extra": "e",
            },
            BASE_BYTES,
            id="unsigned-fields-ignored",
        ),
        pytest.param(
            {"Message": "caf\u00e9 \U0001f600"},
            BASE_BYTES.replace(b"\nhi\n", "\ncaf\u00e9 \U0001f600\n".encode()),
            id="utf-8",
        ),
        pytest.param(
            {"Message": "a\r\nb\x00"},
            BASE_BYTES.replace(b"\nhi\n", b"\na\r\nb\x00\n"),
            id="raw-control-characters",
        ),
    ],
)
def test_string_to_sign_table(extra: dict[str, str], expected: bytes) -> None:
    assert string_to_sign({**BASE, **extra}) == expected


@pytest.mark.parametrize("key", ["Message", "Subject", "MessageId", "TopicArn"])
def test_lone_surrogate_cannot_be_signed(key: str) -> None:
    with pytest.raises(MessageFormatError) as caught:
        string_to_sign({**BASE, key: "x\ud800"})
    assert (caught.value.status, caught.value.reason) == (400, "bad_encoding")


# --- decode_signature ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "raw"),
    [
        pytest.param("AAEC", b"\x00\x01\x02", id="no-padding-needed"),
        pytest.param("AAE=", b"\x00\x01", id="one-pad"),
        pytest.param("AA==", b"\x00", id="two-pads"),
        pytest.param("+/+/", b"\xfb\xff\xbf", id="standard-alphabet"),
    ],
)
def test_decode_signature_good(text: str, raw: bytes) -> None:
    assert decode_signature(text) == raw


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("AAE", id="missing-padding"),
        pytest.param("AA=", id="short-padding"),
        pytest.param("AAE==", id="excess-padding"),
        pytest.param("AA==AA==", id="data-after-padding"),
        pytest.param("AA\nEC", id="newline"),
        pytest.param("AAEC\n", id="trailing-newline"),
        pytest.param(" AAEC", id="leading-space"),
        pytest.param("AA EC", id="inner-space"),
        pytest.param("-_-_", id="urlsafe-alphabet"),
        pytest.param("AAE!", id="bang"),
        pytest.param("AAE\u00e9", id="non-ascii"),
        pytest.param("=AAE", id="leading-padding"),
    ],
)
def test_decode_signature_strict(text: str) -> None:
    with pytest.raises(SignatureError) as caught:
        decode_signature(text)
    assert (caught.value.status, caught.value.reason) == (403, "bad_signature")


def test_hash_for_versions() -> None:
    assert hash_for("1").name == "sha1"
    assert hash_for("2").name == "sha256"


# --- verify_signature with the testing kit --------------------------------------------------


@pytest.fixture(scope="module")
def kit_ca() -> TestCA:
    return TestCA()


def rsa_key(ca: TestCA) -> rsa.RSAPublicKey:
    key = ca.certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("kind", ["notification", "subscription_confirmation"])
def test_kit_signed_messages_verify(kit_ca: TestCA, version: str, kind: str) -> None:
    signer = MessageSigner(kit_ca, topic_arn=TOPIC, signature_version=version)
    signed = getattr(signer, kind)()
    verify_signature(rsa_key(kit_ca), parse_message(signed.body))


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param({"SignatureVersion": "1"}, id="relabelled-v2-as-v1"),
        pytest.param({"Signature": ""}, id="empty"),
        pytest.param({"Signature": "AAAA"}, id="short"),
        pytest.param({"Subject": "added"}, id="subject-added"),
        pytest.param({"Message": "hello "}, id="message-trailing-space"),
        pytest.param({"Timestamp": "2024-01-31T12:00:00Z"}, id="timestamp-reformatted"),
    ],
)
def test_tampered_kit_message_fails(kit_ca: TestCA, tamper: dict[str, str]) -> None:
    signer = MessageSigner(kit_ca, topic_arn=TOPIC, signature_version="2")
    signed = signer.notification("hello", Timestamp="2024-01-31T12:00:00.000Z").tampered(**tamper)
    with pytest.raises(SignatureError) as caught:
        verify_signature(rsa_key(kit_ca), parse_message(signed.body))
    assert caught.value.reason == "bad_signature"


def test_signature_from_another_key_fails(kit_ca: TestCA) -> None:
    other = TestCA()
    signed = MessageSigner(other, topic_arn=TOPIC).notification("x")
    with pytest.raises(SignatureError):
        verify_signature(rsa_key(kit_ca), parse_message(signed.body))


def test_signature_over_raw_bytes_does_not_depend_on_json_escaping(kit_ca: TestCA) -> None:
    """The same values written with and without JSON escapes verify alike."""
    signed = MessageSigner(kit_ca, topic_arn=TOPIC).notification("caf\u00e9 / \u2603")
    escaped = json.dumps(dict(signed.fields), ensure_ascii=True).replace("/", "\\/").encode()
    assert b"\\u00e9" in escaped and b"\\/" in escaped
    verify_signature(rsa_key(kit_ca), parse_message(escaped))


# --- a lone surrogate through the whole pipeline is a 400, never a 500 ------------------------


def _surrogate_body(signer: MessageSigner) -> tuple[bytes, dict[str, str]]:
    signed = signer.notification("genuine")
    fields = dict(signed.fields)
    fields["Message"] = "x\ud800"
    return json.dumps(fields).encode(), signed.headers


def test_lone_surrogate_through_verifier_is_bad_encoding(kit_ca: TestCA) -> None:
    clock = FrozenClock()
    signer = MessageSigner(kit_ca, topic_arn=TOPIC, clock=clock)
    body, headers = _surrogate_body(signer)
    verifier = SnsVerifier(topics=[TOPIC], fetch_certificate=signer.fetch_certificate, clock=clock)
    with pytest.raises(MessageFormatError) as caught:
        verifier.verify(body, {name.lower(): value for name, value in headers.items()})
    assert (caught.value.status, caught.value.reason) == (400, "bad_encoding")


def test_lone_surrogate_through_middleware_is_400(kit_ca: TestCA) -> None:
    clock = FrozenClock()
    signer = MessageSigner(kit_ca, topic_arn=TOPIC, clock=clock)
    echo = EchoApp()
    app = webtest.TestApp(
        SnsMiddleware(
            echo,
            paths=[PATH],
            topics=[TOPIC],
            fetch_certificate=signer.fetch_certificate,
            clock=clock,
            confirm=RecordingConfirmer(),
        ),
        lint=True,
    )
    body, headers = _surrogate_body(signer)
    response = app.post(PATH, body, headers=headers, expect_errors=True)
    assert response.status_int == 400
    assert response.headers["X-SNS-Reason"] == "bad_encoding"
    assert echo.calls == []
    # And a genuine message still goes through afterwards.
    assert post_sns(app, PATH, signer.notification("ok")).status_int == 200
