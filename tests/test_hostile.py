"""The hostile corpus, end to end: one row per attack, through SnsMiddleware and WebTest.

Every row is one request an attacker (or a broken proxy) could send. Each asserts the exact
status and reason code, that the wrapped app was not called, that no subscription was
confirmed, and whether the request made us download a certificate: rows refused by the
envelope and policy checks must not touch the network at all (the URL tables of
``test_policy`` are reused here, not copied, so a new hostile URL there is also tried end to
end). Rows named ``replay-*`` first deliver a genuine message, then replay it.

After the table come the findings of the security review, each written as a failing test
before its fix: hostile text from a publisher of an allowed topic (catastrophic regex
backtracking, amounts beyond decimal precision), terminal escapes echoed by ``snsmiddleware
verify``, and emulator bases with impossible addresses.
"""

from __future__ import annotations

import base64
import functools
import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import webtest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from snsmiddleware import ConfigurationError, MemoryDedupeStore, SnsMiddleware
from snsmiddleware.testing import FrozenClock, MessageSigner, SignedMessage, TestCA
from snsmiddleware.verifier import utc_now

from ._answers import assert_answer
from ._certificates import build_certificate
from ._hardening_helpers import emails_in
from ._hostile_urls import HOSTILE_CERT_URLS, HOSTILE_SUBSCRIBE_URLS, V_TOKEN, V_TOPIC_ARN
from .conftest import PATH, TOPIC, EchoApp, RecordingConfirmer

MakeMiddleware = Callable[..., SnsMiddleware]
OTHER_ACCOUNT_TOPIC = "arn:aws:sns:us-east-1:999999999999:budget-alerts"
EU_TOPIC = "arn:aws:sns:eu-west-1:123456789012:budget-alerts"
DELETE: Any = object()  # "remove this key / header"


@dataclass(frozen=True)
class Sent:
    """One HTTP request: body, headers, and WSGI environ overrides applied last."""

    body: bytes
    headers: Mapping[str, str]
    method: str = "POST"
    environ: Mapping[str, Any] = field(default_factory=dict)
    lint: bool = True


@dataclass
class Ctx:
    signer: MessageSigner
    clock: FrozenClock
    middleware: SnsMiddleware

    def send(self, sent: Sent) -> webtest.TestResponse:
        request = webtest.TestRequest.blank(PATH, method=sent.method, headers=dict(sent.headers))
        if sent.method == "POST":
            request.body = sent.body
        for key, value in sent.environ.items():
            if value is DELETE:
                request.environ.pop(key, None)
            else:
                request.environ[key] = value
        app = webtest.TestApp(self.middleware, lint=sent.lint)
        return app.do_request(request, status=None, expect_errors=True)

    def deliver(self, message: SignedMessage, status: int = 200) -> None:
        """A setup step: deliver ``message`` as SNS would and check it went through."""
        response = self.send(as_sent(message))
        assert response.status_int == status, response.text


Build = Callable[[Ctx], Sent]


def as_sent(message: SignedMessage, **header_changes: Any) -> Sent:
    headers = dict(message.headers)
    for name, value in header_changes.items():
        name = name.replace("_", "-")
        if value is DELETE:
            headers.pop(name, None)
        else:
            headers[name] = value
    return Sent(message.body, headers)


def edited(message: SignedMessage, **changes: Any) -> bytes:
    """The message's JSON with values replaced by any JSON value (``DELETE`` removes)."""
    document = json.loads(message.body)
    for key, value in changes.items():
        if value is DELETE:
            document.pop(key, None)
        else:
            document[key] = value
    return json.dumps(document).encode()


# --- row builders --------------------------------------------------------------------------


def notification(**fields: Any) -> Build:
    """A notification signed with ``fields`` (signed as given: the policy must refuse it)."""
    return lambda ctx: as_sent(ctx.signer.notification("genuine", **fields))


def tampered(**fields: Any) -> Build:
    """A genuine notification whose ``fields`` changed after signing."""
    return lambda ctx: as_sent(ctx.signer.notification("genuine").tampered(**fields))


def confirmation(**fields: Any) -> Build:
    return lambda ctx: as_sent(ctx.signer.subscription_confirmation(**fields))


def with_headers(**changes: Any) -> Build:
    return lambda ctx: as_sent(ctx.signer.notification("genuine"), **changes)


def json_edit(**changes: Any) -> Build:
    def build(ctx: Ctx) -> Sent:
        message = ctx.signer.notification("genuine")
        return Sent(edited(message, **changes), message.headers)

    return build


def body_edit(edit: Callable[[bytes], bytes]) -> Build:
    def build(ctx: Ctx) -> Sent:
        message = ctx.signer.notification("genuine")
        return Sent(edit(message.body), message.headers)

    return build


def raw(body: bytes, message_type: str = "Notification", **environ: Any) -> Build:
    headers = {"x-amz-sns-message-type": message_type, "Content-Type": "text/plain"}
    return lambda ctx: Sent(body, headers, environ=environ, lint=not environ)


def content_length(value: str | None, body_change: Callable[[bytes], bytes] = bytes) -> Build:
    """A genuine message whose Content-Length header says ``value`` (``None``: absent)."""

    def build(ctx: Ctx) -> Sent:
        message = ctx.signer.notification("genuine")
        environ = {"CONTENT_LENGTH": DELETE if value is None else value}
        return Sent(body_change(message.body), message.headers, environ=environ, lint=False)

    return build


