"""A server process for the multi-process tests: waitress + SnsMiddleware + a recording app.

    python -m tests._dedupe_server PORT CA_DIR STORE_URL RECORD_FILE LEASE_MS

STORE_URL is a ``redis://`` or a ``dynamodb://`` URL (the store both processes share).

The app appends each MessageId it processed to RECORD_FILE (one line, O_APPEND). While a
file named ``hold`` exists beside RECORD_FILE, the app waits before recording (up to a
minute), so a test can kill a process between claim and commit.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import waitress

from snsmiddleware import SnsMiddleware, get_message
from snsmiddleware.dedupe import DedupeStore
from snsmiddleware.dedupe_dynamodb import DynamoDBDedupeStore
from snsmiddleware.dedupe_redis import RedisDedupeStore
from snsmiddleware.testing import MessageSigner, TestCA

TOPIC = "arn:aws:sns:us-east-1:123456789012:budget-alerts"


def main() -> None:
    port, ca_dir, store_url, record, lease_ms = sys.argv[1:6]
    hold = Path(record).parent / "hold"

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        message = get_message(environ)
        deadline = time.monotonic() + 60
        while hold.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{message.message_id}\n".encode())
        finally:
            os.close(fd)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return [b"ok\n"]

    signer = MessageSigner(TestCA.load(ca_dir), topic_arn=TOPIC)
    lease = timedelta(milliseconds=int(lease_ms))
    store: DedupeStore
    if store_url.startswith("dynamodb://"):
        store = DynamoDBDedupeStore.from_url(store_url, lease=lease)
    else:
        store = RedisDedupeStore(store_url, lease=lease)
    middleware = SnsMiddleware(
        app,
        paths=["/sns"],
        topics=[TOPIC],
        dedupe=store,
        fetch_certificate=signer.fetch_certificate,
        confirm="url",
    )
    waitress.serve(middleware, host="127.0.0.1", port=int(port), threads=8, _quiet=True)


if __name__ == "__main__":
    main()
