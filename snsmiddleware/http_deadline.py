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

The timer itself is :class:`~snsmiddleware.deadline.Deadline` (standard library only; the SMTP
mailer uses it too); this module registers urllib3's sockets with it.

Importing this module imports requests: import it only where a download happens.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .deadline import Deadline, watch_active

__all__ = ["Deadline", "DeadlineAdapter"]


class _WatchedHTTPConnection(HTTPConnection):
    """Registers its socket with the active :class:`Deadline`: a new one as soon as TCP is
    connected (before any TLS handshake), a pooled one when it is reused for a request."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        watch_active(sock)
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
        watch_active(self.sock)
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
