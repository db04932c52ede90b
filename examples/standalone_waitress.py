"""A bare WSGI app behind SnsMiddleware, served by waitress.

Run:  python examples/standalone_waitress.py [--port 8080]
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterable
from typing import Any

import waitress

from snsmiddleware import SnsMiddleware, get_message

SNS_PATH = "/sns/budgets"
TOPICS = os.environ.get("SNS_TOPICS", "arn:aws:sns:us-east-1:123456789012:budget-alerts").split()
log = logging.getLogger("example")


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    message = get_message(environ)
    log.info("notification %s: %s", message.message_id, message.message[:80])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]


def create_app(**sns_options: Any) -> SnsMiddleware:
    return SnsMiddleware(app, paths=[SNS_PATH], topics=TOPICS, **sns_options)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    waitress.serve(create_app(), host="127.0.0.1", port=args.port)