def clock_moved(delta: timedelta) -> Build:
    """Signed now, delivered ``delta`` later (negative: earlier)."""

    def build(ctx: Ctx) -> Sent:
        message = ctx.signer.notification("genuine")
        ctx.clock.advance(delta)
        return as_sent(message)

    return build


def signed_by_another_key(ctx: Ctx) -> Sent:
    """Signed with a key that is not the certificate's, but naming our certificate URL."""
    other = MessageSigner(_other_ca(), topic_arn=TOPIC, clock=ctx.clock)
    return as_sent(other.notification("genuine", SigningCertURL=ctx.signer.certificate_url()))


def signature_of_another_message(ctx: Ctx) -> Sent:
    genuine = ctx.signer.notification("genuine")
    other = ctx.signer.notification("other")
    return as_sent(genuine.tampered(Signature=other.fields["Signature"]))


def truncated_signature(chars: int) -> Build:
    def build(ctx: Ctx) -> Sent:
        message = ctx.signer.notification("genuine")
        return as_sent(message.tampered(Signature=message.fields["Signature"][:-chars]))

    return build


def wrapped_signature(ctx: Ctx) -> Sent:
    """The genuine signature, base64 wrapped at 64 columns (strict decoding refuses it)."""
    message = ctx.signer.notification("genuine")
    signature = message.fields["Signature"]
    lines = [signature[i : i + 64] for i in range(0, len(signature), 64)]
    return as_sent(message.tampered(Signature="\n".join(lines)))


def timestamp_with_one_more_digit(ctx: Ctx) -> Sent:
    message = ctx.signer.notification("genuine")
    return as_sent(message.tampered(Timestamp=message.fields["Timestamp"].replace("Z", "1Z")))


def subscribe_url_of_another_topic(ctx: Ctx) -> Sent:
    """A confirmation of our topic carrying the (genuine) SubscribeURL of another one."""
    other = ctx.signer.subscription_confirmation(TopicArn=V_TOPIC_ARN)
    return as_sent(ctx.signer.subscription_confirmation(SubscribeURL=other.fields["SubscribeURL"]))


def attributes_in_confirmation(ctx: Ctx) -> Sent:
    message = ctx.signer.subscription_confirmation()
    return Sent(edited(message, MessageAttributes={}), message.headers)


def forged_signature(ctx: Ctx) -> Sent:
    forged = base64.b64encode(bytes(range(256))).decode()
    return as_sent(ctx.signer.notification("genuine").tampered(Signature=forged))


def relabelled_version(ctx: Ctx) -> Sent:
    message = ctx.signer.notification("genuine")  # SignatureVersion 2, SHA256
    return as_sent(message.tampered(SignatureVersion="1"))


def sha1_message(ctx: Ctx) -> Sent:
    return as_sent(replace(ctx.signer, signature_version="1").notification("genuine"))


def duplicate_key(ctx: Ctx) -> Sent:
    """The signed Message first, a different one second: two parsers, two messages."""
    message = ctx.signer.notification("genuine")
    text = message.body.decode()
    forged = text.replace('"Message": "genuine",', '"Message": "genuine", "Message": "evil",')
    assert forged != text
    return Sent(forged.encode(), message.headers)


def escaped_duplicate_key(ctx: Ctx) -> Sent:
    message = ctx.signer.notification("genuine")
    text = message.body.decode()
    forged = text.replace('"Message": "genuine",', '"Message": "genuine", "\\u004dessage": "x",')
    return Sent(forged.encode(), message.headers)


def duplicate_attribute_key(ctx: Ctx) -> Sent:
    message = ctx.signer.notification("genuine")
    attrs = '"MessageAttributes": {"a": {"Type": "String", "Value": "1", "Value": "2"}}'
    return Sent(message.body.replace(b"{", b"{" + attrs.encode() + b",", 1), message.headers)


def huge_signed(ctx: Ctx) -> Sent:
    return as_sent(ctx.signer.notification("x" * (1024 * 1024 + 1)))


def deeply_nested_attributes(ctx: Ctx) -> Sent:
    message = ctx.signer.notification("genuine")
    nested = '"MessageAttributes": ' + '{"a": ' * 100_000 + "1" + "}" * 100_000
    return Sent(message.body.replace(b"{", b"{" + nested.encode() + b",", 1), message.headers)


def many_fields(ctx: Ctx) -> Sent:
    """Within the size cap: 40,000 unknown non-string fields."""
    message = ctx.signer.notification("genuine")
    extra = ", ".join(f'"k{i}": {i}' for i in range(40_000))
    return Sent(message.body.replace(b"{", b"{" + extra.encode() + b",", 1), message.headers)


def surrogate_in_message(ctx: Ctx) -> Sent:
    return as_sent(ctx.signer.notification("genuine").tampered(Message="genuine\ud800"))


def reencoded(codec: str, text: str = "genuine café") -> Build:
    def build(ctx: Ctx) -> Sent:
        message = ctx.signer.notification(text)
        document = json.dumps(message.fields, ensure_ascii=False)
        return Sent(document.encode(codec), message.headers)

    return build


