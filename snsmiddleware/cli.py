"""The ``snsmiddleware`` command (also ``python -m snsmiddleware``; ``--version``):

* ``serve``: the budget-alert server (BudgetApp behind SnsMiddleware) on waitress, from the
  embedded defaults, ``SNSMIDDLEWARE_*`` variables, an INI file (``--config``) and flags;
  ``--dev`` also trusts the local development CA;
* ``verify``: check a captured message and say which stage fails (``--json`` for machines);
* ``send-test-alert``: post a Budgets alert (``--anomaly``: a Cost Anomaly Detection alert)
  signed by the development CA to a running server;
* ``listen``: forward a topic's real deliveries, through a temporary SQS queue, to a local
  server (:mod:`snsmiddleware.listen`).

Output is for people first (one line per fact, the verdict last). Exit status: 0 success,
1 the message did not verify (or the server refused the test alert), 2 bad usage or
configuration (or the server could not be reached).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ._version import __version__
from .devmode import DEFAULT_DEV_CA_DIR
from .diagnose import Diagnosis, diagnose
from .errors import ConfigurationError, SnsError
from .message import parse_message, parse_timestamp
from .middleware import SnsMiddleware
from .policy import accepted_signature_versions
from .reasons import Reason
from .server import DEFAULT_TOPIC, ServerSettings
from .terminal import terminal_safe

if TYPE_CHECKING:
    from .signer import MessageSigner, SignedMessage
from .verifier import SnsVerifier, utc_now

log = logging.getLogger("snsmiddleware.serve")


# --- serve ----------------------------------------------------------------------------------


def _flag_options(args: argparse.Namespace) -> dict[str, str]:
    options = {"host": args.host, "port": None if args.port is None else str(args.port)}
    options["topics"] = " ".join(args.topic) if args.topic else None
    if args.basic_auth_file is not None:
        # A file, not a flag value: a password on the command line shows in `ps` and history.
        options["basic_auth"] = Path(args.basic_auth_file).read_text(encoding="utf-8")
    options["development"] = "true" if args.dev else None
    options["dev_ca"] = args.dev_ca
    return {key: value for key, value in options.items() if value is not None}


def serve(args: argparse.Namespace) -> int:
    from .server import assemble, make_server

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = Path(args.config) if args.config else None
    assembly = assemble(_flag_options(args), os.environ, config)
    graceful = make_server(assembly)
    _describe(assembly.app, assembly.settings.host, graceful.port, assembly.source)
    graceful.run()
    return 0


def _describe(app: Any, host: str, port: int, source: str) -> None:
    """One line per fact a person checks at start: where, what, and where the mail goes."""
    log.info("snsmiddleware serving http://%s:%d (%s)", host, port, source)
    if isinstance(app, SnsMiddleware):
        for path in sorted(app.paths):
            log.info("  SNS endpoint  http://%s:%d%s", host, port, path)
        log.info("  topics        %s", app.verifier.topics)
        log.info("  dedupe        %r", app.dedupe)
        if app.basic_auth is not None:  # user names and realm only, never a password
            log.info(
                "  basic auth    users %s, realm %r",
                ", ".join(app.basic_auth.users),
                app.basic_auth.realm,
            )
        inner = app.app
        mailer = getattr(inner, "mailer", None)
        if mailer is not None:
            log.info("  mailer        %r", mailer)
            log.info("  dead letters  %r", getattr(inner, "dead_letter", None))


# --- verify ---------------------------------------------------------------------------------

_MARKS = {
    "passed": "PASS",
    "failed": "FAIL",
    "not_run": "----",
    "not_applicable": "n/a ",
    "unknown": "????",
}


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


def _shown(text: str) -> str:
    """A field of a message nothing has verified, safe for a terminal: control characters
    (escape sequences, carriage returns) come out escaped, never as themselves."""
    return text if text.isprintable() else repr(text)


def _report(diagnosis: Diagnosis, notes: list[str], out: TextIO) -> None:
    message = diagnosis.message
    if message is not None:
        out.write(
            f"SNS {message.type} {message.message_id} (SignatureVersion "
            f"{_shown(message.signature_version)})\n  topic  {_shown(message.topic_arn)}\n"
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
        if all(result.status == "unknown" for result in diagnosis.stages):
            out.write(f"error: {diagnosis.error.reason}: {diagnosis.error.detail}\n")
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
        signature_versions=accepted_signature_versions(args.require_v2),
        fetch_certificate=fetch,
        clock=lambda: clock_time,
        emulator=args.emulator,
    )
    diagnosis = diagnose(body, verifier)
    (_report_json if args.json else _report)(diagnosis, notes, out)
    return 0 if diagnosis.ok else 1


# --- send-test-alert ------------------------------------------------------------------------


#: What a server that does not trust the development CA answers to its messages.
_UNTRUSTED_SIGNER_REASONS = frozenset(
    {
        Reason.CERTIFICATE_NAME_MISMATCH,
        Reason.BAD_SIGNATURE,
        Reason.CERTIFICATE_NOT_FOUND,
        Reason.CERTIFICATE_UNAVAILABLE,
    }
)


def _without_password(url: str) -> str:
    """``url`` as it may be shown: a password in its user information becomes ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def send_test_alert(args: argparse.Namespace, out: TextIO) -> int:
    import requests

    from .devmode import load_or_create_dev_ca, sample_budget_alert
    from .signer import MessageSigner

    signer = MessageSigner(load_or_create_dev_ca(args.dev_ca), topic_arn=args.topic)
    if args.subscription_confirmation and args.anomaly:
        sys.stderr.write(
            "snsmiddleware send-test-alert: --anomaly and --subscription-confirmation "
            "exclude each other\n"
        )
        return 2
    if args.subscription_confirmation:
        message = signer.subscription_confirmation()
        what = "SubscriptionConfirmation"
    elif args.anomaly:
        message, what = _anomaly_message(signer, args.topic)
    else:
        subject, text = sample_budget_alert(args.budget)
        message = signer.notification(text, Subject=subject)
        what = f"Budgets alert for {args.budget!r}"
    try:
        response = requests.post(
            args.url,
            data=message.body,
            headers=message.headers,
            timeout=20,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        sys.stderr.write(
            f"snsmiddleware send-test-alert: could not reach {_without_password(args.url)}: {exc}\n"
        )
        return 2
    reason = response.headers.get("X-SNS-Reason")
    result = {
        "sent": what,
        "message_id": message.fields["MessageId"],
        "topic_arn": args.topic,
        "status": response.status_code,
        "reason": reason,
        "body": response.text[:500],
    }
    if args.json:
        out.write(json.dumps(result, indent=2) + "\n")
    else:
        # The answer is the server's text: escape it, so it cannot drive the terminal.
        out.write(
            f"sent   {what} ({message.fields['MessageId']})\n"
            f"to     {terminal_safe(_without_password(args.url))}\n"
            f"answer {response.status_code} {terminal_safe(reason or '')}\n"
            f"       {terminal_safe(response.text.strip()[:200])}\n"
        )
        if reason in _UNTRUSTED_SIGNER_REASONS:
            out.write("hint:  is the server running in development mode (serve --dev)?\n")
        if reason == Reason.UNAUTHORIZED:
            out.write("hint:  the server wants Basic auth: http://user:password@host:port/path\n")
    return 0 if 200 <= response.status_code < 300 else 1


def _anomaly_message(signer: MessageSigner, topic: str) -> tuple[SignedMessage, str]:
    """A signed Cost Anomaly Detection alert from ``topic``, in that topic's account (so that
    account entries of ``recipients`` apply), without a Subject (AWS sets none)."""
    from .alert_email import topic_account
    from .devmode import sample_anomaly_alert

    account = topic_account(topic) or "123456789012"
    return signer.notification(sample_anomaly_alert(account=account)), (
        "Cost Anomaly Detection alert for monitor 'Test Monitor'"
    )


def _add_anomaly_flag(send_cmd: Any) -> None:
    send_cmd.add_argument(
        "--anomaly",
        action="store_true",
        help="send a Cost Anomaly Detection alert (monitor 'Test Monitor') instead of a "
        "Budgets alert",
    )


# --- entry point ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snsmiddleware", description="Safe Amazon SNS HTTP(S) subscriber for WSGI apps."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser(
        "serve",
        help="run the budget-alert server (BudgetApp behind SnsMiddleware) on waitress",
        description="Settings: embedded defaults < SNSMIDDLEWARE_* environment variables < "
        "flags; or an INI file (PasteDeploy) with --config.",
    )
    serve_cmd.add_argument("--config", metavar="FILE.ini", help="PasteDeploy configuration")
    serve_cmd.add_argument("--host", help=f"address to listen on (default {ServerSettings.host})")
    serve_cmd.add_argument(
        "--port", type=int, help=f"port to listen on (default {ServerSettings.port})"
    )
    serve_cmd.add_argument(
        "--topic", action="append", help=f"allowed TopicArn (default {DEFAULT_TOPIC})"
    )
    serve_cmd.add_argument(
        "--basic-auth-file",
        metavar="FILE",
        help="require HTTP Basic auth with the user:password pairs in FILE (whitespace-"
        "separated; or SNSMIDDLEWARE_BASIC_AUTH)",
    )
    serve_cmd.add_argument(
        "--dev",
        action="store_true",
        help="DEVELOPMENT MODE: also trust the local development CA (send-test-alert)",
    )
    serve_cmd.add_argument(
        "--dev-ca", metavar="DIR", help=f"development CA directory (default {DEFAULT_DEV_CA_DIR})"
    )

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

    send_cmd = commands.add_parser(
        "send-test-alert",
        help="post a Budgets alert signed by the local development CA to a running server",
    )
    send_cmd.add_argument("url", help="for example http://127.0.0.1:8080/sns/budgets")
    send_cmd.add_argument(
        "--subscription-confirmation",
        action="store_true",
        help="send a SubscriptionConfirmation instead of an alert",
    )
    send_cmd.add_argument("--topic", default=DEFAULT_TOPIC, help="the TopicArn to send from")
    send_cmd.add_argument("--budget", default="Test Budget", help="the budget name in the alert")
    send_cmd.add_argument(
        "--dev-ca",
        default=str(DEFAULT_DEV_CA_DIR),
        metavar="DIR",
        help="development CA directory (created on first use; the server must share it)",
    )
    send_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    _add_anomaly_flag(send_cmd)
    _add_listen_parser(commands)
    return parser


