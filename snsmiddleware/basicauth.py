"""HTTP Basic authentication for SNS endpoints: defence in depth, never instead of signatures.

SNS supports subscription URLs of the form ``https://user:password@host/path``. It sends each
request first *without* credentials and repeats it with them only after a ``401`` carrying a
``WWW-Authenticate: Basic realm="..."`` challenge (the "401 Unauthorized" support AWS's
documentation asks endpoints for). So the check must answer every request that lacks valid
credentials with that challenge, before anything else is looked at.

What it buys: a stranger who knows the URL but not the password cannot make the endpoint
read a body, parse JSON or download a certificate, and another AWS customer cannot subscribe
the endpoint to a topic of theirs without knowing the password. What it does not: it proves
nothing about the message (anyone holding the password can send any bytes), so every request
that passes still goes through the full signature verification.

The secret handling is deliberate:

* Configured credentials are kept only as keyed HMAC-SHA256 digests (a random key per
  instance), so the password is not lying around in the object, its ``repr`` or a traceback.
* A candidate is compared with :func:`hmac.compare_digest` over fixed-length digests of both
  the user and the password, against *every* configured pair, combining the results without
  short-circuiting: the time taken says neither which part was wrong, nor how long the
  password is, nor which of several pairs (rotation) matched.
* The ``Authorization`` header is hostile input: too long, not Basic, bad base64, no colon,
  bytes that are not UTF-8 all end in the same 401, never an exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from typing import Final, TypeAlias

from .errors import ConfigurationError, UnauthorizedError

#: A ``(user, password)`` pair, several of them (rotation), or the configuration string form
#: ``"user:password other:password"``.
BasicAuthCredentials: TypeAlias = tuple[str, str] | Iterable[tuple[str, str]] | str

#: The realm named in the challenge when none is configured.
DEFAULT_REALM: Final = "snsmiddleware"
#: Longer Authorization headers are refused before decoding (base64 of about 3 KiB).
MAX_AUTHORIZATION_CHARS: Final = 4096

_REALM: Final = re.compile(r"[\x20-\x7e]{1,200}")  # printable ASCII; quotes checked below
_MASKED: Final = re.compile(rb"\*+")


def _has_control_characters(text: str) -> bool:
    return any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in text)


def parse_credentials_string(text: str) -> list[tuple[str, str]]:
    """``"user:password other:password"`` -> pairs.

    Pairs are separated by whitespace (spaces or new lines); each is split at its *first*
    ``:`` (a user name cannot contain one, a password can). Errors name the pair by its
    position, never by its content, so a password never lands in a log or a terminal.
    """
    items = text.split()
    if not items:
        raise ConfigurationError("basic_auth holds no user:password pair")
    pairs: list[tuple[str, str]] = []
    for position, item in enumerate(items, start=1):
        user, separator, password = item.partition(":")
        if not separator:
            raise ConfigurationError(
                f"basic_auth pair {position} has no ':' between user and password"
            )
        pairs.append((user, password))
    return pairs


def _normalise(credentials: object) -> list[tuple[str, str]]:
    if isinstance(credentials, str):
        return parse_credentials_string(credentials)
    if isinstance(credentials, bytes | bytearray):
        raise ConfigurationError("basic_auth takes strings, not bytes")
    if (
        isinstance(credentials, tuple | list)
        and len(credentials) == 2
        and not any(isinstance(part, tuple | list) for part in credentials)
    ):
        credentials = [credentials]  # one pair
    if not isinstance(credentials, Iterable):
        raise ConfigurationError(
            'basic_auth must be ("user", "password") or a list of such pairs, '
            f"not {type(credentials).__name__}"
        )
    pairs: list[tuple[str, str]] = []
    for position, pair in enumerate(credentials, start=1):
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise ConfigurationError(
                f"basic_auth item {position} is not a (user, password) pair ({type(pair).__name__})"
            )
        user, password = pair
        if not isinstance(user, str) or not isinstance(password, str):
            raise ConfigurationError(
                f"basic_auth item {position}: user and password must be strings"
            )
        pairs.append((user, password))
    if not pairs:
        raise ConfigurationError("basic_auth holds no (user, password) pair")
    return pairs


def _check_pair(position: int, user: str, password: str) -> None:
    where = f"basic_auth pair {position}"
    if not user:
        raise ConfigurationError(f"{where}: the user name is empty")
    if ":" in user:
        raise ConfigurationError(f"{where}: a user name cannot contain ':' (RFC 7617)")
    if not password:
        raise ConfigurationError(f"{where}: the password is empty; use a long random one")
    if _has_control_characters(user) or _has_control_characters(password):
        raise ConfigurationError(f"{where}: control characters are not allowed")
    try:
        (user + password).encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(f"{where}: not encodable as UTF-8") from None


class BasicAuth:
    """The credentials an SNS endpoint accepts, and the check of one request's header.

    :param credentials: ``("user", "password")``, a list of pairs (several are accepted at
        once, for rotation), or the string form ``"user:password other:password"``.
    :param realm: the realm named in the ``WWW-Authenticate`` challenge (printable ASCII,
        no quotes or backslashes).
    :raises ConfigurationError: for an empty user or password, a ``:`` in a user name,
        control characters, non-strings, or a bad realm. Messages never contain a password.
    """

    def __init__(self, credentials: BasicAuthCredentials, *, realm: str = DEFAULT_REALM) -> None:
        pairs = _normalise(credentials)
        for position, (user, password) in enumerate(pairs, start=1):
            _check_pair(position, user, password)
        if not isinstance(realm, str) or not _REALM.fullmatch(realm) or set(realm) & {'"', "\\"}:
            raise ConfigurationError(
                "basic_auth_realm must be 1 to 200 printable ASCII characters without "
                "quotes or backslashes"
            )
        self.realm = realm
        self.challenge = f'Basic realm="{realm}", charset="UTF-8"'
        self._key = secrets.token_bytes(32)
        unique = dict.fromkeys(pairs)  # an exact repeat is harmless; keep the order
        self._digests = [
            (self._digest(user.encode()), self._digest(password.encode()))
            for user, password in unique
        ]
        self.users: tuple[str, ...] = tuple(dict.fromkeys(user for user, _ in unique))

    @classmethod
    def optional(
        cls, credentials: BasicAuthCredentials | None, *, realm: str | None = None
    ) -> BasicAuth | None:
        """The check for ``credentials``, or ``None`` when there are none (a ``realm``
        without credentials is a :class:`ConfigurationError`); ``realm=None`` keeps the
        default realm."""
        if credentials is None:
            if realm is not None:
                raise ConfigurationError("basic_auth_realm needs basic_auth")
            return None
        return cls(credentials) if realm is None else cls(credentials, realm=realm)

    def __repr__(self) -> str:
        return f"BasicAuth(users={self.users!r}, realm={self.realm!r})"

    def _digest(self, value: bytes) -> bytes:
        return hmac.new(self._key, value, hashlib.sha256).digest()

    def check(self, authorization: str | None) -> None:
        """Return if ``authorization`` (the raw header value) carries accepted credentials.

        :raises UnauthorizedError: (401, reason ``unauthorized``) otherwise, carrying this
            realm's ``challenge`` for its ``WWW-Authenticate`` header; its ``offered``
            attribute says whether any credentials were sent at all (SNS's first attempt
            never sends them, so a missing header is routine, not an attack).
        """
        user, password = _decode(authorization, self.challenge)
        user_digest, password_digest = self._digest(user), self._digest(password)
        matched = False
        for expected_user, expected_password in self._digests:
            # `&` and `|`, not `and`/`or`: every comparison runs, whatever the outcome.
            matched |= hmac.compare_digest(user_digest, expected_user) & hmac.compare_digest(
                password_digest, expected_password
            )
        if matched:
            return
        if _MASKED.fullmatch(password):
            raise UnauthorizedError(
                "wrong user name or password: the password is only asterisks, which is what "
                "the SNS console's 'Request confirmation' sends; create the subscription "
                "again with the full URL instead",
                offered=True,
                challenge=self.challenge,
            )
        raise UnauthorizedError(
            "wrong user name or password", offered=True, challenge=self.challenge
        )


def _decode(authorization: str | None, challenge: str) -> tuple[bytes, bytes]:
    """The user and password bytes of a Basic ``Authorization`` header, or a 401 that
    carries ``challenge`` (every 401 must: SNS sends credentials only after one)."""

    def refused(detail: str, *, offered: bool = True) -> UnauthorizedError:
        return UnauthorizedError(detail, offered=offered, challenge=challenge)

    if not isinstance(authorization, str) or not authorization.strip():
        raise refused("credentials required", offered=False)
    if len(authorization) > MAX_AUTHORIZATION_CHARS:
        raise refused("the Authorization header is too long")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise refused("only Basic authentication is accepted")
    token = token.strip()
    try:
        raw = token.encode("ascii")
        decoded = base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise refused("the Basic credentials are not valid base64") from None
    user, separator, password = decoded.partition(b":")
    if not separator:
        raise refused("the Basic credentials have no ':'")
    return user, password
