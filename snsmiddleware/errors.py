"""The exception hierarchy: every rejection knows its HTTP status, its reason code and the
headers of its answer, and renders itself.

Why statuses matter so much here: SNS treats any 2xx-4xx answer as *delivered* and retries
only on 5xx, time-outs and connection errors. So a 4xx is a promise that retrying cannot help
(a forged signature, a topic that is not ours), and a 5xx is a request to try again later (the
certificate host did not answer, a store is down). Getting this wrong either loses alerts
(4xx for trouble that would have cleared) or makes SNS hammer us for an hour (5xx for
garbage). "Is this transient?" has one spelling: :attr:`SnsError.transient` (status >= 500).

Each error carries a stable, machine-readable ``reason`` code (one of
:class:`~snsmiddleware.reasons.Reason`, used in the response body, the ``X-SNS-Reason``
header and the log line) and a human ``detail``. Details never contain secrets: no Token, no
SubscribeURL, no Signature. As with werkzeug's ``HTTPException``, an error turns itself into
its answer (:meth:`SnsError.answer`, written by
:class:`~snsmiddleware.answers.PlainTextAnswer`), headers included (``Allow: POST`` for a
405, the Basic challenge for a 401), so nothing has to special-case error classes.

Every error class of the package lives here (the mail, Budgets and Cost Anomaly Detection
ones included, still importable from :mod:`snsmiddleware.mail`, :mod:`snsmiddleware.budgets`
and :mod:`snsmiddleware.anomaly`), along with :class:`InsecureConfigurationWarning`,
:class:`UnsafeHeaderError` and :class:`TopicPolicyError`.
"""

from __future__ import annotations

from typing import ClassVar

from .answers import PlainTextAnswer
from .reasons import Reason


def excerpt(text: str, limit: int = 64) -> str:
    """A sender's string made safe to echo in a detail or log line: quoted (control
    characters escaped) and cut to ``limit`` characters, so nobody can make us repeat a
    megabyte of it."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}..."


class ConfigurationError(ValueError):
    """Raised while the middleware (or app) is being built: bad options fail at startup."""


class InsecureConfigurationWarning(UserWarning):
    """An allowed but risky configuration (for example, accepting every topic)."""


class UnsafeHeaderError(ValueError):
    """A header of a built email would not read back as the single line that was set."""


class NotADeadLetterError(ValueError):
    """A file given to ``snsmiddleware replay`` is not a dead letter this package wrote (or
    not one it can send again): it is refused, never sent."""


class TopicPolicyError(ValueError):
    """A topic's Policy attribute is not a JSON object with a list of statements
    (:mod:`snsmiddleware.topic_policy`; ``doctor`` reports it, ``connect`` refuses to
    rewrite a policy it cannot read)."""


class SnsError(Exception):
    """Base of every per-request rejection.

    :param reason: a stable snake_case code naming exactly what failed (a
        :class:`~snsmiddleware.reasons.Reason`; an application may use its own strings).
    :param detail: one human sentence saying why; safe to show to the sender.

    Subclasses set ``status``, ``default_reason`` and, for headers every answer of theirs
    needs, ``response_headers``; an instance adds its own through :meth:`headers`.
    """

    status: ClassVar[int] = 400
    default_reason: ClassVar[str] = Reason.BAD_REQUEST
    #: Headers every answer of this class carries (after the standard ones).
    response_headers: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self, detail: str, *, reason: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason or self.default_reason

    @property
    def transient(self) -> bool:
        """True when SNS should retry (5xx): the one test of "may this clear?"."""
        return self.status >= 500

    def headers(self) -> list[tuple[str, str]]:
        """The headers this error's answer needs beyond the standard ones."""
        return list(self.response_headers)

    def answer(self, detail: str | None = None) -> PlainTextAnswer:
        """This error as its plain-text answer (status, ``reason: detail``, headers).

        :param detail: what to say instead of :attr:`detail`, when that stays in the log
            (it can name a path or a host nobody else needs to know).
        """
        return PlainTextAnswer(
            self.status, self.reason, self.detail if detail is None else detail, self.headers()
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, reason={str(self.reason)!r})"


class UnauthorizedError(SnsError):
    """No, malformed or wrong HTTP Basic credentials on an SNS path (``basic_auth=``).

    Answered with a ``WWW-Authenticate`` challenge: SNS sends credentials only after one.
    ``offered`` is False when the request carried no credentials at all, which is SNS's
    routine first attempt rather than anything suspicious.

    :param challenge: the ``WWW-Authenticate`` value (it names the configured realm, so the
        raiser, :class:`~snsmiddleware.basicauth.BasicAuth`, supplies it).
    """

    status = 401
    default_reason = Reason.UNAUTHORIZED

    def __init__(
        self,
        detail: str,
        *,
        offered: bool,
        reason: str | None = None,
        challenge: str | None = None,
    ) -> None:
        super().__init__(detail, reason=reason)
        self.offered = offered
        self.challenge = challenge

    def headers(self) -> list[tuple[str, str]]:
        extra = super().headers()
        if self.challenge is not None:
            extra.append(("WWW-Authenticate", self.challenge))
        return extra


