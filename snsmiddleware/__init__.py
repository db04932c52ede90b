"""snsmiddleware: make any WSGI application a safe, correct Amazon SNS HTTP(S) subscriber.

Public names only; nothing heavy is imported here (boto3 loads only when a feature needs it).
"""

from __future__ import annotations

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
from .middleware import MESSAGE_ENVIRON_KEY, SnsMiddleware, get_effects, get_message
from .policy import InsecureConfigurationWarning
from .verifier import SnsVerifier

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
