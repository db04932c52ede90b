"""The ``snsmiddleware`` command (also ``python -m snsmiddleware``; ``--version``):

* ``serve``: the budget-alert server (BudgetApp behind SnsMiddleware) on waitress, from the
  embedded defaults, ``SNSMIDDLEWARE_*`` variables, an INI file (``--config``) and flags;
  ``--dev`` also trusts the local development CA;
* ``verify``: check a captured message and say which stage fails (``--json`` for machines);
* ``send-test-alert``: post a Budgets alert (``--anomaly``: a Cost Anomaly Detection alert)
  signed by the development CA to a running server;
* ``listen``: forward a topic's real deliveries, through a temporary SQS queue, to a local
  server (:mod:`snsmiddleware.listen`);
* ``replay``: send dead-lettered emails again through the configured mailer, exactly once
  each (:mod:`snsmiddleware.replay`);
* ``doctor``: audit a topic's wiring to an endpoint, one line per check
  (:mod:`snsmiddleware.doctor`); ``connect``: wire a budget to an endpoint through a topic,
  idempotently (:mod:`snsmiddleware.connect`).

Output is for people first (one line per fact, the verdict last). Exit status: 0 success,
1 the message did not verify (or the server refused the test alert, doctor found a FAIL,
connect could not finish), 2 bad usage or configuration (or the server could not be reached).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ._version import __version__
from .devmode import BUDGET_PERIOD_WORDING, DEFAULT_DEV_CA_DIR
from .diagnose import Diagnosis, diagnose
from .errors import ConfigurationError, SnsError
from .message import parse_message, parse_timestamp
from .policy import accepted_signature_versions
from .reasons import Reason
from .server import DEFAULT_TOPIC, ServerSettings
from .terminal import terminal_safe, without_password

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
        try:
            options["basic_auth"] = Path(args.basic_auth_file).read_text(encoding="utf-8")
        except (OSError, UnicodeError) as exc:
            raise ConfigurationError(
                f"--basic-auth-file {args.basic_auth_file}: cannot be read "
                f"({getattr(exc, 'strerror', None) or exc})"
            ) from None
    if args.admin_recipient:  # one address per flag
        options["admin_recipients"] = "\n".join(args.admin_recipient)
    options["workers"] = None if args.workers is None else str(args.workers)
    options["development"] = "true" if args.dev else None
    options["dev_ca"] = args.dev_ca
    options.update(_observability_flags(args))
    return {key: value for key, value in options.items() if value is not None}


def _observability_flags(args: argparse.Namespace) -> dict[str, str | None]:
    port = args.metrics_port
    return {
        "metrics_port": None if port is None else str(port),
        "metrics_host": args.metrics_host,
        "log_format": args.log_format,
    }


def _configure_logging(args: argparse.Namespace) -> logging.Handler:
    """INFO to stderr, in the format the flag or ``SNSMIDDLEWARE_LOG_FORMAT`` names (an
    INI's ``log_format`` applies once the file is read: see :func:`_apply_log_format`)."""
    from .logformat import LOG_FORMATS, make_formatter

    wanted = args.log_format or os.environ.get("SNSMIDDLEWARE_LOG_FORMAT", "").strip()
    handler = logging.StreamHandler()
    # A misspelt variable is refused by assemble(), naming it; until then: plain.
    handler.setFormatter(make_formatter(wanted if wanted in LOG_FORMATS else "plain"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    return handler


def _apply_log_format(handler: logging.Handler, log_format: str) -> None:
    from .logformat import make_formatter

    handler.setFormatter(make_formatter(log_format))


def serve(args: argparse.Namespace) -> int:
    from .server import assemble, configure_logging, make_server, start_metrics_server

    handler = _configure_logging(args)
    config = Path(args.config) if args.config else None
    if config is not None:
        configure_logging(config)  # the INI's [loggers] sections, as pserve applies them
    flags = _flag_options(args)
    assembly = assemble(flags, os.environ, config)
    _apply_log_format(handler, assembly.settings.log_format)
    if assembly.settings.workers > 1:
        return _serve_workers(assembly, lambda: assemble(flags, os.environ, config))
    graceful = make_server(assembly)
    metrics_server = start_metrics_server(assembly)
    _describe(assembly, graceful.port)
    if metrics_server is not None:
        log.info(
            "  metrics       http://%s:%d/metrics",
            assembly.settings.metrics_host,
            metrics_server.port,
        )
    try:
        graceful.run()
    finally:
        if metrics_server is not None:
            metrics_server.close()
    return 0


def _serve_workers(assembly: Any, rebuild: Any) -> int:
    """``serve --workers N``: N processes on one socket (see :mod:`snsmiddleware.prefork`)."""
    from .prefork import Supervisor

    supervisor = Supervisor(
        assembly, rebuild, workers=assembly.settings.workers, describe=_describe
    )
    return supervisor.run()


def _describe(assembly: Any, port: int) -> None:
    """One line per fact a person checks at start: where, what, and where the mail goes."""
    from .server import summary

    for line in summary(assembly, port):
        log.info("%s", line)


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


def send_test_alert(args: argparse.Namespace, out: TextIO) -> int:
    import requests

    from .devmode import load_or_create_dev_ca
    from .signer import MessageSigner

    if args.anomaly:
        conflicting = _budget_kind_flags(args)
        if args.subscription_confirmation:
            conflicting.insert(0, "--subscription-confirmation")
        if conflicting:
            sys.stderr.write(
                "snsmiddleware send-test-alert: --anomaly sends a Cost Anomaly Detection "
                f"alert; it cannot be combined with {', '.join(conflicting)}\n"
            )
            return 2
    else:
        for note in _alert_kind_notes(args):
            sys.stderr.write(f"snsmiddleware send-test-alert: note: {note}\n")

    signer = MessageSigner(load_or_create_dev_ca(args.dev_ca), topic_arn=args.topic)
    if args.subscription_confirmation:
        message = signer.subscription_confirmation()
        what = "SubscriptionConfirmation"
    elif args.anomaly:
        message, what = _anomaly_message(signer, args.topic)
    else:
        subject, text = _sample_alert(args)
        message = signer.notification(text, Subject=subject)
        what = f"{_alert_kind_label(args)} Budgets alert for {args.budget!r}"
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
            f"snsmiddleware send-test-alert: could not reach {without_password(args.url)}: {exc}\n"
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
            f"to     {terminal_safe(without_password(args.url))}\n"
            f"answer {response.status_code} {terminal_safe(reason or '')}\n"
            f"       {terminal_safe(response.text.strip()[:200])}\n"
        )
        if reason in _UNTRUSTED_SIGNER_REASONS:
            out.write("hint:  is the server running in development mode (serve --dev)?\n")
        if reason == Reason.UNAUTHORIZED:
            out.write("hint:  the server wants Basic auth: http://user:password@host:port/path\n")
    return 0 if 200 <= response.status_code < 300 else 1


# --- send-test-alert: which kind of Budgets alert -------------------------------------------

_CENT = Decimal("0.01")
_AMOUNT = re.compile(r"\d{1,12}(?:\.\d{1,2})?", re.ASCII)
_DEFAULT_BUDGETED = Decimal("100.00")
#: Budgets sends an absolute threshold; a test alert's default is 90% of the budgeted amount.
_DEFAULT_THRESHOLD_PERCENT = Decimal("90")
#: The default amount: a little past the default threshold, as a real alert would be.
_DEFAULT_AMOUNT_PERCENT = Decimal("93.17")


def _amount(text: str) -> Decimal:
    """An amount in dollars (``93.17``, ``$1,234.5``): digits, at most cents."""
    cleaned = text.strip().removeprefix("$").replace(",", "")
    if _AMOUNT.fullmatch(cleaned) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount like 93.17")
    return Decimal(cleaned).quantize(_CENT)


def _threshold(text: str) -> tuple[Decimal, bool]:
    """``90%`` (of the budgeted amount) or an amount; ``(value, is_percent)``."""
    if text.strip().endswith("%"):
        percent = _amount(text.strip()[:-1])
        if percent > 1000:
            raise argparse.ArgumentTypeError(f"{text!r}: a threshold is at most 1000%")
        return percent, True
    return _amount(text), False


def _add_alert_kind_arguments(send_cmd: argparse.ArgumentParser) -> None:
    """The flags that choose which Budgets alert ``send-test-alert`` sends."""
    send_cmd.add_argument(
        "--forecasted",
        action="store_true",
        help="a FORECASTED alert (the forecast exceeds the threshold) instead of ACTUAL",
    )
    send_cmd.add_argument(
        "--period",
        choices=list(BUDGET_PERIOD_WORDING),
        default="MONTHLY",
        help="the budget's period, worded as Budgets does (default MONTHLY; DAILY budgets "
        "have no forecasted alerts)",
    )
    send_cmd.add_argument(
        "--budgeted",
        type=_amount,
        metavar="AMOUNT",
        help=f"the budgeted amount in USD (default {_DEFAULT_BUDGETED})",
    )
    send_cmd.add_argument(
        "--actual",
        type=_amount,
        metavar="AMOUNT",
        help="the actual amount (with --forecasted: the forecasted amount) (default "
        f"{_DEFAULT_AMOUNT_PERCENT}%% of the budgeted amount)",
    )
    send_cmd.add_argument(
        "--threshold",
        type=_threshold,
        metavar="AMOUNT|PERCENT%",
        help="the alert threshold, an amount or a percentage of the budgeted amount; Budgets "
        f"writes it as an amount (default {_DEFAULT_THRESHOLD_PERCENT}%%)",
    )


def _alert_amounts(args: argparse.Namespace) -> tuple[Decimal, Decimal, Decimal]:
    """(budgeted, threshold, amount) of the test alert, in dollars."""
    budgeted = args.budgeted if args.budgeted is not None else _DEFAULT_BUDGETED
    value, is_percent = (
        args.threshold if args.threshold is not None else (_DEFAULT_THRESHOLD_PERCENT, True)
    )
    threshold = (budgeted * value / 100).quantize(_CENT) if is_percent else value
    amount = (
        args.actual
        if args.actual is not None
        else (budgeted * _DEFAULT_AMOUNT_PERCENT / 100).quantize(_CENT)
    )
    return budgeted, threshold, amount


def _sample_alert(args: argparse.Namespace) -> tuple[str, str]:
    """The ``(subject, message)`` of the Budgets alert the flags ask for."""
    from .devmode import sample_budget_alert

    budgeted, threshold, amount = _alert_amounts(args)
    try:  # plain "1234.50", no thousands separator: what parsers in the wild expect
        return sample_budget_alert(
            args.budget,
            alert_type="FORECASTED" if args.forecasted else "ACTUAL",
            period=args.period,
            budgeted=f"{budgeted:.2f}",
            threshold=f"{threshold:.2f}",
            actual=f"{amount:.2f}",
        )
    except ValueError as exc:  # --forecasted --period DAILY
        raise ConfigurationError(str(exc)) from None


def _alert_kind_label(args: argparse.Namespace) -> str:
    """``FORECASTED QUARTERLY ($2710.40 of $2500.00, threshold $2000.00)``."""
    budgeted, threshold, amount = _alert_amounts(args)
    kind = "FORECASTED" if args.forecasted else "ACTUAL"
    return f"{kind} {args.period} (${amount} of ${budgeted}, threshold ${threshold})"


def _alert_kind_notes(args: argparse.Namespace) -> list[str]:
    """What makes the test alert one Budgets would not send (it is sent all the same)."""
    _, threshold, amount = _alert_amounts(args)
    if amount <= threshold:
        return [f"Budgets alerts only when the amount exceeds the threshold (${threshold})"]
    return []


def _anomaly_message(signer: MessageSigner, topic: str) -> tuple[SignedMessage, str]:
    """A signed Cost Anomaly Detection alert from ``topic``, in that topic's account (so that
    account entries of ``recipients`` apply), without a Subject (AWS sets none)."""
    from .alert_email import topic_account
    from .devmode import sample_anomaly_alert

    account = topic_account(topic) or "123456789012"
    return signer.notification(sample_anomaly_alert(account=account)), (
        "Cost Anomaly Detection alert for monitor 'Test Monitor'"
    )


#: The flags that shape a Budgets test alert; ``--anomaly`` sends no Budgets alert at all.
_BUDGET_KIND_FLAGS = ("forecasted", "budgeted", "actual", "threshold")


def _budget_kind_flags(args: argparse.Namespace) -> list[str]:
    """The Budgets-alert flags given on the command line (``--period``: when not the
    default), which ``--anomaly`` cannot honour."""
    given = [f"--{name}" for name in _BUDGET_KIND_FLAGS if getattr(args, name) not in (None, False)]
    if args.period != "MONTHLY":
        given.append("--period")
    return given


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
        "--workers",
        type=int,
        help=f"server processes sharing the port and the de-duplication store (default "
        f"{ServerSettings.workers}; one per core verifies in parallel)",
    )
    serve_cmd.add_argument(
        "--basic-auth-file",
        metavar="FILE",
        help="require HTTP Basic auth with the user:password pairs in FILE (whitespace-"
        "separated; or SNSMIDDLEWARE_BASIC_AUTH)",
    )
    serve_cmd.add_argument(
        "--admin-recipient",
        action="append",
        metavar="ADDRESS",
        help="email ADDRESS when this endpoint is unsubscribed from a topic (repeatable; or "
        "SNSMIDDLEWARE_ADMIN_RECIPIENTS)",
    )
    serve_cmd.add_argument(
        "--dev",
        action="store_true",
        help="DEVELOPMENT MODE: also trust the local development CA (send-test-alert)",
    )
    serve_cmd.add_argument(
        "--dev-ca", metavar="DIR", help=f"development CA directory (default {DEFAULT_DEV_CA_DIR})"
    )
    _add_observability_flags(serve_cmd)

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
    _add_alert_kind_arguments(send_cmd)
    send_cmd.add_argument(
        "--dev-ca",
        default=str(DEFAULT_DEV_CA_DIR),
        metavar="DIR",
        help="development CA directory (created on first use; the server must share it)",
    )
    send_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    _add_anomaly_flag(send_cmd)
    _add_listen_parser(commands)
    _add_replay_parser(commands)
    _add_doctor_parsers(commands)
    return parser


def _add_observability_flags(serve_cmd: argparse.ArgumentParser) -> None:
    serve_cmd.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on this port, never the SNS port (needs "
        "snsmiddleware[prometheus]; default: no metrics)",
    )
    serve_cmd.add_argument(
        "--metrics-host",
        metavar="HOST",
        help=f"address of the metrics port (default {ServerSettings.metrics_host})",
    )
    serve_cmd.add_argument(
        "--log-format",
        choices=("plain", "json"),
        help=f"log lines as text or one JSON object each (default {ServerSettings.log_format})",
    )


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
    _add_aws_arguments(listen_cmd)
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


# --- replay ---------------------------------------------------------------------------------


def _add_replay_parser(commands: Any) -> None:
    replay_cmd = commands.add_parser(
        "replay",
        help="send dead-lettered emails again through the configured mailer, exactly once each",
        description="The mailer, sender and default recipients are serve's: embedded defaults "
        "< SNSMIDDLEWARE_* environment variables, or an INI file with --config. Every step is "
        "recorded in a ledger (fsynced) before the next: a letter already replayed is skipped, "
        "one whose earlier replay was interrupted is not re-sent unless you say so. "
        "Exit status: 0 every file sent (now or before), 1 a file failed, was refused or was "
        "interrupted, 2 bad usage or configuration.",
    )
    replay_cmd.add_argument(
        "files", nargs="+", metavar="DEAD_LETTER.eml", help="dead letters to send again"
    )
    replay_cmd.add_argument("--config", metavar="FILE.ini", help="PasteDeploy configuration")
    replay_cmd.add_argument(
        "--ledger",
        metavar="FILE",
        help="where replays are recorded (default: replayed.jsonl in the dead-letter directory)",
    )
    replay_cmd.add_argument(
        "--to",
        action="append",
        metavar="ADDRESS",
        help="send every letter to ADDRESS instead of its own recipients (repeatable)",
    )
    replay_cmd.add_argument(
        "--resend-interrupted",
        action="store_true",
        help="also send letters whose earlier replay was interrupted (they may have been sent)",
    )


def replay(args: argparse.Namespace, out: TextIO) -> int:
    from .budget_app import parse_address
    from .replay import LEDGER_NAME, ReplayLedger, replay_dead_letters
    from .server import budget_app_from

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app = budget_app_from(os.environ, Path(args.config) if args.config else None)
    recipients = [parse_address(address, what="--to") for address in args.to or []]
    ledger_path = Path(args.ledger) if args.ledger else app.dead_letter.directory / LEDGER_NAME
    counts: dict[str, int] = {}
    failed = False
    with ReplayLedger(ledger_path) as ledger:
        results = replay_dead_letters(
            args.files,
            mailer=app.mailer,
            sender=app.sender,
            ledger=ledger,
            recipients=recipients,
            default_recipients=app.default_recipients,
            resend_interrupted=args.resend_interrupted,
        )
        for result in results:
            counts[result.outcome.value] = counts.get(result.outcome.value, 0) + 1
            failed = failed or not result.ok
            # File names and details can hold anything: escaped, as the server's answers are.
            out.write(
                f"{result.outcome.value:<16} {terminal_safe(str(result.path))}\n"
                f"{'':<16} {terminal_safe(result.detail)}\n"
            )
    summary = ", ".join(f"{count} {outcome}" for outcome, count in counts.items())
    out.write(f"replay: {summary}; ledger {terminal_safe(str(ledger_path))}\n")
    return 1 if failed else 0


# --- doctor and connect ---------------------------------------------------------------------


def _add_aws_arguments(command: Any) -> None:
    command.add_argument("--region", help="AWS region (default: the topic's)")
    command.add_argument(
        "--endpoint-url", metavar="URL", help="an AWS emulator (moto server, LocalStack)"
    )


def _add_doctor_parsers(commands: Any) -> None:
    doctor_cmd = commands.add_parser(
        "doctor",
        help="audit a topic's wiring to an endpoint and explain each finding (ok/warn/FAIL)",
    )
    doctor_cmd.add_argument("--topic", required=True, metavar="ARN", help="the SNS TopicArn")
    doctor_cmd.add_argument(
        "--endpoint",
        metavar="URL",
        help="the subscribed endpoint: its subscription is checked and it is sent a probe "
        "with a forged signature, which it must refuse",
    )
    doctor_cmd.add_argument(
        "--dev-ca",
        metavar="DIR",
        help="also send a Budgets alert signed by this development CA (serve --dev accepts it)",
    )
    _add_aws_arguments(doctor_cmd)
    connect_cmd = commands.add_parser(
        "connect",
        help="create or reuse the topic, subscribe the endpoint and add the topic to the "
        "budget's notifications (idempotent)",
    )
    connect_cmd.add_argument("--budget", required=True, metavar="NAME", help="the budget's name")
    connect_cmd.add_argument(
        "--endpoint",
        required=True,
        metavar="URL",
        help="e.g. https://alerts.example.com/sns/budgets",
    )
    connect_cmd.add_argument(
        "--topic",
        metavar="ARN",
        help="the topic to use (default: budget-alerts, created if need be)",
    )
    connect_cmd.add_argument(
        "--threshold",
        default="80",
        metavar="PERCENT",
        help="for a budget without notifications: alert above this percentage of the "
        "budgeted amount (ACTUAL; default 80)",
    )
    connect_cmd.add_argument(
        "--dry-run", action="store_true", help="print the changes without making them"
    )
    connect_cmd.add_argument(
        "--allow-http", action="store_true", help="allow an http:// endpoint (local development)"
    )
    _add_aws_arguments(connect_cmd)


def doctor(args: argparse.Namespace, out: TextIO) -> int:
    from .doctor import doctor_options, run_doctor

    options = doctor_options(
        args.topic,
        endpoint=args.endpoint,
        region=args.region,
        endpoint_url=args.endpoint_url,
        dev_ca=args.dev_ca,
    )
    return run_doctor(options, out)


def connect(args: argparse.Namespace, out: TextIO) -> int:
    from .connect import connect_options, run_connect

    options = connect_options(
        args.budget,
        args.endpoint,
        topic_arn=args.topic,
        region=args.region,
        endpoint_url=args.endpoint_url,
        dry_run=args.dry_run,
        allow_http=args.allow_http,
        threshold=args.threshold,
    )
    return run_connect(options, out)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "send-test-alert":
            return send_test_alert(args, sys.stdout)
        if args.command == "listen":
            return listen(args, sys.stdout)
        if args.command == "replay":
            return replay(args, sys.stdout)
        if args.command in {"doctor", "connect"}:
            return (doctor if args.command == "doctor" else connect)(args, sys.stdout)
        return verify(args, sys.stdout)
    except (ConfigurationError, SnsError, OSError) as exc:
        sys.stderr.write(f"snsmiddleware {args.command}: {exc}\n")
        return 2
