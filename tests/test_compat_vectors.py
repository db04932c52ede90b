"""Real AWS-signed vectors in Lambda's format (issue 11).

Lambda hands a function the ``Sns`` object of an event record, which spells
``SigningCertUrl`` / ``UnsubscribeUrl`` and may carry ``"Subject": null``. Neither spelling
changes a signed value, so the Lambda-format fixtures AWS's validators publish (the PHP
validator's ``getLambdaFixtures``) are the HTTP(S) vectors ``17``-``20`` of ``tests/vectors/``
re-spelled. They are derived here from those vectors, the way Lambda re-spells them, rather
than stored twice.

The certificates are expired now: every check runs with ``clock=`` frozen at the message.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import webtest

from snsmiddleware import Notification, SnsMiddleware, SnsVerifier
from snsmiddleware.errors import MessageFormatError, SignatureError, SnsError
from snsmiddleware.message import parse_timestamp
from snsmiddleware.testing import FrozenClock

from ._vector_helpers import VectorCertificates, vector_fields
from .conftest import EchoApp, RecordingConfirmer

#: The HTTP(S) vectors of the 2022 us-east-2 topic, with and without Subject, SigV1 and 2.
_HTTP_VECTORS = (
    "17-notification-v1-2022-nosubject-us-east-2.json",
    "18-notification-v2-2022-nosubject-us-east-2.json",
    "19-notification-v1-2022-subject-us-east-2.json",
    "20-notification-v2-2022-subject-us-east-2.json",
)
_LAMBDA_SPELLING = {"SigningCertURL": "SigningCertUrl", "UnsubscribeURL": "UnsubscribeUrl"}


def as_lambda_sns(name: str, *, null_subject: bool = False) -> dict[str, Any]:
    """The ``Sns`` object Lambda would hand over for the HTTP(S) vector ``name``."""
    sns = {_LAMBDA_SPELLING.get(key, key): value for key, value in vector_fields(name).items()}
    if null_subject:
        assert "Subject" not in sns, "only a message without Subject has a null one"
        sns["Subject"] = None
    return sns


#: id -> (vector, Subject null?): the six shapes of the PHP validator's Lambda fixtures.
LAMBDA_SHAPES = {
    "v1-nosubject": (_HTTP_VECTORS[0], False),
    "v2-nosubject": (_HTTP_VECTORS[1], False),
    "v1-subject-null": (_HTTP_VECTORS[0], True),
    "v2-subject-null": (_HTTP_VECTORS[1], True),
    "v1-subject": (_HTTP_VECTORS[2], False),
    "v2-subject": (_HTTP_VECTORS[3], False),
}
LAMBDA_VECTORS = sorted(LAMBDA_SHAPES)
PATH = "/sns/vectors"


def load_lambda(shape: str) -> dict[str, Any]:
    name, null_subject = LAMBDA_SHAPES[shape]
    return as_lambda_sns(name, null_subject=null_subject)


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
    sns = load_lambda(name)
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
    sns = load_lambda(name)
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
    sns = load_lambda(name)
    if "Subject" in change and sns.get("Subject") is not None and change["Subject"] == "added":
        change = {"Subject": None}  # a genuine subject removed
    sns.update(change)
    with pytest.raises(error) as caught:
        verifier_for(sns).verify_lambda_record(lambda_record(sns))
    assert caught.value.reason == code


def test_null_subject_is_lambda_only() -> None:
    """SNS never writes null over HTTP(S): there it stays a bad field, as before."""
    sns = load_lambda("v1-subject-null")
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


@pytest.mark.parametrize("name", _HTTP_VECTORS)
def test_a_lambda_record_with_empty_message_attributes_verifies(name: str) -> None:
    """Lambda writes ``"MessageAttributes": {}`` when the publisher set none (unsigned)."""
    sns = dict(as_lambda_sns(name), MessageAttributes={})
    message = verifier_for(sns).verify_lambda_record(lambda_record(sns))
    assert isinstance(message, Notification) and not message.message_attributes
