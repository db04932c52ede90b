"""Properties over generated input (hypothesis), through SnsMiddleware and WebTest.

* Arbitrary bodies and headers never make the middleware answer 5xx (but the 503 for a
  time ahead of our clock, which may be slow) or show a traceback, and never reach the app.
* Any mutation of a genuinely signed message reaches the app only if every signed field
  kept its value (what the signature covers); re-serialising the JSON differently keeps
  it deliverable.
* Arbitrary text in a verified alert never makes BudgetApp fail: it is emailed or refused
  with a 4xx, never a 5xx that SNS would retry for an hour.
* The fuzzing harnesses' invariants (fuzz/harnesses.py) hold on their seed corpus, the
  hostile URL tables and generated input, so they cannot rot between fuzzing runs.

Deterministic for CI: derandomized, no example database, modest example counts.
"""

from __future__ import annotations

import functools
import json
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.harnesses import DEFAULT_TOKEN, check_message, check_urls, seed_inputs
from snsmiddleware import SnsMiddleware
from snsmiddleware.budget_app import BudgetApp
from snsmiddleware.devmode import sample_budget_alert
from snsmiddleware.mail import FileOutbox
from snsmiddleware.testing import FrozenClock, MessageSigner, SignedMessage, TestCA

from ._hardening_helpers import emails_in
from ._hostile_urls import HOSTILE_CERT_URLS, HOSTILE_SUBSCRIBE_URLS
from ._vector_helpers import SIGNED_KEYS
from .conftest import PATH, TOPIC, EchoApp, RecordingConfirmer

ROOT = Path(__file__).resolve().parent.parent
FAST = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@functools.cache
def _ca() -> TestCA:
    return TestCA()


class Rig:
    """A fresh middleware around an echo app, with its own signer, clock and confirmer."""

    def __init__(self, app: Any = None) -> None:
        self.clock = FrozenClock()
        self.signer = MessageSigner(_ca(), topic_arn=TOPIC, clock=self.clock)
        self.echo = EchoApp()
        self.confirmer = RecordingConfirmer()
        self.middleware = SnsMiddleware(
            app if app is not None else self.echo,
            paths=[PATH],
            topics=[TOPIC],
            fetch_certificate=self.signer.fetch_certificate,
            clock=self.clock,
            confirm=self.confirmer,
        )
        self.app = webtest.TestApp(self.middleware, lint=True)

    def post(self, body: bytes, headers: dict[str, str]) -> webtest.TestResponse:
        return self.app.post(PATH, body, headers=headers, expect_errors=True)


def _sns_answer(response: webtest.TestResponse) -> str:
    """The middleware's own answer: a reason code, a short text body, nothing leaked."""
    reason = response.headers.get("X-SNS-Reason")
    assert reason, response.text[:200]
    assert response.text.startswith(f"{reason}: ")
    assert len(response.body) < 1024 and "Traceback" not in response.text
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    return reason


def _asked_to_retry_for_our_clock(response: webtest.TestResponse, reason: str) -> bool:
    """The one 5xx a sender can cause: a time ahead of our clock (which may be slow)."""
    return response.status_int == 503 and reason in {"future_message", "certificate_not_yet_valid"}


# --- arbitrary bodies and headers ----------------------------------------------------------

