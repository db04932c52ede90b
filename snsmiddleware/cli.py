"""The ``snsmiddleware`` command: ``serve`` and ``verify`` (also ``python -m snsmiddleware``).

Output is for people first (one line per fact, the verdict last) and, with ``--json``, for
machines. Exit status: 0 success, 1 the message did not verify, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .diagnose import Diagnosis, diagnose
from .errors import ConfigurationError, SnsError
from .message import parse_message, parse_timestamp
from .middleware import SnsMiddleware, get_message
from .verifier import SnsVerifier, utc_now

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

DEFAULT_TOPIC = "arn:aws:sns:us-east-1:123456789012:budget-alerts"
DEFAULT_PATH = "/sns/budgets"

log = logging.getLogger("snsmiddleware.serve")


# --- serve ----------------------------------------------------------------------------------


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


def serve(args: argparse.Namespace) -> int:
    import waitress

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = SnsMiddleware(
        demo_app, paths=[DEFAULT_PATH], topics=args.topic or [DEFAULT_TOPIC], confirm=args.confirm
    )
    log.info("serving on http://%s:%d%s", args.host, args.port, DEFAULT_PATH)
    waitress.serve(app, host=args.host, port=args.port)
    return 0


# --- verify ---------------------------------------------------------------------------------

_MARKS = {"passed": "PASS", "failed": "FAIL", "not_run": "----", "not_applicable": "n/a "}


def _clock_for(at: str, body: bytes) -> datetime:
    if at == "now":
        return utc_now()
    if at == "message":
        try:
            return parse_message(body).sent_at
        except SnsError:
            return utc_now()  # the envelope stage will report the problem
    return parse_timestamp(at)


def _read_input(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    return Path(source).read_bytes()


def _report(diagnosis: Diagnosis, notes: list[str], out: TextIO) -> None:
    message = diagnosis.message
    if message is not None:
        out.write(
            f"SNS {message.type} {message.message_id} (SignatureVersion "
            f"{message.signature_version})\n  topic  {message.topic_arn}\n"
            f"  sent   {message.timestamp}\n"
        )
    for result in diagnosis.stages:
        out.write(f"[{_MARKS[result.status]}] {result.stage.title}\n")
        if result.detail:
            out.write(f"       {result.detail}\n")
    for note in notes:
        out.write(f"note: {note}\n")
    if diagnosis.error is None:
        out.write("RESULT: VERIFIED\n")
    else:
        if diagnosis.hint:
            out.write(f"why:  {diagnosis.hint}\n")
        out.write(f"RESULT: REJECTED ({diagnosis.error.status} {diagnosis.error.reason})\n")


def _report_json(diagnosis: Diagnosis, notes: list[str], out: TextIO) -> None:
    message = diagnosis.message
    document: dict[str, Any] = {
        "verified": diagnosis.ok,
        "status": diagnosis.error.status if diagnosis.error else 200,
        "reason": diagnosis.error.reason if diagnosis.error else None,
        "detail": diagnosis.error.detail if diagnosis.error else None,
        "hint": diagnosis.hint or None,
        "message": None
        if message is None
        else {
            "type": message.type,
            "message_id": message.message_id,
            "topic_arn": message.topic_arn,
            "timestamp": message.timestamp,
            "signature_version": message.signature_version,
        },
        "stages": [
            {
                "name": r.stage.name,
                "title": r.stage.title,
                "status": r.status,
                "detail": r.detail or None,
            }
            for r in diagnosis.stages
        ],
        "notes": notes,
    }
    out.write(json.dumps(document, indent=2) + "\n")


def verify(args: argparse.Namespace, out: TextIO) -> int:
    body = _read_input(args.file)
    notes: list[str] = []
    topics = args.topic
    if not topics:
        try:
            topics = [parse_message(body).topic_arn]
            notes.append("no --topic given: the message's own TopicArn was trusted")
        except SnsError:
            topics = ["arn:aws:sns:us-east-1:000000000000:unreadable"]  # envelope fails first
    fetch = None
    if args.offline is not None:
        certificate = Path(args.offline).read_bytes()
        fetch = lambda url: certificate  # noqa: E731 - the offline "download"
        notes.append(f"certificate read from {args.offline}, not downloaded")
    clock_time = _clock_for(args.at, body)
    if args.at != "now":
        notes.append(f"checked as of {clock_time.isoformat()}")
    verifier = SnsVerifier(
        topics=topics,
        signature_versions=("2",) if args.require_v2 else ("1", "2"),
        fetch_certificate=fetch,
        clock=lambda: clock_time,
        emulator=args.emulator,
    )
    diagnosis = diagnose(body, verifier)
    (_report_json if args.json else _report)(diagnosis, notes, out)
    return 0 if diagnosis.ok else 1


# --- entry point ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snsmiddleware", description="Safe Amazon SNS HTTP(S) subscriber for WSGI apps."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser("serve", help="serve the app behind SnsMiddleware (waitress)")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8080)
    serve_cmd.add_argument(
        "--topic", action="append", help=f"allowed TopicArn (default {DEFAULT_TOPIC})"
    )
    serve_cmd.add_argument("--confirm", choices=["api", "url"], default="api")

    verify_cmd = commands.add_parser(
        "verify", help="check a captured SNS message and explain which check fails"
    )
    verify_cmd.add_argument("file", help="the JSON body of the message, or - for stdin")
    verify_cmd.add_argument(
        "--topic", action="append", help="allowed TopicArn (default: the message's own)"
    )
    verify_cmd.add_argument(
        "--offline", metavar="CERT.pem", help="use this certificate instead of downloading it"
    )
    verify_cmd.add_argument(
        "--at",
        default="now",
        metavar="now|message|TIMESTAMP",
        help="the time to check freshness and certificate validity at (default now; "
        "'message' uses the message's own Timestamp)",
    )
    verify_cmd.add_argument("--require-v2", action="store_true", help="refuse SignatureVersion 1")
    verify_cmd.add_argument("--emulator", metavar="BASE_URL", help="trust an SNS emulator")
    verify_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        return verify(args, sys.stdout)
    except (ConfigurationError, SnsError, OSError) as exc:
        sys.stderr.write(f"snsmiddleware {args.command}: {exc}\n")
        return 2
