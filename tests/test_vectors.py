"""Real AWS-signed SNS messages (tests/vectors/, provenance in its README) verify, and stop
verifying the moment any signed field changes.

These are the only messages in the suite that AWS itself signed: they pin the string to sign,
both hash algorithms and the certificate handling to what SNS really does, where the testing
kit could only agree with itself. The certificates expired long ago, so every check runs with
a clock frozen at the message's own Timestamp; at the real current time they must fail, with
the exact reason the pipeline gives (freshness is checked before any download).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import webtest

from snsmiddleware import Notification, SnsMiddleware, SnsVerifier, SubscriptionConfirmation
from snsmiddleware.errors import CertificateError, MessageFormatError, PolicyError, SignatureError
from snsmiddleware.message import parse_message, parse_timestamp
from snsmiddleware.signing import signed_keys
from snsmiddleware.testing import format_timestamp

from ._answers import reason
from ._vector_helpers import (
    SUBSCRIPTION_VECTOR,
    VECTOR_NAMES,
    VectorCertificates,
    lower_headers,
    sns_headers,
    to_body,
    vector_body,
    vector_clock,
    vector_fields,
)
from .conftest import EchoApp, RecordingConfirmer

PATH = "/sns/vectors"
V2_VECTORS = tuple(name for name in VECTOR_NAMES if vector_fields(name)["SignatureVersion"] == "2")
V1_VECTORS = tuple(name for name in VECTOR_NAMES if name not in V2_VECTORS)
SUBJECT_VECTORS = tuple(name for name in VECTOR_NAMES if "Subject" in vector_fields(name))
NOSUBJECT_NOTIFICATIONS = tuple(
    name
    for name in VECTOR_NAMES
    if "Subject" not in vector_fields(name) and vector_fields(name)["Type"] == "Notification"
)


def make_verifier(name: str, certs: VectorCertificates, **options: Any) -> SnsVerifier:
    options.setdefault("topics", [vector_fields(name)["TopicArn"]])
    options.setdefault("clock", vector_clock(name))
    return SnsVerifier(fetch_certificate=certs, **options)


def make_app(name: str, certs: VectorCertificates, **options: Any) -> webtest.TestApp:
    options.setdefault("topics", [vector_fields(name)["TopicArn"]])
    options.setdefault("clock", vector_clock(name))
    options.setdefault("confirm", RecordingConfirmer())
    app = options.pop("app", EchoApp())
    return webtest.TestApp(
        SnsMiddleware(app, paths=[PATH], fetch_certificate=certs, **options), lint=True
    )


def post(app: webtest.TestApp, body: bytes) -> webtest.TestResponse:
    return app.post(PATH, body, headers=sns_headers(body), expect_errors=True)


# --- genuine messages verify ------------------------------------------------------------------


def test_every_vector_is_present_and_typed() -> None:
    """The table in tests/vectors/README.md: both versions, all shapes we rely on below."""
    assert set(V2_VECTORS) and set(V1_VECTORS) and set(SUBJECT_VECTORS)
    assert set(NOSUBJECT_NOTIFICATIONS)
    assert vector_fields(SUBSCRIPTION_VECTOR)["Type"] == "SubscriptionConfirmation"


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_vector_verifies_with_its_certificate_and_frozen_clock(name: str) -> None:
    certs = VectorCertificates()
    body = vector_body(name)
    message = make_verifier(name, certs).verify(body, lower_headers(body))
    fields = vector_fields(name)
    assert message.message_id == fields["MessageId"]
    assert message.signature_version == fields["SignatureVersion"]
    assert dict(message.fields) == {k: v for k, v in fields.items() if k != "MessageAttributes"}
    # Exactly one download, of the URL the message names (the policy rebuilt it identically).
    assert certs.fetched == [fields["SigningCertURL"]]


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_vector_verifies_without_headers_and_after_reserialising(name: str) -> None:
    """The signature covers field values, not the JSON bytes: compact re-serialisation and
    another key order still verify (and SnsVerifier works without headers, e.g. in Lambda)."""
    fields = vector_fields(name)
    reordered = dict(reversed(list(fields.items())))
    body = json.dumps(reordered, separators=(",", ":"), ensure_ascii=True).encode()
    message = make_verifier(name, VectorCertificates()).verify(body)
    assert message.topic_arn == fields["TopicArn"]


@pytest.mark.parametrize("name", VECTOR_NAMES)
@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param(str.title, id="title-case"),
        pytest.param(str.upper, id="upper-case"),
        pytest.param(lambda name: name, id="as-sns-sends"),
    ],
)
def test_vector_verifies_with_headers_in_any_case(
    name: str, spelling: Callable[[str], str]
) -> None:
    """Django's request.headers, Lambda events and logs spell header names in Title-Case."""
    body = vector_body(name)
    headers = {spelling(key): value for key, value in sns_headers(body).items()}
    message = make_verifier(name, VectorCertificates()).verify(body, headers)
    assert message.message_id == vector_fields(name)["MessageId"]
    with pytest.raises(MessageFormatError) as caught:
        lying = {**headers, spelling("x-amz-sns-message-id"): "someone-else"}
        make_verifier(name, VectorCertificates()).verify(body, lying)
    assert caught.value.reason == "header_mismatch"


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_vector_verifies_with_only_the_type_header(name: str) -> None:
    """What most users' own tests and some proxies send: every x-amz-sns-* header but one
    dropped. None of them is signed, so none is required."""
    body = vector_body(name)
    headers = {"X-Amz-Sns-Message-Type": vector_fields(name)["Type"]}
    assert (
        make_verifier(name, VectorCertificates()).verify(body, headers).type
        == headers["X-Amz-Sns-Message-Type"]
    )


