"""PEP 3333 body plumbing: what WebTest's seekable BytesIO hides.

Called with hand-built environs: a read-once, non-seekable ``wsgi.input`` that refuses
unsized reads; no Content-Length with and without ``wsgi.input_terminated``; strictly parsed
Content-Length values; short bodies; oversized bodies refused before a byte is read; a
werkzeug/Flask app downstream reading the restored body (also after ``Transfer-Encoding:
chunked``); the app iterable's ``close()`` called exactly once; ``start_response`` with
``exc_info``. Then over a real waitress server and raw sockets: chunked POSTs,
``Expect: 100-continue`` and a client whose Content-Length lies.
"""

from __future__ import annotations

import io
import json
import socket
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from webob import Request, Response
from webob.dec import wsgify
from webtest.http import StopableWSGIServer

from snsmiddleware import ClaimState, MemoryDedupeStore, SnsMiddleware, get_message
from snsmiddleware.testing import MessageSigner, SignedMessage

from .conftest import PATH, EchoApp

MakeMiddleware = Callable[..., SnsMiddleware]


class ReadOnceStream:
    """A socket-like ``wsgi.input``: not seekable, no unsized reads, counts what was read.

    :param max_chunk: the most one ``read`` returns (sockets return short reads).
    :param fail_after: raise ``OSError`` (a disconnect) once this many bytes were read.
    """

    def __init__(self, data: bytes, *, max_chunk: int = 1 << 20, fail_after: int = -1) -> None:
        self._data = data
        self._max_chunk = max_chunk
        self._fail_after = fail_after
        self.bytes_read = 0
        self.reads = 0

    def read(self, size: int) -> bytes:
        assert isinstance(size, int) and size >= 0, f"unsized read({size!r}) may block forever"
        self.reads += 1
        if 0 <= self._fail_after <= self.bytes_read:
            raise OSError("client disconnected")
        chunk = self._data[self.bytes_read : self.bytes_read + min(size, self._max_chunk)]
        self.bytes_read += len(chunk)
        return chunk

    def readline(self, size: int = -1) -> bytes:
        raise AssertionError("the middleware must not read lines")


class Recorder:
    """start_response that records its arguments (and refuses a second call without exc_info)."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        assert self.status is None or exc_info is not None, "start_response called twice"
        self.status, self.headers = status, headers
        return lambda data: None

    @property
    def code(self) -> int:
        assert self.status is not None
        return int(self.status[:3])

    @property
    def reason(self) -> str | None:
        return dict(self.headers).get("X-SNS-Reason")


def environ_for(
    message: SignedMessage | None,
    stream: Any,
    *,
    content_length: str | None = "auto",
    **extra: Any,
) -> dict[str, Any]:
    """An environ as a real server builds it, with the SNS headers of ``message``."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": PATH,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "text/plain; charset=UTF-8",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": stream,
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if message is not None:
        for name, value in message.headers.items():
            if name.lower().startswith("x-amz-sns-"):
                environ["HTTP_" + name.upper().replace("-", "_")] = value
        if content_length == "auto":
            content_length = str(len(message.body))
    if content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    environ.update(extra)
    return environ


def call(app: Any, environ: dict[str, Any]) -> tuple[Recorder, bytes]:
    recorder = Recorder()
    result = app(environ, recorder)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return recorder, body


# --- reading the body ----------------------------------------------------------------------


@pytest.mark.parametrize("max_chunk", [1 << 20, 7], ids=["whole", "short-reads"])
def test_read_once_non_seekable_stream(
    make_middleware: MakeMiddleware, signer: MessageSigner, echo_app: EchoApp, max_chunk: int
) -> None:
    message = signer.notification("through a socket")
    stream = ReadOnceStream(message.body, max_chunk=max_chunk)
    recorder, body = call(make_middleware(), environ_for(message, stream))
    assert (recorder.code, body) == (200, b"app saw /sns/budgets")
    assert stream.bytes_read == len(message.body)  # exactly the announced length
    [seen] = echo_app.calls
    assert seen["body"] == message.body
    assert get_message(seen["environ"]).message == "through a socket"
    assert seen["environ"]["wsgi.input"] is not stream  # a fresh, re-readable stream