def utf8_bom(ctx: Ctx) -> Sent:
    message = ctx.signer.notification("genuine")
    return Sent(b"\xef\xbb\xbf" + message.body, message.headers)


def replay_after_commit(ctx: Ctx) -> Sent:
    message = ctx.signer.notification("genuine")
    ctx.deliver(message)
    return as_sent(message)


def replay_with_new_attributes(ctx: Ctx) -> Sent:
    """Attributes are not signed: a replay that adds some is still the same message."""
    message = ctx.signer.notification("genuine")
    ctx.deliver(message)
    attributes = {"admin": {"Type": "String", "Value": "true"}}
    return Sent(edited(message, MessageAttributes=attributes), message.headers)


def replay_stale(ctx: Ctx) -> Sent:
    message = ctx.signer.notification("genuine")
    ctx.deliver(message)
    ctx.clock.advance(timedelta(hours=2))
    return as_sent(message)


def replay_while_in_progress(ctx: Ctx) -> Sent:
    message = ctx.signer.notification("genuine")
    ctx.middleware.dedupe.claim(message.fields["MessageId"])  # another worker holds it
    return as_sent(message)


def replay_with_another_id(ctx: Ctx) -> Sent:
    message = ctx.signer.notification("genuine")
    ctx.deliver(message)
    return as_sent(message.tampered(MessageId="a0000000-0000-4000-8000-000000000000"))


def replay_of_a_forgery(ctx: Ctx) -> Sent:
    """A forgery refused once is refused again (refusals are not remembered as 'done')."""
    forged = ctx.signer.notification("genuine").tampered(Message="evil")
    ctx.deliver(forged, status=403)
    return as_sent(forged)


def subscribe_url(url: str) -> Build:
    """A SubscriptionConfirmation of the vector topic (HOSTILE_SUBSCRIBE_URLS' own)."""
    return confirmation(TopicArn=V_TOPIC_ARN, Token=V_TOKEN, SubscribeURL=url)


# --- certificates served instead of the genuine one -------------------------------------------


@functools.cache
def _other_ca() -> TestCA:
    return TestCA()


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.PEM)


def _leaf(ca: TestCA, **options: Any) -> bytes:
    return _pem(ca.issue(**options)[1])


def _custom_leaf(ca: TestCA, common_name: str, san: list[str] | None, key: Any) -> bytes:
    return _pem(
        build_certificate(
            key=key,
            issuer_key=ca.ca_key,
            issuer_name=ca.ca_certificate.subject,
            common_name=common_name,
            san=san,
        )
    )


def _rewritten(ca: TestCA, old: bytes, new: bytes, *, issuer_alt_name: bool = False) -> bytes:
    """A certificate named sns.amazonaws.com whose DER has ``old`` replaced by ``new`` once
    (its signature no longer matches, which nobody checks: the URL is the trust anchor)."""
    extra = (
        [x509.IssuerAlternativeName([x509.DNSName("issuer.example")])] if issuer_alt_name else []
    )
    certificate = build_certificate(
        key=ca.private_key,
        issuer_key=ca.ca_key,
        issuer_name=ca.ca_certificate.subject,
        extensions=extra,
    )
    der = certificate.public_bytes(Encoding.DER)
    assert der.count(old) == 1
    body = base64.encodebytes(der.replace(old, new))
    return b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n"


_SAN_OID, _IAN_OID = b"\x06\x03\x55\x1d\x11", b"\x06\x03\x55\x1d\x12"
_DNS_NAME = b"\x82\x11sns.amazonaws.com"


def _private_key_and_certificate(ca: TestCA) -> bytes:
    key = ca.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return key + ca.certificate_pem


#: name -> (TestCA -> the bytes the certificate URL serves instead of the real certificate).
SERVED: dict[str, Callable[[TestCA], bytes]] = {
    "two-certificates": lambda ca: ca.certificate_pem + ca.certificate_pem,
    "certificate-and-ca": lambda ca: ca.certificate_pem + _pem(ca.ca_certificate),
    "private-key-first": _private_key_and_certificate,
    "der": lambda ca: ca.certificate.public_bytes(Encoding.DER),
    "empty": lambda ca: b"",
    "html": lambda ca: b"<html><body>AccessDenied</body></html>",
    "trailing-junk": lambda ca: ca.certificate_pem + b"junk",
    "truncated": lambda ca: ca.certificate_pem[:400] + b"-----END CERTIFICATE-----\n",
    "garbage-inside": lambda ca: ca.certificate_pem.replace(b"M", b"!", 3),
    "expired": lambda ca: _leaf(
        ca, not_before=utc_now() - timedelta(days=30), not_after=utc_now() - timedelta(days=1)
    ),
    "not-yet-valid": lambda ca: _leaf(
        ca, not_before=utc_now() + timedelta(days=1), not_after=utc_now() + timedelta(days=30)
    ),
    "other-name": lambda ca: _leaf(ca, common_name="sns.evil.example"),
    "lookalike-name": lambda ca: _leaf(ca, common_name="sns.amazonaws.com.evil.example"),
    "wildcard-name": lambda ca: _leaf(ca, common_name="*.amazonaws.com"),
    "s3-name": lambda ca: _leaf(ca, common_name="s3.amazonaws.com"),
    "other-region-name": lambda ca: _leaf(ca, common_name="sns.eu-west-1.amazonaws.com"),
    "right-cn-wrong-san": lambda ca: _custom_leaf(
        ca, "sns.amazonaws.com", ["evil.example"], ca.private_key
    ),
    "ca-certificate": lambda ca: _pem(ca.ca_certificate),
    "rsa-1024": lambda ca: _leaf(ca, key_size=1024),
    "ec-key": lambda ca: _custom_leaf(
        ca, "sns.amazonaws.com", ["sns.amazonaws.com"], ec.generate_private_key(ec.SECP256R1())
    ),
    "another-sns-key": lambda ca: _leaf(ca),
    # Two SubjectAlternativeName extensions (the IssuerAlternativeName's OID rewritten).
    "duplicate-extension": lambda ca: _rewritten(ca, _IAN_OID, _SAN_OID, issuer_alt_name=True),
    # The SAN's DNS name retagged as an x400Address, a GeneralName the parser cannot read.
    "x400-address-name": lambda ca: _rewritten(ca, _DNS_NAME, b"\xa3" + _DNS_NAME[1:]),
}


