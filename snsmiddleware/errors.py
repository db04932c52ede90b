"""The exception hierarchy: every rejection knows its HTTP status and its reason code.

Why statuses matter so much here: SNS treats any 2xx-4xx answer as *delivered* and retries
only on 5xx, time-outs and connection errors. So a 4xx is a promise that retrying cannot help
(a forged signature, a topic that is not ours), and a 5xx is a request to try again later (the
certificate host did not answer, a store is down). Getting this wrong either loses alerts
(4xx for trouble that would have cleared) or makes SNS hammer us for an hour (5xx for
garbage).

Each error carries a stable, machine-readable ``reason`` code (used in the response body, the
``X-SNS-Reason`` header and the log line) and a human ``detail``. Details never contain
secrets: no Token, no SubscribeURL, no Signature.
"""

from __future__ import annotations

from typing import ClassVar


def excerpt(text: str, limit: int = 64) -> str:
    """A sender's string made safe to echo in a detail or log line: quoted (control
    characters escaped) and cut to ``limit`` characters, so nobody can make us repeat a
    megabyte of it."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}..."


class ConfigurationError(ValueError):
    """Raised while the middleware (or app) is being built: bad options fail at startup."""


class SnsError(Exception):
    """Base of every per-request rejection.

    :param reason: a stable snake_case code naming exactly what failed.
    :param detail: one human sentence saying why; safe to show to the sender.
    """

    status: ClassVar[int] = 400
    default_reason: ClassVar[str] = "bad_request"

    def __init__(self, detail: str, *, reason: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason or self.default_reason

    @property
    def transient(self) -> bool:
        """True when SNS should retry (5xx)."""
        return self.status >= 500

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, reason={self.reason!r})"


class UnauthorizedError(SnsError):
    """No, malformed or wrong HTTP Basic credentials on an SNS path (``basic_auth=``).

    Answered with a ``WWW-Authenticate`` challenge: SNS sends credentials only after one.
    ``offered`` is False when the request carried no credentials at all, which is SNS's
    routine first attempt rather than anything suspicious.
    """

    status = 401
    default_reason = "unauthorized"

    def __init__(self, detail: str, *, offered: bool, reason: str | None = None) -> None:
        super().__init__(detail, reason=reason)
        self.offered = offered


class MethodNotAllowedError(SnsError):
    """Anything but POST on an SNS path."""

    status = 405
    default_reason = "method_not_allowed"


class LengthRequiredError(SnsError):
    """No usable Content-Length and the server did not promise a terminated stream."""

    status = 411
    default_reason = "length_required"


class BodyTooLargeError(SnsError):
    """The body is larger than ``max_body_bytes`` (413, permanent: SNS would send the same
    bytes again). A Content-Length over the limit is refused before anything is read; a
    chunked body without one is read up to the limit and refused once it passes it."""

    status = 413
    default_reason = "body_too_large"


class MessageFormatError(SnsError):
    """The request is not a well-formed SNS envelope (bad JSON, fields, headers, encoding)."""

    status = 400
    default_reason = "malformed_message"


class PolicyError(SnsError):
    """A well-formed message this endpoint refuses: topic, version, URL, freshness."""

    status = 403
    default_reason = "policy_violation"


class CertificateError(SnsError):
    """The signing certificate is not one we accept (not a single PEM, wrong name, expired)."""

    status = 403
    default_reason = "bad_certificate"


class SignatureError(SnsError):
    """The signature does not verify over the message's own fields."""

    status = 403
    default_reason = "bad_signature"


class ConfirmationRejectedError(SnsError):
    """SNS refused the subscription confirmation for good (expired token, wrong topic...)."""

    status = 400
    default_reason = "confirmation_rejected"


class TransientError(SnsError):
    """Trouble on our side or upstream that may clear: answer 503 so SNS redelivers."""

    status = 503
    default_reason = "temporarily_unavailable"


class NotYetValidError(TransientError):
    """A time ahead of our clock: a message's Timestamp, a certificate's start of validity.

    Our clock may be the one that is wrong (a host running a few minutes slow): a 4xx would
    drop genuine alerts for good, while a 503 lets SNS redeliver once the clock has caught
    up (or an operator fixed it). A forger gains nothing from being asked to retry.
    """

    default_reason = "not_yet_valid"


class CertificateFetchError(TransientError):
    """The certificate host did not answer usefully (refused, timed out, 5xx)."""

    default_reason = "certificate_unavailable"
