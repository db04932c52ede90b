"""Explain, check by check, why a captured SNS message verifies or not.

Users of every SNS validator ask "which check fails, and why?". This module answers without
a second implementation of the checks: it runs the real :class:`SnsVerifier` and maps the
reason code of the first failure onto the pipeline's stages, which run in a fixed order (so
every stage before the failing one passed, and none after it ran).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from .errors import SnsError
from .message import SnsMessage, SubscriptionConfirmation, parse_message
from .verifier import SnsVerifier


@dataclass(frozen=True)
class Stage:
    """One step of the verification pipeline, with the reason codes it can fail with."""

    name: str
    title: str
    reasons: frozenset[str]


#: The pipeline, in the order the verifier runs it.
STAGES: Final = (
    Stage(
        "envelope",
        "well-formed SNS message",
        frozenset(
            {
                "invalid_json",
                "duplicate_key",
                "bad_encoding",
                "bad_field",
                "missing_field",
                "unknown_type",
                "bad_timestamp",
                "header_mismatch",
                "raw_delivery",
            }
        ),
    ),
    Stage("topic", "TopicArn on the allowlist", frozenset({"topic_not_allowed", "bad_topic_arn"})),
    Stage(
        "signature_version",
        "SignatureVersion allowed",
        frozenset({"signature_version_not_allowed"}),
    ),
    Stage(
        "certificate_url",
        "SigningCertURL pinned to the topic's SNS host",
        frozenset({"bad_cert_url"}),
    ),
    Stage(
        "subscribe_url",
        "SubscribeURL confirms this topic and token only",
        frozenset({"bad_subscribe_url"}),
    ),
    Stage(
        "freshness",
        "Timestamp inside the freshness window",
        frozenset({"stale_message", "future_message"}),
    ),
    Stage(
        "certificate",
        "signing certificate genuine and valid",
        frozenset(
            {
                "certificate_unavailable",
                "certificate_not_found",
                "certificate_too_large",
                "bad_certificate",
                "certificate_name_mismatch",
                "certificate_expired",
                "certificate_not_yet_valid",
            }
        ),
    ),
    Stage("signature", "signature matches the signed fields", frozenset({"bad_signature"})),
)

#: What a failure usually means, and what to do about it.
HINTS: Final[Mapping[str, str]] = {
    "invalid_json": "The body must be the JSON document SNS POSTs, byte for byte.",
    "duplicate_key": "A key appears twice: parsers disagree on such documents, so it is refused.",
    "bad_encoding": "The body must be UTF-8 text without unpaired surrogates.",
    "bad_field": "Every field must be a JSON string (MessageAttributes aside); Subject, Token "
    "and SubscribeURL hold no line break or control character.",
    "missing_field": "A field SNS always sends for this Type is missing: was it edited?",
    "unknown_type": "Type must be Notification, SubscriptionConfirmation or "
    "UnsubscribeConfirmation.",
    "bad_timestamp": "Timestamp must look like 2024-01-31T12:00:00.000Z.",
    "raw_delivery": "Raw message delivery carries no signature; turn it off for the subscription.",
    "topic_not_allowed": "The message comes from a topic you did not allow (--topic). "
    "A valid signature alone does not make a message yours.",
    "bad_topic_arn": "TopicArn is not an SNS topic ARN of a supported partition, or its "
    "region does not exist there (a region newer than your botocore: upgrade it, or name the "
    "region in --topic).",
    "signature_version_not_allowed": "SignatureVersion must be 1 (SHA1) or 2 (SHA256), "
    "and 2 when SHA1 is refused.",
    "bad_cert_url": "The certificate must come from https://sns.<topic region>.<partition "
    "domain>/SimpleNotificationService-<hex>.pem exactly; anything else could be an "
    "attacker's certificate.",
    "bad_subscribe_url": "The SubscribeURL must be the topic region's SNS host with only "
    "Action=ConfirmSubscription and this message's TopicArn and Token.",
    "stale_message": "SNS retries for at most an hour with the original Timestamp; older "
    "messages are replays. For a captured message use --at message.",
    "future_message": "The Timestamp is ahead of this clock: check the system time. SNS "
    "would be answered 503 and retry.",
    "certificate_unavailable": "The certificate could not be downloaded now; SNS would be "
    "answered 503 and retry. For offline checks use --offline CERT.pem.",
    "certificate_not_found": "The certificate host answered without a certificate.",
    "certificate_too_large": "The certificate URL served far more than a certificate.",
    "bad_certificate": "The URL must serve exactly one PEM certificate with an RSA key "
    ">= 2048 bits.",
    "certificate_name_mismatch": "The certificate does not carry a name AWS gives SNS signing "
    "certificates in the topic's region (snsmiddleware.partitions.SIGNING_CERTIFICATE_NAMES).",
    "certificate_expired": "The signing certificate has expired at the checked time; "
    "old captures verify with --at message.",
    "certificate_not_yet_valid": "The signing certificate is not valid yet at the checked time: "
    "check the system time. SNS would be answered 503 and retry.",
    "bad_signature": "A signed field (Message, MessageId, Subject, Timestamp, TopicArn, Type; "
    "Token and SubscribeURL for confirmations) was changed after signing, Subject was "
    "added or removed, or the message was re-encoded by something that rewrote its values.",
}


@dataclass
class StageResult:
    """What one verification stage came to.

    ``status`` is ``passed``, ``failed`` (``detail`` then holds ``reason: detail`` of the
    error), ``not_run`` (an earlier stage failed) or ``not_applicable`` (the stage does not
    concern this message type, such as the SubscribeURL check for a Notification).
    """

    stage: Stage
    status: str
    detail: str = ""


@dataclass
class Diagnosis:
    """The outcome of :func:`diagnose`."""

    message: SnsMessage | None
    stages: list[StageResult] = field(default_factory=list)
    error: SnsError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def hint(self) -> str:
        return HINTS.get(self.error.reason, "") if self.error else ""


def _failing_stage(reason: str) -> int:
    for index, stage in enumerate(STAGES):
        if reason in stage.reasons:
            return index
    return len(STAGES) - 1


def diagnose(body: bytes, verifier: SnsVerifier) -> Diagnosis:
    """Verify ``body`` with ``verifier`` and report each stage's outcome."""
    message: SnsMessage | None = None
    try:
        message = parse_message(body)
        verifier.verify_message(message)
    except SnsError as exc:
        failed_at = _failing_stage(exc.reason)
        results = [
            StageResult(stage, "passed" if i < failed_at else "not_run")
            for i, stage in enumerate(STAGES)
        ]
        results[failed_at] = StageResult(STAGES[failed_at], "failed", f"{exc.reason}: {exc.detail}")
        return _mark_not_applicable(Diagnosis(message, results, exc))
    return _mark_not_applicable(
        Diagnosis(message, [StageResult(stage, "passed") for stage in STAGES])
    )


def _mark_not_applicable(diagnosis: Diagnosis) -> Diagnosis:
    """Only SubscriptionConfirmations carry a SubscribeURL that gets checked."""
    if not isinstance(diagnosis.message, SubscriptionConfirmation):
        for result in diagnosis.stages:
            if result.stage.name == "subscribe_url" and result.status == "passed":
                result.status = "not_applicable"
    return diagnosis