def test_vector_with_message_attributes_exposes_them() -> None:
    name = "08-notification-v1-2015-subject-messageattributes.json"
    body = vector_body(name)
    message = make_verifier(name, VectorCertificates()).verify(body, lower_headers(body))
    assert isinstance(message, Notification)
    assert message.subject == "this is raw"
    assert {key: (a.type, a.value) for key, a in message.message_attributes.items()} == {
        "AWS.SNS.MOBILE.MPNS.Type": ("String", "token"),
        "AWS.SNS.MOBILE.MPNS.NotificationClass": ("String", "realtime"),
        "AWS.SNS.MOBILE.WNS.Type": ("String", "wns/badge"),
    }


@pytest.mark.parametrize("name", [n for n in VECTOR_NAMES if n != SUBSCRIPTION_VECTOR])
def test_vector_notification_reaches_app_through_middleware(name: str) -> None:
    certs = VectorCertificates()
    echo = EchoApp()
    confirmer = RecordingConfirmer()
    app = make_app(name, certs, app=echo, confirm=confirmer)
    body = vector_body(name)
    response = post(app, body)
    assert response.status_int == 200
    assert response.text == f"app saw {PATH}"
    [call] = echo.calls
    assert call["body"] == body
    seen = call["environ"]["snsmiddleware.message"]
    assert isinstance(seen, Notification)
    assert seen.message == vector_fields(name)["Message"]
    assert seen.subject == vector_fields(name).get("Subject")
    assert confirmer.confirmed == []
    # A redelivery of the same genuine message is answered without the app.
    again = post(app, body)
    assert (again.status_int, reason(again)) == (200, "duplicate")
    assert len(echo.calls) == 1 and len(certs.fetched) == 1


def test_vector_subscription_confirmation_is_confirmed_through_middleware() -> None:
    echo = EchoApp()
    confirmer = RecordingConfirmer()
    app = make_app(SUBSCRIPTION_VECTOR, VectorCertificates(), app=echo, confirm=confirmer)
    response = post(app, vector_body(SUBSCRIPTION_VECTOR))
    assert (response.status_int, reason(response)) == (200, "subscription_confirmed")
    [confirmed] = confirmer.confirmed
    assert isinstance(confirmed, SubscriptionConfirmation)
    assert confirmed.token == vector_fields(SUBSCRIPTION_VECTOR)["Token"]
    assert echo.calls == []


# --- any change to a signed field breaks the signature ----------------------------------------


def _retopic(fields: dict[str, Any]) -> None:
    old = fields["TopicArn"]
    fields["TopicArn"] = old + "-x"  # same partition and region: the policy still passes
    if "SubscribeURL" in fields:
        fields["SubscribeURL"] = fields["SubscribeURL"].replace(
            f"TopicArn={old}&", f"TopicArn={old}-x&"
        )


def _retoken(fields: dict[str, Any]) -> None:
    old = fields["Token"]
    fields["Token"] = old[:-1] + ("0" if old[-1] != "0" else "1")
    fields["SubscribeURL"] = fields["SubscribeURL"].replace(old, fields["Token"])


def _reorder_subscribe_url(fields: dict[str, Any]) -> None:
    # The same three parameters in another order: the policy accepts it, the signature not.
    base, query = fields["SubscribeURL"].split("?", 1)
    action, topic, token = query.split("&")
    fields["SubscribeURL"] = f"{base}?{topic}&{action}&{token}"


