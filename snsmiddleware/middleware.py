"""SnsMiddleware: the WSGI plumbing around :class:`~snsmiddleware.verifier.SnsVerifier`.

It only reads the request, calls the pure core, maps errors to statuses and hands verified
notifications to the app. Requests to other paths pass through untouched (no body read, no
wrapping), as PEP 3333 asks of middleware.

For verified notifications the wrapped app's response is *buffered*: we need its final
status before answering SNS, to commit the de-duplication claim on 2xx and release it
otherwise. This departs from PEP 3333's "do not delay blocks" advice, which is acceptable
for a one-shot webhook reply; the app's iterable is drained and closed exactly once.

With ``basic_auth=`` the credentials are checked first on SNS paths, before the method, the
body or anything else (SNS sends them only after a 401 challenge, so that challenge must be
the answer to every request without them); a request that passes still gets the full
verification, and the wrapped app never sees the ``Authorization`` header.

Statuses follow SNS delivery semantics: 5xx only for trouble that may clear (SNS retries),
4xx for definitive rejections (SNS stops). Responses never carry a traceback; each decision
is logged once with its reason code, never with a Token, SubscribeURL or Signature.

Every request to an SNS path ends in exactly one decision (:class:`_Verdict`): it is logged
(one line, with the fields of :data:`DECISION_LOG_FIELDS` as ``extra=``, for a JSON log
format), answered, and handed to the ``observer`` if one is set, as a frozen
:class:`Decision`. Without an observer that costs one ``if``.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Unpack

from .answers import NOSNIFF as NOSNIFF  # defined there, kept importable
from .answers import PlainTextAnswer
from .basicauth import BasicAuth, BasicAuthCredentials
from .confirm import Confirmer, make_confirmer
from .dedupe import (
    Admission,
    ClaimState,
    DedupeStore,
    DeliveryLedger,
    MemoryDedupeStore,
    MessageEffects,
    StoreFactory,
    store_for_window,
)
from .dedupe import check_retention as check_retention  # importable from here, as before
from .errors import (
    ConfigurationError,
    MethodNotAllowedError,
    SnsError,
    TransientError,
    UnauthorizedError,
)
from .hooks import HookGuard
from .message import (
    TOPIC_VERIFIED_SUBJECT,
    Notification,
    SnsMessage,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
    is_topic_verification,
)
from .reasons import Reason
from .verifier import SnsVerifier, VerifierOptions, build_verifier, given_verifier_options
from .wsgibody import read_body, restore_body

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

#: The environ key under which the wrapped app finds the verified :class:`Notification`.
MESSAGE_ENVIRON_KEY: Final = "snsmiddleware.message"
#: The environ key of the message's :class:`~snsmiddleware.dedupe.MessageEffects`.
EFFECTS_ENVIRON_KEY: Final = "snsmiddleware.effects"
#: SNS caps a message at 256 KiB before JSON escaping; escaping can grow it several times.
DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024

#: Recently confirmed subscriptions remembered, so a replayed confirmation is not re-sent.
CONFIRMED_MEMORY_ENTRIES: Final = 1024
#: Accepted deliveries are logged one by one at DEBUG; at INFO, at most one line this often,
#: saying how many there were since the last (see :attr:`SnsMiddleware.delivered`).
DELIVERY_SUMMARY_SECONDS: Final = 60.0

_FIRST: Final = Admission.FIRST  # enum members read as module globals: cheaper per request
_DELIVERED: Final = Reason.DELIVERED

#: ``on_unsubscribe=``: called with each verified UnsubscribeConfirmation of an allowed topic
#: (its return value is ignored).
UnsubscribeHook = Callable[[UnsubscribeConfirmation], object]


#: The ``extra=`` fields of every decision log line (see :mod:`snsmiddleware.logformat`).
#: ``message_type``, ``message_id`` and ``topic_arn`` are those of a *verified* message, and
#: absent when the request was refused before or during verification.
DECISION_LOG_FIELDS: Final = (
    "reason",
    "status",
    "path",
    "message_type",
    "message_id",
    "topic_arn",
)


@dataclass(frozen=True, slots=True)
class Decision:
    """What :class:`SnsMiddleware` decided about one request to one of its paths: what its
    ``observer`` receives, exactly once per request (requests to other paths are not
    decisions of the middleware's and are not observed).

    The message fields come from a message whose signature, certificate and topic were
    verified; they are ``None`` when the request was refused before or during verification
    (a bad signature, a topic not allowed, a malformed body...), because nothing the sender
    wrote can be trusted then. So every value here is either chosen by this package (reason,
    status, path: one of the configured ``paths``) or signed by AWS for an allowed topic:
    safe as a metrics label.

    :param reason: the reason code: a :class:`~snsmiddleware.reasons.Reason` member
        (``Reason.DELIVERED`` when the wrapped app answered), or the string an error of your
        own (a ``confirm`` callable, a ``fetch_certificate``) was raised with.
    :param status: the HTTP status of the answer (the app's own when it answered).
    :param path: the configured path the request came to.
    :param elapsed: seconds from the start of the decision to the answer (the app's share
        included, the sending of the answer not).
    :param message_type: ``Notification``, ``SubscriptionConfirmation`` or
        ``UnsubscribeConfirmation`` of a verified message, else ``None``.
    :param message_id: the verified message's MessageId, else ``None``.
    :param topic_arn: the verified message's TopicArn, else ``None``.
    """

    reason: Reason | str
    status: int
    path: str
    elapsed: float
    message_type: str | None = None
    message_id: str | None = None
    topic_arn: str | None = None

    @property
    def verified(self) -> bool:
        """Whether the request carried a verified message (its fields are set)."""
        return self.topic_arn is not None

    @property
    def genuine_notification(self) -> bool:
        """A verified Notification (whatever became of it: delivered, a duplicate, or
        retried later): proof that the subscription delivers."""
        return self.message_type == "Notification"


#: ``decision -> None``; see :class:`Decision`.
Observer = Callable[[Decision], object]


def as_reason(code: str) -> Reason | str:
    """``code`` as its :class:`Reason` member, or unchanged when it is not catalogued."""
    try:
        return Reason(code)
    except ValueError:
        return code


@dataclass(slots=True)  # not frozen: built on every request, and never leaves this module
class _Verdict:
    """One decision, before it is answered, logged and observed."""

    reason: str
    status: int
    status_line: str
    headers: list[tuple[str, str]]
    body: bytes
    level: int
    #: the line's text; ``None`` for a delivery the app answered: built only when logged
    text: str | None
    message: SnsMessage | None = None
    failure: BaseException | None = None


def _answer(
    code: int,
    reason: str,
    detail: str,
    *,
    level: int,
    text: str,
    message: SnsMessage | None = None,
    failure: BaseException | None = None,
) -> _Verdict:
    """A plain-text answer of the middleware's own (see :class:`PlainTextAnswer`)."""
    return _render(PlainTextAnswer(code, reason, detail), level, text, message, failure)


def _render(
    answer: PlainTextAnswer,
    level: int,
    text: str,
    message: SnsMessage | None = None,
    failure: BaseException | None = None,
) -> _Verdict:
    return _Verdict(
        answer.reason,
        answer.status,
        answer.status_line,
        answer.headers,
        answer.body,
        level,
        text,
        message,
        failure,
    )


def _log_level(exc: SnsError) -> int:
    """ERROR for 5xx, WARNING for refusals; INFO for a request that offered no credentials,
    which is how SNS starts every delivery to a Basic-auth endpoint."""
    if exc.transient:
        return logging.ERROR
    if isinstance(exc, UnauthorizedError) and not exc.offered:
        return logging.INFO
    return logging.WARNING


def get_message(environ: WSGIEnvironment) -> Notification:
    """Return the verified notification the middleware put in ``environ``.

    Raises :class:`LookupError` when the request did not come through :class:`SnsMiddleware`
    (so an app never mistakes an unverified request for a verified one).
    """
    message = environ.get(MESSAGE_ENVIRON_KEY)
    if not isinstance(message, Notification):
        raise LookupError("no verified SNS message: is SnsMiddleware in front of this app?")
    return message


def get_effects(environ: WSGIEnvironment) -> MessageEffects | None:
    """The effect records of the message being processed, or ``None`` when the
    de-duplication store keeps none (a custom store without
    :class:`~snsmiddleware.dedupe.EffectLedger`) or the middleware is not in front."""
    effects = environ.get(EFFECTS_ENVIRON_KEY)
    return effects if isinstance(effects, MessageEffects) else None


def _sns_headers(environ: WSGIEnvironment) -> dict[str, str]:
    """The ``x-amz-sns-*`` request headers, by their lower-case names, for the verifier.

    Written out one by one: a comprehension over a table of the four cost three times as
    much, per request."""
    found: dict[str, str] = {}
    get = environ.get
    if (value := get("HTTP_X_AMZ_SNS_MESSAGE_TYPE")) is not None:
        found["x-amz-sns-message-type"] = value
    if (value := get("HTTP_X_AMZ_SNS_MESSAGE_ID")) is not None:
        found["x-amz-sns-message-id"] = value
    if (value := get("HTTP_X_AMZ_SNS_TOPIC_ARN")) is not None:
        found["x-amz-sns-topic-arn"] = value
    if (value := get("HTTP_X_AMZ_SNS_RAWDELIVERY")) is not None:
        found["x-amz-sns-rawdelivery"] = value
    return found


def _check_paths(paths: Iterable[str]) -> frozenset[str]:
    if isinstance(paths, str):
        raise ConfigurationError("paths must be a list of paths, not one string")
    checked = frozenset(paths)
    if not checked or not all(path.startswith("/") for path in checked):
        raise ConfigurationError('paths must be a non-empty list of paths starting with "/"')
    return checked


def _announce_emulator(verifier: SnsVerifier) -> str | None:
    """The emulator base ``verifier`` trusts, warned about loudly; ``None`` for AWS."""
    if verifier.emulator is None:
        return None
    log.warning(
        "EMULATOR MODE: trusting SNS certificates and confirmation URLs under %s "
        "instead of AWS; never use this in production",
        verifier.emulator.base,
    )
    return verifier.emulator.base


def _request_path(environ: WSGIEnvironment) -> str | None:
    # PATH_INFO is latin-1 "bytes as str" (PEP 3333); paths are configured as real text.
    path = environ.get("PATH_INFO", "")
    if type(path) is str and path.isascii():
        return path  # the same text in both readings (every SNS path there is)
    try:
        return str(path).encode("latin-1").decode("utf-8")
    except UnicodeError:
        return None


class SnsMiddleware:
    """Make a WSGI app a safe Amazon SNS HTTP(S) subscriber on the given paths.

    POSTs to ``paths`` are verified (signature, certificate, topic allowlist, freshness);
    subscription confirmations and Budgets' topic verification are answered here; genuine,
    first-seen notifications reach ``app`` with the message at
    ``environ["snsmiddleware.message"]`` (see :func:`get_message`) and the body readable
    again from ``wsgi.input``. Anything else gets a clear 4xx/5xx and never reaches ``app``.

    :param app: the WSGI application to protect.
    :param paths: PATH_INFO values (relative to SCRIPT_NAME) that receive SNS deliveries.
    :param topics: TopicArns (or explicit ``*`` patterns) to accept; required unless
        ``verifier`` is given.
    :param confirm: ``"api"`` (boto3 ConfirmSubscription, default), ``"url"`` (GET of the
        validated SubscribeURL) or a callable receiving the verified
        :class:`SubscriptionConfirmation`.
    :param confirm_endpoint_url: SNS endpoint for ``confirm="api"`` (an emulator).
    :param dedupe: a :class:`DedupeStore`, or a :class:`~snsmiddleware.dedupe.StoreFactory`
        (such as :class:`snsmiddleware.config.StoreSpec`) built here with the freshness
        window as its retention; default: a bounded in-memory store covering that window.
        A store whose ``retention`` is shorter than the window (``max_age + 2 × clock_skew``)
        is a :class:`ConfigurationError`; see :func:`~snsmiddleware.dedupe.check_retention`.
        The books are kept by :attr:`ledger` (a :class:`~snsmiddleware.dedupe.DeliveryLedger`).
    :param fetch_certificate: ``url -> bytes`` (or ``str`` PEM text) replacing the download.
    :param clock: returns the current aware datetime (freshness, certificate validity).
    :param require_signature_v2: refuse SignatureVersion 1 (SHA1).
    :param max_age: oldest Timestamp accepted (default one hour, SNS's retry span).
    :param clock_skew: allowance for clock differences (default five minutes).
    :param verifier: a prebuilt :class:`SnsVerifier` (shares one certificate cache between
        middlewares); exclusive with ``topics`` and the verification options above.
    :param emulator: base URL of an SNS emulator (LocalStack, moto) to trust instead of AWS:
        certificate and confirmation URLs must live under exactly this base, the certificate
        name pin is skipped, everything else stays on. Logged loudly; never for production.
    :param answer_budgets_verification: answer Budgets' "SNS Topic Verified!" here.
    :param max_body_bytes: larger bodies get 413 before they are read.
    :param basic_auth: require HTTP Basic credentials on ``paths``: ``("user", "password")``
        or a list of pairs (any of them is accepted, for rotation). Requests without them get
        401 with a ``WWW-Authenticate`` challenge before anything is read; SNS then repeats
        the request with the credentials of the subscription URL
        (``https://user:password@host/path``). Never replaces the signature check.
    :param basic_auth_realm: the realm named in the challenge.
    :param observer: called once per request to ``paths`` with its :class:`Decision`, after
        the answer is decided (for metrics: :mod:`snsmiddleware.metrics`). It runs in the
        request's thread, so keep it quick; whatever it raises is logged (at most once a
        minute) and never changes the answer. ``None`` (the default) costs one ``if``.
    :param on_unsubscribe: called with each verified :class:`UnsubscribeConfirmation` of an
        allowed topic (this endpoint's subscription was deleted: deliveries stop), at most
        once per MessageId: the call is claimed and committed in the de-duplication store
        like a notification, so SNS's redeliveries answer 200 ``duplicate``. It returns:
        200 ``unsubscribe_acknowledged``. It raises a transient :class:`SnsError`
        (:class:`TransientError`, a mailer's ``MailUnavailableError``): its 503, and the
        claim is released, so a redelivery calls it again (a retry is worth more than a
        notice lost; SNS retries this message like any other under the subscription's
        delivery policy, if it still applies to a deleted subscription). A permanent
        :class:`SnsError`: its 4xx, the claim committed (retrying cannot help). Anything
        else: logged with its traceback, 500 ``app_error``, the claim released. No
        traceback is ever answered. Without a hook the confirmation is logged as a WARNING.

    ``topics``, ``fetch_certificate``, ``clock``, ``require_signature_v2``, ``max_age``,
    ``clock_skew`` and ``emulator`` are the :class:`~snsmiddleware.verifier.VerifierOptions`,
    forwarded to :class:`SnsVerifier` (whose defaults apply to what is not given).

    Example::

        app = SnsMiddleware(app, paths=["/sns/budgets"],
                            topics=["arn:aws:sns:us-east-1:123456789012:budget-alerts"])
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        paths: Iterable[str],
        confirm: str | Confirmer = "api",
        confirm_endpoint_url: str | None = None,
        dedupe: DedupeStore | StoreFactory | None = None,
        verifier: SnsVerifier | None = None,
        answer_budgets_verification: bool = True,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        basic_auth: BasicAuthCredentials | None = None,
        basic_auth_realm: str | None = None,
        observer: Observer | None = None,
        on_unsubscribe: UnsubscribeHook | None = None,
        **verifier_options: Unpack[VerifierOptions],
    ) -> None:
        self.app = app
        if observer is not None and not callable(observer):
            raise ConfigurationError("observer must be a callable taking a Decision")
        #: see the ``observer`` parameter; settable
        self.observer: Observer | None = observer
        self._observer_guard = HookGuard("the SnsMiddleware observer")
        if on_unsubscribe is not None and not callable(on_unsubscribe):
            raise ConfigurationError("on_unsubscribe must be a callable (or None)")
        self.on_unsubscribe = on_unsubscribe
        self.basic_auth = BasicAuth.optional(basic_auth, realm=basic_auth_realm)
        self.paths = _check_paths(paths)
        if max_body_bytes < 1:
            raise ConfigurationError("max_body_bytes must be positive")
        self.max_body_bytes = max_body_bytes
        self.answer_budgets_verification = answer_budgets_verification
        if verifier is None:
            verifier = build_verifier(**verifier_options)
        elif clashing := list(given_verifier_options(verifier_options)):
            raise ConfigurationError(f"give either verifier or {', '.join(clashing)}, not both")
        self.verifier = verifier
        emulator_base = _announce_emulator(verifier)
        self._log_suffix = f" emulator={emulator_base}" if emulator_base else ""
        if emulator_base is not None and confirm == "api" and confirm_endpoint_url is None:
            confirm_endpoint_url = emulator_base
        self.confirmer = make_confirmer(
            confirm, endpoint_url=confirm_endpoint_url, url_for=verifier.confirmation_url
        )
        window = verifier.freshness_window
        self.ledger = DeliveryLedger(store_for_window(dedupe, window), retention=window)
        self._deliveries = itertools.count(1)  # next() is atomic: no lock on the hot path
        self._delivered = 0
        self._summarised = 0
        self._next_summary = 0.0  # the first delivery is logged at INFO
        # (topic, token) digests of subscriptions confirmed within the freshness window: a
        # replayed SubscriptionConfirmation (verified again in full) is answered without a
        # second ConfirmSubscription call. Per process and bounded, like the default store.
        self._confirmed = MemoryDedupeStore(retention=window, max_entries=CONFIRMED_MEMORY_ENTRIES)

    @property
    def dedupe(self) -> DedupeStore:
        """The de-duplication store (kept by :attr:`ledger`)."""
        return self.ledger.store

    @dedupe.setter
    def dedupe(self, store: DedupeStore) -> None:
        check_retention(store, self.verifier.freshness_window)
        self.ledger.store = store

    @property
    def draining(self) -> bool:
        """Whether :meth:`begin_shutdown` was called."""
        return self.ledger.draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self.ledger.draining = value

    @property
    def delivered(self) -> int:
        """How many notifications the app has answered with 2xx since this middleware was
        built (each is logged at DEBUG; an INFO line sums them up at most once a minute)."""
        return self._delivered

    @property
    def in_flight(self) -> int:
        """How many notifications the app is processing right now."""
        return self.ledger.in_flight

    def begin_shutdown(self) -> None:
        """Stop taking new deliveries: from now on they get 503 ``shutting_down`` (SNS
        retries, reaching this server's successor); the running ones go on."""
        self.ledger.begin_shutdown()

    def release_in_flight(self) -> int:
        """Release the claims of every delivery still running (a shutdown that cannot wait
        any longer), so their redeliveries run at once; returns how many."""
        return self.ledger.release_in_flight()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if type(path) is not str or not path.isascii():  # the ASCII case of _request_path
            path = _request_path(environ)
        if path not in self.paths:
            return self.app(environ, start_response)
        if self.observer is not None:
            return self._observed(path, environ, start_response)
        verdict = self._decide(path, environ)
        start_response(verdict.status_line, verdict.headers)
        return [verdict.body]

    def _observed(
        self, path: str, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """:meth:`__call__` with an observer: the decision is timed and reported."""
        started = time.perf_counter()
        verdict = self._decide(path, environ)
        elapsed = time.perf_counter() - started
        start_response(verdict.status_line, verdict.headers)
        message = verdict.message
        decision = Decision(
            as_reason(verdict.reason),
            verdict.status,
            path,
            elapsed,
            *(
                (None, None, None)
                if message is None
                else (message.type, message.message_id, message.topic_arn)
            ),
        )
        observer = self.observer
        if observer is not None:  # it may have been unset meanwhile (another thread)
            self._observer_guard.call(observer, decision)
        return [verdict.body]

    def _decide(self, path: str, environ: WSGIEnvironment) -> _Verdict:
        """Decide about one request to ``path`` and log the decision (one line)."""
        verdict = self._judge(environ)
        if log.isEnabledFor(verdict.level):
            self._log(verdict, path)
        return verdict

    def _judge(self, environ: WSGIEnvironment) -> _Verdict:
        message: SnsMessage | None = None
        try:
            if self.basic_auth is not None:
                self.basic_auth.check(environ.get("HTTP_AUTHORIZATION"))
                del environ["HTTP_AUTHORIZATION"]  # the credentials were for us, not the app
            if environ.get("REQUEST_METHOD") != "POST":
                raise MethodNotAllowedError("SNS delivers with POST")
            body = read_body(environ, self.max_body_bytes)
            message = self.verifier.verify(body, _sns_headers(environ))
            if type(message) is Notification and (
                message.subject != TOPIC_VERIFIED_SUBJECT or not self.answer_budgets_verification
            ):  # the common case, straight to the app (is_topic_verification, inlined)
                return self._deliver(message, body, environ)
            return self._dispatch(message, body, environ)
        except SnsError as exc:
            return _render(
                exc.answer(), _log_level(exc), f"rejected {exc.reason} ({exc.detail})", message
            )
        except Exception as exc:
            return _answer(
                500,
                Reason.INTERNAL_ERROR,
                "internal error",
                level=logging.ERROR,
                text="internal error while handling an SNS delivery",
                message=message,
                failure=exc,
            )

    def _log(self, verdict: _Verdict, path: str) -> None:
        """One line per decision: what, which message, and the emulator base if any; the
        fields of :data:`DECISION_LOG_FIELDS` go along as ``extra=``."""
        message = verdict.message
        fields: dict[str, object] = {"reason": verdict.reason, "status": verdict.status}
        fields["path"] = path
        about = ""
        if message is not None:
            about = (
                f" type={message.type} message_id={message.message_id} topic={message.topic_arn!r}"
            )
            fields["message_type"] = message.type
            fields["message_id"] = message.message_id
            fields["topic_arn"] = message.topic_arn
        text = verdict.text
        if text is None:
            text = f"delivered to the app ({verdict.status_line})"
        log.log(
            verdict.level,
            "%s%s%s",
            text,
            about,
            self._log_suffix,
            exc_info=verdict.failure,
            extra=fields,
        )

    def _dispatch(self, message: SnsMessage, body: bytes, environ: WSGIEnvironment) -> _Verdict:
        if isinstance(message, SubscriptionConfirmation):
            return self._confirm(message)
        if isinstance(message, UnsubscribeConfirmation):
            return self._unsubscribed(message)
        if not isinstance(message, Notification):  # pragma: no cover - three types exist
            raise SnsError("unknown message type", reason=Reason.UNKNOWN_TYPE)
        if self.answer_budgets_verification and is_topic_verification(message):
            return _answer(
                200,
                Reason.BUDGETS_VERIFICATION_ACKNOWLEDGED,
                "acknowledged",
                level=logging.INFO,
                text="budgets topic verification acknowledged",
                message=message,
            )
        return self._deliver(message, body, environ)

    def _confirm(self, message: SubscriptionConfirmation) -> _Verdict:
        """Confirm once per (topic, token) within the window; replays get 200 ``duplicate``."""
        # A digest, so the remembered keys are not tokens.
        key = hashlib.sha256(f"{message.topic_arn}\n{message.token}".encode()).hexdigest()
        claim = self._confirmed.claim(key)
        if claim.state is ClaimState.DONE:
            return _answer(
                200,
                Reason.DUPLICATE,
                "subscription already confirmed",
                level=logging.INFO,
                text="duplicate confirmation ignored (already confirmed)",
                message=message,
            )
        if claim.state is ClaimState.IN_PROGRESS:
            raise TransientError(
                "this subscription is being confirmed; try again later", reason=Reason.IN_PROGRESS
            )
        try:
            self.confirmer(message)
        except BaseException:
            self._confirmed.release(claim)
            raise
        self._confirmed.commit(claim)
        return _answer(
            200,
            Reason.SUBSCRIPTION_CONFIRMED,
            "subscription confirmed",
            level=logging.INFO,
            text="confirmed subscription",
            message=message,
        )

    def _unsubscribed(self, message: UnsubscribeConfirmation) -> _Verdict:
        """This endpoint's subscription was deleted: tell :attr:`on_unsubscribe` once per
        MessageId (see the class docstring for how its failures are answered)."""
        hook = self.on_unsubscribe
        if hook is None:
            return _answer(
                200,
                Reason.UNSUBSCRIBE_ACKNOWLEDGED,
                "acknowledged",
                level=logging.WARNING,
                text="unsubscribe confirmation acknowledged: deliveries from this topic stop",
                message=message,
            )
        delivery = self.ledger.claim(message.message_id)
        if delivery.duplicate:
            return _answer(
                200,
                Reason.DUPLICATE,
                "already processed",
                level=logging.INFO,
                text="duplicate unsubscribe confirmation ignored",
                message=message,
            )
        done = False
        try:
            hook(message)
            done = True
        except SnsError as exc:
            done = not exc.transient  # permanent: a redelivery could not do better
            level = logging.ERROR if exc.transient else logging.WARNING
            return _render(
                exc.answer(), level, f"on_unsubscribe failed: {exc.reason} ({exc.detail})", message
            )
        except Exception as exc:
            return _answer(
                500,
                Reason.APP_ERROR,
                "the unsubscribe hook failed",
                level=logging.ERROR,
                text="the on_unsubscribe hook failed",
                message=message,
                failure=exc,
            )
        finally:
            self.ledger.finish(delivery, succeeded=done)
        return _answer(
            200,
            Reason.UNSUBSCRIBE_ACKNOWLEDGED,
            "acknowledged",
            level=logging.INFO,
            text="unsubscribe confirmation handed to on_unsubscribe",
            message=message,
        )

    def _deliver(self, message: Notification, body: bytes, environ: WSGIEnvironment) -> _Verdict:
        ledger = self.ledger
        delivery = ledger.claim(message.message_id)
        if delivery.admission is not _FIRST:
            pending = " (commit pending)" if delivery.admission is Admission.COMMIT_PENDING else ""
            return _answer(
                200,
                Reason.DUPLICATE,
                "already processed",
                level=logging.INFO,
                text=f"duplicate delivery ignored{pending}",
                message=message,
            )
        succeeded = False
        try:
            environ[MESSAGE_ENVIRON_KEY] = message
            if (effects := ledger.effects(delivery)) is not None:
                environ[EFFECTS_ENVIRON_KEY] = effects
            restore_body(environ, body)
            status, headers, app_body = self._call_app(environ)
            code = int(status[:3])
            succeeded = 200 <= code < 300
        except Exception as exc:
            return _answer(
                500,
                Reason.APP_ERROR,
                "the application failed",
                level=logging.ERROR,
                text="the wrapped app failed",
                message=message,
                failure=exc,
            )
        finally:  # commit on 2xx, else release: whatever happened, the claim is finished
            ledger.finish(delivery, succeeded=succeeded)
        # The line's text is built by _log, only if its level is on (see _summary_line).
        level: int = logging.INFO  # the app's refusal: one INFO line, as for our refusals
        text = None
        if succeeded:  # counted, and logged at DEBUG unless it is the first for a minute
            self._delivered = count = next(self._deliveries)
            now = time.monotonic()
            if now < self._next_summary:
                level = logging.DEBUG
            else:
                level, text = self._summary_line(status, count, now)
        return _Verdict(_DELIVERED, code, status, headers, app_body, level, text, message)

    def _summary_line(self, status: str, count: int, now: float) -> tuple[int, str]:
        """The INFO line of the accepted delivery number ``count``, the first for
        :data:`DELIVERY_SUMMARY_SECONDS`: it says how many came since the last such line.

        Accepted deliveries are logged at DEBUG, and at INFO when one is the first for
        :data:`DELIVERY_SUMMARY_SECONDS` (so a quiet server, a few alerts a day, still logs
        each one), with how many came since the last such line. One INFO line per delivery
        cost about as much as the rest of the middleware's own work (formatting, the
        handler's lock, the write) on a busy server. The app's non-2xx answers (the claim is
        released: SNS retries a 5xx, drops a 4xx) stay one INFO line each, like refusals."""
        self._next_summary = now + DELIVERY_SUMMARY_SECONDS
        since, self._summarised = self._summarised, count
        return (
            logging.INFO,
            f"delivered to the app ({status}); {count - since} since the last such line, "
            f"{count} since start",
        )

    def _call_app(self, environ: WSGIEnvironment) -> tuple[str, list[tuple[str, str]], bytes]:
        """Run the app to completion: drain and close its iterable exactly once.

        PEP 3333's whole protocol, without WebOb's Request on the hot path: output given to
        ``write()`` comes first, the iterable after it; ``start_response`` may be called
        while iterating; an ``exc_info`` re-raises (the app failed: 500 ``app_error``)."""
        started: tuple[str, list[tuple[str, str]]] | None = None
        output: list[bytes] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            nonlocal started
            if exc_info is not None:
                raise exc_info[1].with_traceback(exc_info[2])
            started = (status, headers)
            return output.append

        app_iter = self.app(environ, start_response)
        if type(app_iter) is list:  # the usual answer: nothing to close
            output.extend(app_iter)
        else:
            try:
                output.extend(app_iter)
            finally:
                close = getattr(app_iter, "close", None)
                if close is not None:
                    close()
        if started is None:
            raise RuntimeError("the app returned without calling start_response")
        status, headers = started
        return status, list(headers), b"".join(output)


def filter_app_factory(
    app: WSGIApplication, global_conf: dict[str, Any], **local_conf: str
) -> SnsMiddleware:
    """PasteDeploy ``paste.filter_app_factory``: ``[filter:sns] use = egg:snsmiddleware#sns``.

    Every option is a string converted strictly (see :mod:`snsmiddleware.config`); unknown
    keys fail at startup. A wrapped app with an ``on_unsubscribe`` method (such as
    :class:`~snsmiddleware.budget_app.BudgetApp`) gets it as the ``on_unsubscribe`` hook: a
    callable cannot be written in an INI file.
    """
    from .config import middleware_options

    hook = getattr(app, "on_unsubscribe", None)
    return SnsMiddleware(
        app, on_unsubscribe=hook if callable(hook) else None, **middleware_options(local_conf)
    )
