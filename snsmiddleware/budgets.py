"""AWS Budgets messages as SNS carries them (pure functions, no I/O).

When a topic is attached to a budget, Budgets publishes a Notification with the Subject
``SNS Topic Verified!``. Its body is not documented, so it is recognised by type and subject
alone, and only after the signature and topic checks. The middleware answers it itself so
the wrapped app never mistakes it for an alert.
"""

from __future__ import annotations

from typing import Final

from .message import Notification, SnsMessage

TOPIC_VERIFIED_SUBJECT: Final = "SNS Topic Verified!"


def is_topic_verification(message: SnsMessage) -> bool:
    """True for Budgets' "SNS Topic Verified!" notification."""
    return isinstance(message, Notification) and message.subject == TOPIC_VERIFIED_SUBJECT