_HEADER_NAMES = (
    "x-amz-sns-message-type",
    "x-amz-sns-message-id",
    "x-amz-sns-topic-arn",
    "x-amz-sns-rawdelivery",
    "Content-Type",
)
_latin1_text = st.text(st.characters(max_codepoint=255, exclude_categories=["Cc"]), max_size=60)
_header_values = st.one_of(
    st.sampled_from(["Notification", "SubscriptionConfirmation", TOPIC, "true", "false"]),
    _latin1_text,
)
_headers = st.dictionaries(st.sampled_from(_HEADER_NAMES), _header_values, max_size=5)
_json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40)
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=10), children, max_size=4),
    ),
    max_leaves=12,
)
_FIELD_NAMES = (
    "Type",
    "MessageId",
    "TopicArn",
    "Subject",
    "Message",
    "Timestamp",
    "SignatureVersion",
    "Signature",
    "SigningCertURL",
    "Token",
    "SubscribeURL",
    "UnsubscribeURL",
    "MessageAttributes",
)
_field_values = st.one_of(
    st.sampled_from(
        [
            "Notification",
            "SubscriptionConfirmation",
            "UnsubscribeConfirmation",
            TOPIC,
            "1",
            "2",
            "2024-01-31T12:00:00.000Z",
            "d39649d4-bf5b-5b80-af75-07acb3dd9b4a",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        ]
    ),
    _json_values,
)
_envelopes = st.dictionaries(st.sampled_from(_FIELD_NAMES), _field_values, max_size=13).map(
    lambda document: json.dumps(document).encode()
)
_bodies = st.one_of(
    st.binary(max_size=300),
    _json_values.map(lambda value: json.dumps(value).encode()),
    _envelopes,
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
)


@settings(FAST, max_examples=300)
@given(body=_bodies, headers=_headers, timely=st.booleans())
def test_arbitrary_requests_are_answered_4xx_and_never_reach_the_app(
    body: bytes, headers: dict[str, str], timely: bool
) -> None:
    rig = Rig()
    if timely and body.startswith(b"{"):
        # Give generated envelopes the real signer's URL and a fresh timestamp, so that some
        # get as far as the certificate and the signature.
        try:
            document = json.loads(body)
            document.update(
                Timestamp=rig.signer.notification().fields["Timestamp"],
                SigningCertURL=rig.signer.certificate_url(),
            )
            body = json.dumps(document).encode()
        except (ValueError, AttributeError, TypeError):
            pass
    response = rig.post(body, headers)
    reason = _sns_answer(response)
    assert 400 <= response.status_int < 500 or _asked_to_retry_for_our_clock(response, reason)
    assert rig.echo.calls == [] and rig.confirmer.confirmed == []


# --- mutations of a genuinely signed message -----------------------------------------------

_MISSING: Any = object()


def _signed_view(document: Any, message_type: str) -> Any:
    """The signed keys present (an absent Subject differs from an empty one) and their
    values; ``SignatureVersion`` too, since it chooses the digest the signature is over."""
    if not isinstance(document, dict):
        return _MISSING
    keys = (*SIGNED_KEYS[message_type], "SignatureVersion")
    return {key: document.get(key, _MISSING) for key in keys}


def _strict_json(body: bytes) -> Any:
    """The standard library's reading, refusing duplicate keys; ``_MISSING`` if unreadable."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({key for key, _ in pairs}) != len(pairs):
            raise ValueError("duplicate key")
        return dict(pairs)

    try:
        return json.loads(body.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (ValueError, RecursionError):
        return _MISSING


def _headers_for(document: Any, original: SignedMessage) -> dict[str, str]:
    """SNS's headers as a forger would set them: matching the mutated body where possible."""
    headers = dict(original.headers)
    if isinstance(document, dict):
        for header, key in (
            ("x-amz-sns-message-type", "Type"),
            ("x-amz-sns-message-id", "MessageId"),
            ("x-amz-sns-topic-arn", "TopicArn"),
        ):
            value = document.get(key)
            if isinstance(value, str) and value.isprintable() and value.isascii():
                headers[header] = value
    return headers


