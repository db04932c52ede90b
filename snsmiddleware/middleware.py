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
"""

from __future__ import annotations

import hashlib
import logging
import threading
import warnings
from collections.abc import Iterable
from datetime import timedelta
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

from webob import Request

from .basicauth import DEFAULT_REALM, BasicAuth, BasicAuthCredentials
from .certs import CertificateFetcher
from .confirm import Confirmer, make_confirmer
from .dedupe import (
    Claim,
    ClaimState,
    CommitBacklog,
    DedupeStore,
    EffectLedger,
    MemoryDedupeStore,
    MessageEffects,
)
from .errors import (
    ConfigurationError,
    MethodNotAllowedError,
    SnsError,
    TransientError,
    UnauthorizedError,
)
from .message import Notification, SnsMessage, SubscriptionConfirmation, is_topic_verification
from .policy import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_MAX_AGE,
    SIGNATURE_VERSIONS,
    InsecureConfigurationWarning,
)
from .verifier import Clock, SnsVerifier, utc_now
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

_SNS_HEADERS: Final = (
    ("x-amz-sns-message-type", "HTTP_X_AMZ_SNS_MESSAGE_TYPE"),
    ("x-amz-sns-message-id", "HTTP_X_AMZ_SNS_MESSAGE_ID"),
    ("x-amz-sns-topic-arn", "HTTP_X_AMZ_SNS_TOPIC_ARN"),
    ("x-amz-sns-rawdelivery", "HTTP_X_AMZ_SNS_RAWDELIVERY"),
)
_TEXT: Final = ("Content-Type", "text/plain; charset=utf-8")
#: Our answers quote the sender's text (bounded and escaped); a browser must never sniff it
#: into HTML.
NOSNIFF: Final = ("X-Content-Type-Options", "nosniff")
#: Recently confirmed subscriptions remembered, so a replayed confirmation is not re-sent.
CONFIRMED_MEMORY_ENTRIES: Final = 1024
_UNSET: Final[Any] = object()


def _status_line(code: int) -> str:
    return f"{code} {HTTPStatus(code).phrase}"


def _answer(
    start_response: StartResponse,
    code: int,
    reason: str,
    detail: str,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    body = f"{reason}: {detail}\n".encode()
    headers = [_TEXT, NOSNIFF, ("Content-Length", str(len(body))), ("X-SNS-Reason", reason)]
    headers.extend(extra_headers)
    start_response(_status_line(code), headers)
    return [body]


def _log_level(exc: SnsError) -> int:
    """ERROR for 5xx, WARNING for refusals; INFO for a request that offered no credentials,
    which is how SNS starts every delivery to a Basic-auth endpoint."""
    if exc.status >= 500:
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
    return {name: environ[key] for name, key in _SNS_HEADERS if environ.get(key) is not None}


def check_retention(store: DedupeStore, window: timedelta) -> None:
    """Refuse a store that forgets processed MessageIds inside the freshness ``window``.

    A shorter retention lets a redelivery (or a replay) that the verifier still accepts be
    processed a second time. The middleware refuses (``ConfigurationError``) rather than
    changing the store: the store may be shared, and its retention is also a storage
    decision its owner made. A store that does not say (no ``retention`` attribute) is
    accepted with an :class:`InsecureConfigurationWarning`.
    """
    retention = getattr(store, "retention", None)
    if retention is None:
        warnings.warn(
            f"the de-duplication store {store!r} has no retention attribute, so it cannot be "
            f"checked: it must remember processed MessageIds for at least {window} "
            "(max_age + 2 x clock_skew), or late redeliveries are processed twice",
            InsecureConfigurationWarning,
            stacklevel=3,
        )
        return
    if not isinstance(retention, timedelta):
        raise ConfigurationError("the de-duplication store's retention must be a timedelta")
    if retention < window:
        raise ConfigurationError(
            f"the de-duplication store {store!r} remembers MessageIds for {retention}, less "
            f"than the freshness window of {window} (max_age + 2 x clock_skew): a redelivery "
            f"after that would be processed twice; build the store with retention={window!r} "
            "or more"
        )


def _request_path(environ: WSGIEnvironment) -> str | None:
    # PATH_INFO is latin-1 "bytes as str" (PEP 3333); paths are configured as real text.
    try:
        return str(environ.get("PATH_INFO", "")).encode("latin-1").decode("utf-8")
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
    :param dedupe: a :class:`DedupeStore`; default: a bounded in-memory store whose retention
        covers the freshness window. A store whose ``retention`` is shorter than the window
        (``max_age + 2 × clock_skew``) is a :class:`ConfigurationError`; see
        :func:`check_retention`.
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

    Example::

        app = SnsMiddleware(app, paths=["/sns/budgets"],
                            topics=["arn:aws:sns:us-east-1:123456789012:budget-alerts"])
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        paths: Iterable[str],
        topics: Iterable[str] | None = None,
        confirm: str | Confirmer = "api",
        confirm_endpoint_url: str | None = None,
        dedupe: DedupeStore | None = None,
        fetch_certificate: CertificateFetcher | None = None,
        clock: Clock = _UNSET,
        require_signature_v2: bool = False,
        max_age: timedelta = _UNSET,
        clock_skew: timedelta = _UNSET,
        verifier: SnsVerifier | None = None,
        emulator: str | None = None,
        answer_budgets_verification: bool = True,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        basic_auth: BasicAuthCredentials | None = None,
        basic_auth_realm: str | None = None,
    ) -> None:
        self.app = app
        if basic_auth is None and basic_auth_realm is not None:
            raise ConfigurationError("basic_auth_realm needs basic_auth")
        self.basic_auth = (
            None
            if basic_auth is None
            else BasicAuth(
                basic_auth, realm=DEFAULT_REALM if basic_auth_realm is None else basic_auth_realm
            )
        )
        if isinstance(paths, str):
            raise ConfigurationError("paths must be a list of paths, not one string")
        self.paths = frozenset(paths)
        if not self.paths or not all(path.startswith("/") for path in self.paths):
            raise ConfigurationError('paths must be a non-empty list of paths starting with "/"')
        if verifier is not None:
            clashing = [
                name
                for name, value in (
                    ("topics", topics),
                    ("fetch_certificate", fetch_certificate),
                    ("clock", None if clock is _UNSET else clock),
                    ("max_age", None if max_age is _UNSET else max_age),
                    ("clock_skew", None if clock_skew is _UNSET else clock_skew),
                    ("require_signature_v2", require_signature_v2 or None),
                    ("emulator", emulator),
                )
                if value is not None
            ]
            if clashing:
                raise ConfigurationError(f"give either verifier or {', '.join(clashing)}, not both")
            self.verifier = verifier
        else:
            if topics is None:
                raise ConfigurationError("topics is required: the TopicArns this endpoint accepts")
            self.verifier = SnsVerifier(
                topics=topics,
                signature_versions=("2",) if require_signature_v2 else SIGNATURE_VERSIONS,
                max_age=DEFAULT_MAX_AGE if max_age is _UNSET else max_age,
                clock_skew=DEFAULT_CLOCK_SKEW if clock_skew is _UNSET else clock_skew,
                fetch_certificate=fetch_certificate,
                clock=utc_now if clock is _UNSET else clock,
                emulator=emulator,
            )
        if max_body_bytes < 1:
            raise ConfigurationError("max_body_bytes must be positive")
        self.max_body_bytes = max_body_bytes
        emulator_base = self.verifier.emulator.base if self.verifier.emulator else None
        self._log_suffix = f" emulator={emulator_base}" if emulator_base else ""
        if emulator_base is not None:
            log.warning(
                "EMULATOR MODE: trusting SNS certificates and confirmation URLs under %s "
                "instead of AWS; never use this in production",
                emulator_base,
            )
            if confirm == "api" and confirm_endpoint_url is None:
                confirm_endpoint_url = emulator_base
        self.confirmer = make_confirmer(
            confirm, endpoint_url=confirm_endpoint_url, url_for=self.verifier.confirmation_url
        )
        if dedupe is not None:
            check_retention(dedupe, self.verifier.freshness_window)
        self.dedupe: DedupeStore = (
            dedupe
            if dedupe is not None
            else MemoryDedupeStore(retention=self.verifier.freshness_window)
        )
        self._backlog = CommitBacklog(retention=self.verifier.freshness_window)
        # (topic, token) digests of subscriptions confirmed within the freshness window: a
        # replayed SubscriptionConfirmation (verified again in full) is answered without a
        # second ConfirmSubscription call. Per process and bounded, like the default store.
        self._confirmed = MemoryDedupeStore(
            retention=self.verifier.freshness_window, max_entries=CONFIRMED_MEMORY_ENTRIES
        )
        self.answer_budgets_verification = answer_budgets_verification
        # Claims of the deliveries running now, so a shutdown can release what it abandons.
        self._active: dict[str, Claim] = {}
        self._active_lock = threading.Lock()
        self.draining = False

    @property
    def in_flight(self) -> int:
        """How many notifications the app is processing right now."""
        return len(self._active)

    def begin_shutdown(self) -> None:
        """Stop taking new deliveries: from now on they get 503 ``shutting_down`` (SNS
        retries, reaching this server's successor); the running ones go on."""
        self.draining = True

    def release_in_flight(self) -> int:
        """Release the claims of every delivery still running (a shutdown that cannot wait
        any longer), so their redeliveries run at once; returns how many."""
        with self._active_lock:
            abandoned = list(self._active.values())
            self._active.clear()
        for claim in abandoned:
            self._release(claim)
            log.warning("shutdown abandoned a delivery; claim released message_id=%s", claim.key)
        return len(abandoned)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if _request_path(environ) not in self.paths:
            return self.app(environ, start_response)
        message: SnsMessage | None = None
        try:
            if self.basic_auth is not None:
                self.basic_auth.check(environ.get("HTTP_AUTHORIZATION"))
                del environ["HTTP_AUTHORIZATION"]  # the credentials were for us, not the app
            if environ.get("REQUEST_METHOD") != "POST":
                raise MethodNotAllowedError("SNS delivers with POST")
            body = read_body(environ, self.max_body_bytes)
            message = self.verifier.verify(body, _sns_headers(environ))
            return self._dispatch(message, body, environ, start_response)
        except SnsError as exc:
            self._log(_log_level(exc), f"rejected {exc.reason} ({exc.detail})", message)
            return _answer(start_response, exc.status, exc.reason, exc.detail, self._headers(exc))
        except Exception:
            log.exception("internal error while handling an SNS delivery")
            return _answer(start_response, 500, "internal_error", "internal error")

    def _headers(self, exc: SnsError) -> list[tuple[str, str]]:
        if isinstance(exc, MethodNotAllowedError):
            return [("Allow", "POST")]
        if isinstance(exc, UnauthorizedError) and self.basic_auth is not None:
            return [("WWW-Authenticate", self.basic_auth.challenge)]
        return []

    def _log(self, level: int, decision: str, message: SnsMessage | None) -> None:
        """One line per decision: what, which message, and the emulator base if any."""
        if not log.isEnabledFor(level):
            return
        about = (
            f" type={message.type} message_id={message.message_id} topic={message.topic_arn!r}"
            if message is not None
            else ""
        )
        log.log(level, "%s%s%s", decision, about, self._log_suffix)

    def _dispatch(
        self,
        message: SnsMessage,
        body: bytes,
        environ: WSGIEnvironment,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        if isinstance(message, SubscriptionConfirmation):
            return self._confirm(message, start_response)
        if not isinstance(message, Notification):
            self._log(logging.INFO, "unsubscribe confirmation acknowledged", message)
            return _answer(start_response, 200, "unsubscribe_acknowledged", "acknowledged")
        if self.answer_budgets_verification and is_topic_verification(message):
            self._log(logging.INFO, "budgets topic verification acknowledged", message)
            return _answer(start_response, 200, "budgets_verification_acknowledged", "acknowledged")
        return self._deliver(message, body, environ, start_response)

    def _confirm(
        self, message: SubscriptionConfirmation, start_response: StartResponse
    ) -> Iterable[bytes]:
        """Confirm once per (topic, token) within the window; replays get 200 ``duplicate``."""
        # A digest, so the remembered keys are not tokens.
        key = hashlib.sha256(f"{message.topic_arn}\n{message.token}".encode()).hexdigest()
        claim = self._confirmed.claim(key)
        if claim.state is ClaimState.DONE:
            self._log(logging.INFO, "duplicate confirmation ignored (already confirmed)", message)
            return _answer(start_response, 200, "duplicate", "subscription already confirmed")
        if claim.state is ClaimState.IN_PROGRESS:
            raise TransientError(
                "this subscription is being confirmed; try again later", reason="in_progress"
            )
        try:
            self.confirmer(message)
        except BaseException:
            self._confirmed.release(claim)
            raise
        self._confirmed.commit(claim)
        self._log(logging.INFO, "confirmed subscription", message)
        return _answer(start_response, 200, "subscription_confirmed", "subscription confirmed")

    def _deliver(
        self,
        message: Notification,
        body: bytes,
        environ: WSGIEnvironment,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        key = message.message_id
        if self.draining:
            raise TransientError("the server is shutting down", reason="shutting_down")
        if self._backlog:  # commits the store refused earlier: retry, and honour them
            self._backlog.flush(self.dedupe)
            if key in self._backlog:
                self._log(logging.INFO, "duplicate delivery ignored (commit pending)", message)
                return _answer(start_response, 200, "duplicate", "already processed")
        try:
            claim = self.dedupe.claim(key)
        except Exception as exc:
            log.exception("de-duplication store failed on claim")
            raise TransientError(
                "the de-duplication store is unavailable", reason="dedupe_unavailable"
            ) from exc
        if claim.state is ClaimState.DONE:
            self._log(logging.INFO, "duplicate delivery ignored", message)
            return _answer(start_response, 200, "duplicate", "already processed")
        if claim.state is ClaimState.IN_PROGRESS:
            raise TransientError(
                "this message is being processed; try again later", reason="in_progress"
            )

        environ[MESSAGE_ENVIRON_KEY] = message
        if isinstance(self.dedupe, EffectLedger):
            environ[EFFECTS_ENVIRON_KEY] = MessageEffects(self.dedupe, key)
        restore_body(environ, body)
        with self._active_lock:
            self._active[claim.token] = claim
        try:
            status, headers, app_body = self._call_app(environ)
            succeeded = 200 <= int(status[:3]) < 300
        except Exception:
            self._release(claim)
            log.exception("the wrapped app failed message_id=%s", key)
            return _answer(start_response, 500, "app_error", "the application failed")
        finally:
            with self._active_lock:
                self._active.pop(claim.token, None)
        if succeeded:
            try:
                self.dedupe.commit(claim)
            except Exception:
                # The app has done its work: answering an error would make SNS redeliver
                # and the work happen twice. Keep the commit here and retry it later.
                log.exception("de-duplication store failed on commit message_id=%s", key)
                self._backlog.add(claim)
        else:
            self._release(claim)
        self._log(logging.INFO, f"delivered to the app ({status})", message)
        start_response(status, headers)
        return [app_body]

    def _call_app(self, environ: WSGIEnvironment) -> tuple[str, list[tuple[str, str]], bytes]:
        """Run the app to completion: drain and close its iterable exactly once."""
        status, headers, app_iter = Request(environ).call_application(self.app)
        try:
            app_body = b"".join(app_iter)
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()
        return status, list(headers), app_body

    def _release(self, claim: Claim) -> None:
        try:
            self.dedupe.release(claim)
        except Exception:
            log.exception("de-duplication store failed on release message_id=%s", claim.key)


def filter_app_factory(
    app: WSGIApplication, global_conf: dict[str, Any], **local_conf: str
) -> SnsMiddleware:
    """PasteDeploy ``paste.filter_app_factory``: ``[filter:sns] use = egg:snsmiddleware#sns``.

    Every option is a string converted strictly (see :mod:`snsmiddleware.config`); unknown
    keys fail at startup.
    """
    from .config import middleware_options

    return SnsMiddleware(app, **middleware_options(local_conf))
