"""The emails for the people who run the endpoint (pure: no I/O): "this endpoint was
unsubscribed from TOPIC at TIME; alerts will stop", and how to subscribe it again.

An UnsubscribeConfirmation is the last message SNS sends to a deleted subscription: from
then on no alert reaches this endpoint, and nothing else would say so. Its fields are
verified (signature, certificate, an allowed topic) before anyone calls this module, but
still written with care: the TopicArn and MessageId go into headers as
:class:`~snsmiddleware.email_headers.LiteralHeader` and the finished email is checked by
:func:`~snsmiddleware.email_headers.verify_headers`. The message's SubscribeURL is never
included: it carries the subscription token (which nothing here logs or repeats), and the
way back is a new subscription, which the middleware confirms by itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Final

from .alert_email import DEFAULT_SUBJECT_PREFIX, single_line
from .email_headers import LiteralHeader, verify_headers
from .errors import PolicyError
from .message import UnsubscribeConfirmation
from .policy import parse_topic_arn

#: The Message-ID's left part for an unsubscribe notice (``<unsubscribed.<MessageId>@...>``).
UNSUBSCRIBE_MESSAGE_ID_PREFIX: Final = "unsubscribed"


def unsubscribe_summary(message: UnsubscribeConfirmation) -> str:
    """The one sentence that matters, for the email and the log alike."""
    return (
        f"this endpoint was unsubscribed from {message.topic_arn} at {message.timestamp}; "
        "alerts will stop"
    )


def resubscribe_command(topic_arn: str) -> str:
    """The AWS CLI command that subscribes an HTTPS endpoint to ``topic_arn`` again."""
    try:
        region = f" --region {parse_topic_arn(topic_arn).region}"
    except PolicyError:
        region = ""
    return (
        f"aws sns subscribe{region} --topic-arn {topic_arn} --protocol https "
        "--notification-endpoint https://<this endpoint's host>/<its path>"
    )


def unsubscribe_text(message: UnsubscribeConfirmation) -> str:
    """The plain-text body: what happened, what it means, how to undo it."""
    summary = unsubscribe_summary(message)
    raw = "\n".join(message.message.splitlines())  # normalised line ends only
    return "\n".join(
        [
            summary[0].upper() + summary[1:] + ".",
            "",
            f"Topic:       {message.topic_arn}",
            f"Time:        {message.timestamp}",
            f"MessageId:   {message.message_id}",
            "",
            "Amazon SNS deleted this endpoint's subscription to the topic (someone ran",
            "Unsubscribe, deleted the subscription or the topic, or SNS gave up on the",
            "endpoint). No alert published to the topic reaches this server any more.",
            "",
            "To receive alerts again, subscribe the endpoint once more (the server confirms",
            "the new subscription by itself):",
            "",
            f"    {resubscribe_command(message.topic_arn)}",
            "",
            "or, in the Amazon SNS console: Topics > the topic > Create subscription,",
            "protocol HTTPS, with this endpoint's URL.",
            "",
            "--- The message from Amazon SNS ---",
            raw,
            "",
        ]
    )


def build_unsubscribe_email(
    message: UnsubscribeConfirmation,
    *,
    sender: Address,
    recipients: Sequence[Address],
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
) -> EmailMessage:
    """The notice for the admin recipients, marked auto-generated.

    It carries the ``X-SNS-Topic-Arn`` and ``X-SNS-Message-Id`` headers of the alert emails,
    so a :class:`~snsmiddleware.mail.FileOutbox` names its file after the message (written
    once however often SNS redelivers), and a Message-ID derived from the MessageId.
    """
    email = EmailMessage()
    subject = f"{single_line(subject_prefix)} - {unsubscribe_summary(message)}"
    email["Subject"] = LiteralHeader("Subject", single_line(subject))
    email["From"] = sender
    email["To"] = tuple(recipients)
    email["Date"] = format_datetime(message.sent_at)
    domain = sender.domain if sender.domain.isascii() else "localhost"
    email["Message-ID"] = f"<{UNSUBSCRIBE_MESSAGE_ID_PREFIX}.{message.message_id}@{domain}>"
    email["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies
    email["X-SNS-Message-Id"] = LiteralHeader("X-SNS-Message-Id", message.message_id)
    email["X-SNS-Topic-Arn"] = LiteralHeader("X-SNS-Topic-Arn", single_line(message.topic_arn, 256))
    email.set_content(unsubscribe_text(message))
    verify_headers(email)
    return email
