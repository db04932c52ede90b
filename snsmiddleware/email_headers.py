"""Email headers from untrusted text, written literally, and the proof that they stay put.

Why this exists: :class:`email.message.EmailMessage` *parses* every string assigned to a
header as if it had come off the wire, and that includes decoding RFC 2047 encoded-words.
A budget name such as ``=?utf-8?q?x=0D=0ABcc=3A_attacker=40evil=2Eexample?=`` (valid under
AWS's BudgetName rules) contains no control character, so stripping those does not help:
the parser turns it into ``x\\r\\nBcc: attacker@evil.example``. CPython before 3.11.10 /
3.12.5 (CVE-2024-6923, gh-121650) then writes that as a real ``Bcc:`` line; fixed releases
quote it, but the decoded Subject still carries a line break into every mail client. The
stdlib's folder has had more such bugs since (CVE-2025-11468, CVE-2026-1299), so this module
does not depend on any of those fixes:

* :class:`LiteralHeader` holds the text as it is (never decoded) and folds it itself: plain
  printable ASCII without ``=?`` is written as it is, folded only at its own spaces; anything
  else is written entirely as UTF-8 base64 encoded-words that *we* made, so a reader decodes
  exactly the original text, ``=?`` and all;
* :func:`verify_headers` serialises the headers of a finished message the way the mailers do,
  parses them back and checks that each header reads back as exactly the one line that was
  set, and that no header appeared or vanished. It raises :class:`UnsafeHeaderError` rather
  than let anything else through.
"""

from __future__ import annotations

import base64
import unicodedata
from email import policy as email_policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import Policy
from typing import Final

from .errors import UnsafeHeaderError as UnsafeHeaderError  # defined there, kept importable

#: RFC 2047: an encoded-word is at most 75 characters, a line holding one at most 76.
_ENCODED_LINE_CHARS: Final = 76
_PREFIX: Final = "=?utf-8?b?"
_SUFFIX: Final = "?="
#: RFC 5322's hard limit on a line, without its CRLF.
_MAX_LINE_CHARS: Final = 998
_DEFAULT_FOLD_AT: Final = 78
#: Characters a header value must never carry as themselves: control characters and line or
#: paragraph separators (they end lines somewhere), format characters (bidi overrides
#: disguise text). Read-back values are held to the first two.
_UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp"})
_LINE_BREAKING: Final = frozenset({"Cc", "Zl", "Zp"})


def _cleaned(text: str) -> str:
    """``text`` without anything that could end or disguise a header line: control, format
    and line-separator characters become spaces, lone surrogates U+FFFD (they cannot be
    encoded at all)."""
    return "".join(
        " "
        if unicodedata.category(char) in _UNSAFE_CATEGORIES
        else "\ufffd"
        if unicodedata.category(char) == "Cs"
        else char
        for char in text
    ).strip()


def _is_plain(text: str) -> bool:
    """True when ``text`` can be written as it is: printable ASCII, nothing a reader would
    take for the start of an encoded-word."""
    return text.isascii() and text.isprintable() and "=?" not in text


class LiteralHeader(str):
    """A header whose value is ``text`` exactly as given, whatever it looks like.

    Assign it like a string (``message["Subject"] = LiteralHeader("Subject", text)``); the
    email policy keeps an object that has a ``name`` as it is, and calls its :meth:`fold`
    when the message is written, whatever policy the mailer uses. Line breaks and other
    control characters in ``text`` become spaces (a header is one line).
    """

    _name: str

    def __new__(cls, name: str, text: str) -> LiteralHeader:
        self = super().__new__(cls, _cleaned(text))
        self._name = name
        return self

    def __reduce__(self) -> tuple[type[LiteralHeader], tuple[str, str]]:
        # copy.deepcopy (the dead-letter copy) and pickle rebuild this class, not a stdlib one.
        return (LiteralHeader, (self._name, str(self)))

    @property
    def name(self) -> str:
        return self._name

    @property
    def defects(self) -> tuple[()]:
        return ()

    def fold(self, *, policy: Policy) -> str:
        """``Name: value`` folded into lines, each ending in ``policy.linesep``."""
        text = str(self)
        fold_at = policy.max_line_length or _DEFAULT_FOLD_AT
        if _is_plain(text):
            lines = self._plain_lines(text, fold_at)
            if lines is not None:
                return policy.linesep.join(lines) + policy.linesep
        return policy.linesep.join(self._encoded_lines(text)) + policy.linesep

    def _plain_lines(self, text: str, fold_at: int) -> list[str] | None:
        """Fold at the text's own spaces (unfolding removes only the line breaks), never
        before the first word; ``None`` when a word is too long for any line."""
        lines = [f"{self._name}:"]
        for index, word in enumerate(text.split(" ")):
            piece = f" {word}"
            if index > 0 and len(lines[-1]) + len(piece) > fold_at:
                lines.append(piece)
            else:
                lines[-1] += piece
        if any(len(line) > _MAX_LINE_CHARS for line in lines):
            return None
        return lines

    def _encoded_lines(self, text: str) -> list[str]:
        """The whole text as base64 encoded-words, one per line. Readers drop the white
        space between adjacent encoded-words, so the text comes back without a change."""
        lines: list[str] = []
        line = f"{self._name}:"
        chunk = ""
        for char in text:
            if self._fits(line, chunk + char):
                chunk += char
                continue
            if chunk:
                lines.append(f"{line} {_encoded_word(chunk)}")
                line, chunk = "", char
            else:  # a header name so long that not one character fits: write it anyway
                chunk = char
        if chunk or not lines:
            lines.append(f"{line} {_encoded_word(chunk)}")
        return lines

    @staticmethod
    def _fits(line: str, chunk: str) -> bool:
        return len(line) + 1 + len(_encoded_word(chunk)) <= _ENCODED_LINE_CHARS


def _encoded_word(text: str) -> str:
    return _PREFIX + base64.b64encode(text.encode("utf-8")).decode("ascii") + _SUFFIX


def verify_headers(message: EmailMessage) -> None:
    """Prove that every top-level header of ``message`` reads back as it was set.

    The headers are folded as the mailers write them (``email.policy.SMTP``), parsed back
    with the default policy (which decodes encoded-words, as mail clients do) and compared:
    the same names in the same order, each value the same text, and no value holding a line
    break or another control character. Raises :class:`UnsafeHeaderError` naming the first
    header that fails.
    """
    written = email_policy.SMTP
    block = b"".join(written.fold_binary(name, value) for name, value in message.raw_items())
    for line in block.split(b"\r\n")[:-1]:
        if b"\r" in line or b"\n" in line:
            raise UnsafeHeaderError("a header contains a bare line break")
    parsed = BytesHeaderParser(policy=email_policy.default).parsebytes(block + b"\r\n")
    expected = [(name.lower(), str(value)) for name, value in message.items()]
    got = [(name.lower(), str(value)) for name, value in parsed.items()]
    if [name for name, _ in got] != [name for name, _ in expected]:
        raise UnsafeHeaderError(
            "the written headers parse as "
            + ", ".join(name for name, _ in got)
            + " instead of "
            + ", ".join(name for name, _ in expected)
        )
    for (name, want), (_, value) in zip(expected, got, strict=True):
        if any(unicodedata.category(char) in _LINE_BREAKING for char in value):
            raise UnsafeHeaderError(f"the {name} header reads back with a control character")
        if value.strip() != want.strip():
            raise UnsafeHeaderError(f"the {name} header does not read back as it was set")
