"""Ports, process start-up and request routing for the tests that run real servers on
127.0.0.1."""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import requests
from requests.adapters import HTTPAdapter

from snsmiddleware.http_deadline import DeadlineAdapter


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int,
    process: subprocess.Popen[Any] | Sequence[subprocess.Popen[Any]] | None = None,
    timeout: float = 30,
) -> None:
    """Return once something accepts connections on ``port``; raise if ``process`` (or any
    of several) exits first or ``timeout`` seconds pass."""
    processes = (
        [] if process is None else [process] if not isinstance(process, Sequence) else process
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if exited := [p for p in processes if p.poll() is not None]:
                raise RuntimeError(f"the server process exited ({exited[0].returncode})") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on port {port}") from None
            time.sleep(0.05)


class LocalHttpServer(http.server.ThreadingHTTPServer):
    """A ThreadingHTTPServer on 127.0.0.1 with a free port, for one test module."""

    daemon_threads = True

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.stop = threading.Event()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _StoppableServer(Protocol):
    stop: threading.Event

    def serve_forever(self) -> None: ...
    def shutdown(self) -> None: ...
    def server_close(self) -> None: ...


_Server = TypeVar("_Server", bound=_StoppableServer)


@contextmanager
def serving(server: _Server) -> Iterator[_Server]:
    """Run ``server`` in a daemon thread; stop it (and its stalled handlers) afterwards."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


class ForwardingAdapter(DeadlineAdapter):
    """Sends requests for the SNS host to a local server instead, recording their URLs.

    A :class:`DeadlineAdapter`, so certificate downloads through it keep their hard deadline
    (for confirmations it behaves like a plain ``HTTPAdapter``)."""

    def __init__(self, target_base: str) -> None:
        super().__init__(max_retries=0)
        self.target_base = target_base
        self.sent: list[str] = []

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        self.sent.append(request.url)
        request.url = self.target_base + request.path_url
        return super().send(request, *args, **kwargs)


class RefusingAdapter(HTTPAdapter):
    """Catches every other URL: records it and never touches the network."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        self.sent.append(request.url)
        raise requests.ConnectionError("this test never leaves 127.0.0.1")


class MotoWsgiServer:
    """moto's server mode on a free port of 127.0.0.1, its WSGI app wrapped by ``wrap`` (to
    serialise requests, inject faults, add calls moto lacks); werkzeug serves it in a thread."""

    def __init__(self, wrap: Any) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._app = wrap(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            "127.0.0.1", self.port, self._app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)