@st.composite
def _mutations(draw: st.DrawFn) -> tuple[str, Callable[[SignedMessage], bytes]]:
    kind = draw(st.sampled_from(["set", "delete", "add", "flip", "reserialise", "swap"]))
    key = draw(st.sampled_from(_FIELD_NAMES + ("Extra",)))
    if kind == "set":
        value = draw(st.one_of(st.text(max_size=30), _json_values))

        def mutate(message: SignedMessage) -> bytes:
            document = dict(message.fields)
            document[key] = value
            return json.dumps(document).encode()

    elif kind == "delete":

        def mutate(message: SignedMessage) -> bytes:
            document = dict(message.fields)
            document.pop(key, None)
            return json.dumps(document).encode()

    elif kind == "add":
        value = draw(st.text(max_size=30))

        def mutate(message: SignedMessage) -> bytes:
            return json.dumps({**message.fields, f"{key}2": value}).encode()

    elif kind == "flip":
        position = draw(st.integers(min_value=0))
        mask = draw(st.integers(min_value=1, max_value=255))

        def mutate(message: SignedMessage) -> bytes:
            body = bytearray(message.body)
            body[position % len(body)] ^= mask
            return bytes(body)

    elif kind == "reserialise":
        indent = draw(st.sampled_from([None, 0, 1, 4, "\t"]))
        sort_keys = draw(st.booleans())
        ensure_ascii = draw(st.booleans())

        def mutate(message: SignedMessage) -> bytes:
            text = json.dumps(
                dict(message.fields), indent=indent, sort_keys=sort_keys, ensure_ascii=ensure_ascii
            )
            return f" \r\n{text}\t\n".encode()

    else:  # swap the values of two fields
        other = draw(st.sampled_from(_FIELD_NAMES))

        def mutate(message: SignedMessage) -> bytes:
            document = dict(message.fields)
            if key in document and other in document:
                document[key], document[other] = document[other], document[key]
            return json.dumps(document).encode()

    return kind, mutate


_originals = st.sampled_from(["notification", "subject", "attributes", "confirmation", "v1"])


def _original(rig: Rig, which: str) -> SignedMessage:
    text = 'Budget exceeded: café ☕ \u2028 "quoted" \\ end'
    if which == "notification":
        return rig.signer.notification(text)
    if which == "subject":
        return rig.signer.notification(text, Subject="AWS Budgets: ünïcode")
    if which == "attributes":
        attributes = {"k": {"Type": "String", "Value": "v"}}
        return rig.signer.notification(text, MessageAttributes=attributes)
    if which == "v1":
        return replace(rig.signer, signature_version="1").notification(text, Subject="s")
    return rig.signer.subscription_confirmation()


@settings(FAST, max_examples=600)
@given(which=_originals, mutation=_mutations())
def test_a_mutated_message_reaches_the_app_only_if_its_signed_values_are_intact(
    which: str, mutation: tuple[str, Callable[[SignedMessage], bytes]]
) -> None:
    rig = Rig()
    original = _original(rig, which)
    kind, mutate = mutation
    body = mutate(original)
    document = _strict_json(body)
    response = rig.post(body, _headers_for(document, original))

    assert "Traceback" not in response.text
    if response.status_int >= 500:  # a flipped Timestamp digit can move it into the future
        assert _asked_to_retry_for_our_clock(response, _sns_answer(response)), body[:300]
    message_type = original.fields["Type"]
    intact = _signed_view(document, message_type) == _signed_view(original.fields, message_type)
    reached = bool(rig.echo.calls) or bool(rig.confirmer.confirmed)
    if reached:
        assert intact, (kind, body[:300])
    else:
        _sns_answer(response)
    if kind == "reserialise":
        assert reached, response.text  # formatting is not content


@FAST
@given(which=_originals)
def test_the_genuine_message_itself_reaches_the_app_once(which: str) -> None:
    """The baseline of the mutation property: unmutated, each original is delivered."""
    rig = Rig()
    original = _original(rig, which)
    first = rig.post(original.body, original.headers)
    assert first.status_int == 200
    assert len(rig.echo.calls) + len(rig.confirmer.confirmed) == 1


# --- arbitrary text in a verified alert ----------------------------------------------------


@pytest.fixture(scope="module")
def outbox_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory)


_alert_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=120)


@st.composite
def _alerts(draw: st.DrawFn) -> tuple[str | None, str]:
    """A real alert's template with any of its values replaced by arbitrary text."""
    subject, text = sample_budget_alert()
    for value in ("Test Budget", "123456789012", "100.00", "90.00", "93.17", "ACTUAL", "Cost"):
        if draw(st.booleans()):
            text = text.replace(value, draw(_alert_text))
    if draw(st.booleans()):
        text = draw(_alert_text) + text + draw(_alert_text)
    chosen_subject = draw(st.one_of(st.none(), st.just(subject), _alert_text))
    return chosen_subject, text


