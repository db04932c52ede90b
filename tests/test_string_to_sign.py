"""The string to sign splits one way only: a genuine signature cannot be moved to a second,
re-split message.

SNS signs ``Key\\nValue\\n`` lines. A Message may hold line breaks, so a publisher can write a
Message that ends in ``\\nMessageId\\n<id>\\nSubject\\n<text>``: the same signed bytes then
also read as a message with *that* MessageId (de-duplication bypassed) and a Subject of the
publisher's choosing, unless every other signed value is known to be a single line. These
tests build that attack with real signatures (``MessageSigner``) and send it through
``SnsMiddleware`` and WebTest; a property test enumerates *every* way to re-split the string
to sign of generated messages and checks that only the original verifies.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snsmiddleware import SnsError, SnsVerifier
from snsmiddleware.signing import string_to_sign
from snsmiddleware.testing import FrozenClock, MessageSigner, SignedMessage, TestCA, post_sns

from ._answers import reason
from .conftest import PATH, TOPIC, EchoApp, RecordingConfirmer

# Written out from AWS's documentation, not taken from snsmiddleware.signing.
WITH_SUBJECT_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
NOTIFICATION_KEYS = tuple(key for key in WITH_SUBJECT_KEYS if key != "Subject")
_CONFIRMATION_ONLY = ("SubscribeURL", "Token")
CONFIRMATION_KEYS = tuple(sorted((*NOTIFICATION_KEYS, *_CONFIRMATION_ONLY)))  # AWS: by name
UNSIGNED_KEYS = ("SignatureVersion", "Signature", "SigningCertURL", "UnsubscribeURL")


def resplit(original: SignedMessage, **new_values: str) -> SignedMessage:
    """The attacker's message: ``original``'s signature and unsigned fields, other values."""
    fields = {key: original.fields[key] for key in UNSIGNED_KEYS if key in original.fields}
    return SignedMessage({**fields, **new_values})


@pytest.mark.parametrize("subject", [None, "Budget alert"], ids=["no-subject", "subject"])
def test_message_embedding_a_fake_suffix_cannot_be_resplit(
    testapp: webtest.TestApp, signer: MessageSigner, echo_app: EchoApp, subject: str | None
) -> None:
    """The reported attack: a genuine notification whose Message ends in a fake MessageId and
    Subject. Re-split, the same signature covers a message with another MessageId (it would
    reach the app a second time) and a Subject the publisher chose."""
    evil_id = "2b0e9c1e-0000-4000-8000-000000000000"
    fields = {"Subject": subject} if subject is not None else {}
    genuine = signer.notification(
        f"Cost report\nMessageId\n{evil_id}\nSubject\nURGENT: wire money now", **fields
    )
    assert post_sns(testapp, PATH, genuine).status_int == 200  # genuine: delivered
    original_id = genuine.fields["MessageId"]
    tail = f"\nMessageId\n{original_id}" + (f"\nSubject\n{subject}" if subject else "")
    forged = resplit(
        genuine,
        Type="Notification",
        Message="Cost report",
        MessageId=evil_id,
        Subject="URGENT: wire money now" + tail,
        Timestamp=genuine.fields["Timestamp"],
        TopicArn=genuine.fields["TopicArn"],
    )
    assert string_to_sign(forged.fields) == string_to_sign(genuine.fields)  # same signed bytes
    response = post_sns(testapp, PATH, forged)
    assert (response.status_int, reason(response)) == (400, "bad_field")
    assert "Subject" in response.text
    assert len(echo_app.calls) == 1  # only the genuine message reached the app
    assert len(signer.fetched) == 1  # the forgery was refused before any download


@pytest.mark.parametrize("kind", ["subscription_confirmation", "unsubscribe_confirmation"])
def test_confirmation_cannot_be_resplit_into_its_token_or_url(
    testapp: webtest.TestApp,
    signer: MessageSigner,
    echo_app: EchoApp,
    confirmer: RecordingConfirmer,
    kind: str,
) -> None:
    """SNS writes a confirmation's Message itself, but the rule holds there too: with Token
    and SubscribeURL single-line, a fake suffix in the Message cannot move into them."""
    make = getattr(signer, kind)
    template = make()
    token, url = template.fields["Token"], template.fields["SubscribeURL"]
    evil_id = "2b0e9c1e-0000-4000-8000-000000000001"
    genuine = make(
        Token=token, Message=f"Please confirm.\nMessageId\n{evil_id}\nSubscribeURL\n{url}"
    )
    assert genuine.fields["SubscribeURL"] == url
    original_id = genuine.fields["MessageId"]
    forged = resplit(
        genuine,
        Type=genuine.fields["Type"],
        Message="Please confirm.",
        MessageId=evil_id,
        SubscribeURL=f"{url}\nMessageId\n{original_id}\nSubscribeURL\n{url}",
        Timestamp=genuine.fields["Timestamp"],
        Token=genuine.fields["Token"],
        TopicArn=genuine.fields["TopicArn"],
    )
    assert string_to_sign(forged.fields) == string_to_sign(genuine.fields)
    response = post_sns(testapp, PATH, forged)
    assert (response.status_int, reason(response)) == (400, "bad_field")
    assert confirmer.confirmed == [] and echo_app.calls == [] and signer.fetched == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("Subject", "two\nlines", id="subject-newline"),
        pytest.param("Subject", "carriage\rreturn", id="subject-cr"),
        pytest.param("Subject", "tab\there", id="subject-tab"),
        pytest.param("Subject", "nul\x00", id="subject-nul"),
        pytest.param("Subject", "del\x7f", id="subject-del"),
        pytest.param("Subject", "next line\x85", id="subject-c1-nel"),
    ],
)
def test_subject_with_line_break_or_control_character_is_refused(
    testapp: webtest.TestApp, signer: MessageSigner, echo_app: EchoApp, field: str, value: str
) -> None:
    """SNS refuses such subjects at Publish, so only a forger sends one: 400, no download."""
    response = post_sns(testapp, PATH, signer.notification("x", **{field: value}))
    assert (response.status_int, reason(response)) == (400, "bad_field")
    assert echo_app.calls == [] and signer.fetched == []


@pytest.mark.parametrize(
    "subject",
    [
        pytest.param("", id="empty"),
        pytest.param(" leading space", id="leading-space"),
        pytest.param("Budget \u00fcberschritten \u2615", id="non-ascii"),
        pytest.param("line\u2028separator", id="u2028"),
        pytest.param("x" * 300, id="long"),
    ],
)
def test_subjects_sns_may_send_are_delivered(
    testapp: webtest.TestApp, signer: MessageSigner, echo_app: EchoApp, subject: str
) -> None:
    """Only control characters are refused: not non-ASCII text (SNS takes UTF-8 subjects),
    not length, not the first character. Each of those would buy nothing."""
    assert post_sns(testapp, PATH, signer.notification("x", Subject=subject)).status_int == 200
    assert len(echo_app.calls) == 1


# --- every re-split of generated messages --------------------------------------------------


def splits(signed: str, keys: Sequence[str]) -> Iterator[dict[str, str]]:
    """Every way to read ``signed`` as ``Key\\nValue\\n`` lines for exactly ``keys``."""
    lines = signed.split("\n")
    if lines[-1] != "":
        return
    lines = lines[:-1]

    def walk(index: int, start: int) -> Iterator[dict[str, str]]:
        key = keys[index]
        if start >= len(lines) or lines[start] != key:
            return
        if index == len(keys) - 1:
            if start + 1 < len(lines):
                yield {key: "\n".join(lines[start + 1 :])}
            return
        for end in range(start + 2, len(lines)):
            for rest in walk(index + 1, end):
                yield {key: "\n".join(lines[start + 1 : end]), **rest}

    yield from walk(0, 0)


_CA = TestCA()
_KEY_LINES = st.sampled_from(
    ["MessageId", "Subject", "Timestamp", "TopicArn", "Type", "Token", "SubscribeURL"]
)
_VALUE_LINES = st.sampled_from(
    [
        "2b0e9c1e-0000-4000-8000-000000000002",
        "Notification",
        "SubscriptionConfirmation",
        "UnsubscribeConfirmation",
        TOPIC,
        "",
        "chosen subject",
    ]
)
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
# Whole fake suffixes, as an attacker would write them, so that every run tries them.
_FRAGMENTS = st.sampled_from(
    [
        "MessageId\n2b0e9c1e-0000-4000-8000-000000000003\nSubject\nchosen subject",
        "MessageId\n2b0e9c1e-0000-4000-8000-000000000004",
        f"Token\nabc\nTopicArn\n{TOPIC}",
        "SubscribeURL\nhttps://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
    ]
)
_MESSAGES = st.lists(st.one_of(_FRAGMENTS, _KEY_LINES, _VALUE_LINES, _TEXT), max_size=10)


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    parts=_MESSAGES,
    kind=st.sampled_from(["notification", "subject", "confirmation", "unsubscribe"]),
    data=st.data(),
)
def test_no_resplit_of_a_signed_message_verifies(
    parts: list[str], kind: str, data: st.DataObject
) -> None:
    clock = FrozenClock()
    signer = MessageSigner(_CA, topic_arn=TOPIC, clock=clock)
    verifier = SnsVerifier(topics=[TOPIC], fetch_certificate=signer.fetch_certificate, clock=clock)
    text = "\n".join(parts)
    # A Message written to imitate signed lines: the current Timestamp too, sometimes.
    if data.draw(st.booleans()):
        text += "\nTimestamp\n" + signer.notification().fields["Timestamp"]
    genuine: SignedMessage
    if kind == "notification":
        genuine, key_sets = signer.notification(text), [NOTIFICATION_KEYS]
    elif kind == "subject":
        genuine, key_sets = signer.notification(text, Subject="s"), [NOTIFICATION_KEYS]
    elif kind == "confirmation":
        genuine, key_sets = signer.subscription_confirmation(Message=text), [CONFIRMATION_KEYS]
    else:
        genuine, key_sets = signer.unsubscribe_confirmation(Message=text), [CONFIRMATION_KEYS]
    if genuine.fields["Type"] == "Notification":
        key_sets = [NOTIFICATION_KEYS, WITH_SUBJECT_KEYS]
    verifier.verify(genuine.body)  # the genuine message verifies
    signed = string_to_sign(genuine.fields).decode()
    original = {key: genuine.fields[key] for key in key_sets[-1] if key in genuine.fields}
    seen = 0
    for keys in key_sets:
        for values in splits(signed, keys):
            seen += 1
            if values == original:
                continue
            forged: dict[str, Any] = {**resplit(genuine).fields, **values}
            with pytest.raises(SnsError) as caught:
                verifier.verify(SignedMessage(forged).body)
            assert caught.value.status in (400, 403), (values, caught.value)
    assert seen >= 1  # the enumeration found the original reading