@functools.cache
def served_bytes(ca: TestCA, name: str) -> bytes:
    return SERVED[name](ca)


def certificate_served(name: str) -> dict[str, Any]:
    """Options for a row whose certificate URL serves ``SERVED[name]`` instead."""
    return {"serve": name}


# --- the table -----------------------------------------------------------------------------


def attack(
    id: str,
    build: Build,
    status: int,
    reason: str,
    *,
    network: bool = False,
    options: dict[str, Any] | None = None,
) -> Any:
    """One row. ``network``: this request downloads a certificate (False: it is refused
    before any network I/O, or, for a replay, verified with the cached certificate)."""
    return pytest.param(build, status, reason, network, options or {}, id=id)


_CERT_URL_ROWS = [
    attack(f"cert-url-{p.id}", notification(SigningCertURL=p.values[0]), 403, "bad_cert_url")
    for p in HOSTILE_CERT_URLS
]
_SUBSCRIBE_URL_ROWS = [
    # A control character (a trailing newline, a NUL) is refused while parsing already.
    attack(f"subscribe-url-{p.id}", subscribe_url(url), 400, "bad_field")
    if any(ord(char) < 0x20 for char in url)
    else attack(f"subscribe-url-{p.id}", subscribe_url(url), 403, "bad_subscribe_url")
    for p in HOSTILE_SUBSCRIBE_URLS
    for url in [str(p.values[0])]
]
_CERTIFICATE_ROWS = [
    attack(
        f"certificate-{name}",
        notification(),
        503 if reason == "certificate_not_yet_valid" else 403,
        reason,
        network=True,
        options=certificate_served(name),
    )
    for name, reason in [
        ("two-certificates", "bad_certificate"),
        ("certificate-and-ca", "bad_certificate"),
        ("private-key-first", "bad_certificate"),
        ("der", "bad_certificate"),
        ("empty", "bad_certificate"),
        ("html", "bad_certificate"),
        ("trailing-junk", "bad_certificate"),
        ("truncated", "bad_certificate"),
        ("garbage-inside", "bad_certificate"),
        ("expired", "certificate_expired"),
        ("not-yet-valid", "certificate_not_yet_valid"),
        ("other-name", "certificate_name_mismatch"),
        ("lookalike-name", "certificate_name_mismatch"),
        ("wildcard-name", "certificate_name_mismatch"),
        ("s3-name", "certificate_name_mismatch"),
        ("other-region-name", "certificate_name_mismatch"),
        ("right-cn-wrong-san", "certificate_name_mismatch"),
        ("ca-certificate", "certificate_name_mismatch"),
        ("rsa-1024", "bad_certificate"),
        ("ec-key", "bad_certificate"),
        ("another-sns-key", "bad_signature"),
        ("duplicate-extension", "bad_certificate"),
        ("x400-address-name", "bad_certificate"),
    ]
]