@settings(FAST, max_examples=200)
@given(alert=_alerts())
def test_any_verified_alert_text_is_emailed_or_refused_never_a_5xx(
    outbox_dir: Path, alert: tuple[str | None, str]
) -> None:
    subject, text = alert
    with tempfile.TemporaryDirectory(dir=outbox_dir) as directory:
        outbox = FileOutbox(directory, fsync=False)
        app = BudgetApp(recipients={"*": "ana@example.com"}, mailer=outbox, dead_letter=outbox)
        rig = Rig(app)
        fields = {"Subject": subject} if subject is not None else {}
        message = rig.signer.notification(text, **fields)
        response = rig.post(message.body, message.headers)
        reason = _sns_answer(response)
        if subject is not None and any(unicodedata.category(char) == "Cc" for char in subject):
            # SNS refuses such subjects at Publish; the middleware refuses them too (they
            # would make the string to sign ambiguous), before the app.
            assert (response.status_int, reason) == (400, "bad_field")
            assert emails_in(Path(directory)) == []
        elif response.status_int == 200:
            assert reason in {"sent", "dead_lettered", "budgets_verification_acknowledged"}
            emails = emails_in(Path(directory))
            assert len(emails) == (reason != "budgets_verification_acknowledged")
            for email in emails:
                assert "\n" not in str(email["Subject"]) and "\r" not in str(email["Subject"])
        else:
            assert response.status_int == 422, response.text


# --- the fuzzing harnesses, as smoke tests ---------------------------------------------------

_MESSAGE_SEEDS = [ROOT / "fuzz" / "seeds" / "message", ROOT / "tests" / "vectors"]
_URL_SEEDS = [ROOT / "fuzz" / "seeds" / "urls"]


def test_fuzz_harnesses_hold_on_their_seed_corpus() -> None:
    message_seeds = seed_inputs(_MESSAGE_SEEDS)
    url_seeds = seed_inputs(_URL_SEEDS)
    assert len(message_seeds) >= 10 and len(url_seeds) >= 10
    for data in message_seeds:
        check_message(data)
    for data in url_seeds:
        check_urls(data)


def test_fuzz_harnesses_hold_on_the_hostile_url_tables() -> None:
    for param in HOSTILE_CERT_URLS:
        check_urls(f"cert\n{param.values[0]}".encode("utf-8", "surrogatepass"))
    for param in HOSTILE_SUBSCRIBE_URLS:
        check_urls(f"subscribe\n{DEFAULT_TOKEN}\n{param.values[0]}".encode())


@settings(FAST, max_examples=300)
@given(data=st.one_of(st.binary(max_size=400), _envelopes))
def test_fuzz_message_harness_holds_on_generated_input(data: bytes) -> None:
    check_message(data)


_url_parts = st.one_of(
    st.sampled_from(
        [
            "https://",
            "http://",
            "sns.us-east-1.amazonaws.com",
            "sns.cn-north-1.amazonaws.com.cn",
            "/SimpleNotificationService-",
            "0123abcdef",
            ".pem",
            "/?",
            "Action=ConfirmSubscription",
            "&TopicArn=arn:aws:sns:us-east-1:123456789012:budget-alerts",
            f"&Token={DEFAULT_TOKEN}",
            "127.0.0.1:4566",
            "[::1]",
            "@",
            ":",
            "%2e",
            "..",
            "#",
            "\n",
        ]
    ),
    st.text(max_size=5),
)


@settings(FAST, max_examples=300)
@given(
    kind=st.sampled_from(["cert\n", f"subscribe\n{DEFAULT_TOKEN}\n", "emulator\n", "arn\n", ""]),
    parts=st.lists(_url_parts, max_size=12),
)
def test_fuzz_url_harness_holds_on_generated_input(kind: str, parts: list[str]) -> None:
    text = "".join(parts)
    if kind == "emulator\n":
        text = text + "\n" + text
    check_urls((kind + text).encode("utf-8", "surrogatepass"))
