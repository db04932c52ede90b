"""SNS message envelopes: strict parsing into typed, immutable objects.

Raw in, typed out: every field is kept exactly as it arrived, because the signature covers the
received strings (re-formatting a timestamp or a URL breaks genuine messages). Typed views
such as :attr:`SnsMessage.sent_at` are derived from those strings.

Parsing is structural only: nothing here proves AWS sent the message. That is
:class:`snsmiddleware.verifier.SnsVerifier`'s job. Everything here is pure: no network, no WSGI.

What "strict" means, and why:

* the body must be UTF-8 (``json.loads`` would otherwise guess UTF-16/32 from the bytes),
  and no key or string value of an object may hold an unpaired surrogate (a ``"\\ud800"``
  escape): no signer can sign one, and refusing it here costs no certificate download;
* one JSON object, no duplicate keys at any depth (two parsers could read two different
  messages from the same bytes), no ``NaN``/``Infinity``;
* every top-level value is a string, except ``MessageAttributes``, an object of
  ``{"Type": str, "Value": str}`` objects;
* ``Type`` is one of the three SNS types and each carries its required fields;
* ``MessageId`` is a short token (it becomes a store key and a log field);
* ``Subject``, ``Token`` and ``SubscribeURL`` hold no line break or other control character.
  SNS refuses them in a Subject at Publish ("UTF-8 text with no line breaks or control
  characters") and never writes them into a token or URL, so no genuine message is lost.
  What it buys: the string to sign (``Key\\nValue\\n`` lines) splits one way only. Every
  other signed value is one line already (MessageId and Timestamp by the rules here, Type by
  its three values, TopicArn by the allowlist, checked before the signature), so a Message
  that embeds ``\\nMessageId\\n<id>\\nSubject\\n...`` cannot be re-split into a second
  message with another MessageId and a chosen Subject that verifies with the same signature.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from json.scanner import make_scanner
from types import MappingProxyType
from typing import Any, Final, TypeVar, cast

from .errors import MessageFormatError, excerpt
from .reasons import Reason

log = logging.getLogger(__name__)

NOTIFICATION: Final = "Notification"
SUBSCRIPTION_CONFIRMATION: Final = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION: Final = "UnsubscribeConfirmation"
MESSAGE_TYPES: Final = frozenset(
    {NOTIFICATION, SUBSCRIPTION_CONFIRMATION, UNSUBSCRIBE_CONFIRMATION}
)

#: The Subject of the Notification AWS Budgets publishes when a topic is attached to a budget.
TOPIC_VERIFIED_SUBJECT: Final = "SNS Topic Verified!"

_COMMON_FIELDS: Final = (
    "Type",
    "MessageId",
    "TopicArn",
    "Message",
    "Timestamp",
    "SignatureVersion",
    "Signature",
    "SigningCertURL",
)
_CONFIRMATION_FIELDS: Final = ("Token", "SubscribeURL")
_COMMON_FIELDS_ORDER: Final = _COMMON_FIELDS + _CONFIRMATION_FIELDS
_REQUIRED_FIELDS: Final[dict[str, frozenset[str]]] = {
    NOTIFICATION: frozenset(_COMMON_FIELDS),
    SUBSCRIPTION_CONFIRMATION: frozenset(_COMMON_FIELDS + _CONFIRMATION_FIELDS),
    UNSUBSCRIBE_CONFIRMATION: frozenset(_COMMON_FIELDS + _CONFIRMATION_FIELDS),
}

# SNS message ids are UUIDs; allow a little more, but nothing that could smuggle control
# characters or separators into a store key or a log line.
_MESSAGE_ID_GRAMMAR: Final = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_MESSAGE_ID: Final = re.compile(_MESSAGE_ID_GRAMMAR)
# Unicode's control characters (C0, DEL, C1), line breaks included.
_CONTROL_CHARACTER: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# ISO 8601 as SNS writes it: UTC with a "Z", milliseconds (fraction optional for leniency
# towards emulators, but nothing else: no offsets, no spaces).
# (Spelt out digit by digit: sre matches that faster than \d{4}.)
_TIMESTAMP_GRAMMAR: Final = (
    r"[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
    r"(?:\.[0-9]{1,9})?Z"
)
_TIMESTAMP: Final = re.compile(_TIMESTAMP_GRAMMAR)


_NO_ATTRIBUTES: Final[Mapping[str, MessageAttribute]] = MappingProxyType({})
#: Marks an absent ``MessageAttributes`` (``null`` is a present, bad value).
_ABSENT: Final = object()


@dataclass(frozen=True, slots=True)
class MessageAttribute:
    """One entry of a Notification's ``MessageAttributes`` (not covered by the signature)."""

    type: str
    value: str