ATTACKS = [
    # Signatures.
    attack("signature-forged", forged_signature, 403, "bad_signature", network=True),
    attack("signature-truncated-4", truncated_signature(4), 403, "bad_signature", network=True),
    attack("signature-truncated-1", truncated_signature(1), 403, "bad_signature", network=True),
    attack("signature-empty", tampered(Signature=""), 403, "bad_signature", network=True),
    attack(
        "signature-with-newlines",
        wrapped_signature,
        403,
        "bad_signature",
        network=True,
    ),
    attack(
        "signature-of-another-message",
        signature_of_another_message,
        403,
        "bad_signature",
        network=True,
    ),
    attack("signature-by-another-key", signed_by_another_key, 403, "bad_signature", network=True),
    attack("signature-missing", tampered(Signature=None), 400, "missing_field"),
    attack("altered-message", tampered(Message="evil"), 403, "bad_signature", network=True),
    attack("altered-subject", tampered(Subject="evil"), 403, "bad_signature", network=True),
    attack(
        "altered-timestamp",
        timestamp_with_one_more_digit,
        403,
        "bad_signature",
        network=True,
    ),
    # SignatureVersion.
    attack("version-3", tampered(SignatureVersion="3"), 403, "signature_version_not_allowed"),
    attack("version-empty", tampered(SignatureVersion=""), 403, "signature_version_not_allowed"),
    attack("version-space", tampered(SignatureVersion="2 "), 403, "signature_version_not_allowed"),
    attack("version-missing", tampered(SignatureVersion=None), 400, "missing_field"),
    attack("version-relabelled-2-as-1", relabelled_version, 403, "bad_signature", network=True),
    attack(
        "version-1-when-v2-required",
        sha1_message,
        403,
        "signature_version_not_allowed",
        options={"require_signature_v2": True},
    ),
    # SigningCertURL: every row of test_policy's table, end to end.
    *_CERT_URL_ROWS,
    attack(
        "cert-url-region-of-another-allowed-topic",
        notification(
            SigningCertURL="https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-ab.pem"
        ),
        403,
        "bad_cert_url",
    ),
    attack(
        "cert-url-unknown-certificate",
        notification(
            SigningCertURL="https://sns.us-east-1.amazonaws.com/SimpleNotificationService-ab.pem"
        ),
        403,
        "certificate_not_found",
        network=True,
    ),
    # What the certificate URL serves.
    *_CERTIFICATE_ROWS,
    # SubscribeURL: every row of test_policy's table; the confirmer is never called.
    *_SUBSCRIBE_URL_ROWS,
    attack(
        "subscribe-url-metadata-service",
        confirmation(
            SubscribeURL="http://169.254.169.254/latest/meta-data/?Action=ConfirmSubscription"
        ),
        403,
        "bad_subscribe_url",
    ),
    attack(
        "subscribe-url-of-another-allowed-topic",
        subscribe_url_of_another_topic,
        403,
        "bad_subscribe_url",
    ),
    # Topics.
    attack(
        "topic-other-account", notification(TopicArn=OTHER_ACCOUNT_TOPIC), 403, "topic_not_allowed"
    ),
    attack(
        "topic-other-region",
        notification(TopicArn=TOPIC.replace("us-east-1", "us-west-2")),
        403,
        "topic_not_allowed",
    ),
    attack("topic-longer-name", notification(TopicArn=TOPIC + "-2"), 403, "topic_not_allowed"),
    attack("topic-other-case", tampered(TopicArn=TOPIC.upper()), 403, "topic_not_allowed"),
    attack("topic-glob", tampered(TopicArn=TOPIC[:-6] + "*"), 403, "topic_not_allowed"),
    attack("topic-not-an-arn", tampered(TopicArn="budget-alerts"), 403, "topic_not_allowed"),
    attack(
        "topic-confirmation-from-another-account",
        confirmation(TopicArn=OTHER_ACCOUNT_TOPIC),
        403,
        "topic_not_allowed",
    ),
    attack("topic-not-a-string", json_edit(TopicArn=["arn"]), 400, "bad_field"),
    attack(
        "topic-huge-partition-under-a-partition-pattern",
        tampered(TopicArn="arn:aws-" + "x" * 500_000 + ":sns:us-east-1:123456789012:t"),
        403,
        "bad_topic_arn",
        options={"topics": ["arn:*:sns:*:123456789012:*"]},
    ),
    # Timestamps.
    attack("timestamp-stale", clock_moved(timedelta(hours=1, minutes=6)), 403, "stale_message"),
    # Ahead of our clock: maybe our clock is slow, so SNS is asked to retry (no download).
    attack("timestamp-future", clock_moved(-timedelta(minutes=6)), 503, "future_message"),
    attack(
        "timestamp-years-old",
        notification(Timestamp="2012-01-01T00:00:00.000Z"),
        403,
        "stale_message",
    ),
    attack(
        "timestamp-year-9999",
        notification(Timestamp="9999-12-31T23:59:59.999Z"),
        503,
        "future_message",
    ),
    attack(
        "timestamp-with-offset",
        notification(Timestamp="2024-01-31T12:00:00.000+00:00"),
        400,
        "bad_timestamp",
    ),
    attack(
        "timestamp-impossible",
        notification(Timestamp="2024-02-30T12:00:00.000Z"),
        400,
        "bad_timestamp",
    ),
    attack("timestamp-epoch-number", json_edit(Timestamp=1706702400), 400, "bad_field"),
    # Replays.
    attack("replay-after-commit", replay_after_commit, 200, "duplicate"),
    attack("replay-with-new-attributes", replay_with_new_attributes, 200, "duplicate"),
    attack("replay-stale", replay_stale, 403, "stale_message"),
    attack(
        "replay-while-in-progress",
        replay_while_in_progress,
        503,
        "in_progress",
        network=True,
        options={"dedupe": MemoryDedupeStore},
    ),
    attack("replay-with-another-id", replay_with_another_id, 403, "bad_signature"),
    attack("replay-of-a-forgery", replay_of_a_forgery, 403, "bad_signature"),
    # JSON shape.
    attack("json-duplicate-key", duplicate_key, 400, "duplicate_key"),
    attack("json-duplicate-key-escaped", escaped_duplicate_key, 400, "duplicate_key"),
    attack("json-duplicate-key-in-attributes", duplicate_attribute_key, 400, "duplicate_key"),
    attack("json-array", raw(b"[]"), 400, "invalid_json"),
    attack("json-two-documents", body_edit(lambda body: body + body), 400, "invalid_json"),
    attack("json-trailing-garbage", body_edit(lambda body: body + b"x"), 400, "invalid_json"),
    attack("json-nan", body_edit(lambda b: b.replace(b'"2"', b"NaN", 1)), 400, "invalid_json"),
    attack("json-single-quotes", raw(b"{'Type': 'Notification'}"), 400, "invalid_json"),
    attack("json-empty", raw(b""), 400, "invalid_json"),
    attack(
        "json-raw-control-character",
        body_edit(lambda b: b.replace(b"genuine", b"gen\x00uine")),
        400,
        "invalid_json",
    ),
    # Non-string fields.
    attack("field-message-id-number", json_edit(MessageId=7), 400, "bad_field"),
    attack("field-message-object", json_edit(Message={"Budget": "x"}), 400, "bad_field"),
    attack("field-subject-null", json_edit(Subject=None), 400, "bad_field"),
    attack("field-signature-list", json_edit(Signature=["AAAA"]), 400, "bad_field"),
    attack("field-version-number", json_edit(SignatureVersion=2), 400, "bad_field"),
    attack("field-type-true", json_edit(Type=True), 400, "bad_field"),
    attack("field-unknown-number", json_edit(Extra=1), 400, "bad_field"),
    # Details name the field, but never echo half a megabyte of it into the answer and log.
    attack("field-huge-key", json_edit(**{"K" * 500_000: 1}), 400, "bad_field"),
    attack("field-huge-key-escapes", json_edit(**{"\n\x1b" * 100_000: 1}), 400, "bad_field"),
    attack("field-attributes-string", json_edit(MessageAttributes="a"), 400, "bad_field"),
    attack(
        "field-attribute-value-number",
        json_edit(MessageAttributes={"a": {"Type": "Number", "Value": 1}}),
        400,
        "bad_field",
    ),
    attack("field-message-id-separator", notification(MessageId="a\nb"), 400, "bad_field"),
    attack("field-message-id-too-long", notification(MessageId="a" * 129), 400, "bad_field"),
    attack("field-unknown-type", notification(Type="Notice"), 400, "unknown_type"),
    attack("field-confirmation-without-token", confirmation(Token=None), 400, "missing_field"),
    attack(
        "field-attributes-in-confirmation",
        attributes_in_confirmation,
        400,
        "bad_field",
    ),
    # Huge and deeply nested bodies.
    attack("huge-signed-body", huge_signed, 413, "body_too_large"),
    attack("huge-content-length", content_length("1" + "0" * 12), 413, "body_too_large"),
    attack(
        "huge-chunked-body",
        raw(
            b"{" + b" " * (1024 * 1024 + 1) + b"}",
            CONTENT_LENGTH=DELETE,
            **{"wsgi.input_terminated": True},
        ),
        413,
        "body_too_large",
    ),
    attack("deeply-nested-arrays", raw(b"[" * 500_000), 400, "invalid_json"),
    attack("deeply-nested-objects", raw(b'{"a":' * 200_000), 400, "invalid_json"),
    attack("deeply-nested-attributes", deeply_nested_attributes, 400, "invalid_json"),
    attack("many-fields", many_fields, 400, "bad_field"),
    # Headers.
    # (Absent x-amz-sns-* headers are accepted since issue 11: SNS does not sign them.)
    attack(
        "header-type-mismatch",
        with_headers(x_amz_sns_message_type="SubscriptionConfirmation"),
        400,
        "header_mismatch",
    ),
    attack(
        "header-type-lower-case",
        with_headers(x_amz_sns_message_type="notification"),
        400,
        "header_mismatch",
    ),
    attack(
        "header-type-repeated",
        with_headers(x_amz_sns_message_type="Notification, Notification"),
        400,
        "header_mismatch",
    ),
    attack(
        "header-id-mismatch", with_headers(x_amz_sns_message_id="other"), 400, "header_mismatch"
    ),
    attack(
        "header-topic-of-another-topic",
        with_headers(x_amz_sns_topic_arn=V_TOPIC_ARN),
        400,
        "header_mismatch",
    ),
    attack("method-get", lambda ctx: Sent(b"", {}, method="GET"), 405, "method_not_allowed"),
    attack("method-put", lambda ctx: Sent(b"", {}, method="PUT"), 405, "method_not_allowed"),
    # Raw delivery.
    attack(
        "raw-delivery-bare-payload",
        lambda ctx: Sent(b"budget exceeded", {"x-amz-sns-rawdelivery": "true"}),
        400,
        "raw_delivery",
    ),
    attack(
        "raw-delivery-envelope", with_headers(x_amz_sns_rawdelivery="TRUE"), 400, "raw_delivery"
    ),
    # Encodings.
    attack("encoding-latin-1", reencoded("latin-1"), 400, "bad_encoding"),
    attack("encoding-utf-16", reencoded("utf-16"), 400, "bad_encoding"),
    attack("encoding-utf-16-le-no-bom", reencoded("utf-16-le", "genuine"), 400, "invalid_json"),
    attack("encoding-utf-32", reencoded("utf-32"), 400, "bad_encoding"),
    attack("encoding-utf-8-bom", utf8_bom, 400, "invalid_json"),
    attack(
        "encoding-overlong",
        body_edit(lambda b: b.replace(b"genuine", b"\xc0\xae")),
        400,
        "bad_encoding",
    ),
    attack(
        "encoding-surrogate-bytes",
        body_edit(lambda b: b.replace(b"genuine", b"\xed\xa0\x80")),
        400,
        "bad_encoding",
    ),
    # Refused while parsing, before the certificate download.
    attack("encoding-escaped-lone-surrogate", surrogate_in_message, 400, "bad_encoding"),
    # Content-Length lies.
    attack("content-length-longer", content_length("5000"), 400, "body_incomplete"),
    attack(
        "content-length-shorter",
        content_length("200", lambda body: body + b" " * 50),
        400,
        "invalid_json",
    ),
    attack("content-length-zero", content_length("0"), 400, "invalid_json"),
    attack("content-length-absent", content_length(None), 411, "length_required"),
    attack("content-length-negative", content_length("-1"), 400, "bad_content_length"),
    attack("content-length-plus", content_length("+100"), 400, "bad_content_length"),
    attack("content-length-space", content_length(" 100"), 400, "bad_content_length"),
    attack("content-length-hex", content_length("0x100"), 400, "bad_content_length"),
    attack("content-length-float", content_length("1e3"), 400, "bad_content_length"),
    attack("content-length-arabic-digits", content_length("١٢٣"), 400, "bad_content_length"),
    attack("content-length-19-digits", content_length("1" * 19), 400, "bad_content_length"),
    attack("content-length-two-values", content_length("100, 100"), 400, "bad_content_length"),
]


