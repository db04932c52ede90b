"""Strict string converters and the option tables shared by PasteDeploy, the CLI and env vars.

One constructor is the truth: INI files, environment variables and command-line flags are
all strings, and they are translated here into the same keyword arguments a Python user
passes to :class:`~snsmiddleware.SnsMiddleware`. Translation is strict on purpose: an
unknown key, a misspelt boolean (``ture``) or a negative size raises
:class:`~snsmiddleware.errors.ConfigurationError` at startup, naming the key, instead of
silently disabling a safety feature (waitress's lenient ``asbool`` turns any unknown string
into ``False``).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from email.utils import formataddr, getaddresses
from typing import Any, Final

from .basicauth import parse_credentials_string
from .dedupe import DEFAULT_LEASE, DedupeStore, MemoryDedupeStore
from .errors import ConfigurationError

Converter = Callable[[str], Any]

_TRUE: Final = frozenset({"true", "yes", "on", "1"})
_FALSE: Final = frozenset({"false", "no", "off", "0"})
_DURATION: Final = re.compile(r"(\d{1,9})\s*(ms|s|m|h|d)?", re.ASCII)
_DURATION_UNITS: Final = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}


def to_bool(value: str) -> bool:
    """``true/yes/on/1`` or ``false/no/off/0`` (any case); anything else is an error."""
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean (use true or false)")


def to_words(value: str) -> list[str]:
    """Items separated by whitespace, commas or new lines (TopicArns, paths)."""
    return [item for item in re.split(r"[\s,]+", value.strip()) if item]


def to_lines(value: str) -> list[str]:
    """One item per line, blank lines ignored (email addresses with display names)."""
    return [line.strip() for line in value.splitlines() if line.strip()]


def to_positive_int(value: str) -> int:
    """A whole number greater than zero."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ValueError(f"{value!r} is not a positive whole number")
    return int(text)


def to_duration(value: str) -> timedelta:
    """A whole number with an optional unit: ``ms``, ``s`` (default), ``m``, ``h`` or ``d``.

    A bare number is seconds (``300`` is five minutes), as it always was here; errors say
    so, and ``serve`` prints durations with their unit."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise ValueError(
            f"{value!r} is not a duration like 90s, 5m or 1h (a number alone means seconds)"
        )
    return int(match[1]) * _DURATION_UNITS[match[2] or "s"]


def to_text(value: str) -> str:
    """A non-empty string, stripped."""
    text = value.strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def one_of(*choices: str) -> Converter:
    """A converter accepting exactly one of ``choices``."""

    def convert(value: str) -> str:
        text = value.strip()
        if text not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return text

    return convert


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name ``name`` is most probably a typo of, if any is close enough."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return close[0] if close else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean topics?)`` for the known name closest to ``name``, or nothing."""
    match = closest(name, known)
    return f" (did you mean {match}?)" if match else ""


def unknown_names(names: Iterable[str], known: Iterable[str]) -> str:
    """``topic (did you mean topics?), dedup (did you mean dedupe?)``: each unknown name with
    the known one it is probably a typo of."""
    known = sorted(known)
    return ", ".join(f"{name}{did_you_mean(name, known)}" for name in sorted(names))


def convert_options(
    conf: Mapping[str, Any], table: Mapping[str, Converter], *, section: str
) -> dict[str, Any]:
    """Convert string options with ``table``; unknown keys and bad values fail, naming the key
    (and the known key an unknown one is probably a typo of).

    Values that are not strings (a Python caller passing real objects) are kept as they are.
    """
    unknown = set(conf) - set(table)
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) in [{section}]: {unknown_names(unknown, table)}; "
            f"known: {', '.join(sorted(table))}"
        )
    options: dict[str, Any] = {}
    for key, value in conf.items():
        if not isinstance(value, str):
            options[key] = value
            continue
        try:
            options[key] = table[key](value)
        except ValueError as exc:
            raise ConfigurationError(f"[{section}] {key}: {exc}") from None
    return options


def to_dedupe_spec(value: str) -> str:
    """``memory``, ``sqlite:<path>``, a ``redis://`` / ``rediss://`` URL or a
    ``dynamodb://TABLE?region=...`` URL (checked here, built by the middleware through
    :class:`StoreSpec`)."""
    text = value.strip()
    check_store_spec(text)
    return text


_STORE_KINDS: Final = (
    "'memory', 'sqlite:<path>', a redis:// URL or a dynamodb://TABLE?region=... URL"
)


