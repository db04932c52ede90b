"""A testing kit: sign SNS messages the way AWS does, so apps are tested end to end.

Use it to test *your* app behind :class:`~snsmiddleware.SnsMiddleware` with WebTest, with no
AWS account and no network::

    from webtest import TestApp
    from snsmiddleware import SnsMiddleware
    from snsmiddleware.testing import MessageSigner, post_sns

    signer = MessageSigner(topic_arn="arn:aws:sns:us-east-1:123456789012:alerts")
    app = TestApp(SnsMiddleware(my_app, paths=["/sns"], topics=[signer.topic_arn],
                                fetch_certificate=signer.fetch_certificate,
                                confirm=lambda message: None))
    response = post_sns(app, "/sns", signer.notification("hello", Subject="hi"))
    assert response.status_int == 200

:class:`TestCA` makes a throwaway CA and an ``sns.amazonaws.com`` signing certificate it
issued; :class:`MessageSigner` builds and signs all three message types with
SignatureVersion 1 or 2; :meth:`MessageSigner.fetch_certificate` serves the certificate for
the URLs the signer put in its messages (and refuses any other URL, recording every call
so tests can assert that no download happened).

Never wire this kit into production: it makes the middleware trust a key that lives in
your test process.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

# The CA and the signer live in snsmiddleware.signer (development mode uses them too);
# this kit's public names stay the same.
from .signer import (
    DEFAULT_TOPIC_ARN,
    SNS_CERTIFICATE_NAME,
    MessageSigner,
    SignedMessage,
    TestCA,
    format_timestamp,
)
from .verifier import utc_now

if TYPE_CHECKING:
    import webtest

__all__ = [
    "DEFAULT_TOPIC_ARN",
    "SNS_CERTIFICATE_NAME",
    "FrozenClock",
    "MessageSigner",
    "SignedMessage",
    "TestCA",
    "format_timestamp",
    "post_sns",
]


class FrozenClock:
    """A clock for ``clock=`` that stands still until told to move.

    :param now: the starting time (default: the real current time, so that the
        :class:`TestCA` certificate is valid).
    """

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward (or back, with a negative delta)."""
        self.now += delta


def post_sns(
    app: webtest.TestApp,
    path: str,
    message: SignedMessage,
    *,
    headers: Mapping[str, str | None] | None = None,
    expect_errors: bool = True,
) -> webtest.TestResponse:
    """POST ``message`` to ``path`` of a WebTest app as SNS would (headers included).

    :param headers: header overrides; ``None`` removes one.
    """
    sent = message.headers
    for name, value in (headers or {}).items():
        sent.pop(name, None)
        if value is not None:
            sent[name] = value
    return app.post(path, message.body, headers=sent, expect_errors=expect_errors)