@pytest.mark.parametrize(("build", "status", "reason", "network", "options"), ATTACKS)
def test_attack_is_refused_before_the_app(
    make_middleware: MakeMiddleware,
    signer: MessageSigner,
    clock: FrozenClock,
    echo_app: EchoApp,
    confirmer: RecordingConfirmer,
    test_ca: TestCA,
    caplog: pytest.LogCaptureFixture,
    build: Build,
    status: int,
    reason: str,
    network: bool,
    options: dict[str, Any],
) -> None:
    settings: dict[str, Any] = {"topics": [TOPIC, V_TOPIC_ARN, EU_TOPIC]}
    settings.update(options)
    if "serve" in settings:
        served = served_bytes(test_ca, settings.pop("serve"))

        def fetch(url: str) -> bytes:
            signer.fetched.append(url)
            return served

        settings["fetch_certificate"] = fetch
    if isinstance(settings.get("dedupe"), type):
        settings["dedupe"] = settings["dedupe"]()
    ctx = Ctx(signer, clock, make_middleware(**settings))

    sent = build(ctx)
    calls_before, fetched_before = len(echo_app.calls), len(signer.fetched)
    response = ctx.send(sent)

    assert_answer(response, status, reason)
    assert len(response.body) < 1024, "the answer echoes the request"
    assert all(len(record.getMessage()) < 2048 for record in caplog.records), "log flooding"
    assert len(echo_app.calls) == calls_before, "the wrapped app was called"
    assert confirmer.confirmed == [], "a subscription was confirmed"
    assert (len(signer.fetched) > fetched_before) is network, signer.fetched[fetched_before:]


