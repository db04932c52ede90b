"""parse_message strictness, as tables: every way a body can fail to be one well-formed SNS
envelope, each with the exact reason code, plus what a well-formed one parses into.

Pure unit tests: no signature, no network, no WSGI. The point of strictness is that no two
parsers (ours and the app's framework) can read two different messages from the same bytes,
and that every field the signature covers is a plain string kept exactly as received.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from snsmiddleware.errors import MessageFormatError
from snsmiddleware.message import (
    MessageAttribute,
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
    check_headers,
    check_not_raw,
    parse_message,
    parse_timestamp,
    sns_headers,
)
from snsmiddleware.signing import string_to_sign

TOPIC = "arn:aws:sns:us-east-1:123456789012:budget-alerts"
TOKEN = "2336412f37fb687f5d51e6e2425dacbbab295b8a534f"
COMMON: dict[str, Any] = {
    "MessageId": "d39649d4-bf5b-5b80-af75-07acb3dd9b4a",
    "TopicArn": TOPIC,
    "Message": "hello",
    "Timestamp": "2024-01-31T12:00:00.000Z",
    "SignatureVersion": "2",
    "Signature": "AAAA",
    "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
}
CONFIRMATION_EXTRA: dict[str, Any] = {
    "Token": TOKEN,
    "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
    f"&TopicArn={TOPIC}&Token={TOKEN}",
}


def fields_of(message_type: str = "Notification", **changes: Any) -> dict[str, Any]:
    """A well-formed envelope of ``message_type``; ``changes`` set (or, with ``...``, drop)
    fields."""
    fields: dict[str, Any] = {"Type": message_type, **COMMON}
    if message_type != "Notification":
        fields.update(CONFIRMATION_EXTRA)
    for key, value in changes.items():
        if value is ...:
            fields.pop(key, None)
        else:
            fields[key] = value
    return fields


def body_of(message_type: str = "Notification", **changes: Any) -> bytes:
    return json.dumps(fields_of(message_type, **changes)).encode()


GOOD = body_of()
GOOD_TEXT = GOOD.decode()


def reason_of(body: bytes) -> str:
    with pytest.raises(MessageFormatError) as caught:
        parse_message(body)
    assert caught.value.status == 400
    return caught.value.reason


# --- JSON and encoding ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(b"", "invalid_json", id="empty"),
        pytest.param(b" \r\n\t", "invalid_json", id="whitespace-only"),
        pytest.param(b"null", "invalid_json", id="null"),
        pytest.param(b"true", "invalid_json", id="true"),
        pytest.param(b"1", "invalid_json", id="number"),
        pytest.param(b'"Notification"', "invalid_json", id="string"),
        pytest.param(b"[]", "invalid_json", id="array"),
        pytest.param(b"[" + GOOD + b"]", "invalid_json", id="object-in-array"),
        pytest.param(GOOD[:-1], "invalid_json", id="truncated"),
        pytest.param(GOOD + b"x", "invalid_json", id="trailing-garbage"),
        pytest.param(GOOD + GOOD, "invalid_json", id="two-objects"),
        pytest.param(GOOD + b"\x00", "invalid_json", id="trailing-nul"),
        pytest.param(GOOD + b"\x0c", "invalid_json", id="trailing-formfeed"),
        pytest.param(GOOD + "\u00a0".encode(), "invalid_json", id="trailing-nbsp"),
        pytest.param(b"\xef\xbb\xbf" + GOOD, "invalid_json", id="utf8-bom"),
        pytest.param(GOOD.replace(b'"', b"'"), "invalid_json", id="single-quotes"),
        pytest.param(GOOD[:-1] + b",}", "invalid_json", id="trailing-comma"),
        pytest.param(b"/* c */" + GOOD, "invalid_json", id="comment"),
        pytest.param(GOOD.replace(b'"hello"', b'"a\x01b"'), "invalid_json", id="raw-control"),
        pytest.param(GOOD.replace(b'"hello"', b'"a\nb"'), "invalid_json", id="raw-newline"),
        pytest.param(GOOD.replace(b'"hello"', b'"\\x41"'), "invalid_json", id="bad-escape"),
        pytest.param(GOOD.replace(b'"hello"', b'"\\u12"'), "invalid_json", id="short-u-escape"),
        pytest.param(GOOD.replace(b'"hello"', b"NaN"), "invalid_json", id="nan"),
        pytest.param(GOOD.replace(b'"hello"', b"Infinity"), "invalid_json", id="infinity"),
        pytest.param(GOOD.replace(b'"hello"', b"-Infinity"), "invalid_json", id="minus-infinity"),
        pytest.param(
            GOOD[:-1] + b', "MessageAttributes": {"a": {"Type": "Number", "Value": NaN}}}',
            "invalid_json",
            id="nan-in-attributes",
        ),
        pytest.param(
            GOOD.replace(b'"hello"', b"1" * 5000), "invalid_json", id="int-over-digit-limit"
        ),
        pytest.param(b"[" * 100_000, "invalid_json", id="deep-arrays"),
        pytest.param(b'{"a":' * 100_000, "invalid_json", id="deep-objects"),
        pytest.param(
            GOOD[:-1] + b', "MessageAttributes": ' + b'{"a":' * 100_000 + b"}" * 100_001,
            "invalid_json",
            id="deep-in-attributes",
        ),
        pytest.param(b"\xff", "bad_encoding", id="invalid-utf8-byte"),
        pytest.param(GOOD.replace(b"hello", b"h\xe9llo"), "bad_encoding", id="latin-1"),
        pytest.param(b"\xff\xfe" + GOOD_TEXT.encode("utf-16-le"), "bad_encoding", id="utf-16"),
        pytest.param(GOOD_TEXT.encode("utf-32"), "bad_encoding", id="utf-32"),
        pytest.param(GOOD.replace(b"hello", b"\xc0\xaf"), "bad_encoding", id="overlong"),
        pytest.param(GOOD.replace(b"hello", b"\xed\xa0\x80"), "bad_encoding", id="cesu-surrogate"),
        pytest.param(GOOD.replace(b"hello", b"\xe2\x82"), "bad_encoding", id="truncated-utf8"),
    ],
)
def test_bodies_that_are_not_one_json_object(body: bytes, code: str) -> None:
    assert reason_of(body) == code


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b" \r\n\t" + GOOD + b" \r\n\t", id="json-whitespace-around"),
        pytest.param(json.dumps(fields_of(), indent=2).encode(), id="indented"),
        pytest.param(json.dumps(fields_of(), ensure_ascii=True).encode(), id="ascii-escaped"),
    ],
)
def test_json_whitespace_is_fine(body: bytes) -> None:
    assert parse_message(body).message_id == COMMON["MessageId"]


# --- duplicate keys, at any depth -------------------------------------------------------------


def _attrs(raw: str) -> bytes:
    return GOOD[:-1] + b', "MessageAttributes": ' + raw.encode() + b"}"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(GOOD[:-1] + b', "Type": "Notification"}', id="same-value"),
        pytest.param(GOOD[:-1] + b', "Message": "other"}', id="other-value"),
        pytest.param(GOOD[:-1] + b', "\\u0054ype": "Notification"}', id="escaped-key"),
        pytest.param(GOOD[:-1] + b', "Subject": "a", "Subject": "b"}', id="optional-field"),
        pytest.param(GOOD[:-1] + b', "Extra": "a", "Extra": "a"}', id="unknown-field"),
        pytest.param(
            _attrs(
                '{"a": {"Type": "String", "Value": "1"}, "a": {"Type": "String", "Value": "2"}}'
            ),
            id="attribute-name",
        ),
        pytest.param(
            _attrs('{"a": {"Type": "String", "Value": "1", "Value": "2"}}'), id="attribute-value"
        ),
        pytest.param(
            _attrs('{"a": {"Type": "String", "Value": {"x": 1, "x": 2}}}'), id="third-level"
        ),
        pytest.param(
            GOOD[:-1] + b', "MessageAttributes": {}, "MessageAttributes": {}}',
            id="attributes-twice",
        ),
    ],
)
def test_duplicate_keys_at_any_depth(body: bytes) -> None:
    assert reason_of(body) == "duplicate_key"


# --- field types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        pytest.param({"Message": 1}, "bad_field", id="int-message"),
        pytest.param({"Message": 1.5}, "bad_field", id="float-message"),
        pytest.param({"Message": True}, "bad_field", id="bool-message"),
        pytest.param({"Message": None}, "bad_field", id="null-message"),
        pytest.param({"Message": ["x"]}, "bad_field", id="list-message"),
        pytest.param({"Message": {"x": "y"}}, "bad_field", id="object-message"),
        pytest.param({"Subject": None}, "bad_field", id="null-subject"),
        pytest.param({"Subject": 0}, "bad_field", id="int-subject"),
        pytest.param({"UnsubscribeURL": None}, "bad_field", id="null-unsubscribe-url"),
        pytest.param({"MessageId": 7}, "bad_field", id="int-message-id"),
        pytest.param({"Timestamp": 1706702400}, "bad_field", id="epoch-timestamp"),
        pytest.param({"SignatureVersion": 2}, "bad_field", id="int-signature-version"),
        pytest.param({"Type": 1}, "bad_field", id="int-type"),
        pytest.param({"Type": None}, "bad_field", id="null-type"),
        pytest.param({"Extra": 1}, "bad_field", id="unknown-non-string"),
        pytest.param({"Type": "Notice"}, "unknown_type", id="unknown-type"),
        pytest.param({"Type": "notification"}, "unknown_type", id="lower-case-type"),
        pytest.param({"Type": "Notification "}, "unknown_type", id="type-trailing-space"),
        pytest.param({"Type": ""}, "unknown_type", id="empty-type"),
        pytest.param({"Type": ...}, "unknown_type", id="no-type"),
    ],
)
def test_a_field_of_the_wrong_json_type_is_refused(changes: dict[str, Any], code: str) -> None:
    assert reason_of(body_of(**changes)) == code


REQUIRED = {
    "Notification": tuple(COMMON),
    "SubscriptionConfirmation": (*COMMON, "Token", "SubscribeURL"),
    "UnsubscribeConfirmation": (*COMMON, "Token", "SubscribeURL"),
}


@pytest.mark.parametrize(
    ("message_type", "missing"),
    [
        pytest.param(message_type, key, id=f"{message_type}-{key}")
        for message_type, keys in REQUIRED.items()
        for key in keys
    ],
)
def test_missing_required_field(message_type: str, missing: str) -> None:
    with pytest.raises(MessageFormatError, match=missing) as caught:
        parse_message(body_of(message_type, **{missing: ...}))
    assert caught.value.reason == "missing_field"


@pytest.mark.parametrize("message_type", list(REQUIRED))
def test_exactly_the_required_fields_parse(message_type: str) -> None:
    fields = {key: fields_of(message_type)[key] for key in ("Type", *REQUIRED[message_type])}
    assert parse_message(json.dumps(fields).encode()).type == message_type


@pytest.mark.parametrize(
    "message_id",
    [
        pytest.param("", id="empty"),
        pytest.param(" abc", id="leading-space"),
        pytest.param("abc ", id="trailing-space"),
        pytest.param("a b", id="inner-space"),
        pytest.param("abc\n", id="trailing-newline"),
        pytest.param("a\r\nX-Injected: 1", id="crlf"),
        pytest.param("a\x00b", id="nul"),
        pytest.param("a\tb", id="tab"),
        pytest.param("-abc", id="leading-dash"),
        pytest.param(".abc", id="leading-dot"),
        pytest.param("a/b", id="slash"),
        pytest.param("a:b", id="colon"),
        pytest.param("a%0ab", id="percent"),
        pytest.param("a=b", id="equals"),
        pytest.param("caf\u00e9", id="non-ascii-letter"),
        pytest.param("\uff41bc", id="fullwidth"),
        pytest.param("a\u2028b", id="line-separator"),
        pytest.param("a" * 129, id="129-chars"),
    ],
)
def test_message_id_charset(message_id: str) -> None:
    assert reason_of(body_of(MessageId=message_id)) == "bad_field"


@pytest.mark.parametrize("message_type", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Token", TOKEN + "\n"),
        ("Token", "a\x00b"),
        ("SubscribeURL", str(CONFIRMATION_EXTRA["SubscribeURL"]) + "\nMessageId\nx"),
        ("SubscribeURL", str(CONFIRMATION_EXTRA["SubscribeURL"]) + "\r"),
    ],
)
def test_confirmation_token_and_url_are_single_line(
    message_type: str, field: str, value: str
) -> None:
    """Signed values SNS never breaks; one that did would make the string to sign ambiguous."""
    assert reason_of(body_of(message_type, **{field: value})) == "bad_field"


@pytest.mark.parametrize(
    "message_id",
    ["d39649d4-bf5b-5b80-af75-07acb3dd9b4a", "a", "A.b_c-d", "a" * 128, "0123456789"],
)
def test_message_id_accepted(message_id: str) -> None:
    assert parse_message(body_of(MessageId=message_id)).message_id == message_id


# --- Timestamp grammar ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp",
    [
        pytest.param("2022-02-30T00:00:00.000Z", id="feb-30"),
        pytest.param("2023-02-29T00:00:00.000Z", id="feb-29-not-leap"),
        pytest.param("2022-04-31T00:00:00.000Z", id="apr-31"),
        pytest.param("2022-13-01T00:00:00.000Z", id="month-13"),
        pytest.param("2022-00-10T00:00:00.000Z", id="month-0"),
        pytest.param("2022-01-00T00:00:00.000Z", id="day-0"),
        pytest.param("0000-01-01T00:00:00.000Z", id="year-0"),
        pytest.param("2022-01-01T24:00:00.000Z", id="hour-24"),
        pytest.param("2022-01-01T23:60:00.000Z", id="minute-60"),
        pytest.param("2016-12-31T23:59:60.000Z", id="leap-second"),
        pytest.param("2022-01-01T00:00:00.000", id="no-zone"),
        pytest.param("2022-01-01T00:00:00.000z", id="lower-z"),
        pytest.param("2022-01-01t00:00:00.000Z", id="lower-t"),
        pytest.param("2022-01-01 00:00:00.000Z", id="space-separator"),
        pytest.param("2022-01-01T00:00:00.000+00:00", id="offset"),
        pytest.param("2022-01-01T00:00:00.000Z+01:00", id="z-and-offset"),
        pytest.param("2022-01-01T00:00:00.Z", id="empty-fraction"),
        pytest.param("2022-01-01T00:00:00,000Z", id="comma-fraction"),
        pytest.param("2022-01-01T00:00:00.0000000000Z", id="ten-digit-fraction"),
        pytest.param("2022-01-01T00:00Z", id="no-seconds"),
        pytest.param("2022-01-01", id="date-only"),
        pytest.param("20220101T000000Z", id="basic-format"),
        pytest.param("2022-W01-1T00:00:00Z", id="week-date"),
        pytest.param("2022-032T00:00:00Z", id="ordinal-date"),
        pytest.param("+2022-01-01T00:00:00Z", id="signed-year"),
        pytest.param("02022-01-01T00:00:00Z", id="five-digit-year"),
        pytest.param("2022-1-01T00:00:00Z", id="one-digit-month"),
        pytest.param("\uff12022-01-01T00:00:00Z", id="fullwidth-digit"),
        pytest.param("\u0662022-01-01T00:00:00Z", id="arabic-indic-digit"),
        pytest.param(" 2022-01-01T00:00:00.000Z", id="leading-space"),
        pytest.param("2022-01-01T00:00:00.000Z\n", id="trailing-newline"),
        pytest.param("1706702400", id="epoch"),
        pytest.param("", id="empty"),
    ],
)
def test_malformed_timestamps_are_refused(timestamp: str) -> None:
    assert reason_of(body_of(Timestamp=timestamp)) == "bad_timestamp"


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2024-02-29T23:59:59.999Z", datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=UTC)),
        ("2022-07-28T21:23:58Z", datetime(2022, 7, 28, 21, 23, 58, tzinfo=UTC)),
        ("2022-07-28T21:23:58.3Z", datetime(2022, 7, 28, 21, 23, 58, 300000, tzinfo=UTC)),
        ("2022-07-28T21:23:58.000Z", datetime(2022, 7, 28, 21, 23, 58, tzinfo=UTC)),
        ("2022-07-28T21:23:58.123456789Z", datetime(2022, 7, 28, 21, 23, 58, 123456, tzinfo=UTC)),
    ],
)
def test_good_timestamps_are_kept_raw_and_parsed_to_utc(timestamp: str, expected: datetime) -> None:
    message = parse_message(body_of(Timestamp=timestamp))
    assert message.timestamp == timestamp  # raw: the signature covers this string
    assert message.sent_at == expected
    assert message.sent_at.utcoffset() is not None and not message.sent_at.utcoffset()
    assert parse_timestamp(timestamp) == expected


# --- strings the signature cannot cover -------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"Message": "a\ud800b"}, id="message-high"),
        pytest.param({"Message": "a\udfffb"}, id="message-low"),
        pytest.param({"Message": "\ude00\ud83d"}, id="message-pair-reversed"),
        pytest.param({"Subject": "a\ud800b"}, id="subject"),
        pytest.param({"MessageId": "a\ud800b"}, id="message-id"),
        pytest.param({"UnsubscribeURL": "\udbff"}, id="unsigned-field"),
        pytest.param({"Extra\ud800": "x"}, id="unknown-key"),
        pytest.param(
            {"MessageAttributes": {"k": {"Type": "String", "Value": "\ud800"}}},
            id="attribute-value",
        ),
        pytest.param(
            {"MessageAttributes": {"k\udc00": {"Type": "String", "Value": "v"}}},
            id="attribute-name",
        ),
    ],
)
def test_lone_surrogate_is_refused_while_parsing(fields: dict[str, Any]) -> None:
    """No signer can sign an unpaired surrogate (it has no UTF-8), and an unsigned one would
    reach the app as text that cannot be encoded: refused before any certificate download."""
    body = body_of(**fields)  # json.dumps writes the JSON escape (\\ud800)
    assert b"\\ud" in body
    assert reason_of(body) == "bad_encoding"


def test_escaped_surrogate_pair_is_one_character() -> None:
    message = parse_message(GOOD.replace(b'"hello"', b'"\\ud83d\\ude00"'))
    assert message.message == "\U0001f600"
    assert "Message\n\U0001f600\n".encode() in string_to_sign(message)


# --- MessageAttributes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("[]", id="list"),
        pytest.param('"String"', id="string"),
        pytest.param("1", id="number"),
        pytest.param("true", id="bool"),
        pytest.param('{"a": "x"}', id="entry-string"),
        pytest.param('{"a": ["String", "x"]}', id="entry-list"),
        pytest.param('{"a": null}', id="entry-null"),
        pytest.param('{"a": {}}', id="entry-empty"),
        pytest.param('{"a": {"Type": "String"}}', id="entry-no-value"),
        pytest.param('{"a": {"Value": "x"}}', id="entry-no-type"),
        pytest.param('{"a": {"Type": "String", "Value": "x", "X": "y"}}', id="entry-extra-key"),
        pytest.param('{"a": {"type": "String", "value": "x"}}', id="entry-lower-case-keys"),
        pytest.param('{"a": {"Type": "Number", "Value": 1}}', id="entry-number-value"),
        pytest.param('{"a": {"Type": 1, "Value": "1"}}', id="entry-number-type"),
        pytest.param('{"a": {"Type": "String", "Value": null}}', id="entry-null-value"),
        pytest.param('{"a": {"Type": "String", "Value": {"b": "c"}}}', id="entry-object-value"),
        pytest.param(
            '{"a": {"Type": "String.Array", "Value": ["x"]}}', id="entry-array-not-as-string"
        ),
    ],
)
def test_bad_message_attributes_shapes(raw: str) -> None:
    assert reason_of(_attrs(raw)) == "bad_field"


@pytest.mark.parametrize("message_type", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
def test_message_attributes_only_in_notifications(message_type: str) -> None:
    assert reason_of(body_of(message_type, MessageAttributes={})) == "bad_field"


@pytest.mark.parametrize("message_type", ["Notification", "SubscriptionConfirmation"])
def test_null_message_attributes_is_a_bad_field(message_type: str) -> None:
    assert reason_of(body_of(message_type, MessageAttributes=None)) == "bad_field"


def test_good_message_attributes() -> None:
    attributes = {
        "AWS.SNS.MOBILE.MPNS.Type": {"Type": "String", "Value": "token"},
        "n": {"Type": "Number", "Value": "1.5"},
        "b": {"Type": "Binary", "Value": "AAEC"},
        "arr": {"Type": "String.Array", "Value": '["a", 1]'},
        "": {"Type": "String", "Value": ""},
    }
    message = parse_message(body_of(MessageAttributes=attributes))
    assert isinstance(message, Notification)
    assert dict(message.message_attributes) == {
        name: MessageAttribute(entry["Type"], entry["Value"]) for name, entry in attributes.items()
    }
    assert "MessageAttributes" not in message.fields  # not a signed string field
    with pytest.raises(TypeError):
        message.message_attributes["x"] = MessageAttribute("String", "y")  # type: ignore[index]


def test_empty_and_absent_message_attributes() -> None:
    for body in (body_of(MessageAttributes={}), body_of()):
        message = parse_message(body)
        assert isinstance(message, Notification)
        assert dict(message.message_attributes) == {}


# --- what a well-formed message parses into --------------------------------------------------


def test_notification_keeps_every_field_exactly() -> None:
    fields = fields_of(
        Subject="",
        UnsubscribeURL="https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        Extra="kept",
        Message="caf\u00e9 \u2603\n\ttabs",
    )
    message = parse_message(json.dumps(fields, ensure_ascii=True).encode())
    assert isinstance(message, Notification)
    assert dict(message.fields) == fields
    assert message.subject == ""  # present but empty: not the same as absent
    assert message.unsubscribe_url == fields["UnsubscribeURL"]
    assert message.message == "caf\u00e9 \u2603\n\ttabs"
    expected = Notification(
        type="Notification",
        message_id=COMMON["MessageId"],
        topic_arn=TOPIC,
        message=fields["Message"],
        timestamp=COMMON["Timestamp"],
        signature_version="2",
        signature="AAAA",
        signing_cert_url=COMMON["SigningCertURL"],
        sent_at=datetime(2024, 1, 31, 12, tzinfo=UTC),
        fields=fields,
        subject="",
        unsubscribe_url=fields["UnsubscribeURL"],
    )
    assert message == expected


def test_absent_subject_is_none() -> None:
    message = parse_message(GOOD)
    assert isinstance(message, Notification)
    assert message.subject is None and message.unsubscribe_url is None


@pytest.mark.parametrize(
    ("message_type", "cls"),
    [
        ("SubscriptionConfirmation", SubscriptionConfirmation),
        ("UnsubscribeConfirmation", UnsubscribeConfirmation),
    ],
)
def test_confirmations_carry_token_and_url(message_type: str, cls: type[Any]) -> None:
    message = parse_message(body_of(message_type))
    assert type(message) is cls
    assert message.token == TOKEN
    assert message.subscribe_url == CONFIRMATION_EXTRA["SubscribeURL"]
    # Secrets stay out of reprs (and so out of logs that format a message).
    assert TOKEN not in repr(message) and "ConfirmSubscription" not in repr(message)


def test_messages_are_immutable() -> None:
    message = parse_message(GOOD)
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.message = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        message.fields["Message"] = "changed"  # type: ignore[index]


# --- headers ----------------------------------------------------------------------------------

HEADERS = {
    "x-amz-sns-message-type": "Notification",
    "x-amz-sns-message-id": COMMON["MessageId"],
    "x-amz-sns-topic-arn": TOPIC,
}


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        pytest.param({"x-amz-sns-message-type": "notification"}, "header_mismatch", id="type-case"),
        pytest.param(
            {"x-amz-sns-message-type": "SubscriptionConfirmation"}, "header_mismatch", id="type"
        ),
        pytest.param({"x-amz-sns-message-id": "other"}, "header_mismatch", id="id"),
        pytest.param({"x-amz-sns-topic-arn": TOPIC + " "}, "header_mismatch", id="topic-space"),
        pytest.param({"x-amz-sns-topic-arn": ""}, "header_mismatch", id="topic-empty"),
    ],
)
def test_headers_must_match_body(changes: dict[str, str | None], code: str) -> None:
    headers = {**HEADERS, **changes}
    sent = {name: value for name, value in headers.items() if value is not None}
    with pytest.raises(MessageFormatError) as caught:
        check_headers(parse_message(GOOD), sent)
    assert caught.value.reason == code


def test_matching_headers_pass() -> None:
    check_headers(parse_message(GOOD), {**HEADERS, "x-amz-sns-subscription-arn": "ignored"})


@pytest.mark.parametrize(
    "absent",
    [
        pytest.param(("x-amz-sns-message-type",), id="no-type"),
        pytest.param(("x-amz-sns-message-id",), id="no-id"),
        pytest.param(("x-amz-sns-topic-arn",), id="no-topic"),
        pytest.param(tuple(HEADERS), id="none-at-all"),
    ],
)
def test_absent_headers_pass_and_are_noted_at_debug(
    absent: tuple[str, ...], caplog: pytest.LogCaptureFixture
) -> None:
    """The headers are not signed: requiring them buys nothing and loses alerts."""
    sent = {name: value for name, value in HEADERS.items() if name not in absent}
    with caplog.at_level(logging.DEBUG, logger="snsmiddleware.message"):
        check_headers(parse_message(GOOD), sent)
    assert {name for name in absent if any(name in r.getMessage() for r in caplog.records)} == set(
        absent
    )


def test_sns_headers_reads_any_mapping_case_insensitively() -> None:
    title_case = {
        "X-Amz-Sns-Message-Type": "Notification",
        "X-AMZ-SNS-MESSAGE-ID": "id-1",
        "Content-Type": "text/plain",
        "x-amz-sns-rawdelivery": "false",
    }
    assert sns_headers(title_case) == {
        "x-amz-sns-message-type": "Notification",
        "x-amz-sns-message-id": "id-1",
        "x-amz-sns-rawdelivery": "false",
    }


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(
            {"X-Amz-Sns-Message-Id": "a", "x-amz-sns-message-id": "b"}, id="two-spellings-differ"
        ),
        pytest.param({"X-Amz-Sns-Topic-Arn": 7}, id="not-a-string"),
        pytest.param({"x-amz-sns-message-type": None}, id="none"),
        pytest.param({"X-Amz-Sns-Message-Id": ["a", "b"]}, id="two-values-in-a-list"),
        pytest.param({"X-Amz-Sns-Message-Id": []}, id="empty-list"),
        pytest.param({"X-Amz-Sns-Message-Id": [7]}, id="list-of-non-string"),
        pytest.param({"X-Amz-Sns-Message-Id": [{"a": 1}]}, id="list-of-unhashable"),
    ],
)
def test_sns_headers_refuses_ambiguous_headers(headers: dict[str, Any]) -> None:
    with pytest.raises(MessageFormatError) as caught:
        sns_headers(headers)
    assert (caught.value.status, caught.value.reason) == (400, "header_mismatch")


def test_sns_headers_accepts_api_gateway_multi_value_headers() -> None:
    assert sns_headers({"X-Amz-Sns-Message-Id": ["a"], "x-amz-sns-message-id": ("a", "a")}) == {
        "x-amz-sns-message-id": "a"
    }


def test_sns_headers_accepts_the_same_value_in_two_spellings() -> None:
    assert sns_headers({"X-Amz-Sns-Message-Id": "a", "x-amz-sns-message-id": "a"}) == {
        "x-amz-sns-message-id": "a"
    }


@pytest.mark.parametrize("value", ["true", "TRUE", "True", " true "])
def test_raw_delivery_is_refused(value: str) -> None:
    with pytest.raises(MessageFormatError) as caught:
        check_not_raw({"x-amz-sns-rawdelivery": value})
    assert caught.value.reason == "raw_delivery"


@pytest.mark.parametrize("headers", [{}, {"x-amz-sns-rawdelivery": "false"}])
def test_non_raw_delivery_passes(headers: dict[str, str]) -> None:
    check_not_raw(headers)
