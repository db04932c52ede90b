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

import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Final

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
    """A whole number with an optional unit: ``ms``, ``s`` (default), ``m``, ``h`` or ``d``."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a duration like 90s, 5m or 1h")
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


def convert_options(
    conf: Mapping[str, Any], table: Mapping[str, Converter], *, section: str
) -> dict[str, Any]:
    """Convert string options with ``table``; unknown keys and bad values fail, naming the key.

    Values that are not strings (a Python caller passing real objects) are kept as they are.
    """
    unknown = sorted(set(conf) - set(table))
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) in [{section}]: {', '.join(unknown)}; "
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
}


def middleware_options(conf: Mapping[str, Any], *, section: str = "sns") -> dict[str, Any]:
    """Keyword arguments for :class:`~snsmiddleware.SnsMiddleware` from string options."""
    return convert_options(conf, MIDDLEWARE_OPTIONS, section=section)