def test_table_covers_every_hostile_url_of_the_policy_tables() -> None:
    ids = {p.id for p in ATTACKS}
    assert len(ids) == len(ATTACKS), "duplicate row ids"
    assert {f"cert-url-{p.id}" for p in HOSTILE_CERT_URLS} <= ids
    assert {f"subscribe-url-{p.id}" for p in HOSTILE_SUBSCRIBE_URLS} <= ids
    assert {f"certificate-{name}" for name in SERVED} <= ids


def test_a_refused_forgery_does_not_block_the_genuine_message(
    make_middleware: MakeMiddleware, signer: MessageSigner, clock: FrozenClock, echo_app: EchoApp
) -> None:
    """Claims happen only after verification: a forger who learns a MessageId first cannot
    get the genuine message answered as a duplicate."""
    ctx = Ctx(signer, clock, make_middleware())
    genuine = signer.notification("genuine")
    ctx.deliver(genuine.tampered(Message="evil"), status=403)
    ctx.deliver(genuine)
    assert [call["body"] for call in echo_app.calls] == [genuine.body]


# --- findings of the security review: alert text from a publisher of an allowed topic -------
#
# A verified message is not a trusted one: anyone allowed to publish to the topic writes its
# text (README, "Budget alerts"). BudgetApp must answer such text quickly and definitively.

#: SNS's own cap on a message (256 KiB); the body cap (1 MiB) allows more after escaping.
_SNS_MAX_MESSAGE = 256 * 1024
_HEADER_LINE = "AWS Budget Notification January 01, 2024\n"