def test_body_beyond_content_length_is_not_read(
    make_middleware: MakeMiddleware, signer: MessageSigner, echo_app: EchoApp
) -> None:
    message = signer.notification("x")
    stream = ReadOnceStream(message.body + b"NEXT REQUEST ON THE CONNECTION")
    recorder, _ = call(make_middleware(), environ_for(message, stream))
    assert recorder.code == 200
    assert stream.bytes_read == len(message.body)
    assert echo_app.calls[0]["body"] == message.body


@pytest.mark.parametrize("content_length", [None, ""], ids=["absent", "empty"])
def test_no_length_with_input_terminated(
    make_middleware: MakeMiddleware,
    signer: MessageSigner,
    echo_app: EchoApp,
    content_length: str | None,
) -> None:
    message = signer.notification("chunked upstream")
    stream = ReadOnceStream(message.body, max_chunk=1000)
    environ = environ_for(
        message, stream, content_length=content_length, **{"wsgi.input_terminated": True}
    )
    recorder, _ = call(make_middleware(), environ)
    assert recorder.code == 200
    assert echo_app.calls[0]["body"] == message.body
    assert echo_app.calls[0]["environ"]["CONTENT_LENGTH"] == str(len(message.body))


@pytest.mark.parametrize("content_length", [None, ""], ids=["absent", "empty"])
def test_no_length_and_no_flag_is_411_without_reading(
    make_middleware: MakeMiddleware,
    signer: MessageSigner,
    echo_app: EchoApp,
    content_length: str | None,
) -> None:
    message = signer.notification("x")
    stream = ReadOnceStream(message.body)
    recorder, _ = call(
        make_middleware(), environ_for(message, stream, content_length=content_length)
    )
    assert (recorder.code, recorder.reason) == (411, "length_required")
    assert stream.reads == 0 and echo_app.calls == []


@pytest.mark.parametrize(
    "content_length",
    [
        pytest.param("-1", id="negative"),
        pytest.param("+5", id="plus-sign"),
        pytest.param(" 5", id="leading-space"),
        pytest.param("5 ", id="trailing-space"),
        pytest.param("5\n", id="trailing-newline"),
        pytest.param("1e3", id="exponent"),
        pytest.param("0x10", id="hex"),
        pytest.param("5.0", id="decimal"),
        pytest.param("1_000", id="underscore"),
        pytest.param("5,5", id="comma-list"),
        pytest.param("\u0665", id="arabic-indic-five"),
        pytest.param("\uff15", id="fullwidth-five"),
        pytest.param("\u00b2", id="superscript-two"),
        pytest.param("9" * 19, id="19-digits"),
        pytest.param("9" * 4400, id="huge-digits"),
        pytest.param("abc", id="letters"),
    ],
)
def test_bad_content_length_is_400_without_reading(
    make_middleware: MakeMiddleware, signer: MessageSigner, echo_app: EchoApp, content_length: str
) -> None:
    message = signer.notification("x")
    stream = ReadOnceStream(message.body)
    recorder, _ = call(
        make_middleware(), environ_for(message, stream, content_length=content_length)
    )
    assert (recorder.code, recorder.reason) == (400, "bad_content_length")
    assert stream.reads == 0 and echo_app.calls == []


@pytest.mark.parametrize("missing", [1, 100])
def test_short_body_is_400_body_incomplete(
    make_middleware: MakeMiddleware, signer: MessageSigner, echo_app: EchoApp, missing: int
) -> None:
    message = signer.notification("x")
    stream = ReadOnceStream(message.body[:-missing])
    environ = environ_for(message, stream)
    recorder, _ = call(make_middleware(), environ)
    assert (recorder.code, recorder.reason) == (400, "body_incomplete")
    assert echo_app.calls == []


def test_disconnect_while_reading_is_400_body_incomplete(
    make_middleware: MakeMiddleware, signer: MessageSigner, echo_app: EchoApp
) -> None:
    message = signer.notification("x")
    stream = ReadOnceStream(message.body, max_chunk=10, fail_after=30)
    recorder, _ = call(make_middleware(), environ_for(message, stream))
    assert (recorder.code, recorder.reason) == (400, "body_incomplete")
    assert echo_app.calls == []


@pytest.mark.parametrize("content_length", ["1001", "9" * 18], ids=["just-over", "eighteen-digits"])
def test_oversized_content_length_is_413_before_reading(
    make_middleware: MakeMiddleware, signer: MessageSigner, echo_app: EchoApp, content_length: str
) -> None:
    message = signer.notification("x")
    stream = ReadOnceStream(b"x" * 5000)
    app = make_middleware(max_body_bytes=1000)
    recorder, _ = call(app, environ_for(message, stream, content_length=content_length))
    assert (recorder.code, recorder.reason) == (413, "body_too_large")
    assert stream.reads == 0 and stream.bytes_read == 0
    assert echo_app.calls == []


def test_exactly_max_body_bytes_is_read(
    make_middleware: MakeMiddleware, signer: MessageSigner, echo_app: EchoApp
) -> None:
    message = signer.notification("x")
    app = make_middleware(max_body_bytes=len(message.body))
    recorder, _ = call(app, environ_for(message, ReadOnceStream(message.body)))
    assert recorder.code == 200 and len(echo_app.calls) == 1


def test_oversized_unterminated_stream_is_413_after_a_bounded_read(
    make_middleware: MakeMiddleware, signer: MessageSigner, echo_app: EchoApp
) -> None:
    message = signer.notification("x")
    stream = ReadOnceStream(message.body + b" " * 10_000_000)
    app = make_middleware(max_body_bytes=1000)
    environ = environ_for(message, stream, content_length=None, **{"wsgi.input_terminated": True})
    recorder, _ = call(app, environ)
    assert (recorder.code, recorder.reason) == (413, "body_too_large")
    assert stream.bytes_read <= 1000 + 64 * 1024  # the cap plus at most one chunk
    assert echo_app.calls == []


def test_other_paths_are_not_read_at_all(
    make_middleware: MakeMiddleware, signer: MessageSigner, echo_app: EchoApp
) -> None:
    message = signer.notification("x")
    stream = ReadOnceStream(b"not for us")
    environ = environ_for(message, stream, PATH_INFO="/elsewhere", CONTENT_LENGTH="10")
    recorder = Recorder()
    # The app reads the body itself; the middleware must hand over the very same stream.
    make_middleware()(environ, recorder)
    assert echo_app.calls[0]["environ"] is environ
    assert echo_app.calls[0]["environ"]["wsgi.input"] is stream
    assert echo_app.calls[0]["body"] == b"not for us"


# --- frameworks downstream see the body -----------------------------------------------------


def flask_app() -> Any:
    flask = pytest.importorskip("flask")
    app = flask.Flask("plumbing")

    @app.post(PATH)
    def receive() -> Any:
        message = get_message(flask.request.environ)
        return flask.jsonify(
            data=flask.request.get_data(as_text=True),
            parsed=flask.request.get_json(force=True),
            message=message.message,
            content_length=flask.request.content_length,
        )

    return app


@pytest.mark.parametrize(
    "transport",
    [
        pytest.param({}, id="content-length"),
        pytest.param(
            {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True},
            id="chunked-terminated",
        ),
    ],
)
def test_flask_downstream_reads_the_restored_body(
    make_middleware: MakeMiddleware, signer: MessageSigner, transport: dict[str, Any]
) -> None:
    message = signer.notification("for flask")
    stream = ReadOnceStream(message.body, max_chunk=100)
    content_length = None if transport else "auto"
    environ = environ_for(message, stream, content_length=content_length, **transport)
    recorder, body = call(make_middleware(app=flask_app()), environ)
    assert recorder.code == 200, body
    seen = json.loads(body)
    assert seen["data"] == message.body.decode()
    assert seen["parsed"] == json.loads(message.body)
    assert seen["message"] == "for flask"
    assert seen["content_length"] == len(message.body)
    assert "HTTP_TRANSFER_ENCODING" not in environ  # werkzeug would read "no length" from it


def test_webob_downstream_reads_the_restored_body(
    make_middleware: MakeMiddleware, signer: MessageSigner
) -> None:
    seen: list[bytes] = []

    @wsgify
    def app(request: Request) -> Response:
        seen.append(request.body)
        seen.append(request.body)  # twice: the restored stream is seekable
        return Response("ok", content_type="text/plain")

    message = signer.notification("for webob")
    environ = environ_for(
        message,
        ReadOnceStream(message.body),
        content_length=None,
        **{"wsgi.input_terminated": True},
    )
    recorder, _ = call(make_middleware(app=app), environ)
    assert recorder.code == 200
    assert seen == [message.body, message.body]


# --- the app's iterable and start_response ----------------------------------------------------


class ClosingBody:
    """An app iterable that counts close() calls."""

    def __init__(self, parts: Iterable[bytes], fail: bool = False) -> None:
        self.parts = list(parts)
        self.fail = fail
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        yield from self.parts
        if self.fail:
            raise RuntimeError("broke mid-body: secret=hunter2")

    def close(self) -> None:
        self.closed += 1


@pytest.mark.parametrize(
    ("status", "fail", "expected", "released"),
    [
        pytest.param("200 OK", False, 200, False, id="ok"),
        pytest.param("503 Service Unavailable", False, 503, True, id="app-5xx"),
        pytest.param("200 OK", True, 500, True, id="raises-while-iterating"),
    ],
)
def test_app_iterable_closed_exactly_once(
    make_middleware: MakeMiddleware,
    signer: MessageSigner,
    status: str,
    fail: bool,
    expected: int,
    released: bool,
) -> None:
    bodies: list[ClosingBody] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> ClosingBody:
        start_response(status, [("Content-Type", "text/plain")])
        bodies.append(ClosingBody([b"a", b"b"], fail=fail))
        return bodies[-1]

    store = MemoryDedupeStore()
    message = signer.notification("x")
    recorder, body = call(
        make_middleware(app=app, dedupe=store), environ_for(message, ReadOnceStream(message.body))
    )
    assert recorder.code == expected
    assert b"hunter2" not in body
    [only] = bodies
    assert only.closed == 1
    state = store.claim(message.fields["MessageId"]).state
    assert state is (ClaimState.CLAIMED if released else ClaimState.DONE)


def test_lazy_start_response_generator_app(
    make_middleware: MakeMiddleware, signer: MessageSigner
) -> None:
    """An app that calls start_response only when its iterable is first iterated."""
    closed: list[bool] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        try:
            start_response("201 Created", [("Content-Type", "text/plain")])
            yield b"made"
        finally:
            closed.append(True)

    message = signer.notification("x")
    recorder, body = call(
        make_middleware(app=app), environ_for(message, ReadOnceStream(message.body))
    )
    assert (recorder.code, body) == (201, b"made")
    assert closed == [True]


def test_start_response_with_exc_info_is_500_and_claim_released(
    make_middleware: MakeMiddleware, signer: MessageSigner
) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        try:
            raise ValueError("database down: secret=hunter2")
        except ValueError:
            start_response(
                "500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info()
            )
            return [b"oops"]

    store = MemoryDedupeStore()
    message = signer.notification("x")
    recorder, body = call(
        make_middleware(app=app, dedupe=store), environ_for(message, ReadOnceStream(message.body))
    )
    assert (recorder.code, recorder.reason) == (500, "app_error")
    assert b"hunter2" not in body and b"Traceback" not in body
    assert store.claim(message.fields["MessageId"]).state is ClaimState.CLAIMED  # released earlier


def test_write_callable_app(make_middleware: MakeMiddleware, signer: MessageSigner) -> None:
    """PEP 3333's legacy write() callable still produces the app's body."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"returned"]

    message = signer.notification("x")
    recorder, body = call(
        make_middleware(app=app), environ_for(message, ReadOnceStream(message.body))
    )
    assert (recorder.code, body) == (200, b"written returned")


# --- a real waitress server and raw sockets ---------------------------------------------------


@pytest.fixture
def live(make_middleware: MakeMiddleware) -> Iterator[Callable[..., tuple[str, int]]]:
    servers: list[StopableWSGIServer] = []

    def start(**options: Any) -> tuple[str, int]:
        server = StopableWSGIServer.create(
            make_middleware(**options), host="127.0.0.1", expose_tracebacks=False
        )
        servers.append(server)
        # The socket is listening once the server exists; no need for webtest's wait(),
        # which sleeps and leaks its probe connection.
        return str(server.adj.host), int(server.adj.port)

    yield start
    for server in servers:
        server.shutdown(debug=True)


def sns_head(message: SignedMessage, *lines: str) -> bytes:
    headers = [f"POST {PATH} HTTP/1.1", "Host: 127.0.0.1", *lines]
    headers += [f"{name}: {value}" for name, value in message.headers.items()]
    return ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1")


def read_until_closed(sock: socket.socket) -> bytes:
    received = bytearray()
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        received += data
    return bytes(received)


def chunked(body: bytes, size: int = 100) -> bytes:
    out = bytearray()
    for start in range(0, len(body), size):
        part = body[start : start + size]
        out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    return bytes(out + b"0\r\n\r\n")


def test_waitress_chunked_post(live: Callable[..., tuple[str, int]], signer: MessageSigner) -> None:
    address = live(app=flask_app())
    message = signer.notification("chunked over a socket")
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(sns_head(message, "Transfer-Encoding: chunked", "Connection: close"))
        sock.sendall(chunked(message.body))
        response = read_until_closed(sock)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), response
    seen = json.loads(body)
    assert seen["data"] == message.body.decode() and seen["message"] == "chunked over a socket"


def test_waitress_chunked_post_over_the_cap_is_413(
    live: Callable[..., tuple[str, int]], signer: MessageSigner, echo_app: EchoApp
) -> None:
    address = live(max_body_bytes=500)
    message = signer.notification("x" * 2000)
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(sns_head(message, "Transfer-Encoding: chunked", "Connection: close"))
        sock.sendall(chunked(message.body))
        response = read_until_closed(sock)
    assert response.startswith(b"HTTP/1.1 413"), response
    assert b"body_too_large" in response
    assert echo_app.calls == []


def test_waitress_expect_100_continue(
    live: Callable[..., tuple[str, int]], signer: MessageSigner, echo_app: EchoApp
) -> None:
    address = live()
    message = signer.notification("after continue")
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(
            sns_head(
                message,
                f"Content-Length: {len(message.body)}",
                "Expect: 100-continue",
                "Connection: close",
            )
        )
        interim = bytearray()
        while b"\r\n\r\n" not in interim:
            data = sock.recv(1024)
            assert data, "the server closed before answering 100 Continue"
            interim += data
        assert interim.startswith(b"HTTP/1.1 100 Continue"), bytes(interim)
        sock.sendall(message.body)
        response = bytes(interim.split(b"\r\n\r\n", 1)[1]) + read_until_closed(sock)
    assert response.startswith(b"HTTP/1.1 200"), response
    assert echo_app.calls[0]["body"] == message.body


def test_waitress_lying_content_length_never_reaches_app(
    live: Callable[..., tuple[str, int]], signer: MessageSigner, echo_app: EchoApp
) -> None:
    address = live()
    message = signer.notification("cut short")
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(sns_head(message, f"Content-Length: {len(message.body) + 5000}"))
        sock.sendall(message.body)
        sock.shutdown(socket.SHUT_WR)  # the client gives up before the announced length
        response = read_until_closed(sock)
    assert not response.startswith(b"HTTP/1.1 200"), response
    assert echo_app.calls == []
    # The server is still serving: the genuine message goes through on a new connection.
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(sns_head(message, f"Content-Length: {len(message.body)}", "Connection: close"))
        sock.sendall(message.body)
        response = read_until_closed(sock)
    assert response.startswith(b"HTTP/1.1 200"), response
    assert len(echo_app.calls) == 1


class GenerousStream:
    """A non-compliant wsgi.input whose read(n) returns more than n bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.asked: list[int] = []

    def read(self, size: int = -1) -> bytes:
        self.asked.append(size)
        return self.data + b"x" * 10_000


def test_stream_returning_more_than_asked_cannot_unbound_the_read(
    make_middleware: Callable[..., SnsMiddleware], signer: MessageSigner, echo_app: EchoApp
) -> None:
    message = signer.notification("bounded")
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": PATH,
        "CONTENT_LENGTH": str(len(message.body)),
        "wsgi.input": GenerousStream(message.body),
        **{
            "HTTP_" + k.upper().replace("-", "_"): v
            for k, v in message.headers.items()
            if k.lower().startswith("x-amz")
        },
    }
    statuses: list[str] = []
    make_middleware()(environ, lambda status, headers, exc_info=None: statuses.append(status))
    assert statuses == ["200 OK"]
    assert echo_app.calls[0]["body"] == message.body
