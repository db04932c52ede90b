"""The verify hot path's shortcuts, each against the exact check it stands in for.

parse_message skips the per-string surrogate check for JSON text holding no surrogate escape,
strips whitespace only when a body has some, reads the required fields instead of comparing
key sets, and check_headers/sns_headers skip their general loops for the usual headers. Each
table here would fail if a shortcut lost its fallback: a lone surrogate that slipped through,
a harmless escape refused, trailing data accepted, a mismatching header let by.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snsmiddleware.errors import MessageFormatError
from snsmiddleware.message import check_headers, parse_message, sns_headers

TOPIC = "arn:aws:sns:us-east-1:123456789012:budget-alerts"
MESSAGE_ID = "d39649d4-bf5b-5b80-af75-07acb3dd9b4a"
FIELDS: dict[str, Any] = {
    "Type": "Notification",
    "MessageId": MESSAGE_ID,
    "TopicArn": TOPIC,
    "Message": "hello",
    "Timestamp": "2024-01-31T12:00:00.000Z",
    "SignatureVersion": "2",
    "Signature": "AAAA",
    "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
}
GOOD = json.dumps(FIELDS).encode()


def _with(raw_json_value: str, key: str = "Message") -> bytes:
    """GOOD with ``key`` (last) set to a raw JSON value; both written exactly as given, so
    their escapes reach the parser."""
    document = json.dumps({name: value for name, value in FIELDS.items() if name != key})
    return f'{document[:-1]}, "{key}": {raw_json_value}}}'.encode()


def _reason(body: bytes) -> str:
    with pytest.raises(MessageFormatError) as caught:
        parse_message(body)
    assert caught.value.status == 400
    return caught.value.reason


def _attributes(raw: str) -> bytes:
    return GOOD[:-1] + b', "MessageAttributes": ' + raw.encode() + b"}"


# --- surrogate escapes: refused wherever they are, whatever comes before them ---------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_with(r'"\ud800"'), id="high"),
        pytest.param(_with(r'"\uDFFF"'), id="upper-case-hex"),
        pytest.param(_with(r'"\uDbFf"'), id="mixed-case-hex"),
        pytest.param(_with(r'"line\nbreak \ud800"'), id="after-another-escape"),
        pytest.param(_with(r'"\\\ud800"'), id="after-an-escaped-backslash"),
        pytest.param(_with(r'"\ude00\ud83d"'), id="pair-reversed"),
        pytest.param(_with(r'"\ud83d\ud83d\ude00"'), id="high-before-a-pair"),
        pytest.param(
            GOOD[:-1] + rb', "Sub\nject": "x", "Subject": "\ud800"}', id="after-an-escaped-key"
        ),
        pytest.param(_with('"x"', key=r"Extra\udc00"), id="in-a-key"),
        pytest.param(
            _with(r'"a\nb"', key="Subject")[:-1] + rb', "Extra": "\udc00"}', id="later-field"
        ),
        pytest.param(
            _attributes(r'{"k": {"Type": "String", "Value": "\ud800"}}'), id="attribute-value"
        ),
        pytest.param(
            _attributes(r'{"k\udc00": {"Type": "String", "Value": "v"}}'), id="attribute-name"
        ),
        pytest.param(
            _attributes(r'{"k": {"Type": "String", "Value": "v", "X\ud800": "y"}}'),
            id="nested-key",
        ),
    ],
)
def test_a_surrogate_escape_is_refused_anywhere(body: bytes) -> None:
    assert _reason(body) == "bad_encoding"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # An escaped backslash followed by the letters "ud800" looks like an escape to a text
        # search: it must still be accepted, as six plain characters.
        pytest.param(r'"\\ud800"', "\\ud800", id="escaped-backslash-then-letters"),
        pytest.param(r'"\\\\uDFFF"', "\\\\uDFFF", id="two-escaped-backslashes"),
        pytest.param(r'"\ud83d\ude00"', "\U0001f600", id="pair"),
        pytest.param(r'"\uD83D\uDE00 \n"', "\U0001f600 \n", id="pair-upper-case-then-escape"),
        pytest.param(r'"\u00e9\ud7ff\ue000"', "\u00e9\ud7ff\ue000", id="next-to-the-range"),
        pytest.param(r'"a\nb"', "a\nb", id="other-escape-only"),
        pytest.param('"\u00e9\U0001f600"', "\u00e9\U0001f600", id="raw-non-ascii"),
    ],
)
def test_escapes_that_are_not_lone_surrogates_are_accepted(raw: str, expected: str) -> None:
    assert parse_message(_with(raw)).message == expected


def test_a_surrogate_in_an_array_stays_a_bad_field() -> None:
    """Strings inside arrays are not checked for surrogates: the array itself is refused."""
    assert _reason(_with(r'["\ud800"]')) == "bad_field"


def test_duplicate_keys_are_refused_with_and_without_escapes() -> None:
    duplicate = GOOD[:-1] + b', "Message": "again"}'
    assert _reason(duplicate) == "duplicate_key"
    assert _reason(duplicate.replace(b'"again"', b'"a\\u00e9"')) == "duplicate_key"
    nested = _attributes('{"k": {"Type": "String", "Value": "v", "Value": "w"}}')
    assert _reason(nested) == "duplicate_key"
    assert _reason(nested.replace(b'"w"', b'"\\u00e9"')) == "duplicate_key"


_pieces = st.sampled_from(
    ["a", "\\", "u", "d", "D", "8", "b", "F", "0", "\u00e9", "\ud800", "\udc00", "\U0001f600"]
)


def _lone_surrogate_anywhere(value: Any) -> bool:
    """The reference: any key or string value of an object without UTF-8 (arrays aside)."""
    if isinstance(value, dict):
        return any(
            _no_utf8(key) or (isinstance(item, str) and _no_utf8(item))
            for key, item in value.items()
        ) or any(_lone_surrogate_anywhere(item) for item in value.values())
    return False


def _no_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    message=st.lists(_pieces, max_size=12).map("".join),
    extra_key=st.lists(_pieces, max_size=4).map("".join),
    attribute=st.lists(_pieces, max_size=6).map("".join),
    ensure_ascii=st.booleans(),
)
def test_surrogates_are_refused_exactly_when_a_string_has_one(
    message: str, extra_key: str, attribute: str, ensure_ascii: bool
) -> None:
    fields: dict[str, Any] = {**FIELDS, "Message": message, f"X{extra_key}": "v"}
    fields["MessageAttributes"] = {"k": {"Type": "String", "Value": attribute}}
    text = json.dumps(fields, ensure_ascii=ensure_ascii)
    body = text.encode("utf-8", "surrogatepass")  # raw surrogates: refused by the decode
    expected = json.loads(text)
    try:
        parsed = parse_message(body)
    except MessageFormatError as exc:
        assert exc.reason == "bad_encoding"
        assert not ensure_ascii or _lone_surrogate_anywhere(expected)
    else:
        assert not _lone_surrogate_anywhere(expected)
        assert parsed.message == expected["Message"]
        assert parsed.fields[f"X{extra_key}"] == "v"


# --- whitespace around the object -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "accepted"),
    [
        pytest.param(GOOD + b"\n", True, id="trailing-newline"),
        pytest.param(GOOD + b" \t\r\n", True, id="trailing-whitespace"),
        pytest.param(b"\n" + GOOD, True, id="leading-newline"),
        pytest.param(GOOD + b"\n x", False, id="garbage-after-whitespace"),
        pytest.param(GOOD + b"\n{}", False, id="second-object-after-whitespace"),
        pytest.param(b"{" + GOOD, False, id="brace-then-object"),
    ],
)
def test_whitespace_after_a_body_that_starts_with_a_brace(body: bytes, accepted: bool) -> None:
    if accepted:
        assert parse_message(body).message_id == MESSAGE_ID
    else:
        assert _reason(body) == "invalid_json"


# --- required fields, read rather than compared -----------------------------------------------


@pytest.mark.parametrize("missing", sorted(FIELDS.keys() - {"Type"}))
def test_each_missing_notification_field_is_named(missing: str) -> None:
    body = json.dumps({key: value for key, value in FIELDS.items() if key != missing}).encode()
    with pytest.raises(MessageFormatError) as caught:
        parse_message(body)
    assert (caught.value.reason, caught.value.detail) == (
        "missing_field",
        f"Notification lacks required field(s): {missing}",
    )


def test_message_attributes_in_a_confirmation_come_after_its_single_line_fields() -> None:
    """The confirmation's own checks keep their order: a bad Token before misplaced
    MessageAttributes, misplaced MessageAttributes before a bad Timestamp."""
    confirmation = {
        **FIELDS,
        "Type": "SubscriptionConfirmation",
        "Token": "abc",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
        "MessageAttributes": {},
        "Timestamp": "yesterday",
    }
    with pytest.raises(MessageFormatError) as caught:
        parse_message(json.dumps(confirmation).encode())
    assert caught.value.detail == "MessageAttributes only belongs in a Notification"
    confirmation["Token"] = "a\nb"
    with pytest.raises(MessageFormatError) as caught:
        parse_message(json.dumps(confirmation).encode())
    assert caught.value.detail == "Token holds a line break or control character"


# --- headers ------------------------------------------------------------------------------------

_HEADERS = {
    "x-amz-sns-message-type": "Notification",
    "x-amz-sns-message-id": MESSAGE_ID,
    "x-amz-sns-topic-arn": TOPIC,
}


@pytest.mark.parametrize("header", sorted(_HEADERS))
def test_one_disagreeing_header_among_agreeing_ones_is_refused(header: str) -> None:
    message = parse_message(GOOD)
    with pytest.raises(MessageFormatError) as caught:
        check_headers(message, {**_HEADERS, header: "other"})
    assert caught.value.reason == "header_mismatch"


@pytest.mark.parametrize("header", sorted(_HEADERS))
def test_one_absent_header_is_noted_and_the_others_still_checked(
    header: str, caplog: pytest.LogCaptureFixture
) -> None:
    message = parse_message(GOOD)
    present = {name: value for name, value in _HEADERS.items() if name != header}
    with caplog.at_level(logging.DEBUG, logger="snsmiddleware.message"):
        check_headers(message, present)
    assert f"the {header} header is absent" in caplog.text
    other = sorted(present)[0]
    with pytest.raises(MessageFormatError):
        check_headers(message, {**present, other: "other"})


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        pytest.param(["Notification"], True, id="one-item-list"),
        pytest.param(("Notification", "Notification"), True, id="same-twice-tuple"),
        pytest.param(["Notification", "Other"], False, id="two-values"),
        pytest.param([], False, id="empty-list"),
        pytest.param(b"Notification", False, id="bytes"),
        pytest.param(None, False, id="none"),
        pytest.param(1, False, id="number"),
    ],
)
def test_header_values_that_are_not_plain_strings(value: Any, ok: bool) -> None:
    headers = {"X-Amz-Sns-Message-Type": value, "content-type": "text/plain"}
    if ok:
        assert sns_headers(headers) == {"x-amz-sns-message-type": "Notification"}
    else:
        with pytest.raises(MessageFormatError) as caught:
            sns_headers(headers)
        assert caught.value.reason == "header_mismatch"


def test_header_names_are_read_alike_the_first_time_and_after() -> None:
    spellings = ["X-Amz-Sns-Message-Id", "x-amz-sns-message-id", "X-AMZ-SNS-MESSAGE-ID"]
    for _ in range(2):  # names already seen are looked up, not lowered again
        for spelling in spellings:
            assert sns_headers({spelling: MESSAGE_ID, "Host": "example"}) == {
                "x-amz-sns-message-id": MESSAGE_ID
            }
        with pytest.raises(MessageFormatError) as caught:
            sns_headers({spellings[0]: MESSAGE_ID, spellings[2]: "other"})
        assert caught.value.reason == "header_mismatch"


def test_many_distinct_header_names_do_not_hide_the_sns_ones() -> None:
    for index in range(3000):
        headers: dict[Any, str] = {
            f"X-Custom-{index}": "v",
            "X-Amz-Sns-Topic-Arn": TOPIC,
            index: "not a name",
        }
        assert sns_headers(headers) == {"x-amz-sns-topic-arn": TOPIC}


class _ShoutingName(str):
    """A str subclass with its own lower(): read through its own method, as before."""

    __slots__ = ()

    def lower(self) -> str:
        return "x-amz-sns-message-type"


def test_a_str_subclass_name_is_lowered_by_its_own_method() -> None:
    headers: dict[str, str] = {_ShoutingName("Anything"): "Notification"}
    assert sns_headers(headers) == {"x-amz-sns-message-type": "Notification"}
    assert sns_headers({"Anything": "Notification"}) == {}