#: Texts that would make a backtracking regular expression of the alert parser quadratic.
PATHOLOGICAL_ALERT_TEXTS = [
    pytest.param(_HEADER_LINE + "AWS Account" + "\t" * _SNS_MAX_MESSAGE + "x", id="account-tabs"),
    pytest.param(
        _HEADER_LINE + "AWS Account" + " " * (_SNS_MAX_MESSAGE // 2) + ":" + " " * 9 + "x",
        id="account-spaces-colon",
    ),
    pytest.param(_HEADER_LINE + "Budget Name" + " " * _SNS_MAX_MESSAGE + "x", id="label"),
    pytest.param(_HEADER_LINE + "[1]" + " " * _SNS_MAX_MESSAGE + "x", id="dashboard"),
    pytest.param(_HEADER_LINE + "Budgeted Amount: $" + " " * _SNS_MAX_MESSAGE, id="money"),
    pytest.param(
        _HEADER_LINE + "associated with your " * (_SNS_MAX_MESSAGE // 21), id="sentence-name"
    ),
    pytest.param(
        "AWS Budget Notification" + " " * (_SNS_MAX_MESSAGE // 2) + "May" + " " * 9, id="date"
    ),
]

_PARSE_AND_COMPOSE = """
import sys
from email.headerregistry import Address
from snsmiddleware.alert_email import build_alert_email
from snsmiddleware.budgets import parse_budget_alert
from snsmiddleware.message import parse_message
from snsmiddleware.testing import MessageSigner

text = sys.stdin.read()
message = parse_message(MessageSigner().notification(text).body)
alert = parse_budget_alert(message)
email = build_alert_email(
    alert, message, sender=Address(addr_spec="a@example.com"),
    recipients=[Address(addr_spec="b@example.com")],
)
print(len(email.as_bytes()) > len(text))
"""


@pytest.mark.parametrize("text", PATHOLOGICAL_ALERT_TEXTS)
def test_alert_parser_has_no_catastrophic_backtracking(text: str) -> None:
    """Parsing and composing take milliseconds here; a quadratic pattern takes minutes (the
    bound is a watchdog two orders of magnitude above the real time, not a benchmark). Run
    in a child process so that a regression fails instead of hanging the suite."""
    result = subprocess.run(
        [sys.executable, "-c", _PARSE_AND_COMPOSE],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "True"), result.stderr[-2000:]


@pytest.mark.parametrize(
    ("budgeted", "threshold"),
    [
        pytest.param("$" + "9" * 30, "> $90.00", id="30-digit-budget"),
        pytest.param("$" + "9" * 30, "> 90%", id="30-digit-budget-percent-threshold"),
        pytest.param("$0.0000000001", "> $" + "9" * 30, id="tiny-budget-huge-threshold"),
        pytest.param("$1,000,000,000,000,000,000,000,000,000,000", "> $1.00", id="grouped"),
    ],
)
def test_absurd_amounts_are_emailed_not_a_500(
    make_middleware: MakeMiddleware,
    signer: MessageSigner,
    tmp_path: Path,
    budgeted: str,
    threshold: str,
) -> None:
    """Amounts beyond decimal's 28-digit precision once raised InvalidOperation in the app:
    a 500 that SNS retries for an hour and no email at all."""
    from snsmiddleware.budget_app import BudgetApp
    from snsmiddleware.devmode import sample_budget_alert
    from snsmiddleware.mail import FileOutbox

    subject, text = sample_budget_alert()
    text = text.replace("Budgeted Amount: $100.00", f"Budgeted Amount: {budgeted}")
    text = text.replace("Alert Threshold: > $90.00", f"Alert Threshold: {threshold}")
    outbox = FileOutbox(tmp_path / "outbox", fsync=False)
    app = BudgetApp(recipients={"*": "ana@example.com"}, mailer=outbox)
    testapp = webtest.TestApp(make_middleware(app=app), lint=True)
    response = testapp.post(
        PATH,
        (m := signer.notification(text, Subject=subject)).body,
        headers=m.headers,
        expect_errors=True,
    )
    assert_answer(response, 200, "sent")
    [email] = emails_in(outbox.directory)
    assert budgeted.lstrip("$").split(",")[0] in email.get_body(("plain",)).get_content()


def test_verify_command_does_not_echo_terminal_escapes(
    signer: MessageSigner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``snsmiddleware verify`` prints fields of a captured message that nothing has
    validated yet: control characters in them must not reach the operator's terminal."""
    from snsmiddleware.cli import main

    hostile = "\x1b]0;owned\x07\x1b[2J\r"
    captured = tmp_path / "captured.json"
    message = signer.notification("x").tampered(
        TopicArn=f"arn:aws:sns:us-east-1:123456789012:x{hostile}", SignatureVersion=hostile
    )
    captured.write_bytes(message.body)
    assert main(["verify", str(captured), "--topic", TOPIC]) == 1
    out = capsys.readouterr().out
    assert "topic_not_allowed" in out
    assert not any(char in out for char in "\x1b\x07\r"), out


@pytest.mark.parametrize(
    "base",
    ["http://[:41:]:4566", "http://[::1::]", "http://[12345::1]", "http://127.0.0.1:99999"],
)
def test_emulator_base_with_an_impossible_address_fails_at_startup(
    make_middleware: MakeMiddleware, base: str
) -> None:
    """Found by fuzz/fuzz_urls.py: a bracketed host of hex digits and colons that is no IPv6
    address (or a port above 65535) was accepted, so the mistake surfaced as 503s per
    request instead of at start."""
    with pytest.raises(ConfigurationError):
        make_middleware(emulator=base)
