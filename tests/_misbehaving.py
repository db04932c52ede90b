"""Ways for a local HTTP handler to misbehave as a hostile or broken certificate host does:
bytes that trickle in just inside every read time-out, so only a deadline on the whole
exchange ends them, and a compressed bomb. Shared by the certificate and fault tests."""

from __future__ import annotations

import functools
import gzip
import http.server
import itertools
import threading
import time
from typing import Protocol


class _StoppableServer(Protocol):
    stop: threading.Event


def trickle(
    handler: http.server.BaseHTTPRequestHandler,
    head: bytes,
    filler: bytes,
    seconds: float,
) -> None:
    """Write ``head`` at once, then ``filler`` one byte every 20 ms for ``seconds`` (or until
    the server stops). A client hanging up ends it."""
    server: _StoppableServer = handler.server  # type: ignore[assignment]
    ends = time.monotonic() + seconds
    try:
        handler.wfile.write(head)
        handler.wfile.flush()
        for byte in itertools.cycle(filler):
            if time.monotonic() >= ends or server.stop.is_set():
                break
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.02)
    except OSError:
        pass  # the client gave up: that is the point


def drip_body(handler: http.server.BaseHTTPRequestHandler, seconds: float = 3) -> None:
    """Announce a certificate-sized (4000-byte) body, then trickle it."""
    trickle(handler, b"HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n", b"A" * 4000, seconds)


@functools.cache
def gzip_bomb(payload: bytes = b"") -> bytes:
    """``payload`` and 20 MB of zeros, compressed once (compressing per request could
    outlast the download deadline)."""
    return gzip.compress(payload + b"\0" * 20_000_000)