def check_store_spec(text: str) -> None:
    """Raise ``ValueError`` unless :func:`make_dedupe_store` can build ``text`` (a DynamoDB
    URL is checked in full here, without importing boto3)."""
    if text.startswith("dynamodb:"):
        from .dedupe_dynamodb import parse_dynamodb_url

        parse_dynamodb_url(text)
        return
    if not (
        text == "memory"
        or (text.startswith("sqlite:") and len(text) > len("sqlite:"))
        or text.startswith(("redis://", "rediss://"))
    ):
        raise ValueError(f"{text!r} is not {_STORE_KINDS}")


def to_basic_auth(value: str) -> list[tuple[str, str]]:
    """``user:password`` pairs separated by whitespace (``sns:old-secret sns:new-secret``).

    A password may contain ``:`` but no whitespace in this form; errors never repeat the
    value (it holds a password).
    """
    return parse_credentials_string(value)


#: Options of :class:`~snsmiddleware.SnsMiddleware` that can be given as strings.
MIDDLEWARE_OPTIONS: Final[Mapping[str, Converter]] = {
    "paths": to_words,
    "topics": to_words,
    "confirm": one_of("api", "url"),
    "confirm_endpoint_url": to_text,
    "require_signature_v2": to_bool,
    "max_age": to_duration,
    "clock_skew": to_duration,
    "max_body_bytes": to_positive_int,
    "emulator": to_text,
    "answer_budgets_verification": to_bool,
    "dedupe": to_dedupe_spec,
    "basic_auth": to_basic_auth,
    "basic_auth_realm": to_text,
    "dedupe_lease": to_duration,
}


def make_dedupe_store(
    spec: str, *, retention: timedelta, lease: timedelta = DEFAULT_LEASE
) -> DedupeStore:
    """Build the store a ``dedupe`` option names, remembering ids for ``retention`` and
    holding an unfinished claim for ``lease`` (both checked by :class:`StoreSpec`, the one
    caller, when the option is read: a bad value fails at start-up, not at build)."""
    if spec == "memory":
        return MemoryDedupeStore(retention=retention, lease=lease)
    if spec.startswith(("redis://", "rediss://")):
        from .dedupe_redis import RedisDedupeStore

        return RedisDedupeStore(spec, retention=retention, lease=lease)
    if spec.startswith("dynamodb:"):
        from .dedupe_dynamodb import DynamoDBDedupeStore

        return DynamoDBDedupeStore.from_url(spec, retention=retention, lease=lease)
    from .dedupe_sqlite import SQLiteDedupeStore

    return SQLiteDedupeStore(spec[len("sqlite:") :], retention=retention, lease=lease)


@dataclass(frozen=True, slots=True)
class StoreSpec:
    """A ``dedupe`` option as a :class:`~snsmiddleware.dedupe.StoreFactory`: the store is
    built by :class:`~snsmiddleware.SnsMiddleware`, with its verifier's freshness window as
    the retention, so the window has one definition (``SnsVerifier.freshness_window``) and a
    store named in an INI, a variable or a flag always covers it.

    :param spec: ``memory``, ``sqlite:<path>``, a ``redis://`` / ``rediss://`` URL or a
        ``dynamodb://`` URL.
    :param lease: how long an unfinished claim blocks redeliveries.
    """

    spec: str
    lease: timedelta = DEFAULT_LEASE

    def __post_init__(self) -> None:
        try:
            check_store_spec(self.spec)
        except ValueError as exc:
            raise ConfigurationError(f"dedupe: {exc}") from None
        if self.lease <= timedelta(0):
            raise ConfigurationError("dedupe_lease must be positive")

    def build(self, retention: timedelta) -> DedupeStore:
        """The store, remembering processed ids for ``retention``."""
        return make_dedupe_store(self.spec, retention=retention, lease=self.lease)


def middleware_options(conf: Mapping[str, Any], *, section: str = "sns") -> dict[str, Any]:
    """Keyword arguments for :class:`~snsmiddleware.SnsMiddleware` from string options.

    A ``dedupe`` spec becomes a :class:`StoreSpec`, which the middleware builds with a
    retention covering the freshness window its verifier defines (a shorter one would let a
    late redelivery through). Options not given are not passed: the constructors' defaults
    apply.
    """
    options = convert_options(conf, MIDDLEWARE_OPTIONS, section=section)
    lease = options.pop("dedupe_lease", None)
    spec = options.get("dedupe", "memory" if lease is not None else None)
    if lease is not None and not isinstance(spec, str):
        raise ConfigurationError(f"[{section}] dedupe_lease applies to a dedupe spec, not a store")
    if isinstance(spec, str):
        options["dedupe"] = StoreSpec(spec) if lease is None else StoreSpec(spec, lease)
    return options


