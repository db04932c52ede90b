"""Helpers shared by the hardening suites (hostile table, properties, faults, soak).

Answers are read with :mod:`tests._answers`."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

from snsmiddleware.dedupe import Claim, MemoryDedupeStore


def emails_in(directory: Path) -> list[EmailMessage]:
    """Every ``.eml`` in ``directory``, parsed (temporary files excluded)."""
    return [
        cast(EmailMessage, message_from_bytes(path.read_bytes(), policy=policy.default))
        for path in sorted(directory.glob("*.eml"))
        if not path.name.startswith(".")
    ]


class RecordingStore(MemoryDedupeStore):
    """The real in-memory store, recording every call and optionally failing some of them.

    :param fail: method name -> how many of its next calls raise ``OSError`` (a store
        that is down), before it works again.
    """

    def __init__(self, fail: Mapping[str, int] | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.calls: list[tuple[str, str]] = []
        self.fail = dict(fail or {})
        self._calls_lock = threading.Lock()

    def _maybe_fail(self, method: str, key: str) -> None:
        with self._calls_lock:
            self.calls.append((method, key))
            if self.fail.get(method, 0) > 0:
                self.fail[method] -= 1
                raise OSError(f"store down during {method}")

    def claim(self, key: str) -> Claim:
        self._maybe_fail("claim", key)
        return super().claim(key)

    def commit(self, claim: Claim) -> None:
        self._maybe_fail("commit", claim.key)
        super().commit(claim)

    def release(self, claim: Claim) -> None:
        self._maybe_fail("release", claim.key)
        super().release(claim)

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]