# --- listen ---------------------------------------------------------------------------------


def _add_listen_parser(commands: Any) -> None:
    listen_cmd = commands.add_parser(
        "listen",
        help="forward a topic's real, signed deliveries to a local server (via a temporary "
        "SQS queue, removed on exit)",
    )
    listen_cmd.add_argument("--topic", required=True, metavar="ARN", help="the SNS TopicArn")
    listen_cmd.add_argument(
        "--forward-to", required=True, metavar="URL", help="e.g. http://127.0.0.1:8080/sns/budgets"
    )
    listen_cmd.add_argument("--region", help="AWS region (default: the topic's)")
    listen_cmd.add_argument("--endpoint-url", metavar="URL", help="an SNS/SQS emulator")
    listen_cmd.add_argument(
        "--max-messages", type=int, metavar="N", help="stop after forwarding N messages"
    )
    listen_cmd.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after this many seconds"
    )
    listen_cmd.add_argument(
        "--visibility-timeout",
        type=int,
        default=30,
        metavar="SECONDS",
        help="how soon a message the local server did not take (5xx) is retried (default 30)",
    )


def listen(args: argparse.Namespace, out: TextIO) -> int:
    from .listen import listen as run_listen
    from .listen import listen_options

    options, warnings = listen_options(
        args.topic,
        args.forward_to,
        region=args.region,
        endpoint_url=args.endpoint_url,
        max_messages=args.max_messages,
        duration=args.duration,
        visibility_timeout=args.visibility_timeout,
    )
    for warning in warnings:
        sys.stderr.write(f"snsmiddleware listen: warning: {warning}\n")
    return run_listen(options, out)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "send-test-alert":
            return send_test_alert(args, sys.stdout)
        if args.command == "listen":
            return listen(args, sys.stdout)
        return verify(args, sys.stdout)
    except (ConfigurationError, SnsError, OSError) as exc:
        sys.stderr.write(f"snsmiddleware {args.command}: {exc}\n")
        return 2