def _retype(fields: dict[str, Any]) -> None:
    if fields["Type"] == "Notification":
        # Notification -> UnsubscribeConfirmation needs a Token and a SubscribeURL to parse.
        fields["Type"] = "UnsubscribeConfirmation"
        fields["Token"] = "0" * 64
        fields["SubscribeURL"] = fields["UnsubscribeURL"]
        fields.pop("MessageAttributes", None)  # only a Notification may carry them
    else:
        fields["Type"] = "UnsubscribeConfirmation"


def _later_timestamp(fields: dict[str, Any]) -> None:
    moment = parse_timestamp(fields["Timestamp"]) + timedelta(milliseconds=1)
    fields["Timestamp"] = format_timestamp(moment)


def _other_message_id(fields: dict[str, Any]) -> None:
    old = fields["MessageId"]
    fields["MessageId"] = old[:-1] + ("0" if old[-1] != "0" else "1")


def _append(key: str) -> Callable[[dict[str, Any]], None]:
    def change(fields: dict[str, Any]) -> None:
        fields[key] = fields[key] + "."

    return change


TAMPERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "Message": _append("Message"),
    "MessageId": _other_message_id,
    "Subject": _append("Subject"),
    "Timestamp": _later_timestamp,
    "TopicArn": _retopic,
    "Type": _retype,
    "Token": _retoken,
    "SubscribeURL": _reorder_subscribe_url,
}

SIGNED_FIELD_CASES = [
    pytest.param(name, key, id=f"{name[:2]}-{key}")
    for name in VECTOR_NAMES
    for key in signed_keys(vector_fields(name)["Type"])
    if key in vector_fields(name)
]


def test_tamper_table_covers_every_signed_key() -> None:
    keys = {key for name in VECTOR_NAMES for key in signed_keys(vector_fields(name)["Type"])}
    assert keys == set(TAMPERS)


@pytest.mark.parametrize(("name", "key"), SIGNED_FIELD_CASES)
def test_changing_any_signed_field_fails_with_bad_signature(name: str, key: str) -> None:
    original = vector_fields(name)
    fields = vector_fields(name)
    TAMPERS[key](fields)
    assert fields[key] != original[key]
    body = to_body(fields)
    verifier = make_verifier(
        name, VectorCertificates(), topics=[original["TopicArn"], fields["TopicArn"]]
    )
    # The tampered message is well formed and passes every policy check...
    parse_message(body)
    # ...so only the signature can catch it.
    with pytest.raises(SignatureError) as caught:
        verifier.verify(body, lower_headers(body))
    assert caught.value.reason == "bad_signature"
    assert caught.value.status == 403


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_changed_message_is_403_through_middleware_and_app_not_called(name: str) -> None:
    echo = EchoApp()
    confirmer = RecordingConfirmer()
    app = make_app(name, VectorCertificates(), app=echo, confirm=confirmer)
    fields = vector_fields(name)
    fields["Message"] = fields["Message"].upper()
    response = post(app, to_body(fields))
    assert (response.status_int, reason(response)) == (403, "bad_signature")
    assert echo.calls == [] and confirmer.confirmed == []


def assert_signature_refused(name: str, fields: dict[str, Any], match: str | None = None) -> None:
    """The vector ``name`` with its fields changed to ``fields`` fails verification."""
    body = to_body(fields)
    with pytest.raises(SignatureError, match=match):
        make_verifier(name, VectorCertificates()).verify(body, lower_headers(body))


@pytest.mark.parametrize(
    ("names", "key", "value"),
    [
        pytest.param(SUBJECT_VECTORS, "Subject", None, id="subject-removed"),
        pytest.param(SUBJECT_VECTORS, "Subject", "", id="subject-emptied"),
        pytest.param(NOSUBJECT_NOTIFICATIONS, "Subject", "", id="empty-subject-added"),
        # SignatureVersion is not signed, but it picks the hash: relabelling cannot pass.
        pytest.param(V1_VECTORS, "SignatureVersion", "2", id="v1-relabelled-v2"),
    ],
)
def test_a_changed_field_fails_on_every_vector(names: list[str], key: str, value: Any) -> None:
    """An empty Subject is not an absent one (the string to sign differs), and vice versa.
    ``None`` removes the key, as in ``SignedMessage.tampered``."""
    assert names, "no vector of this kind"
    for name in names:
        fields = vector_fields(name)
        if value is None:
            del fields[key]
        else:
            fields[key] = value
        assert_signature_refused(name, fields, "does not match" if value is None else None)


