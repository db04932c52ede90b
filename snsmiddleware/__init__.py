"""snsmiddleware: make any WSGI application a safe, correct Amazon SNS HTTP(S) subscriber.

Public names only; nothing heavy is imported here: boto3 loads only when a feature needs it,
and WebOb only when a WSGI name (:class:`SnsMiddleware`, :func:`get_message`...) is first
used, so ``from snsmiddleware import SnsVerifier`` works in a Lambda function or a worker
that has no WSGI stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .certs import CertificateStore, HttpCertificateFetcher
from .confirm import ApiConfirmer, UrlConfirmer
from .dedupe import Claim, ClaimState, DedupeStore, MemoryDedupeStore
from .errors import ConfigurationError, SnsError
from .message import (
    Notification,
    SnsMessage,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
    parse_message,
)
from .policy import InsecureConfigurationWarning
from .reasons import Reason
from .verifier import SnsVerifier

if TYPE_CHECKING:
    from .middleware import MESSAGE_ENVIRON_KEY, SnsMiddleware, get_effects, get_message

# The WSGI layer's names, imported from snsmiddleware.middleware on first use.
_MIDDLEWARE_NAMES = frozenset(
    {"MESSAGE_ENVIRON_KEY", "SnsMiddleware", "get_effects", "get_message"}
)

__all__ = [
    "MESSAGE_ENVIRON_KEY",
    "ApiConfirmer",
    "CertificateStore",
    "Claim",
    "ClaimState",
    "ConfigurationError",
    "DedupeStore",
    "HttpCertificateFetcher",
    "InsecureConfigurationWarning",
    "MemoryDedupeStore",
    "Notification",
    "Reason",
    "SnsError",
    "SnsMessage",
    "SnsMiddleware",
    "SnsVerifier",
    "SubscriptionConfirmation",
    "UnsubscribeConfirmation",
    "UrlConfirmer",
    "__version__",
    "get_effects",
    "get_message",
    "parse_message",
]


def __getattr__(name: str) -> Any:
    """Load the WSGI names lazily (PEP 562): they need WebOb, the rest of the package not."""
    if name in _MIDDLEWARE_NAMES:
        from . import middleware

        value = getattr(middleware, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _MIDDLEWARE_NAMES)
