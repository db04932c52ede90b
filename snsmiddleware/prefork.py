"""``snsmiddleware serve --workers N``: several waitress processes on one listening socket.

Why processes: ``cryptography`` releases the GIL during the RSA verify, so in one process
with several waitress threads each verify becomes a GIL hand-off between threads (two
verifying threads reach about 0.6× one); separate processes verify in parallel on separate
cores. Each worker is the same graceful server as ``serve`` without ``--workers`` (SIGTERM
drains it), and they share the de-duplication store, which must therefore be a shared one:
the SQLite file (one host) or Redis/DynamoDB. An in-process (``memory``) store is refused,
as each worker would de-duplicate on its own.

How: this process checks the configuration once (so a mistake stops the start before a port
is bound, as without ``--workers``), closes what it opened, binds the socket, and forks the
workers, which inherit the socket and build their own application (no SQLite connection or
thread crosses a fork). It forwards SIGTERM/SIGINT to them, stops listening itself at once,
and waits for them; a worker that dies while serving is started again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType
from typing import Final

from .dedupe import MemoryDedupeStore
from .errors import ConfigurationError
from .graceful import find_middlewares
from .server import Assembly, bind_failure, make_server

log = logging.getLogger("snsmiddleware.serve")

#: Workers that die this soon after their start, this many times in a row, are not
#: restarted in a loop: the server stops (a broken store, say, fails every start).
_MIN_WORKER_LIFETIME_SECONDS: Final = 1.0
_MAX_QUICK_DEATHS: Final = 3


def check_shared_store(assembly: Assembly) -> None:
    """Refuse a per-process de-duplication store when several workers would each keep one."""
    for middleware in find_middlewares(assembly.app):
        if isinstance(middleware.dedupe, MemoryDedupeStore):
            raise ConfigurationError(
                "--workers needs a de-duplication store the workers share (dedupe = "
                "sqlite:PATH on one host, or redis://...): with memory each worker would "
                "process a redelivery its sibling has already processed"
            )


def check_single_process_options(assembly: Assembly) -> None:
    """Refuse what only one process can do: a metrics server per worker could not share
    its port, and each would show only its own share of the traffic."""
    if assembly.settings.metrics_port is not None:
        raise ConfigurationError(
            "--metrics-port needs one server process: leave out --workers (or metrics_port)"
        )


def close_stores(assembly: Assembly) -> None:
    """Close the stores this process opened while checking (the workers open their own)."""
    for middleware in find_middlewares(assembly.app):
        close = getattr(middleware.dedupe, "close", None)
        if callable(close):
            close()


def listening_socket(host: str, port: int) -> socket.socket:
    """The socket every worker accepts on (bound and listening in this process)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    """Forks ``workers`` graceful waitress servers on one socket, and looks after them.

    :param rebuild: builds the application again, in each worker (after the fork).
    :param describe: prints the start-up summary once (the first worker's app and port).
    """

    def __init__(
        self,
        assembly: Assembly,
        rebuild: Callable[[], Assembly],
        *,
        workers: int,
        describe: Callable[[Assembly, int], None] | None = None,
    ) -> None:
        check_shared_store(assembly)
        check_single_process_options(assembly)
        close_stores(assembly)
        self.settings = assembly.settings
        self.workers = workers
        self._rebuild = rebuild
        try:
            self.socket = listening_socket(self.settings.host, self.settings.port)
        except OSError as exc:
            raise ConfigurationError(
                bind_failure(exc, self.settings.host, self.settings.port)
            ) from None
        self.port = int(self.socket.getsockname()[1])
        if describe is not None:
            describe(assembly, self.port)
        self._children: dict[int, float] = {}  # pid -> when it started
        self._stopping = False
        self._quick_deaths = 0

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit status."""
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for _ in range(self.workers):
                self._spawn()
            log.info("%d worker processes serving on port %d", self.workers, self.port)
            return self._watch()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _spawn(self) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(signum, signal.SIG_DFL)  # the server installs its own
                assembly = self._rebuild()
                assembly.settings.threads = self.settings.threads
                make_server(assembly, sockets=[self.socket]).run()
                status = 0
            except BaseException:
                log.exception("worker %d failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(status)
        self._children[pid] = time.monotonic()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self._stopping:
            log.info("%s received: stopping %d workers", signal.Signals(signum).name, self.workers)
            self._stopping = True
            self.socket.close()  # the kernel must not queue connections nobody will accept
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError):  # a second signal: they exit at once
                os.kill(pid, signum)

    def _watch(self) -> int:
        status = 0
        while self._children:
            try:
                pid, code = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover (PEP 475 retries)
                continue
            started = self._children.pop(pid, None)
            if started is None:
                continue
            if self._stopping:
                continue
            log.error("worker %d exited (status %d)", pid, os.waitstatus_to_exitcode(code))
            if time.monotonic() - started >= _MIN_WORKER_LIFETIME_SECONDS:
                self._quick_deaths = 0
            else:
                self._quick_deaths += 1
                if self._quick_deaths >= _MAX_QUICK_DEATHS:
                    log.error("workers die as they start: stopping")
                    self._on_signal(signal.SIGTERM, None)
                    status = 1
                    continue
            self._spawn()
        return status