@dataclass(frozen=True, kw_only=True)
class SnsMessage:
    """Fields common to the three SNS message types, exactly as received.

    :param fields: every top-level string field of the JSON document, unchanged; the
        signature is computed over these.
    """

    type: str
    message_id: str
    topic_arn: str
    message: str
    timestamp: str
    signature_version: str
    signature: str = field(repr=False)
    signing_cert_url: str
    #: ``timestamp`` as an aware UTC datetime, parsed once.
    sent_at: datetime = field(repr=False)
    fields: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class Notification(SnsMessage):
    """A message published to the topic: the only type the wrapped app ever sees.

    ``subject`` is ``None`` when the key was absent (which changes the string to sign),
    and ``""`` only if SNS sent an empty subject.
    """

    subject: str | None = None
    unsubscribe_url: str | None = field(default=None, repr=False)
    message_attributes: Mapping[str, MessageAttribute] = field(
        default_factory=lambda: _NO_ATTRIBUTES
    )


def is_topic_verification(message: SnsMessage) -> bool:
    """True for Budgets' "SNS Topic Verified!" notification.

    It lives with the message model (not in :mod:`snsmiddleware.budgets`) because the
    middleware answers it too, and the SNS layers do not depend on the Budgets ones.
    """
    return isinstance(message, Notification) and message.subject == TOPIC_VERIFIED_SUBJECT


@dataclass(frozen=True, kw_only=True)
class SubscriptionConfirmation(SnsMessage):
    """Sent once when a subscription is created; answered by the middleware itself."""

    token: str = field(repr=False)
    subscribe_url: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class UnsubscribeConfirmation(SnsMessage):
    """Sent when the subscription is deleted; logged, never acted upon automatically."""

    token: str = field(repr=False)
    subscribe_url: str = field(repr=False)


ConfirmationMessage = SubscriptionConfirmation | UnsubscribeConfirmation


def parse_timestamp(value: str) -> datetime:
    """Parse an SNS ``Timestamp`` strictly into an aware UTC datetime.

    The grammar is checked by a regular expression; the C parser of ``fromisoformat`` (which
    accepts ``Z`` since Python 3.11) then does the conversion and rejects impossible dates.
    """
    if _TIMESTAMP.fullmatch(value) is None:
        raise MessageFormatError(
            "Timestamp is not an ISO 8601 UTC time like 2024-01-31T12:00:00.000Z",
            reason=Reason.BAD_TIMESTAMP,
        )
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise MessageFormatError(
            "Timestamp is not a real date", reason=Reason.BAD_TIMESTAMP
        ) from None


