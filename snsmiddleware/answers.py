"""The one place that writes a plain-text answer: ``reason: detail`` and its headers.

Every answer of :class:`~snsmiddleware.SnsMiddleware` and of
:class:`~snsmiddleware.budget_app.BudgetApp` that is not the wrapped app's own, the 200 ones
included, is a :class:`PlainTextAnswer`, so the wire format cannot differ between them:

* the body is ``reason: detail`` and a new line, UTF-8;
* ``Content-Type: text/plain; charset=utf-8`` and ``X-Content-Type-Options: nosniff``
  (details quote bounded, escaped sender text, which a browser must never sniff into HTML);
* ``X-SNS-Reason: reason``, so a client can read the code without parsing the body;
* then the headers the answer needs (``Allow``, ``WWW-Authenticate``), which an
  :class:`~snsmiddleware.errors.SnsError` carries itself (see ``SnsError.headers()``).

Errors render themselves through it (``exc.answer()``), as werkzeug's ``HTTPException`` does.
Standard library only: no WSGI framework is needed to write one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: The media type of every answer.
TEXT_PLAIN: Final = ("Content-Type", "text/plain; charset=utf-8")
#: Our answers quote the sender's text (bounded and escaped); a browser must never sniff it
#: into HTML.
NOSNIFF: Final = ("X-Content-Type-Options", "nosniff")
#: The header naming the reason code.
REASON_HEADER: Final = "X-SNS-Reason"


def status_line(code: int) -> str:
    """``"503 Service Unavailable"``; a code without a standard phrase keeps just the number
    (an application's own error class may pick any status)."""
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


@dataclass(frozen=True, slots=True, init=False)
class PlainTextAnswer:
    """One plain-text answer: a WSGI application, and the parts to build any other
    framework's response from (``status_line``, ``headers``, ``body``).

    :param status: the HTTP status code.
    :param reason: the reason code (a :class:`~snsmiddleware.reasons.Reason` or any string).
    :param detail: one human sentence; it is sent, so it must hold no secret.
    :param extra_headers: headers after the standard ones (``Allow``, ``WWW-Authenticate``).
    """

    status: int
    reason: str
    detail: str
    extra_headers: tuple[tuple[str, str], ...] = ()

    def __init__(
        self, status: int, reason: str, detail: str, extra_headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        # Plain str copies: some WSGI servers (wsgiref) insist on exactly ``str`` header
        # values, and a Reason member is a subclass.
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "reason", str(reason))
        object.__setattr__(self, "detail", str(detail))
        object.__setattr__(self, "extra_headers", tuple(extra_headers))

    @property
    def status_line(self) -> str:
        return status_line(self.status)

    @property
    def body(self) -> bytes:
        return f"{self.reason}: {self.detail}\n".encode()

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Every header of the answer, in order (a new list each time: callers may add)."""
        return [
            TEXT_PLAIN,
            NOSNIFF,
            ("Content-Length", str(len(self.body))),
            (REASON_HEADER, self.reason),
            *self.extra_headers,
        ]

    def respond(self, start_response: StartResponse) -> list[bytes]:
        """Start the response and return its body iterable."""
        start_response(self.status_line, self.headers)
        return [self.body]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        return self.respond(start_response)
