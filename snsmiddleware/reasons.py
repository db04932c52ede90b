"""The catalogue of reason codes: every code this package answers, logs or dead-letters.

A reason code is the stable, machine-readable half of every answer (``reason: detail`` in
the body, the ``X-SNS-Reason`` header, the log line, a dead letter's
``X-Dead-Letter-Reason``). Operators grep for them and alert on them, so they are a public
interface: this one :class:`Reason` enum is where they are defined, and the raise sites,
:mod:`snsmiddleware.diagnose` and the README's status tables all use or are checked against
it (``tests/test_reasons.py`` fails when they drift).

Members are :class:`enum.StrEnum`, so each *is* its string: ``Reason.BAD_SIGNATURE ==
"bad_signature"``, and code that compares or stores plain strings keeps working. An
:class:`~snsmiddleware.errors.SnsError` still accepts any string as ``reason=`` (an
application's own codes); the catalogue lists ours.
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    """Every reason code of snsmiddleware, grouped by who answers it and when."""

    # --- 200, answered by the middleware (the app is not called) --------------------------
    SUBSCRIPTION_CONFIRMED = "subscription_confirmed"
    UNSUBSCRIBE_ACKNOWLEDGED = "unsubscribe_acknowledged"
    BUDGETS_VERIFICATION_ACKNOWLEDGED = "budgets_verification_acknowledged"
    DUPLICATE = "duplicate"

    # --- the wrapped app answered, with its own status (logs and observers only) ----------
    DELIVERED = "delivered"

    # --- the request itself, before any parsing ---------------------------------------------
    UNAUTHORIZED = "unauthorized"  # 401
    METHOD_NOT_ALLOWED = "method_not_allowed"  # 405
    LENGTH_REQUIRED = "length_required"  # 411
    BODY_TOO_LARGE = "body_too_large"  # 413
    BAD_CONTENT_LENGTH = "bad_content_length"  # 400
    BODY_INCOMPLETE = "body_incomplete"  # 400

    # --- 400, not a well-formed SNS envelope ------------------------------------------------
    INVALID_JSON = "invalid_json"
    DUPLICATE_KEY = "duplicate_key"
    BAD_ENCODING = "bad_encoding"
    BAD_FIELD = "bad_field"
    MISSING_FIELD = "missing_field"
    UNKNOWN_TYPE = "unknown_type"
    BAD_TIMESTAMP = "bad_timestamp"
    HEADER_MISMATCH = "header_mismatch"
    RAW_DELIVERY = "raw_delivery"

    # --- 403, policy (checked before any network I/O) ---------------------------------------
    TOPIC_NOT_ALLOWED = "topic_not_allowed"
    BAD_TOPIC_ARN = "bad_topic_arn"
    SIGNATURE_VERSION_NOT_ALLOWED = "signature_version_not_allowed"
    BAD_CERT_URL = "bad_cert_url"
    BAD_SUBSCRIBE_URL = "bad_subscribe_url"
    STALE_MESSAGE = "stale_message"

    # --- 403, the certificate and the signature ---------------------------------------------
    BAD_CERTIFICATE = "bad_certificate"
    CERTIFICATE_NAME_MISMATCH = "certificate_name_mismatch"
    CERTIFICATE_EXPIRED = "certificate_expired"
    CERTIFICATE_NOT_FOUND = "certificate_not_found"
    CERTIFICATE_TOO_LARGE = "certificate_too_large"
    BAD_SIGNATURE = "bad_signature"

    # --- subscription confirmation ----------------------------------------------------------
    CONFIRMATION_REJECTED = "confirmation_rejected"  # 400: SNS said no for good
    CONFIRMATION_FAILED = "confirmation_failed"  # 503: may clear

    # --- 503, transient: SNS retries --------------------------------------------------------
    CERTIFICATE_UNAVAILABLE = "certificate_unavailable"
    DEDUPE_UNAVAILABLE = "dedupe_unavailable"
    IN_PROGRESS = "in_progress"
    FUTURE_MESSAGE = "future_message"
    CERTIFICATE_NOT_YET_VALID = "certificate_not_yet_valid"
    SHUTTING_DOWN = "shutting_down"

    # --- 500, a failure of ours or of the wrapped app ---------------------------------------
    APP_ERROR = "app_error"
    INTERNAL_ERROR = "internal_error"

    # --- the defaults of the error classes (an error raised without a reason of its own) ----
    BAD_REQUEST = "bad_request"  # SnsError, 400
    MALFORMED_MESSAGE = "malformed_message"  # MessageFormatError, 400
    POLICY_VIOLATION = "policy_violation"  # PolicyError, 403
    TEMPORARILY_UNAVAILABLE = "temporarily_unavailable"  # TransientError, 503
    NOT_YET_VALID = "not_yet_valid"  # NotYetValidError, 503

    # --- BudgetApp's answers ----------------------------------------------------------------
    SENT = "sent"  # 200
    ALREADY_SENT = "already_sent"  # 200
    DEAD_LETTERED = "dead_lettered"  # 200
    NOT_VERIFIED = "not_verified"  # 403
    NOT_A_BUDGET_ALERT = "not_a_budget_alert"  # 422
    BUDGET_AUTO_ADJUSTMENT = "budget_auto_adjustment"  # 422
    NOT_AN_ANOMALY_ALERT = "not_an_anomaly_alert"  # 422 (parse_anomaly_alert)
    MAIL_UNAVAILABLE = "mail_unavailable"  # 503
    OUTBOX_UNAVAILABLE = "outbox_unavailable"  # 503

    # --- why an alert was dead-lettered (X-Dead-Letter-Reason) ------------------------------
    NO_RECIPIENTS = "no_recipients"
    RETRIES_EXHAUSTED = "retries_exhausted"
    MAIL_REJECTED = "mail_rejected"
    BAD_SENDER = "bad_sender"
    RECIPIENTS_REFUSED = "recipients_refused"
    SMTP_UNSUPPORTED = "smtp_unsupported"
    SMTP_CERTIFICATE = "smtp_certificate"
    SES_QUOTA_EXHAUSTED = "ses_quota_exhausted"

    # --- the standalone server's own answers (snsmiddleware serve) --------------------------
    OK = "ok"  # 200: /healthz, and /readyz when ready
    NOT_READY = "not_ready"  # 503: /readyz, a part named in the detail is not usable
    NOT_FOUND = "not_found"  # 404: not an SNS endpoint (nor a health endpoint)