def _refuse_lone_surrogate(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MessageFormatError(
            "a string holds an unpaired surrogate (not Unicode text)", reason=Reason.BAD_ENCODING
        ) from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build one JSON object, refusing repeated keys (two parsers could read two messages).

    Alone, it is the hook for documents that cannot hold a surrogate, almost every genuine
    one: the per-string check of :func:`_object_from_pairs` costs more than the scan."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise MessageFormatError("the JSON object repeats a key", reason=Reason.DUPLICATE_KEY)
    return result


def _object_from_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build one JSON object, refusing repeated keys and unpaired surrogates.

    Every object of the document passes here, so its keys and string values are all the
    strings that can reach a message (strings inside arrays are refused later as bad
    fields). An ASCII string holds no surrogate: only non-ASCII ones are encoded to check.
    Used only for documents that may hold a surrogate escape (see :func:`_may_hold_surrogate`).
    """
    result = _unique_keys(pairs)
    for key, value in pairs:
        if not key.isascii():
            _refuse_lone_surrogate(key)
        if type(value) is str and not value.isascii():
            _refuse_lone_surrogate(value)
    return result


# A JSON escape of a surrogate code point: "\u" and D800-DFFF, hex digits in either case.
# It also matches an escaped backslash followed by the letters "ud8..": a false alarm that
# only sends the document down the slower path, which checks the decoded strings themselves.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _may_hold_surrogate(text: str) -> bool:
    """False only if no string of this JSON text can decode to a surrogate.

    The strict UTF-8 decode refuses encoded surrogates, so the only way one can reach a
    decoded string is a ``\\uD800``-``\\uDFFF`` escape. Most messages hold no backslash at
    all (a quick search); the others are searched from their first backslash on. The
    per-string encode this avoids costs more than both, as it runs over the whole Message.
    """
    first = text.find("\\")
    return first >= 0 and _SURROGATE_ESCAPE.search(text, first) is not None


def _reject_constant(name: str) -> None:
    raise MessageFormatError(f"JSON constant {name} is not allowed", reason=Reason.INVALID_JSON)


def _scanner(object_pairs_hook: Callable[[list[tuple[str, Any]]], dict[str, Any]]) -> Any:
    decoder = json.JSONDecoder(object_pairs_hook=object_pairs_hook, parse_constant=_reject_constant)
    return make_scanner(cast(Any, decoder))


# Built once: json.loads() with hooks would build a new decoder for every message.
# The C scanner is called directly: JSONDecoder.decode() adds only Python-level whitespace
# handling around it, redone here with JSON's own four whitespace characters.
_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = _scanner(_object_from_pairs)
#: The same scanner for text that holds no surrogate escape: duplicate keys are still refused.
_SCAN_WITHOUT_SURROGATES: Final[Callable[[str, int], tuple[Any, int]]] = _scanner(_unique_keys)
_JSON_WHITESPACE: Final = " \t\n\r"


def _decode_document(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode()  # UTF-8, strict (naming the codec costs a look-up per call)
    except UnicodeDecodeError:
        raise MessageFormatError("the body is not UTF-8", reason=Reason.BAD_ENCODING) from None
    try:
        # Bodies start with "{" and end with "}": whitespace is stripped only when present.
        start = 0 if text[:1] == "{" else len(text) - len(text.lstrip(_JSON_WHITESPACE))
        scan = _SCAN if _may_hold_surrogate(text) else _SCAN_WITHOUT_SURROGATES
        document, end = scan(text, start)
        if end != len(text) and text[end:].strip(_JSON_WHITESPACE):
            raise ValueError("extra data after the JSON value")
    except MessageFormatError:
        raise
    except RecursionError:
        raise MessageFormatError(
            "the JSON is nested too deeply", reason=Reason.INVALID_JSON
        ) from None
    except (ValueError, StopIteration):
        raise MessageFormatError("the body is not valid JSON", reason=Reason.INVALID_JSON) from None
    if type(document) is not dict:
        raise MessageFormatError("the body is not a JSON object", reason=Reason.INVALID_JSON)
    return document


def _parse_attributes(value: Any) -> Mapping[str, MessageAttribute]:
    if not isinstance(value, dict):
        raise MessageFormatError("MessageAttributes is not an object", reason=Reason.BAD_FIELD)
    attributes: dict[str, MessageAttribute] = {}
    for name, entry in value.items():
        if (
            not isinstance(entry, dict)
            or set(entry) != {"Type", "Value"}
            or not isinstance(entry["Type"], str)
            or not isinstance(entry["Value"], str)
        ):
            raise MessageFormatError(
                'each MessageAttributes entry must be {"Type": string, "Value": string}',
                reason=Reason.BAD_FIELD,
            )
        attributes[name] = MessageAttribute(entry["Type"], entry["Value"])
    return MappingProxyType(attributes)


#: Lambda's spelling of the unsigned URL keys -> the HTTP(S) spelling.
_LAMBDA_SPELLINGS: Final = (
    ("SigningCertUrl", "SigningCertURL"),
    ("UnsubscribeUrl", "UnsubscribeURL"),
)


def _accept_lambda_spelling(document: dict[str, Any]) -> None:
    """Map an envelope as SNS hands it to Lambda onto the HTTP(S) spelling, in place.

    Lambda (and copies of its events) spell ``SigningCertUrl`` / ``UnsubscribeUrl`` and may
    carry ``"Subject": null`` for "no subject". Neither key name is signed and a null Subject
    is signed as an absent one, so the signature verifies once mapped (AWS's PHP, JS and Ruby
    validators do the same). Both spellings at once are a duplicate key: two readers could
    pick different URLs. ``null`` stays a ``bad_field`` in the HTTP(S) spelling, which SNS
    never sends.
    """
    lambda_spelled = "SigningCertUrl" in document
    for lambda_key, http_key in _LAMBDA_SPELLINGS:
        if lambda_key in document:
            if http_key in document:
                raise MessageFormatError(
                    f"the envelope has both {lambda_key} and {http_key}",
                    reason=Reason.DUPLICATE_KEY,
                )
            document[http_key] = document.pop(lambda_key)
    if lambda_spelled and "Subject" in document and document["Subject"] is None:
        del document["Subject"]


def parse_message(body: bytes) -> SnsMessage:
    """Parse the bytes of an SNS delivery into a typed message, strictly.

    Accepts the HTTP(S) envelope and the one SNS hands to Lambda (``SigningCertUrl``,
    ``UnsubscribeUrl``, ``"Subject": null``), which :attr:`SnsMessage.fields` then holds in
    the HTTP(S) spelling. Raises :class:`~snsmiddleware.errors.MessageFormatError` (400) for
    anything that is not a well-formed envelope. Proves nothing about who sent it.
    """
    document = _decode_document(body)
    if "SigningCertUrl" in document or "UnsubscribeUrl" in document:
        _accept_lambda_spelling(document)
    attributes_value = document.pop("MessageAttributes", _ABSENT)
    for key, value in document.items():
        if type(value) is not str:
            raise MessageFormatError(
                f"field {excerpt(key)} is not a string", reason=Reason.BAD_FIELD
            )
    fields: dict[str, str] = document

    message_type = fields.get("Type")
    required = _REQUIRED_FIELDS.get(message_type)  # type: ignore[arg-type]
    if required is None:
        raise MessageFormatError("Type is not an SNS message type", reason=Reason.UNKNOWN_TYPE)
    try:  # reading the required fields is their presence check (KeyError: one is missing)
        values: dict[str, Any] = {
            "type": message_type,
            "message_id": fields["MessageId"],
            "topic_arn": fields["TopicArn"],
            "message": fields["Message"],
            "timestamp": fields["Timestamp"],
            "signature_version": fields["SignatureVersion"],
            "signature": fields["Signature"],
            "signing_cert_url": fields["SigningCertURL"],
            "sent_at": None,  # parsed below, after the checks that come first
            "fields": MappingProxyType(fields),
        }
        if message_type != NOTIFICATION:
            values["token"] = fields["Token"]
            values["subscribe_url"] = fields["SubscribeURL"]
    except KeyError:
        missing = sorted(required - fields.keys(), key=_COMMON_FIELDS_ORDER.index)
        raise MessageFormatError(
            f"{message_type} lacks required field(s): {', '.join(missing)}",
            reason=Reason.MISSING_FIELD,
        ) from None
    if _MESSAGE_ID.fullmatch(values["message_id"]) is None:
        raise MessageFormatError("MessageId is not a plain identifier", reason=Reason.BAD_FIELD)
    if message_type == NOTIFICATION:
        subject = fields.get("Subject")
        # isprintable() is False for every control character: the full check only then.
        if subject is not None and not subject.isprintable():
            _check_single_line(fields, ("Subject",))
    else:
        _check_single_line(fields, _CONFIRMATION_FIELDS)
        if attributes_value is not _ABSENT:
            raise MessageFormatError(
                "MessageAttributes only belongs in a Notification", reason=Reason.BAD_FIELD
            )
    values["sent_at"] = parse_timestamp(values["timestamp"])
    if message_type == NOTIFICATION:
        values["subject"] = subject
        values["unsubscribe_url"] = fields.get("UnsubscribeURL")
        values["message_attributes"] = (
            _NO_ATTRIBUTES if attributes_value is _ABSENT else _parse_attributes(attributes_value)
        )
        return _construct(Notification, values)
    if message_type == SUBSCRIPTION_CONFIRMATION:
        return _construct(SubscriptionConfirmation, values)
    return _construct(UnsubscribeConfirmation, values)


def _check_single_line(fields: Mapping[str, str], names: tuple[str, ...]) -> None:
    """Refuse a line break or control character in signed fields SNS keeps on one line, so
    the string to sign splits one way only (see the module docstring)."""
    for name in names:
        value = fields.get(name)
        # isprintable() is False for every control character: a fast pre-check.
        if value is not None and not value.isprintable() and _CONTROL_CHARACTER.search(value):
            raise MessageFormatError(
                f"{name} holds a line break or control character", reason=Reason.BAD_FIELD
            )


_Message = TypeVar("_Message", bound=SnsMessage)


def _construct(cls: type[_Message], values: dict[str, Any]) -> _Message:
    """Build a frozen message without its generated ``__init__``.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``; filling
    the instance dictionary in one call is several times faster on the verify hot path.
    ``values`` must name every field (the parser does), so the result equals what
    ``cls(**values)`` would build.
    """
    instance = object.__new__(cls)
    instance.__dict__.update(values)
    return instance


def check_headers(message: SnsMessage, headers: Mapping[str, str]) -> None:
    """Check the ``x-amz-sns-*`` headers that are present against the body.

    SNS sends the message type, id and topic headers, but it does not sign them, so they
    prove nothing and requiring them buys no security: CloudFront does not forward them by
    default, some proxies and replay tools drop them. A header that is *present and
    disagrees* with the body means someone else assembled the request (400
    ``header_mismatch``); an absent one is only noted at DEBUG. Raw message delivery
    (``x-amz-sns-rawdelivery: true``) carries no signature and is refused by the caller
    before parsing; see :func:`check_not_raw`.

    :param headers: lower-case header names to values (see :func:`sns_headers`).
    """
    if (
        headers.get("x-amz-sns-message-type") == message.type
        and headers.get("x-amz-sns-message-id") == message.message_id
        and headers.get("x-amz-sns-topic-arn") == message.topic_arn
    ):
        return  # the usual case, all three present and agreeing: nothing to note or refuse
    for header, value in (
        ("x-amz-sns-message-type", message.type),
        ("x-amz-sns-message-id", message.message_id),
        ("x-amz-sns-topic-arn", message.topic_arn),
    ):
        got = headers.get(header)
        if got is None:
            log.debug("the %s header is absent (accepted: SNS does not sign it)", header)
        elif got != value:
            raise MessageFormatError(
                f"the {header} header disagrees with the body", reason=Reason.HEADER_MISMATCH
            )


#: The request headers the verifier reads, by their lower-case names.
SNS_HEADER_NAMES: Final = frozenset(
    {
        "x-amz-sns-message-type",
        "x-amz-sns-message-id",
        "x-amz-sns-topic-arn",
        "x-amz-sns-rawdelivery",
    }
)


def sns_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """The ``x-amz-sns-*`` headers of any mapping, under lower-case names.

    HTTP header names are case-insensitive: Django's ``request.headers``, a Lambda event or
    a dict copied from a log spell them ``X-Amz-Sns-Message-Type``; API Gateway's
    ``multiValueHeaders`` wrap each value in a list. A name given twice (in two spellings, or
    a list of two values) with different values, or a value that is not a string, is refused
    (400 ``header_mismatch``): two readers could see two different requests.
    """
    found: dict[str, str] = {}
    for name, value in headers.items():
        if name in SNS_HEADER_NAMES:  # already lower-case, as the middleware hands them over
            lower = name
        elif isinstance(name, str):
            lower = name.lower()
            if lower not in SNS_HEADER_NAMES:
                continue
        else:
            continue
        if type(value) is not str:  # the usual plain string skips the other shapes' checks
            value = _one_header_value(lower, value)
        if found.setdefault(lower, value) != value:
            raise MessageFormatError(
                f"the {lower} header is given twice with different values",
                reason=Reason.HEADER_MISMATCH,
            )
    return found


def _one_header_value(name: str, value: Any) -> str:
    """The one string of a header value that is not a plain ``str``, or 400."""
    if (
        isinstance(value, list | tuple)
        and all(isinstance(item, str) for item in value)
        and len(set(value)) == 1
    ):
        value = value[0]  # API Gateway's multiValueHeaders: one value, in a list
    if not isinstance(value, str):
        raise MessageFormatError(
            f"the {name} header is not one string", reason=Reason.HEADER_MISMATCH
        )
    return value


def check_not_raw(headers: Mapping[str, str]) -> None:
    """Refuse raw message delivery: the body is the bare payload, with nothing to verify."""
    raw = headers.get("x-amz-sns-rawdelivery", "")
    if raw != "" and raw.strip().lower() == "true":  # usually absent: nothing to normalize
        raise MessageFormatError(
            "raw message delivery cannot be verified; turn RawMessageDelivery off for this "
            "subscription",
            reason=Reason.RAW_DELIVERY,
        )