class MethodNotAllowedError(SnsError):
    """Anything but POST on an SNS path."""

    status = 405
    default_reason = Reason.METHOD_NOT_ALLOWED
    response_headers = (("Allow", "POST"),)


class LengthRequiredError(SnsError):
    """No usable Content-Length and the server did not promise a terminated stream."""

    status = 411
    default_reason = Reason.LENGTH_REQUIRED


class BodyTooLargeError(SnsError):
    """The body is larger than ``max_body_bytes`` (413, permanent: SNS would send the same
    bytes again). A Content-Length over the limit is refused before anything is read; a
    chunked body without one is read up to the limit and refused once it passes it."""

    status = 413
    default_reason = Reason.BODY_TOO_LARGE


class MessageFormatError(SnsError):
    """The request is not a well-formed SNS envelope (bad JSON, fields, headers, encoding)."""

    status = 400
    default_reason = Reason.MALFORMED_MESSAGE


class PolicyError(SnsError):
    """A well-formed message this endpoint refuses: topic, version, URL, freshness."""

    status = 403
    default_reason = Reason.POLICY_VIOLATION


class CertificateError(SnsError):
    """The signing certificate is not one we accept (not a single PEM, wrong name, expired)."""

    status = 403
    default_reason = Reason.BAD_CERTIFICATE


class SignatureError(SnsError):
    """The signature does not verify over the message's own fields."""

    status = 403
    default_reason = Reason.BAD_SIGNATURE


class ConfirmationRejectedError(SnsError):
    """SNS refused the subscription confirmation for good (expired token, wrong topic...)."""

    status = 400
    default_reason = Reason.CONFIRMATION_REJECTED


class TransientError(SnsError):
    """Trouble on our side or upstream that may clear: answer 503 so SNS redelivers."""

    status = 503
    default_reason = Reason.TEMPORARILY_UNAVAILABLE


class NotYetValidError(TransientError):
    """A time ahead of our clock: a message's Timestamp, a certificate's start of validity.

    Our clock may be the one that is wrong (a host running a few minutes slow): a 4xx would
    drop genuine alerts for good, while a 503 lets SNS redeliver once the clock has caught
    up (or an operator fixed it). A forger gains nothing from being asked to retry.
    """

    default_reason = Reason.NOT_YET_VALID


class CertificateUnavailableError(TransientError):
    """The signing certificate cannot be had *now* (the host refused, timed out or answered
    5xx; too many downloads at once): transient, SNS retries. A certificate that is there
    but wrong is a :class:`CertificateError` (403)."""

    default_reason = Reason.CERTIFICATE_UNAVAILABLE


#: The former name of :class:`CertificateUnavailableError`, kept for compatibility: it is
#: the *transient* certificate error, not the "bad certificate" one.
CertificateFetchError = CertificateUnavailableError


# --- the Budgets app's errors ---------------------------------------------------------------


class NotABudgetAlertError(SnsError):
    """A delivered notification that is not a Budgets alert: never emailed, never retried."""

    status = 422
    default_reason = Reason.NOT_A_BUDGET_ALERT


class BudgetAdjustmentError(NotABudgetAlertError):
    """An auto-adjusting budget's JSON notice (``previousBudgetLimit``/``currentBudgetLimit``)."""

    default_reason = Reason.BUDGET_AUTO_ADJUSTMENT


class NotAnAnomalyAlertError(NotABudgetAlertError):
    """A notification that :func:`~snsmiddleware.anomaly.parse_anomaly_alert` does not
    recognise as a Cost Anomaly Detection alert (422, like any other non-alert).

    A subclass of :class:`NotABudgetAlertError`, so code that already treats "not an alert"
    as one case keeps doing so. A message that *is* recognised as an anomaly alert never
    raises this, however badly its details read: it is emailed with its raw text.
    """

    default_reason = Reason.NOT_AN_ANOMALY_ALERT


# --- the mailers' errors --------------------------------------------------------------------


class MailUnavailableError(TransientError):
    """Sending failed in a way that may clear: answer 503 so SNS redelivers.

    :param code: the SMTP reply code or SES error code, when there was one.
    """

    default_reason = Reason.MAIL_UNAVAILABLE

    def __init__(self, detail: str, *, reason: str | None = None, code: str | None = None):
        super().__init__(detail, reason=reason)
        self.code = code


class MailRejectedError(SnsError):
    """The mail service refused this email for good: dead-letter it, do not retry.

    :param code: the SMTP reply code or SES error code, when there was one.
    """

    status = 422
    default_reason = Reason.MAIL_REJECTED

    def __init__(self, detail: str, *, reason: str | None = None, code: str | None = None):
        super().__init__(detail, reason=reason)
        self.code = code
