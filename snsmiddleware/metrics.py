"""Prometheus metrics built on the event hooks (``pip install snsmiddleware[prometheus]``).

:class:`SnsMetrics` is a set of observers: :meth:`SnsMetrics.instrument` hands them to an
:class:`~snsmiddleware.SnsMiddleware` (its decisions), its certificate cache, its
de-duplication ledger and a :class:`~snsmiddleware.budget_app.BudgetApp` behind it (the
emails). Nothing here runs in a request unless it is instrumented, and ``prometheus_client``
is imported only when an :class:`SnsMetrics` is built (the core never imports it).

Cardinality: every label value is chosen by this package (reason codes, outcomes, message
types) or signed by AWS for an allowed topic (the ``topic`` label is the TopicArn of a
*verified* message only; a refused request is counted with ``topic=""``). Topics are an
allowlist, so the labels are bounded; an allowlist with patterns (or ``*``) could still
admit many real topics, so at most ``max_topics`` distinct topics get their own label and
the rest are counted as ``topic="_other"``. A reason code that is not in the catalogue (an
error of the user's own) is counted as ``reason="other"``.

Several processes: ``prometheus_client`` keeps per-process values unless the environment
variable ``PROMETHEUS_MULTIPROC_DIR`` names a directory (empty at the first start, shared by
the processes, writable) *before* ``prometheus_client`` is imported; then every process
writes its values there and :meth:`SnsMetrics.collecting_registry` reads all of them, so one
scrape of any process's metrics port returns the totals of all (counters and histograms
summed, the last-notification gauge the latest of any process).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from .budget_app import BudgetApp, MailEvent
from .certs import CertificateEvent, CertificateEventKind
from .dedupe import DedupeEvent
from .errors import ConfigurationError
from .middleware import Decision, SnsMiddleware
from .reasons import Reason

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from _typeshed.wsgi import WSGIApplication
    from prometheus_client import CollectorRegistry

#: Metric names start with this.
DEFAULT_NAMESPACE: Final = "snsmiddleware"
#: Distinct topics with a label of their own; more are counted as ``_other``.
DEFAULT_MAX_TOPICS: Final = 100
OTHER_TOPIC: Final = "_other"
OTHER_REASON: Final = "other"
#: Seconds: fine below 100 ms (a cached certificate), then up to SNS's 15 s answer deadline.
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
MULTIPROCESS_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

_CATALOGUE: Final = frozenset(str(reason) for reason in Reason)

Event = TypeVar("Event")


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigurationError(
            "metrics need prometheus_client, which is not installed: "
            "pip install snsmiddleware[prometheus]"
        ) from None
    return prometheus_client


def outcome_of(status: int) -> str:
    """How SNS takes an answer: ``accepted`` (2xx), ``refused`` (4xx: delivered as far as
    SNS is concerned, never retried) or ``retry`` (5xx)."""
    if status >= 500:
        return "retry"
    return "refused" if status >= 400 else "accepted"


def _reason_label(code: str | None) -> str:
    if code is None:
        return ""
    return str(code) if code in _CATALOGUE else OTHER_REASON


def chained(first: Callable[[Event], object], second: Callable[[Event], object]) -> Any:
    """An observer calling ``first`` then ``second``; ``second`` runs even when ``first``
    raises (whose exception then goes on to the caller's guard)."""

    def both(event: Event) -> None:
        try:
            first(event)
        finally:
            second(event)

    return both


class SnsMetrics:
    """The Prometheus metrics of one application (see the README's Metrics section).

    :param registry: where the metrics are registered; default: a registry of their own
        (so that several instances, in tests, do not collide).
    :param namespace: the first part of every metric name.
    :param max_topics: distinct topics labelled by name (the rest: ``_other``).
    :param clock: Unix time, for the last-notification gauge.

    Example::

        metrics = SnsMetrics()
        app = metrics.instrument(SnsMiddleware(BudgetApp(...), paths=[...], topics=[...]))
        metrics_app = metrics.wsgi_app()   # serve it on a private port
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        max_topics: int = DEFAULT_MAX_TOPICS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        directory = os.environ.get(MULTIPROCESS_ENV)
        if directory and not os.path.isdir(directory):
            raise ConfigurationError(
                f"{MULTIPROCESS_ENV}={directory!r} is not a directory: create it (empty) "
                "before the processes start, or unset it"
            )
        prometheus = _prometheus()
        self._prometheus = prometheus
        self.registry: CollectorRegistry = (
            registry if registry is not None else prometheus.CollectorRegistry()
        )
        self.max_topics = max_topics
        self._clock = clock
        self._topics: set[str] = set()
        # (status, reason, type, topic) -> the labelled children a decision updates; bounded
        # like the labels themselves.
        self._decision_children: dict[tuple[int, str, str | None, str], tuple[Any, Any, Any]] = {}
        self._topics_lock = threading.Lock()
        common = {"namespace": namespace, "registry": self.registry}
        counter, gauge = prometheus.Counter, prometheus.Gauge
        self.decisions = counter(
            "decisions",
            "Requests to the SNS paths, by how SNS takes the answer, status, reason code, "
            "verified message type and verified topic",
            ["outcome", "status", "reason", "type", "topic"],
            **common,
        )
        self.latency = prometheus.Histogram(
            "decision_duration_seconds",
            "Seconds from a request to its answer (the app's share included), by outcome",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            **common,
        )
        self.last_notification = gauge(
            "last_notification_timestamp_seconds",
            "Unix time of the last verified Notification per topic: a subscription that "
            "silently died stops moving it",
            ["topic"],
            multiprocess_mode="max",
            **common,
        )
        self.certificate_hits = counter(
            "certificate_cache_hits", "Certificates served from the cache", **common
        )
        self.certificate_misses = counter(
            "certificate_cache_misses",
            "Certificate lookups that waited for a download",
            **common,
        )
        self.certificate_downloads = counter(
            "certificate_downloads", "Downloads that gave a usable certificate", **common
        )
        self.certificate_failures = counter(
            "certificate_download_failures",
            "Downloads that ended without a usable certificate, or could not start",
            ["reason"],
            **common,
        )
        self.certificate_refusals = counter(
            "certificate_refusals_remembered",
            "Certificate URLs refused from memory (a recent definitive no)",
            ["reason"],
            **common,
        )
        self.dedupe = counter(
            "dedupe",
            "De-duplication outcomes of notifications",
            ["outcome"],
            **common,
        )
        self._dedupe_children = {event: self.dedupe.labels(event.value) for event in DedupeEvent}
        self.emails = counter(
            "emails",
            "Budget alert emails: sent, already sent, dead-lettered, failed (SNS retries)",
            ["outcome", "reason"],
            **common,
        )

    # --- the observers --------------------------------------------------------------------

    def topic_label(self, topic_arn: str | None) -> str:
        """The ``topic`` label of a verified TopicArn (``""`` for none), bounded."""
        if topic_arn is None:
            return ""
        if topic_arn in self._topics:
            return topic_arn
        with self._topics_lock:
            if len(self._topics) >= self.max_topics:
                return OTHER_TOPIC
            self._topics.add(topic_arn)
        return topic_arn

    def observe_decision(self, decision: Decision) -> None:
        """The middleware's observer (it runs in the request: the labelled children are
        looked up once per label set, then taken from a plain dict)."""
        topic = self.topic_label(decision.topic_arn)
        key = (decision.status, decision.reason, decision.message_type, topic)
        children = self._decision_children.get(key)
        if children is None:
            children = self._decision_children[key] = self._children_for(*key)
        counter, latency, last_notification = children
        counter.inc()
        latency.observe(decision.elapsed)
        if last_notification is not None:
            last_notification.set(self._clock())

    def _children_for(
        self, status: int, reason: str, message_type: str | None, topic: str
    ) -> tuple[Any, Any, Any]:
        outcome = outcome_of(status)
        counter = self.decisions.labels(
            outcome, str(status), _reason_label(reason), message_type or "", topic
        )
        genuine = message_type == "Notification"
        last = self.last_notification.labels(topic) if genuine else None
        return counter, self.latency.labels(outcome), last

    def observe_certificate(self, event: CertificateEvent) -> None:
        """The certificate cache's observer."""
        kind = event.kind
        if kind is CertificateEventKind.HIT:
            self.certificate_hits.inc()
        elif kind is CertificateEventKind.MISS:
            self.certificate_misses.inc()
        elif kind is CertificateEventKind.DOWNLOAD:
            self.certificate_downloads.inc()
        elif kind is CertificateEventKind.FAILURE:
            self.certificate_failures.labels(_reason_label(event.reason)).inc()
        else:
            self.certificate_refusals.labels(_reason_label(event.reason)).inc()

    def observe_dedupe(self, event: DedupeEvent) -> None:
        """The de-duplication ledger's observer."""
        self._dedupe_children[event].inc()

    def observe_mail(self, event: MailEvent) -> None:
        """The budget app's observer."""
        self.emails.labels(event.outcome.value, _reason_label(event.reason)).inc()

    def instrument(self, app: SnsMiddleware) -> SnsMiddleware:
        """Attach the observers to ``app``, its certificate cache, its ledger and, when it
        wraps one directly, its :class:`BudgetApp`; observers already set keep running
        (first). Returns ``app``."""
        if not isinstance(app, SnsMiddleware):
            raise ConfigurationError("metrics instrument an SnsMiddleware (the outermost app)")
        app.observer = _added(app.observer, self.observe_decision)
        store = app.verifier.certificates
        store.observer = _added(store.observer, self.observe_certificate)
        app.ledger.observer = _added(app.ledger.observer, self.observe_dedupe)
        inner = app.app
        if isinstance(inner, BudgetApp):
            inner.observer = _added(inner.observer, self.observe_mail)
        return app

    # --- exposition -----------------------------------------------------------------------

    def collecting_registry(self) -> CollectorRegistry:
        """The registry to expose: this one, or with ``PROMETHEUS_MULTIPROC_DIR`` set, one
        that reads the values every process wrote there."""
        directory = os.environ.get(MULTIPROCESS_ENV)
        if not directory:
            return self.registry
        from prometheus_client import multiprocess

        registry: CollectorRegistry = self._prometheus.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return registry

    def exposition(self) -> bytes:
        """The metrics in Prometheus's text format."""
        return bytes(self._prometheus.generate_latest(self.collecting_registry()))

    def wsgi_app(self) -> WSGIApplication:
        """A WSGI app answering every request with the metrics (mount it privately)."""
        app: WSGIApplication = self._prometheus.make_wsgi_app(self.collecting_registry())
        return app

    def serve(self, host: str, port: int) -> MetricsServer:
        """Serve the metrics over HTTP on ``host:port`` from a background thread (bound
        now: a port in use raises :class:`OSError` here)."""
        server, thread = self._prometheus.start_http_server(
            port, addr=host, registry=self.collecting_registry()
        )
        return MetricsServer(server, thread)


def _added(existing: Any, observer: Callable[[Event], object]) -> Any:
    return observer if existing is None else chained(existing, observer)


class MetricsServer:
    """The metrics HTTP server :meth:`SnsMetrics.serve` started."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread

    @property
    def port(self) -> int:
        """The port it listens on (useful after binding port 0)."""
        return int(self.server.server_address[1])

    def close(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
