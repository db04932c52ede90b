"""What the standalone server answers besides SNS: health probes, and 404 everywhere else.

:class:`SnsMiddleware` passes requests for other paths to the app it wraps, as PEP 3333 asks
of middleware. Behind it, :class:`~snsmiddleware.budget_app.BudgetApp` can only refuse them
(``403 not_verified``, logged as an ERROR), which misled operators twice: a load balancer's
probe of ``/`` looked like an attack on the budget app, and a genuine alert sent to a
mistyped path was answered 4xx, which SNS counts as delivered, with nothing to say why.

:class:`FrontDoor`, the outermost application of ``snsmiddleware serve``, answers instead:

* the SNS paths: the middleware, untouched;
* ``/healthz`` (liveness): ``200 ok`` while the process serves requests at all;
* ``/readyz`` (readiness): ``200 ok`` when every part a delivery needs answers (the
  de-duplication store, the mailer, the dead-letter outbox) and the server is not shutting
  down, else ``503 not_ready`` naming the parts, never their addresses or credentials;
* anything else: ``404 not_found``, logged at INFO, or at WARNING naming the configured SNS
  paths when the request carries SNS's headers (a subscription to a mistyped URL).

Probes are answered without Basic auth (probes cannot send credentials, and the bodies say
nothing an anonymous client may not know) and to GET and HEAD only. Readiness results are
reused for :data:`READINESS_CACHE`, and one check runs at a time, so a flood of ``/readyz``
cannot become a flood of SMTP connections or store round trips.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from .answers import PlainTextAnswer
from .errors import excerpt
from .middleware import SnsMiddleware, _request_path
from .reasons import Reason

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

#: Liveness: the process answers.
HEALTH_PATH: Final = "/healthz"
#: Readiness: the process can handle a delivery now.
READY_PATH: Final = "/readyz"
#: How long one readiness result is reused.
READINESS_CACHE: Final = timedelta(seconds=2)
_PROBE_METHODS: Final = ("GET", "HEAD")


@dataclass(frozen=True, slots=True)
class ReadinessCheck:
    """One part a delivery needs: its name as the 503 body shows it, and a test of it."""

    part: str
    passes: Callable[[], bool]


def _answers(component: object) -> bool:
    """``component.ping()``, for the components that have one (custom stores and mailers
    without it are taken as usable: there is nothing to ask them)."""
    ping = getattr(component, "ping", None)
    if not callable(ping):
        return True
    try:
        return bool(ping())
    except Exception:  # a check must never take the probe down with it
        log.debug("readiness check of %r raised", component, exc_info=True)
        return False


def readiness_checks(middleware: SnsMiddleware) -> list[ReadinessCheck]:
    """What ``/readyz`` asks of the server built around ``middleware``: that it is not
    shutting down, that its de-duplication store answers, and, for an app with a ``mailer``
    (and a ``dead_letter`` outbox) such as BudgetApp, that they answer too. Components are
    looked up at each check, so a store replaced at run time is the one asked."""
    app: Any = middleware.app
    checks = [
        ReadinessCheck("the server (shutting down)", lambda: not middleware.draining),
        ReadinessCheck("the de-duplication store", lambda: _answers(middleware.dedupe)),
    ]
    if hasattr(app, "mailer"):
        checks.append(ReadinessCheck("the mailer", lambda: _answers(app.mailer)))
    if hasattr(app, "dead_letter"):
        checks.append(ReadinessCheck("the dead-letter outbox", lambda: _answers(app.dead_letter)))
    return checks


class Readiness:
    """The checks, run at most once per ``cache_for`` and by one thread at a time (callers
    that arrive meanwhile get the previous result); changes are logged once."""

    def __init__(
        self,
        checks: Sequence[ReadinessCheck],
        *,
        cache_for: timedelta = READINESS_CACHE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.checks = tuple(checks)
        self._cache_for = cache_for.total_seconds()
        self._clock = clock
        self._lock = threading.Lock()
        self._failed: tuple[str, ...] | None = None
        self._checked_at = 0.0

    def failing(self) -> tuple[str, ...]:
        """The parts that are not usable now (empty: ready)."""
        last = self._failed
        if last is not None and self._clock() < self._checked_at + self._cache_for:
            return last
        if last is not None and not self._lock.acquire(blocking=False):
            return last  # a check is running: its predecessor's answer, without waiting
        if last is None:
            self._lock.acquire()  # the very first answer: wait for it
        try:
            failed = tuple(check.part for check in self.checks if not check.passes())
            self._log_change(last, failed)
            self._failed, self._checked_at = failed, self._clock()
            return failed
        finally:
            self._lock.release()

    @staticmethod
    def _log_change(before: tuple[str, ...] | None, now: tuple[str, ...]) -> None:
        if now and now != before:
            log.warning("not ready: %s not usable (/readyz answers 503)", ", ".join(now))
        elif before and not now:
            log.info("ready again (/readyz answers 200)")


def _respond(
    answer: PlainTextAnswer, environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    body = answer.respond(start_response)
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else body


class FrontDoor:
    """The outermost application of ``snsmiddleware serve`` (see the module docstring).

    :param app: the application to serve (``.app``, so wrappers around it find the
        middleware inside).
    :param middleware: the SnsMiddleware in ``app``, if any: its paths go to ``app``, and
        readiness asks its store and its app's mailer.
    :param not_found: answer 404 to every path that is neither an SNS nor a probe path; when
        false they go to ``app`` (an INI pipeline whose own app serves other paths).
    :param readiness: the checks behind ``/readyz`` (default: :func:`readiness_checks`).
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        middleware: SnsMiddleware | None,
        not_found: bool,
        readiness: Readiness | None = None,
    ) -> None:
        self.app = app
        self.sns_paths = middleware.paths if middleware is not None else frozenset()
        self.not_found = not_found
        if readiness is None:
            readiness = Readiness(readiness_checks(middleware) if middleware is not None else ())
        self.readiness = readiness

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = _request_path(environ)
        if path in self.sns_paths:
            return self.app(environ, start_response)
        if path in (HEALTH_PATH, READY_PATH):
            return _respond(self._probe(path, environ), environ, start_response)
        if not self.not_found:
            return self.app(environ, start_response)
        self._log_not_found(path, environ)
        answer = PlainTextAnswer(404, Reason.NOT_FOUND, "there is no SNS endpoint at this path")
        return _respond(answer, environ, start_response)

    def _probe(self, path: str, environ: WSGIEnvironment) -> PlainTextAnswer:
        if environ.get("REQUEST_METHOD") not in _PROBE_METHODS:
            return PlainTextAnswer(
                405,
                Reason.METHOD_NOT_ALLOWED,
                "health endpoints answer GET and HEAD",
                [("Allow", ", ".join(_PROBE_METHODS))],
            )
        if path == HEALTH_PATH:
            return PlainTextAnswer(200, Reason.OK, "alive")
        failing = self.readiness.failing()
        if failing:
            return PlainTextAnswer(503, Reason.NOT_READY, f"not usable: {', '.join(failing)}")
        return PlainTextAnswer(200, Reason.OK, "ready")

    def _log_not_found(self, path: str | None, environ: WSGIEnvironment) -> None:
        shown = excerpt(path if path is not None else str(environ.get("PATH_INFO", "")), 200)
        method = str(environ.get("REQUEST_METHOD", ""))
        method = method if method.isascii() and method.isalpha() else excerpt(method, 16)
        sns_type = environ.get("HTTP_X_AMZ_SNS_MESSAGE_TYPE")
        if sns_type is None:
            log.info("not found: %s %s is not an SNS endpoint (answered 404)", method, shown)
            return
        # SNS's headers are unverified here (nothing was read): quoted and cut short.
        log.warning(
            "an SNS %s for topic %s came to %s, which is not an SNS endpoint of this server "
            "(its SNS paths: %s); answered 404, which SNS counts as delivered: correct the "
            "subscription's endpoint URL",
            excerpt(str(sns_type), 40),
            excerpt(str(environ.get("HTTP_X_AMZ_SNS_TOPIC_ARN", "")), 300),
            shown,
            ", ".join(sorted(self.sns_paths)) or "none",
        )
