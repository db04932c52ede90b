"""Text someone else wrote, made safe to print on an operator's terminal.

Used by the commands that print what a server or a message said (``send-test-alert``,
``listen``): nothing from the far side may move the cursor, clear the screen or hide a line.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def terminal_safe(text: str) -> str:
    """Every character that is not printable (ESC, CR, LF, bidi overrides...) comes out as
    its backslash escape; printable text is unchanged."""
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def without_password(url: str) -> str:
    """``url`` as it may be shown: a password in its user information becomes ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
