"""What must hold for *any* input to the envelope parser and the URL checks.

Each ``check_*`` function takes arbitrary bytes and either returns (the input was refused
with an :class:`~snsmiddleware.errors.SnsError`, or accepted and every invariant held) or
raises: an ``AssertionError`` for a broken invariant, anything else for an exception that
would have escaped as a 500. atheris treats both as crashes; pytest as failures.

Invariants are checked against independent oracles (the standard library's JSON parser and
URL splitter, a grammar written out here), never against the code under test itself.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

from snsmiddleware.errors import ConfigurationError, MessageFormatError, PolicyError, SnsError
from snsmiddleware.message import MESSAGE_TYPES, Notification, parse_message
from snsmiddleware.policy import (
    EmulatorEndpoint,
    TopicArn,
    certificate_url,
    parse_topic_arn,
    subscribe_url,
)
from snsmiddleware.signing import string_to_sign

#: Topics of each partition the URL checks are tried against.
TOPIC_ARNS: Final = (
    "arn:aws:sns:us-east-1:123456789012:budget-alerts",
    "arn:aws-cn:sns:cn-north-1:123456789012:t",
    "arn:aws-us-gov:sns:us-gov-west-1:123456789012:t",
    "arn:aws-eusc:sns:eusc-de-east-1:123456789012:t",
    "arn:aws-iso-e:sns:eu-isoe-west-1:123456789012:t",
)
#: The SNS hosts of every AWS partition (issue 11 added EUSC and the ISO partitions).
_SNS_HOST: Final = (
    r"sns\.[a-z0-9-]+\.(amazonaws\.com(\.cn)?|amazonaws\.eu|c2s\.ic\.gov|sc2s\.sgov\.gov"
    r"|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)"
)
DEFAULT_TOKEN: Final = "2336412f37fb687f5d51e6e2425dacbbab295b8a534f"
_MESSAGE_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _decode(data: bytes) -> str:
    # Invalid UTF-8 becomes lone surrogates: the checks must survive those too.
    return data.decode("utf-8", "surrogateescape")


# --- the envelope parser ----------------------------------------------------------------------


def check_message(data: bytes) -> None:
    """parse_message: a 400 MessageFormatError, or a message both JSON parsers agree on."""
    try:
        message = parse_message(data)
    except MessageFormatError as exc:
        assert exc.status == 400 and exc.reason, exc
        return
    fields = dict(message.fields)
    assert all(type(key) is str and type(value) is str for key, value in fields.items())
    assert message.type in MESSAGE_TYPES
    assert _MESSAGE_ID.fullmatch(message.message_id), message.message_id
    assert message.sent_at.utcoffset() is not None
    assert message.timestamp == fields["Timestamp"]

    # The standard library reads the same document (no second message in the same bytes).
    document = json.loads(data.decode("utf-8"))
    attributes = document.pop("MessageAttributes", None)
    assert _in_http_spelling(document) == fields
    if isinstance(message, Notification):
        assert {name: (a.type, a.value) for name, a in message.message_attributes.items()} == {
            name: (entry["Type"], entry["Value"]) for name, entry in (attributes or {}).items()
        }

    # Re-serialised differently, it parses to the same fields.
    again = dict(fields)
    if attributes is not None:
        again["MessageAttributes"] = attributes
    for options in ({}, {"indent": 1, "sort_keys": True}):
        reparsed = parse_message(json.dumps(again, **options).encode())
        assert dict(reparsed.fields) == fields

    try:
        signed = string_to_sign(message)
    except MessageFormatError as exc:
        assert exc.reason == "bad_encoding"
    else:
        assert signed.decode("utf-8").startswith("Message\n")


def _in_http_spelling(document: dict[str, Any]) -> dict[str, Any]:
    """The oracle for Lambda's spelling of an envelope (accepted since issue 11): its two
    URL keys under their HTTP names, and a null Subject (Lambda only) as no Subject."""
    lambda_spelled = "SigningCertUrl" in document
    renamed = {"SigningCertUrl": "SigningCertURL", "UnsubscribeUrl": "UnsubscribeURL"}
    spelled = {renamed.get(key, key): value for key, value in document.items()}
    assert len(spelled) == len(document), "both spellings of a key were accepted"
    if lambda_spelled and spelled.get("Subject", "") is None:
        del spelled["Subject"]
    return spelled


# --- the URL checks ---------------------------------------------------------------------------

_HEX_PEM: Final = r"/SimpleNotificationService-[0-9a-f]{1,64}\.pem"


def _check_certificate_url(url: str, topic: TopicArn) -> None:
    try:
        rebuilt = certificate_url(url, topic)
    except PolicyError as exc:
        assert exc.reason == "bad_cert_url"
        return
    assert type(rebuilt) is str and rebuilt == url  # only canonical URLs pass, unchanged
    assert re.fullmatch(f"https://{re.escape(topic.sns_host)}{_HEX_PEM}", rebuilt, re.ASCII)
    parts = urlsplit(rebuilt)
    assert (parts.scheme, parts.netloc, parts.query, parts.fragment) == (
        "https",
        topic.sns_host,
        "",
        "",
    )
    assert parts.hostname == topic.sns_host and parts.port is None and parts.username is None


def _check_subscribe_url(url: str, topic: TopicArn, topic_arn: str, token: str) -> None:
    try:
        rebuilt = subscribe_url(url, topic, topic_arn, token)
    except PolicyError as exc:
        assert exc.reason == "bad_subscribe_url"
        return
    query = urlencode(
        [("Action", "ConfirmSubscription"), ("TopicArn", topic_arn), ("Token", token)]
    )
    assert rebuilt == f"https://{topic.sns_host}/?{query}"
    parts = urlsplit(rebuilt)
    assert (parts.netloc, parts.path, parts.fragment) == (topic.sns_host, "/", "")
    assert parse_qsl(parts.query, strict_parsing=True) == [
        ("Action", "ConfirmSubscription"),
        ("TopicArn", topic_arn),
        ("Token", token),
    ]


def _check_topic_arn(text: str) -> None:
    try:
        topic = parse_topic_arn(text)
    except PolicyError as exc:
        assert exc.reason == "bad_topic_arn"
        return
    assert f"arn:{topic.partition}:sns:{topic.region}:{topic.account}:{topic.name}" == text
    assert re.fullmatch(_SNS_HOST, topic.sns_host, re.ASCII), topic.sns_host


def _check_emulator(base: str, url: str, token: str) -> None:
    try:
        endpoint = EmulatorEndpoint(base)
    except ConfigurationError:
        return
    base_parts = urlsplit(endpoint.base)
    assert base_parts.scheme in ("http", "https") and base_parts.username is None
    assert (base_parts.path, base_parts.query, base_parts.fragment) == ("", "", "")
    try:
        rebuilt = endpoint.certificate_url(url)
    except PolicyError as exc:
        assert exc.reason == "bad_cert_url"
    else:
        assert rebuilt == url and rebuilt.startswith(endpoint.base + "/")
        parts = urlsplit(rebuilt)
        assert (parts.netloc, parts.query, parts.fragment) == (base_parts.netloc, "", "")
        segments = parts.path.split("/")
        assert ".." not in segments and "." not in segments and "%" not in parts.path
    topic_arn = TOPIC_ARNS[0]
    try:
        confirm = endpoint.subscribe_url(url, topic_arn, token)
    except PolicyError as exc:
        assert exc.reason == "bad_subscribe_url"
    else:
        query = urlencode(
            [("Action", "ConfirmSubscription"), ("TopicArn", topic_arn), ("Token", token)]
        )
        assert confirm == f"{endpoint.base}/?{query}"


def check_urls(data: bytes) -> None:
    """The URL and ARN checks: refused with their own reason code, or accepted canonical.

    The first line may name one check, with its arguments on the following lines (the seed
    corpus does); otherwise the whole input goes through every check:

    * ``cert`` / URL
    * ``subscribe`` / token / URL
    * ``emulator`` / base / URL (the token is the default one)
    * ``arn`` / text
    """
    text = _decode(data)
    kind, _, rest = text.partition("\n")
    topics = [parse_topic_arn(arn) for arn in TOPIC_ARNS]
    try:
        if kind == "cert":
            for topic in topics:
                _check_certificate_url(rest, topic)
        elif kind == "subscribe":
            token, _, url = rest.partition("\n")
            for arn, topic in zip(TOPIC_ARNS, topics, strict=True):
                _check_subscribe_url(url, topic, arn, token)
        elif kind == "emulator":
            base, _, url = rest.partition("\n")
            _check_emulator(base, url, DEFAULT_TOKEN)
        elif kind == "arn":
            _check_topic_arn(rest)
        else:
            for arn, topic in zip(TOPIC_ARNS, topics, strict=True):
                _check_certificate_url(text, topic)
                _check_subscribe_url(text, topic, arn, DEFAULT_TOKEN)
            _check_topic_arn(text)
            _check_emulator(kind, rest, DEFAULT_TOKEN)
    except SnsError as exc:  # pragma: no cover - a refusal with the wrong reason code
        raise AssertionError(f"unexpected refusal {exc!r}") from exc


def seed_inputs(seeds: Any) -> list[bytes]:
    """The bytes of every file in the directories ``seeds`` and below (for smoke runs)."""
    return [
        path.read_bytes()
        for directory in seeds
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    ]
