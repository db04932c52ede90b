"""Keeping confirmation secrets out of third-party DEBUG logs.

Confirming a subscription sends its Token, which lets whoever holds it confirm (or, in a
SubscribeURL, replay the confirmation). Our own log lines never contain it, but libraries
below us log requests at DEBUG: botocore's ``botocore.endpoint`` logs the parameters of every
API call (the Token of ``ConfirmSubscription`` among them) and urllib3 logs the request line,
query included, on ``urllib3.connectionpool`` and the URL on ``urllib3.util.retry``. An
operator who turns on DEBUG to chase a problem would write tokens to disk.

:data:`REDACTOR` is a :class:`logging.Filter` installed on exactly those loggers (when a
confirmer is built). While a confirmation is being sent, :meth:`SecretRedactor.hiding`
registers its secrets, and the filter replaces each of them with ``<redacted>`` in any
record those loggers emit. Outside a confirmation, and whenever DEBUG is off (the filter only
sees records that are actually logged), it costs nothing. Records that other loggers emit are
not touched: only these carry the token, and a filter on a parent logger would not see them.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

#: The loggers that write request parameters or URLs at DEBUG.
REDACTED_LOGGERS: Final = (
    "botocore.endpoint",
    "urllib3.connectionpool",
    "urllib3.util.retry",
)
REDACTED: Final = "<redacted>"


class SecretRedactor(logging.Filter):
    """Replace the secrets currently in flight with ``<redacted>`` in each record."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._in_flight: Counter[str] = Counter()  # several threads may hide the same secret
        self._secrets: tuple[str, ...] = ()  # longest first, so no secret is half-replaced

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._secrets
        if not secrets:
            return True
        try:
            message = original = record.getMessage()
        except Exception:  # noqa: BLE001 - a record we cannot read, we cannot clean either
            return False
        for secret in secrets:
            message = message.replace(secret, REDACTED)
        if message != original:
            record.msg, record.args = message, None
        return True

    @contextmanager
    def hiding(self, *secrets: str) -> Iterator[None]:
        """Redact ``secrets`` from the covered loggers until the block ends."""
        wanted = [secret for secret in secrets if secret]
        with self._lock:
            self._in_flight.update(wanted)
            self._publish()
        try:
            yield
        finally:
            with self._lock:
                self._in_flight.subtract(wanted)
                self._in_flight = +self._in_flight  # drop the secrets no longer in flight
                self._publish()

    def _publish(self) -> None:
        self._secrets = tuple(sorted(self._in_flight, key=len, reverse=True))


REDACTOR: Final = SecretRedactor()


def install() -> None:
    """Attach :data:`REDACTOR` to the covered loggers (once; adding it again is a no-op)."""
    for name in REDACTED_LOGGERS:
        logging.getLogger(name).addFilter(REDACTOR)
