"""A hard deadline on one whole network exchange: a timer that cuts its sockets.

Socket time-outs bound single operations only: a peer that sends one byte just inside the
read time-out holds an exchange for as long as it likes (a TLS handshake, an HTTP status
line or body, an SMTP reply can all be dripped that way). :class:`Deadline` arms a timer;
every socket registered with it (:meth:`Deadline.watch`) while it is active is shut down
when the timer fires. A shutdown wakes whatever is blocked on the socket with an
end-of-file or an error at once, in the thread that is blocked: nothing is left running
behind the caller's back.

Each registration keeps its own duplicate of the file descriptor (``socket.fromfd``), and
shutting down and closing those duplicates happen under one lock, so a shutdown can never
hit an unrelated socket that reused a descriptor number; shutting down a duplicate acts on
the shared connection (also after the socket was wrapped in TLS, which moves its
descriptor to a new socket object).

Standard library only: the HTTP side (``http_deadline``) and the SMTP mailer both use it.
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import threading
import time
from types import TracebackType

_active: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "snsmiddleware_http_deadline", default=None
)


class Deadline:
    """Cut every socket registered inside ``with Deadline(seconds):`` when it passes.

    Sockets register themselves through :func:`watch_active` (the HTTP adapter in
    ``http_deadline`` and the SMTP mailer do); with anything else the deadline is still
    reported by :attr:`expired`, but nothing is cut.
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


def watch_active(sock: socket.socket | None) -> None:
    """Register ``sock`` with the deadline active in this context, if there is one."""
    deadline = _active.get()
    if deadline is not None and sock is not None:
        deadline.watch(sock)
