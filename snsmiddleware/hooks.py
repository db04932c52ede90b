"""Calling event hooks (observers) so that they can never change an answer.

Several components report what they decided to an optional callable of the user's (the
middleware's decisions, the certificate cache, the de-duplication ledger, the budget app's
mail): the metrics in :mod:`snsmiddleware.metrics` are built on them. An observer is
somebody else's code running inside our request: if it raises, the request must be answered
exactly as it would have been without it, and the failure must neither vanish nor flood the
log (an observer that fails once usually fails on every request). :class:`HookGuard` does
both: it swallows the exception and logs it with its traceback the first time, then at most
once per interval with the number of failures in between.

Standard library only, and no other module of the package: every layer may use it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final, TypeVar

log = logging.getLogger(__name__)

#: At most one log line per failing hook in this many seconds (the first one at once).
DEFAULT_FAILURE_LOG_INTERVAL: Final = 60.0

Event = TypeVar("Event")


class HookGuard:
    """Calls one kind of observer; its exceptions are caught and logged, rate-limited.

    :param what: names the hook in the log line (``"SnsMiddleware observer"``).
    :param interval: seconds between two log lines about its failures.
    :param monotonic: time source (tests inject a fake).
    """

    def __init__(
        self,
        what: str,
        *,
        interval: float = DEFAULT_FAILURE_LOG_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.interval = interval
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._next_log = float("-inf")
        #: failures since the last log line
        self.suppressed = 0
        #: every failure so far
        self.failures = 0

    def call(self, hook: Callable[[Event], object], event: Event) -> None:
        """``hook(event)``; whatever it raises (short of ``BaseException``s such as
        ``KeyboardInterrupt``) stays here."""
        try:
            hook(event)
        except Exception:
            self._failed()

    def _failed(self) -> None:
        now = self._monotonic()
        with self._lock:
            self.failures += 1
            if now < self._next_log:
                self.suppressed += 1
                return
            suppressed, self.suppressed = self.suppressed, 0
            self._next_log = now + self.interval
        also = f" ({suppressed} more failure(s) since the last report)" if suppressed else ""
        # Called from inside the except block: the traceback is the current exception's.
        log.exception(
            "%s raised; the answer is unchanged%s (reported at most every %g s)",
            self.what,
            also,
            self.interval,
        )
