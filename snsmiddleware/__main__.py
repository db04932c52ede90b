"""Command line: ``snsmiddleware serve`` (also ``python -m snsmiddleware serve``).

For now this serves a small demo app behind :class:`SnsMiddleware` on waitress; the
budget-alert server replaces the demo app when it lands.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .middleware import SnsMiddleware, get_message

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

DEFAULT_TOPIC = "arn:aws:sns:us-east-1:123456789012:budget-alerts"
DEFAULT_PATH = "/sns/budgets"

log = logging.getLogger("snsmiddleware.serve")


def demo_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Log each verified notification; answer everything else with a short hint."""
    if environ.get("PATH_INFO") == DEFAULT_PATH:
        message = get_message(environ)
        log.info("notification %s: %s", message.message_id, message.subject or "(no subject)")
        body = b"received\n"
    else:
        body = f"snsmiddleware demo: POST SNS messages to {DEFAULT_PATH}\n".encode()
    start_response(
        "200 OK",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="snsmiddleware")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the demo app behind SnsMiddleware")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--topic", action="append", help=f"allowed TopicArn (default {DEFAULT_TOPIC})"
    )
    serve.add_argument("--confirm", choices=["api", "url"], default="api")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import waitress

    app = SnsMiddleware(
        demo_app, paths=[DEFAULT_PATH], topics=args.topic or [DEFAULT_TOPIC], confirm=args.confirm
    )
    log.info("serving on http://%s:%d%s", args.host, args.port, DEFAULT_PATH)
    waitress.serve(app, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
