"""Run waitress until SIGTERM or SIGINT, then shut down without cutting deliveries short.

``waitress.serve`` has no shutdown of its own: a signal ends the process at once, in the
middle of whatever it was sending, so every routine restart (systemd, a container
orchestrator) carried the risks of a crash. Here a signal instead:

1. stops accepting connections (the listening socket is closed; SNS's next attempt reaches
   the restarted server, or retries) and makes the middleware answer new deliveries on
   open connections with 503 ``shutting_down``;
2. lets the deliveries in flight finish and their answers reach SNS, for at most
   ``timeout`` (default: SNS's answer deadline, ``policy.SNS_ANSWER_DEADLINE``; an answer
   later than that is discarded by SNS anyway);
3. releases the claims of any delivery still running after that, so its redelivery runs at
   once instead of waiting for the lease, and logs what it did.

A second signal ends the process at once.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

from .middleware import SnsMiddleware
from .policy import SNS_ANSWER_DEADLINE

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger(__name__)

#: SNS abandons an attempt after its answer deadline: finishing a delivery later is of no use.
DEFAULT_SHUTDOWN_TIMEOUT: Final = SNS_ANSWER_DEADLINE
_POLL_SECONDS: Final = 0.02


def find_middlewares(app: object, depth: int = 16) -> Iterator[SnsMiddleware]:
    """The SnsMiddleware instances in a chain of wrappers (each reachable through ``.app``,
    ``.application`` or PasteDeploy's ``.app``), outermost first."""
    seen: set[int] = set()
    while app is not None and depth > 0 and id(app) not in seen:
        seen.add(id(app))
        if isinstance(app, SnsMiddleware):
            yield app
        app = getattr(app, "app", None) or getattr(app, "application", None)
        depth -= 1


class GracefulServer:
    """A waitress server that shuts down on SIGTERM/SIGINT as described above.

    :param app: the WSGI application (SnsMiddleware instances in it are found and drained).
    :param timeout: how long in-flight deliveries may take to finish after a signal.
    :param waitress_options: passed to ``waitress.create_server`` (host, port, threads...).
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        timeout: timedelta = DEFAULT_SHUTDOWN_TIMEOUT,
        **waitress_options: Any,
    ) -> None:
        from waitress.server import create_server

        self.app = app
        self.timeout = timeout.total_seconds()
        self.middlewares = list(find_middlewares(app))
        self._stop = threading.Event()
        # Handlers before the port opens: a SIGTERM right after the start must drain too.
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._on_signal)
        self.server: Any = create_server(app, **waitress_options)

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    def run(self) -> None:
        """Serve until a signal (or :meth:`stop`), then shut down as described above.

        Signals are caught only when the server was built in the main thread."""
        loop = threading.Thread(target=self.server.run, name="waitress-loop", daemon=True)
        loop.start()
        try:
            while not self._stop.wait(0.5):
                if not loop.is_alive():  # the loop died on its own: nothing to drain
                    return
            self.shutdown()
        finally:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stop.is_set():
            log.warning("second %s: exiting now", signal.Signals(signum).name)
            raise SystemExit(1)
        log.info("%s received: shutting down gracefully", signal.Signals(signum).name)
        self._stop.set()

    def stop(self) -> None:
        """Ask :meth:`run` to shut down (as a signal would)."""
        self._stop.set()

    def shutdown(self) -> None:
        """Stop accepting, drain in-flight deliveries, release what is abandoned."""
        started = time.monotonic()
        closed = threading.Event()

        def stop_listening() -> None:  # runs in the loop thread, which owns the sockets
            from waitress import wasyncore

            self.server.accepting = False
            wasyncore.dispatcher.close(self.server)  # the listener only, not the trigger
            closed.set()

        self.server.trigger.pull_trigger(stop_listening)
        closed.wait(1.0)
        for middleware in self.middlewares:
            middleware.begin_shutdown()
        in_flight = self._in_flight()
        deadline = started + self.timeout
        while self._busy() and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS)
        abandoned = sum(middleware.release_in_flight() for middleware in self.middlewares)
        self.server.task_dispatcher.shutdown(cancel_pending=True, timeout=0.2)
        log.info(
            "shut down in %.1f s: %d delivery(ies) were in flight, %d abandoned (claims released)",
            time.monotonic() - started,
            in_flight,
            abandoned,
        )

    def _in_flight(self) -> int:
        return sum(middleware.in_flight for middleware in self.middlewares)

    def _busy(self) -> bool:
        """Requests queued or running, or answers not yet written to their sockets."""
        dispatcher = self.server.task_dispatcher
        if self._in_flight() or dispatcher.queue or dispatcher.active_count:
            return True
        for channel in list(self.server._map.values()):
            if getattr(channel, "requests", None) or getattr(channel, "total_outbufs_len", 0):
                return True
        return False


def serve(
    app: WSGIApplication, *, timeout: timedelta = DEFAULT_SHUTDOWN_TIMEOUT, **kw: Any
) -> None:
    """``waitress.serve`` with the graceful shutdown of :class:`GracefulServer`."""
    server = GracefulServer(app, timeout=timeout, **kw)
    server.server.print_listen("Serving on http://{}:{}")
    server.run()
