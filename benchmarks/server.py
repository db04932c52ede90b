"""A benchmark server process: waitress serving a trivial app, bare or behind SnsMiddleware.

    python -m benchmarks.server bare|sns|budget PORT CA_DIR [OUTBOX_DIR]

A process of its own, so that each measurement starts from a fresh interpreter (and a fresh
de-duplication store) and shares no GIL with the harness.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import Any

import waitress

from snsmiddleware import SnsMiddleware
from snsmiddleware.testing import MessageSigner, TestCA

TOPIC = "arn:aws:sns:us-east-1:123456789012:budget-alerts"


def trivial_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\n"]


def build(kind: str, ca_dir: str, outbox: str | None) -> Any:
    if kind == "bare":
        return trivial_app
    signer = MessageSigner(TestCA.load(ca_dir), topic_arn=TOPIC)
    inner: Any = trivial_app
    if kind == "budget":
        from snsmiddleware.budget_app import BudgetApp
        from snsmiddleware.mail import FileOutbox

        inner = BudgetApp(
            recipients={"*": "Ana <ana@example.com>"}, mailer=FileOutbox(outbox or "outbox")
        )
    dedupe: Any = None
    if os.environ.get("BENCH_DEDUPE"):  # shared by the processes of one measurement
        from snsmiddleware.config import StoreSpec

        dedupe = StoreSpec(os.environ["BENCH_DEDUPE"])
    return SnsMiddleware(
        inner,
        paths=["/sns/budgets"],
        topics=[TOPIC],
        fetch_certificate=signer.fetch_certificate,
        confirm="url",
        dedupe=dedupe,
    )


if __name__ == "__main__":
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth" chatter
    kind, port, ca_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    app = build(kind, ca_dir, sys.argv[4] if len(sys.argv) > 4 else None)
    threads = int(os.environ.get("BENCH_THREADS", "4"))

    if os.environ.get("BENCH_REUSEPORT"):  # several processes on one port: the kernel spreads
        import socket

        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1024)
        waitress.serve(app, sockets=[sock], threads=threads, _quiet=True)
    else:
        waitress.serve(app, host="127.0.0.1", port=port, threads=threads, _quiet=True)