def to_addresses(value: str) -> list[str]:
    """RFC 5322 address list: ``Ana Lima <ana@example.com>, bo@example.com`` (or one per line).

    Split with the standard library's RFC 5322 list parser, so quoted display names may
    contain commas; each address is checked later by the app that uses it.
    """
    pairs = getaddresses([value.replace("\n", ",")])
    addresses = [formataddr(pair) for pair in pairs if pair[1]]
    if not addresses:
        raise ValueError(f"{value!r} holds no email address")
    return addresses


def to_recipients(value: str) -> dict[str, list[str]]:
    """Alert routing: one ``<budget name, glob or account id>: <addresses>`` per line (for
    anomaly alerts the name is the monitor's or the alert subscription's).

    The separator is the first ``:``, which AWS forbids in budget names (a monitor or
    subscription name may hold one: use the JSON form for it). A JSON object
    (``{"Test Budget": ["ana@example.com"]}``) is accepted too, for environment variables.
    """
    text = value.strip()
    if text.startswith("{"):
        document = json.loads(text)
        if not isinstance(document, dict) or not all(
            isinstance(k, str)
            and (isinstance(v, str) or (isinstance(v, list) and all(isinstance(a, str) for a in v)))
            for k, v in document.items()
        ):
            raise ValueError("recipients JSON must map names to an address or a list of them")
        return {k: [v] if isinstance(v, str) else list(v) for k, v in document.items()}
    routes: dict[str, list[str]] = {}
    for line in to_lines(text):
        key, separator, addresses = line.partition(":")
        if not separator or not key.strip():
            raise ValueError(f"{line!r} is not 'budget name: address, address'")
        routes.setdefault(key.strip(), []).extend(to_addresses(addresses))
    return routes


#: Options of :class:`~snsmiddleware.budget_app.BudgetApp` and its mailer, as strings.
BUDGET_APP_OPTIONS: Final[Mapping[str, Converter]] = {
    "recipients": to_recipients,
    "default_recipients": to_addresses,
    "admin_recipients": to_addresses,
    "sender": to_text,
    "subject_prefix": to_text,
    "dead_letter_after": to_duration,
    "mailer": one_of("file", "smtp", "ses"),
    "outbox": to_text,
    "dead_letter": to_text,
    "smtp_host": to_text,
    "smtp_port": to_positive_int,
    "smtp_security": one_of("starttls", "tls", "none"),
    "smtp_username": to_text,
    "smtp_password": to_text,
    "smtp_timeout": to_duration,
    "ses_region": to_text,
    "ses_configuration_set": to_text,
    "ses_endpoint_url": to_text,
    "ses_api": one_of("v2", "v1"),
}
_MAILER_OPTIONS: Final = {
    "file": {"outbox"},
    "smtp": {
        "smtp_host",
        "smtp_port",
        "smtp_security",
        "smtp_username",
        "smtp_password",
        "smtp_timeout",
    },
    "ses": {"ses_region", "ses_configuration_set", "ses_endpoint_url", "ses_api"},
}


def budget_app_options(conf: Mapping[str, Any], *, section: str = "budgets") -> dict[str, Any]:
    """Keyword arguments for :class:`~snsmiddleware.budget_app.BudgetApp` from strings.

    The ``mailer`` option and its ``outbox``/``smtp_*``/``ses_*`` options become one mailer
    object; options of a mailer that was not chosen are an error (a typo would otherwise
    silently send mail somewhere else).
    """
    from .mail import FileOutbox, Mailer, SesMailer, SmtpMailer

    options = convert_options(conf, BUDGET_APP_OPTIONS, section=section)
    kind = options.pop("mailer", "file")
    mailer_settings = {
        key: options.pop(key) for key in set(options) & set().union(*_MAILER_OPTIONS.values())
    }
    stray = set(mailer_settings) - _MAILER_OPTIONS[kind]
    if stray:
        raise ConfigurationError(
            f"[{section}] {', '.join(sorted(stray))} do not apply to mailer = {kind}"
        )
    # smtp_host -> host...: the mailer's own parameter names, and only those given, so that
    # each default stays the mailer's own.
    given = {key.removeprefix(f"{kind}_"): value for key, value in mailer_settings.items()}
    mailer: Mailer | None
    if kind == "file":
        # No outbox given: BudgetApp's own default (DEFAULT_OUTBOX) applies.
        mailer = FileOutbox(given["outbox"]) if "outbox" in given else None
    elif kind == "smtp":
        if "host" not in given:
            raise ConfigurationError(f"[{section}] mailer = smtp needs smtp_host")
        if "timeout" in given:
            given["timeout"] = given["timeout"].total_seconds()
        mailer = SmtpMailer(**given)
    else:
        mailer = SesMailer(**given)
    if "recipients" not in options:
        options["recipients"] = {}
    return options if mailer is None else {**options, "mailer": mailer}
