"""Explain, check by check, why a captured SNS message verifies or not.

Users of every SNS validator ask "which check fails, and why?". This module answers without
a second implementation of the checks: it runs the real :class:`SnsVerifier` and maps the
reason code of the first failure onto the pipeline's stages, which run in a fixed order (so
every stage before the failing one passed, and none after it ran). Every code of the
catalogue (:class:`~snsmiddleware.reasons.Reason`) is mapped explicitly
(:data:`STAGE_OF_REASON`); a code that belongs to no stage (one a callable of the user's
raised) leaves every stage ``unknown`` instead of blaming one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from .errors import SnsError
from .message import SnsMessage, SubscriptionConfirmation, parse_message
from .reasons import Reason
from .verifier import SnsVerifier


@dataclass(frozen=True)
class Stage:
    """One step of the verification pipeline, with the reason codes it can fail with."""

    name: str
    title: str
    reasons: frozenset[str]


#: The stage of the pipeline at which each reason code is raised, for every code of the
#: catalogue; ``None`` for the codes no verification check raises: the request's transport
#: (method, length, credentials), delivery and confirmation (after verification), the
#: budget app and the mailers, and the error classes' defaults (only a callable of the
#: user's, such as a ``fetch_certificate``, raises those: the diagnosis cannot tell where).
#: ``tests/test_reasons.py`` checks that no code is missing.
STAGE_OF_REASON: Final[Mapping[Reason, str | None]] = {
    Reason.INVALID_JSON: "envelope",
    Reason.DUPLICATE_KEY: "envelope",
    Reason.BAD_ENCODING: "envelope",
    Reason.BAD_FIELD: "envelope",
    Reason.MISSING_FIELD: "envelope",
    Reason.UNKNOWN_TYPE: "envelope",
    Reason.BAD_TIMESTAMP: "envelope",
    Reason.HEADER_MISMATCH: "envelope",
    Reason.RAW_DELIVERY: "envelope",
    Reason.TOPIC_NOT_ALLOWED: "topic",
    Reason.BAD_TOPIC_ARN: "topic",
    Reason.SIGNATURE_VERSION_NOT_ALLOWED: "signature_version",
    Reason.BAD_CERT_URL: "certificate_url",
    Reason.BAD_SUBSCRIBE_URL: "subscribe_url",
    Reason.STALE_MESSAGE: "freshness",
    Reason.FUTURE_MESSAGE: "freshness",
    Reason.CERTIFICATE_UNAVAILABLE: "certificate",
    Reason.CERTIFICATE_NOT_FOUND: "certificate",
    Reason.CERTIFICATE_TOO_LARGE: "certificate",
    Reason.BAD_CERTIFICATE: "certificate",
    Reason.CERTIFICATE_NAME_MISMATCH: "certificate",
    Reason.CERTIFICATE_EXPIRED: "certificate",
    Reason.CERTIFICATE_NOT_YET_VALID: "certificate",
    Reason.BAD_SIGNATURE: "signature",
    # the request, before verification
    Reason.UNAUTHORIZED: None,
    Reason.METHOD_NOT_ALLOWED: None,
    Reason.LENGTH_REQUIRED: None,
    Reason.BODY_TOO_LARGE: None,
    Reason.BAD_CONTENT_LENGTH: None,
    Reason.BODY_INCOMPLETE: None,
    # after verification: the middleware's answers, confirmation, delivery
    Reason.SUBSCRIPTION_CONFIRMED: None,
    Reason.UNSUBSCRIBE_ACKNOWLEDGED: None,
    Reason.BUDGETS_VERIFICATION_ACKNOWLEDGED: None,
    Reason.DUPLICATE: None,
    Reason.DELIVERED: None,
    Reason.CONFIRMATION_REJECTED: None,
    Reason.CONFIRMATION_FAILED: None,
    Reason.DEDUPE_UNAVAILABLE: None,
    Reason.IN_PROGRESS: None,
    Reason.SHUTTING_DOWN: None,
    Reason.APP_ERROR: None,
    Reason.INTERNAL_ERROR: None,
    # the error classes' defaults
    Reason.BAD_REQUEST: None,
    Reason.MALFORMED_MESSAGE: None,
    Reason.POLICY_VIOLATION: None,
    Reason.TEMPORARILY_UNAVAILABLE: None,
    Reason.NOT_YET_VALID: None,
    # the budget app and its mailers
    Reason.SENT: None,
    Reason.ALREADY_SENT: None,
    Reason.DEAD_LETTERED: None,
    Reason.NOT_VERIFIED: None,
    Reason.NOT_A_BUDGET_ALERT: None,
    Reason.BUDGET_AUTO_ADJUSTMENT: None,
    Reason.NOT_AN_ANOMALY_ALERT: None,
    Reason.MAIL_UNAVAILABLE: None,
    Reason.OUTBOX_UNAVAILABLE: None,
    Reason.NO_RECIPIENTS: None,
    Reason.RETRIES_EXHAUSTED: None,
    Reason.MAIL_REJECTED: None,
    Reason.BAD_SENDER: None,
    Reason.RECIPIENTS_REFUSED: None,
    Reason.SMTP_UNSUPPORTED: None,
    Reason.SMTP_CERTIFICATE: None,
    Reason.SES_QUOTA_EXHAUSTED: None,
    # the standalone server's own answers, off the SNS paths
    Reason.OK: None,
    Reason.NOT_READY: None,
    Reason.NOT_FOUND: None,
}


def _stage(name: str, title: str) -> Stage:
    reasons = frozenset(str(r) for r, stage in STAGE_OF_REASON.items() if stage == name)
    return Stage(name, title, reasons)


#: The pipeline, in the order the verifier runs it.
STAGES: Final = (
    _stage("envelope", "well-formed SNS message"),
    _stage("topic", "TopicArn on the allowlist"),
    _stage("signature_version", "SignatureVersion allowed"),
    _stage("certificate_url", "SigningCertURL pinned to the topic's SNS host"),
    _stage("subscribe_url", "SubscribeURL confirms this topic and token only"),
    _stage("freshness", "Timestamp inside the freshness window"),
    _stage("certificate", "signing certificate genuine and valid"),
    _stage("signature", "signature matches the signed fields"),
)

#: What a failure usually means, and what to do about it.
HINTS: Final[Mapping[str, str]] = {
    Reason.INVALID_JSON: "The body must be the JSON document SNS POSTs, byte for byte.",
    Reason.DUPLICATE_KEY: "A key appears twice: parsers disagree on such documents, so it is "
    "refused.",
    Reason.BAD_ENCODING: "The body must be UTF-8 text without unpaired surrogates.",
    Reason.BAD_FIELD: "Every field must be a JSON string (MessageAttributes aside); Subject, Token "
    "and SubscribeURL hold no line break or control character.",
    Reason.MISSING_FIELD: "A field SNS always sends for this Type is missing: was it edited?",
    Reason.UNKNOWN_TYPE: "Type must be Notification, SubscriptionConfirmation or "
    "UnsubscribeConfirmation.",
    Reason.BAD_TIMESTAMP: "Timestamp must look like 2024-01-31T12:00:00.000Z.",
    Reason.RAW_DELIVERY: "Raw message delivery carries no signature; turn it off for the "
    "subscription.",
    Reason.TOPIC_NOT_ALLOWED: "The message comes from a topic you did not allow (--topic). "
    "A valid signature alone does not make a message yours.",
    Reason.BAD_TOPIC_ARN: "TopicArn is not an SNS topic ARN of a supported partition, or its "
    "region does not exist there (a region newer than your botocore: upgrade it, or name the "
    "region in --topic).",
    Reason.SIGNATURE_VERSION_NOT_ALLOWED: "SignatureVersion must be 1 (SHA1) or 2 (SHA256), "
    "and 2 when SHA1 is refused.",
    Reason.BAD_CERT_URL: "The certificate must come from https://sns.<topic region>.<partition "
    "domain>/SimpleNotificationService-<hex>.pem exactly; anything else could be an "
    "attacker's certificate.",
    Reason.BAD_SUBSCRIBE_URL: "The SubscribeURL must be the topic region's SNS host with only "
    "Action=ConfirmSubscription and this message's TopicArn and Token.",
    Reason.STALE_MESSAGE: "SNS retries for at most an hour with the original Timestamp; older "
    "messages are replays. For a captured message use --at message.",
    Reason.FUTURE_MESSAGE: "The Timestamp is ahead of this clock: check the system time. SNS "
    "would be answered 503 and retry.",
    Reason.CERTIFICATE_UNAVAILABLE: "The certificate could not be downloaded now; SNS would be "
    "answered 503 and retry. For offline checks use --offline CERT.pem.",
    Reason.CERTIFICATE_NOT_FOUND: "The certificate host answered without a certificate.",
    Reason.CERTIFICATE_TOO_LARGE: "The certificate URL served far more than a certificate.",
    Reason.BAD_CERTIFICATE: "The URL must serve exactly one PEM certificate with an RSA key "
    ">= 2048 bits.",
    Reason.CERTIFICATE_NAME_MISMATCH: "The certificate does not carry a name AWS gives SNS signing "
    "certificates in the topic's region (snsmiddleware.partitions.SIGNING_CERTIFICATE_NAMES).",
    Reason.CERTIFICATE_EXPIRED: "The signing certificate has expired at the checked time; "
    "old captures verify with --at message.",
    Reason.CERTIFICATE_NOT_YET_VALID: "The signing certificate is not valid yet at the checked "
    "time: check the system time. SNS would be answered 503 and retry.",
    Reason.BAD_SIGNATURE: "A signed field (Message, MessageId, Subject, Timestamp, TopicArn, Type; "
    "Token and SubscribeURL for confirmations) was changed after signing, Subject was "
    "added or removed, or the message was re-encoded by something that rewrote its values.",
}


@dataclass
class StageResult:
    """What one verification stage came to.

    ``status`` is ``passed``, ``failed`` (``detail`` then holds ``reason: detail`` of the
    error), ``not_run`` (an earlier stage failed), ``not_applicable`` (the stage does not
    concern this message type, such as the SubscribeURL check for a Notification) or
    ``unknown`` (the failure's reason belongs to no stage).
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


def _failing_stage(reason: str) -> int | None:
    """The index in :data:`STAGES` of the stage that raises ``reason``; ``None`` when no
    check does (see :data:`STAGE_OF_REASON`): the diagnosis then says so rather than guess."""
    try:
        name = STAGE_OF_REASON[Reason(reason)]
    except ValueError:  # a code of the application's own, not in the catalogue
        return None
    if name is None:
        return None
    return next(index for index, stage in enumerate(STAGES) if stage.name == name)


def diagnose(body: bytes, verifier: SnsVerifier) -> Diagnosis:
    """Verify ``body`` with ``verifier`` and report each stage's outcome."""
    message: SnsMessage | None = None
    try:
        message = parse_message(body)
        verifier.verify_message(message)
    except SnsError as exc:
        failed_at = _failing_stage(exc.reason)
        if failed_at is None:
            unknown = [StageResult(stage, "unknown") for stage in STAGES]
            return Diagnosis(message, unknown, exc)
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
