"""A hard deadline on one whole HTTP exchange made with requests.

requests and urllib3 only time out single socket operations: a host, or a proxy on the way,
that sends one byte just inside the read time-out holds a request for as long as it likes,
while the status line and headers arrive as well as during the body, and a TLS handshake
can be dripped the same way. :class:`Deadline` arms a timer; every socket that a
:class:`DeadlineAdapter` connection opens or reuses while the deadline is active is
registered with it, and when the timer fires each one is shut down. A shutdown wakes
whatever is blocked on the socket (the TLS handshake, a read of the status line or of the
body) with an end-of-file or an error at once, in the thread that is blocked: nothing is
left running behind the caller's back.

Each registration keeps its own duplicate of the file descriptor (``socket.fromfd``), and
shutting down and closing those duplicates happen under one lock, so a shutdown can never
hit an unrelated socket that reused a descriptor number; shutting down a duplicate acts on
the shared connection.

Importing this module imports requests: import it only where a download happens.
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_active: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "snsmiddleware_http_deadline", default=None
)


class Deadline:
    """Cut every socket of the requests made inside ``with Deadline(seconds):`` at the end.

    Only connections of a :class:`DeadlineAdapter` are registered; with any other adapter
    the deadline is still reported by :attr:`expired`, but nothing is cut.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._fired = False
        self._finished = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._token: contextvars.Token[Deadline | None] | None = None

    @property
    def expired(self) -> bool:
        return self._fired or time.monotonic() >= self.expires

    def remaining(self) -> float:
        return max(0.0, self.expires - time.monotonic())

    def clip(self, timeout: tuple[float, float]) -> tuple[float, float]:
        """``(connect, read)`` time-outs no longer than what is left (at least 1 ms)."""
        left = max(self.remaining(), 0.001)
        return (min(timeout[0], left), min(timeout[1], left))

    def __enter__(self) -> Deadline:
        self._token = _active.set(self)
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        if self._token is not None:
            _active.reset(self._token)
        with self._lock:
            self._finished = True
            for duplicate in self._sockets:
                duplicate.close()
            self._sockets.clear()

    def watch(self, sock: socket.socket) -> None:
        """Register ``sock`` (plain or TLS) to be shut down when the deadline passes."""
        try:
            duplicate = socket.fromfd(sock.fileno(), sock.family, sock.type)
        except (OSError, ValueError):
            return  # already closed: there is nothing left to cut
        with self._lock:
            if self._finished:
                duplicate.close()
                return
            self._sockets.append(duplicate)
            if self._fired:
                _shut_down(duplicate)

    def _fire(self) -> None:
        with self._lock:
            self._fired = True
            for duplicate in self._sockets:
                _shut_down(duplicate)


def _shut_down(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the peer or our side may have closed it already
        sock.shutdown(socket.SHUT_RDWR)


def _watch(sock: socket.socket | None) -> None:
    deadline = _active.get()
    if deadline is not None and sock is not None:
        deadline.watch(sock)


class _WatchedHTTPConnection(HTTPConnection):
    """Registers its socket with the active :class:`Deadline`: a new one as soon as TCP is
    connected (before any TLS handshake), a pooled one when it is reused for a request."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)
        return sock

    def request(  # type: ignore[override]  # urllib3's own signature, not http.client's
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        chunked: bool = False,
        preload_content: bool = True,
        decode_content: bool = True,
        enforce_content_length: bool = True,
    ) -> None:
        _watch(self.sock)
        super().request(
            method,
            url,
            body,
            headers,
            chunked=chunked,
            preload_content=preload_content,
            decode_content=decode_content,
            enforce_content_length=enforce_content_length,
        )


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    pass


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOL_CLASSES: Mapping[str, type[HTTPConnectionPool]] = {
    "http": _WatchedHTTPConnectionPool,
    "https": _WatchedHTTPSConnectionPool,
}


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections a :class:`Deadline` can cut.

    Mount it (or a subclass) on a session given to
    :class:`~snsmiddleware.certs.HttpCertificateFetcher` to keep the hard deadline; the
    fetcher's own session uses it. Direct connections and HTTP(S) proxies are covered;
    SOCKS proxies are not (their connections come from urllib3's SOCKS module).
    """

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager
