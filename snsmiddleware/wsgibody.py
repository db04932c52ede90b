"""Reading a WSGI request body safely, and handing it back to the app downstream.

PEP 3333 says an application should not read past ``CONTENT_LENGTH`` and that a read with no
size may block; WebOb parses the length leniently and ``req.body`` copies an unbounded body
when there is no length. A middleware that reads bodies from the internet bounds them
itself:

* ``CONTENT_LENGTH`` is parsed strictly (ASCII digits only); an oversized one is refused
  (413) before a single byte is read, which also keeps ``Expect: 100-continue`` clients from
  sending it;
* without a length, the body is read only if the server promised a terminated stream
  (``wsgi.input_terminated``, set by waitress and mod_wsgi for chunked requests), and at most
  ``max_bytes + 1`` bytes; otherwise 411;
* a stream that ends early is a 400: nothing half-read reaches the app.

:func:`restore_body` gives the same bytes back as a seekable stream and removes
``Transfer-Encoding``, so werkzeug/Flask, Django and WebOb apps all read it again.
"""

from __future__ import annotations

import io
from typing import Any, Final

from .errors import BodyTooLargeError, LengthRequiredError, MessageFormatError
from .reasons import Reason

_CHUNK_BYTES: Final = 64 * 1024
_BytesIO: Final = io.BytesIO


def _unreadable() -> MessageFormatError:
    return MessageFormatError("the request body could not be read", reason=Reason.BODY_INCOMPLETE)


def _read_chunk(stream: Any, size: int) -> bytes:
    try:
        chunk = stream.read(size)
    except (OSError, ValueError):  # includes WebOb's DisconnectionError
        raise _unreadable() from None
    return _bounded(chunk, size)


def _bounded(chunk: Any, size: int) -> bytes:
    """At most ``size`` bytes of what a read returned, as ``bytes``.

    A stream that returns more than asked for must not unbound the read; bytes as they are
    (the usual case) are not copied."""
    if len(chunk) > size:
        chunk = chunk[:size]
    return chunk if type(chunk) is bytes else bytes(chunk)


def read_body(environ: dict[str, Any], max_bytes: int) -> bytes:
    """Read the whole request body, at most ``max_bytes``, or raise a 400/411/413 error."""
    stream = environ["wsgi.input"]
    raw_length = environ.get("CONTENT_LENGTH") or ""
    if raw_length:
        if not (raw_length.isascii() and raw_length.isdigit()) or len(raw_length) > 18:
            raise MessageFormatError(
                "Content-Length is not a number", reason=Reason.BAD_CONTENT_LENGTH
            )
        length = int(raw_length)
        if length > max_bytes:
            raise BodyTooLargeError(f"the body is larger than {max_bytes} bytes")
        if not length:
            return b""
        # One read of the whole (bounded) length: waitress and most servers hand it over
        # at once, as bytes (returned as they are: the path every delivery takes); a stream
        # that returns less is read on until the length is complete.
        try:
            first = stream.read(length)
        except (OSError, ValueError):  # includes WebOb's DisconnectionError
            raise _unreadable() from None
        if type(first) is bytes and len(first) == length:
            return first
        first = _bounded(first, length)
        if len(first) == length:
            return first
        if not first:
            raise MessageFormatError(
                "the body is shorter than its Content-Length", reason=Reason.BODY_INCOMPLETE
            )
        parts: list[bytes] = [first]
        remaining = length - len(first)
        while remaining:
            chunk = _read_chunk(stream, min(remaining, _CHUNK_BYTES))
            if not chunk:
                raise MessageFormatError(
                    "the body is shorter than its Content-Length", reason=Reason.BODY_INCOMPLETE
                )
            parts.append(chunk)
            remaining -= len(chunk)
        return b"".join(parts)
    if not environ.get("wsgi.input_terminated"):
        raise LengthRequiredError("a Content-Length is required")
    collected = bytearray()
    while True:
        chunk = _read_chunk(stream, _CHUNK_BYTES)
        if not chunk:
            return bytes(collected)
        collected += chunk
        if len(collected) > max_bytes:
            raise BodyTooLargeError(f"the body is larger than {max_bytes} bytes")


def restore_body(environ: dict[str, Any], body: bytes) -> None:
    """Make ``body`` readable again downstream, with a matching length and no chunking."""
    environ["wsgi.input"] = _BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input_terminated"] = True
    environ["webob.is_body_seekable"] = True
    if "HTTP_TRANSFER_ENCODING" in environ:  # rare: no method call when absent
        del environ["HTTP_TRANSFER_ENCODING"]