def test_signature_of_another_genuine_message_fails() -> None:
    donor = vector_fields("18-notification-v2-2022-nosubject-us-east-2.json")
    name = "20-notification-v2-2022-subject-us-east-2.json"
    fields = vector_fields(name)
    fields["Signature"] = donor["Signature"]
    assert_signature_refused(name, fields)


# --- at the real current time -----------------------------------------------------------------


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_vector_at_real_time_is_stale_before_any_download(name: str) -> None:
    certs = VectorCertificates()
    verifier = SnsVerifier(topics=[vector_fields(name)["TopicArn"]], fetch_certificate=certs)
    body = vector_body(name)
    with pytest.raises(PolicyError) as caught:
        verifier.verify(body, lower_headers(body))
    assert caught.value.reason == "stale_message"
    assert certs.fetched == []


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_vector_at_real_time_is_403_stale_through_middleware(name: str) -> None:
    certs = VectorCertificates()
    echo = EchoApp()
    app = webtest.TestApp(
        SnsMiddleware(
            echo,
            paths=[PATH],
            topics=[vector_fields(name)["TopicArn"]],
            fetch_certificate=certs,
            confirm=RecordingConfirmer(),
        ),
        lint=True,
    )
    response = post(app, vector_body(name))
    assert (response.status_int, reason(response)) == (403, "stale_message")
    assert certs.fetched == [] and echo.calls == []


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_vector_certificate_has_expired_when_freshness_allows_it(name: str) -> None:
    certs = VectorCertificates()
    verifier = SnsVerifier(
        topics=[vector_fields(name)["TopicArn"]],
        fetch_certificate=certs,
        max_age=timedelta(days=365 * 40),
    )
    body = vector_body(name)
    with pytest.raises(CertificateError) as caught:
        verifier.verify(body, lower_headers(body))
    assert caught.value.reason == "certificate_expired"
    assert len(certs.fetched) == 1


# --- signature version policy -----------------------------------------------------------------


@pytest.mark.parametrize("name", V1_VECTORS)
def test_v1_vector_refused_when_only_v2_allowed(name: str) -> None:
    certs = VectorCertificates()
    body = vector_body(name)
    with pytest.raises(PolicyError) as caught:
        make_verifier(name, certs, signature_versions=("2",)).verify(body, lower_headers(body))
    assert caught.value.reason == "signature_version_not_allowed"
    assert certs.fetched == []


@pytest.mark.parametrize("name", V2_VECTORS)
def test_v2_vector_accepted_when_only_v2_allowed(name: str) -> None:
    body = vector_body(name)
    verifier = make_verifier(name, VectorCertificates(), signature_versions=("2",))
    assert verifier.verify(body, lower_headers(body)).signature_version == "2"


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_require_signature_v2_through_middleware(name: str) -> None:
    echo = EchoApp()
    app = make_app(name, VectorCertificates(), app=echo, require_signature_v2=True)
    response = post(app, vector_body(name))
    if name in V2_VECTORS:
        assert response.status_int == 200 and len(echo.calls) == 1
    else:
        assert (response.status_int, reason(response)) == (403, "signature_version_not_allowed")
        assert echo.calls == []


# --- topic and certificate policy on genuine messages -----------------------------------------


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_genuine_message_from_a_topic_not_ours_is_refused(name: str) -> None:
    """A valid AWS signature proves AWS sent it, not that the topic is ours."""
    certs = VectorCertificates()
    body = vector_body(name)
    verifier = make_verifier(name, certs, topics=["arn:aws:sns:us-east-1:123456789012:ours"])
    with pytest.raises(PolicyError) as caught:
        verifier.verify(body, lower_headers(body))
    assert caught.value.reason == "topic_not_allowed"
    assert certs.fetched == []


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_certificate_url_of_another_region_is_refused(name: str) -> None:
    fields = vector_fields(name)
    region = fields["TopicArn"].split(":")[3]
    other = "eu-west-1" if region != "eu-west-1" else "us-east-1"
    fields["SigningCertURL"] = fields["SigningCertURL"].replace(f"sns.{region}.", f"sns.{other}.")
    certs = VectorCertificates()
    body = to_body(fields)
    with pytest.raises(PolicyError) as caught:
        make_verifier(name, certs).verify(body, lower_headers(body))
    assert caught.value.reason == "bad_cert_url"
    assert certs.fetched == []
