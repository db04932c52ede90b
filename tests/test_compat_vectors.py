"""Real AWS-signed vectors for issue 11 (provenance in tests/vectors/README.md).

* ``tests/vectors/lambda/``: the Lambda-format fixtures of AWS's PHP validator (the same
  signatures as the HTTP fixtures, with Lambda's ``SigningCertUrl`` / ``UnsubscribeUrl`` and
  ``"Subject": null``), verified as Lambda hands them over and as SQS/HTTP bodies.
* ``tests/vectors/java-v2-2026/``: the 2026 fixtures of the AWS SDK for Java v2's
  sns-message-manager, with their certificate, including a genuine UnsubscribeConfirmation.

The certificates are expired now: every check runs with ``clock=`` frozen at the message.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import webtest

from snsmiddleware import (
    Notification,
    SnsMiddleware,
    SnsVerifier,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
)
from snsmiddleware.errors import CertificateError, MessageFormatError, SignatureError, SnsError
from snsmiddleware.message import parse_timestamp
from snsmiddleware.testing import FrozenClock

from ._vector_helpers import VECTOR_DIR, VectorCertificates, sns_headers
from .conftest import EchoApp, RecordingConfirmer

LAMBDA_DIR = VECTOR_DIR / "lambda"
JAVA_DIR = VECTOR_DIR / "java-v2-2026"
LAMBDA_VECTORS = sorted(path.name for path in LAMBDA_DIR.glob("*.json"))
JAVA_VECTORS = sorted(path.name for path in JAVA_DIR.glob("*.json"))
PATH = "/sns/vectors"


def test_the_vectors_are_all_there() -> None:
    assert len(LAMBDA_VECTORS) == 6 and len(JAVA_VECTORS) == 5


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_bytes())
    return document


def verifier_for(fields: dict[str, Any], **options: Any) -> SnsVerifier:
    options.setdefault("clock", FrozenClock(parse_timestamp(fields["Timestamp"])))
    return SnsVerifier(
        topics=[fields["TopicArn"]], fetch_certificate=VectorCertificates(), **options
    )


def lambda_record(sns: dict[str, Any]) -> dict[str, Any]:
    """The record Lambda passes to a handler (shape from the Lambda developer guide)."""
    return {
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": sns["TopicArn"] + ":2296bc94-7992-4be1-b15f-b97229b5c1d8",
        "Sns": sns,
    }


def vector_app(fields: dict[str, Any], app: EchoApp, confirmer: RecordingConfirmer) -> Any:
    """The middleware over WebTest, trusting the vector certificates, clock at the message."""
    return webtest.TestApp(
        SnsMiddleware(
            app,
            paths=[PATH],
            topics=[fields["TopicArn"]],
            fetch_certificate=VectorCertificates(),
            clock=FrozenClock(parse_timestamp(fields["Timestamp"])),
            confirm=confirmer,
        ),
        lint=True,
    )


# --- Lambda format ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", LAMBDA_VECTORS)
def test_a_lambda_record_verifies(name: str) -> None:
    sns = load(LAMBDA_DIR / name)
    verifier = verifier_for(sns)
    message = verifier.verify_lambda_record(lambda_record(sns))
    assert isinstance(message, Notification)
    assert message.message_id == sns["MessageId"]
    assert message.subject == sns.get("Subject")  # null and absent: no subject
    assert message.signing_cert_url == sns["SigningCertUrl"]
    assert message.unsubscribe_url == sns["UnsubscribeUrl"]
    assert "SigningCertUrl" not in message.fields and "SigningCertURL" in message.fields
    # The Sns object on its own, and its JSON text (as logged, or carried in a queue).
    assert verifier.verify_lambda_record(sns).message_id == sns["MessageId"]
    assert verifier.verify(json.dumps(sns).encode()).message_id == sns["MessageId"]


@pytest.mark.parametrize("name", LAMBDA_VECTORS)
def test_a_lambda_spelled_body_reaches_the_app_through_the_middleware(name: str) -> None:
    """Posted with and without the x-amz-sns-* headers (a replay tool, a relay)."""
    sns = load(LAMBDA_DIR / name)
    app = EchoApp()
    testapp = vector_app(sns, app, RecordingConfirmer())
    body = json.dumps(sns).encode()
    headers = {
        "x-amz-sns-message-type": "Notification",
        "x-amz-sns-message-id": sns["MessageId"],
        "x-amz-sns-topic-arn": sns["TopicArn"],
    }
    assert testapp.post(PATH, body, headers=headers).status_int == 200
    assert testapp.post(PATH, body).text.startswith("duplicate")
    assert [call["body"] for call in app.calls] == [body]


@pytest.mark.parametrize("name", LAMBDA_VECTORS)
@pytest.mark.parametrize(
    ("change", "error", "code"),
    [
        pytest.param({"Message": "Hello world!"}, SignatureError, "bad_signature", id="message"),
        pytest.param({"Subject": "added"}, SignatureError, "bad_signature", id="subject"),
        pytest.param(
            {"SigningCertURL": "https://sns.us-east-2.amazonaws.com/x.pem"},
            MessageFormatError,
            "duplicate_key",
            id="both-spellings",
        ),
        pytest.param(
            {"UnsubscribeURL": "https://sns.us-east-2.amazonaws.com/"},
            MessageFormatError,
            "duplicate_key",
            id="both-unsubscribe-spellings",
        ),
        pytest.param({"SigningCertUrl": 7}, MessageFormatError, "bad_field", id="url-not-string"),
        pytest.param({"Subject": 0}, MessageFormatError, "bad_field", id="subject-zero"),
        pytest.param({"Subject": False}, MessageFormatError, "bad_field", id="subject-false"),
        pytest.param({"MessageAttributes": None}, MessageFormatError, "bad_field", id="attrs-null"),
    ],
)
def test_a_changed_lambda_record_is_refused(
    name: str, change: dict[str, Any], error: type[SnsError], code: str
) -> None:
    sns = load(LAMBDA_DIR / name)
    if "Subject" in change and sns.get("Subject") is not None and change["Subject"] == "added":
        change = {"Subject": None}  # a genuine subject removed
    sns.update(change)
    with pytest.raises(error) as caught:
        verifier_for(sns).verify_lambda_record(lambda_record(sns))
    assert caught.value.reason == code


def test_null_subject_is_lambda_only() -> None:
    """SNS never writes null over HTTP(S): there it stays a bad field, as before."""
    sns = load(LAMBDA_DIR / "03-lambda-notification-v1-2022-subject-null-us-east-2.json")
    sns["SigningCertURL"] = sns.pop("SigningCertUrl")
    with pytest.raises(MessageFormatError) as caught:
        verifier_for(sns).verify(json.dumps(sns).encode())
    assert caught.value.reason == "bad_field"


@pytest.mark.parametrize(
    "record",
    [
        pytest.param({"eventSource": "aws:sqs", "body": "{}"}, id="sqs-record"),
        pytest.param({"EventSource": "aws:sqs", "Sns": {"Type": "Notification"}}, id="not-sns"),
        pytest.param({"Sns": "text"}, id="sns-not-an-object"),
        pytest.param({"Sns": {"Type": "Notification", "Message": b"bytes"}}, id="not-json"),
        pytest.param({"Sns": {"Type": "Notification", "Message": float("nan")}}, id="nan"),
    ],
)
def test_not_a_lambda_sns_record(record: dict[str, Any]) -> None:
    with pytest.raises(MessageFormatError) as caught:
        SnsVerifier(topics=["arn:aws:sns:us-east-2:295079676684:t"]).verify_lambda_record(record)
    assert caught.value.status == 400


# --- the AWS SDK for Java v2's 2026 vectors -----------------------------------------------------


@pytest.mark.parametrize("name", JAVA_VECTORS)
@pytest.mark.parametrize("with_headers", [True, False], ids=["with-headers", "no-headers"])
def test_a_2026_vector_is_handled_through_the_middleware(name: str, with_headers: bool) -> None:
    body = (JAVA_DIR / name).read_bytes()
    fields = load(JAVA_DIR / name)
    app, confirmer = EchoApp(), RecordingConfirmer()
    headers = sns_headers(body) if with_headers else {}
    response = vector_app(fields, app, confirmer).post(PATH, body, headers=headers)
    assert response.status_int == 200
    kind = fields["Type"]
    assert len(app.calls) == (kind == "Notification")
    assert [m.message_id for m in confirmer.confirmed] == (
        [fields["MessageId"]] if kind == "SubscriptionConfirmation" else []
    )


@pytest.mark.parametrize("name", JAVA_VECTORS)
def test_a_2026_vector_verifies_and_any_signed_change_breaks_it(name: str) -> None:
    fields = load(JAVA_DIR / name)
    body = (JAVA_DIR / name).read_bytes()
    title = {key.title(): value for key, value in sns_headers(body).items()}
    message = verifier_for(fields).verify(body, title)
    expected = {
        "Notification": Notification,
        "SubscriptionConfirmation": SubscriptionConfirmation,
        "UnsubscribeConfirmation": UnsubscribeConfirmation,
    }[fields["Type"]]
    assert isinstance(message, expected)
    changed = dict(fields, Message=fields["Message"] + " ")
    with pytest.raises(SignatureError):
        verifier_for(fields).verify(json.dumps(changed).encode())


def test_the_2026_certificate_has_expired_by_now() -> None:
    """Why every test freezes the clock: after October 2026 the certificate is refused."""
    name = "notification-v2-2026-nosubject-us-west-2.json"
    fields = load(JAVA_DIR / name)
    late = FrozenClock(parse_timestamp("2026-10-15T00:00:00.000Z"))
    with pytest.raises(CertificateError) as caught:
        verifier_for(fields, clock=late, max_age=timedelta(days=365)).verify(
            (JAVA_DIR / name).read_bytes()
        )
    assert caught.value.reason == "certificate_expired"
