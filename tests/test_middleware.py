"""SnsMiddleware through WebTest: every message type and signature version, every rejection
path with its status and reason, de-duplication, and what the wrapped app receives."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import webtest

from snsmiddleware import (
    Claim,
    ClaimState,
    ConfigurationError,
    MemoryDedupeStore,
    Notification,
    SnsMiddleware,
    SnsVerifier,
    SubscriptionConfirmation,
    get_message,
)
from snsmiddleware.errors import ConfirmationRejectedError, TransientError
from snsmiddleware.testing import FrozenClock, MessageSigner, post_sns

from ._answers import reason
from .conftest import PATH, TOPIC, EchoApp, RecordingConfirmer

MakeMiddleware = Callable[..., SnsMiddleware]


# --- what reaches the app ----------------------------------------------------------------


def test_notification_reaches_app_with_verified_message_and_body(
    testapp: webtest.TestApp,
    versioned_signer: MessageSigner,
    echo_app: EchoApp,
    signature_version: str,
) -> None:
    message = versioned_signer.notification("budget exceeded", Subject="AWS Budgets: x")
    response = post_sns(testapp, PATH, message)
    assert response.status_int == 200
    assert response.text == "app saw /sns/budgets"
    [call] = echo_app.calls
    assert call["body"] == message.body
    seen = get_message(call["environ"])
    assert isinstance(seen, Notification)
    assert seen.message == "budget exceeded"
    assert seen.subject == "AWS Budgets: x"
    assert seen.message_id == message.fields["MessageId"]
    assert seen.signature_version == signature_version


def test_other_paths_and_methods_pass_through_untouched(
    testapp: webtest.TestApp, echo_app: EchoApp
) -> None:
    response = testapp.post("/elsewhere", b"not sns at all", content_type="text/plain")
    assert response.status_int == 200
    assert response.text == "app saw /elsewhere"
    assert echo_app.calls[0]["body"] == b"not sns at all"
    assert "snsmiddleware.message" not in echo_app.calls[0]["environ"]
    testapp.get("/sns/budgets/child")
    assert len(echo_app.calls) == 2


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD"])
def test_non_post_on_sns_path_is_405(
    testapp: webtest.TestApp, echo_app: EchoApp, method: str
) -> None:
    response = testapp.request(PATH, method=method, expect_errors=True)
    assert response.status_int == 405
    assert response.headers["Allow"] == "POST"
    assert echo_app.calls == []


def test_get_message_refuses_environ_without_middleware() -> None:
    with pytest.raises(LookupError):
        get_message({})


# --- confirmations and Budgets verification -----------------------------------------------


def test_subscription_confirmation_is_confirmed_not_forwarded(
    testapp: webtest.TestApp,
    versioned_signer: MessageSigner,
    echo_app: EchoApp,
    confirmer: RecordingConfirmer,
) -> None:
    message = versioned_signer.subscription_confirmation()
    response = post_sns(testapp, PATH, message)
    assert response.status_int == 200
    assert reason(response) == "subscription_confirmed"
    [confirmed] = confirmer.confirmed
    assert confirmed.token == message.fields["Token"]
    assert echo_app.calls == []


def test_replayed_subscription_confirmation_is_confirmed_once(
    testapp: webtest.TestApp,
    signer: MessageSigner,
    confirmer: RecordingConfirmer,
    clock: FrozenClock,
) -> None:
    """Replays of one captured confirmation are verified in full each time, but cause no
    second ConfirmSubscription call within the freshness window."""
    message = signer.subscription_confirmation()
    first = post_sns(testapp, PATH, message)
    assert (first.status_int, reason(first)) == (200, "subscription_confirmed")
    for _ in range(3):
        clock.advance(timedelta(minutes=20))
        replay = post_sns(testapp, PATH, message)
        assert (replay.status_int, reason(replay)) == (200, "duplicate")
    assert len(confirmer.confirmed) == 1
    clock.advance(timedelta(minutes=20))  # 80 minutes on: outside the window
    assert reason(post_sns(testapp, PATH, message)) == "stale_message"
    # A new confirmation (another token) of the same topic is confirmed.
    assert reason(post_sns(testapp, PATH, signer.subscription_confirmation())) == (
        "subscription_confirmed"
    )
    assert len(confirmer.confirmed) == 2


def test_confirmation_memory_only_after_verification_and_success(
    make_middleware: MakeMiddleware, signer: MessageSigner
) -> None:
    """A forged copy of a confirmed token is still refused; a failed confirmation is not
    remembered, so SNS's redelivery tries again."""
    calls: list[str] = []

    def flaky(message: SubscriptionConfirmation) -> None:
        calls.append(message.token)
        if len(calls) == 1:
            raise TransientError("SNS is down", reason="confirmation_failed")

    testapp = webtest.TestApp(make_middleware(confirm=flaky))
    message = signer.subscription_confirmation()
    assert post_sns(testapp, PATH, message).status_int == 503
    assert reason(post_sns(testapp, PATH, message)) == "subscription_confirmed"
    forged = message.tampered(Signature=signer.notification().fields["Signature"])
    response = post_sns(testapp, PATH, forged)
    assert (response.status_int, reason(response)) == (403, "bad_signature")
    assert calls == [message.fields["Token"]] * 2


def test_unsubscribe_confirmation_is_acknowledged_never_confirmed(
    testapp: webtest.TestApp,
    versioned_signer: MessageSigner,
    echo_app: EchoApp,
    confirmer: RecordingConfirmer,
) -> None:
    response = post_sns(testapp, PATH, versioned_signer.unsubscribe_confirmation())
    assert response.status_int == 200
    assert reason(response) == "unsubscribe_acknowledged"
    assert confirmer.confirmed == []
    assert echo_app.calls == []


def test_budgets_topic_verification_is_answered_by_middleware(
    testapp: webtest.TestApp, signer: MessageSigner, echo_app: EchoApp
) -> None:
    response = post_sns(testapp, PATH, signer.budgets_verification())
    assert response.status_int == 200
    assert reason(response) == "budgets_verification_acknowledged"
    assert echo_app.calls == []


def test_budgets_verification_can_be_left_to_the_app(
    make_middleware: MakeMiddleware, signer: MessageSigner, echo_app: EchoApp
) -> None:
    app = webtest.TestApp(make_middleware(answer_budgets_verification=False))
    assert post_sns(app, PATH, signer.budgets_verification()).status_int == 200
    assert len(echo_app.calls) == 1


def test_forged_budgets_verification_is_rejected(
    testapp: webtest.TestApp, signer: MessageSigner
) -> None:
    forged = signer.notification("x").tampered(Subject="SNS Topic Verified!")
    response = post_sns(testapp, PATH, forged)
    assert response.status_int == 403
    assert reason(response) == "bad_signature"


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (
            TransientError("SNS is throttling", reason="confirmation_failed"),
            503,
            "confirmation_failed",
        ),
        (ConfirmationRejectedError("token expired"), 400, "confirmation_rejected"),
        (RuntimeError("surprise"), 500, "internal_error"),
    ],
)
def test_confirmation_failures_map_to_status(
    make_middleware: MakeMiddleware,
    signer: MessageSigner,
    error: Exception,
    status: int,
    code: str,
) -> None:
    def failing(message: Any) -> None:
        raise error

    app = webtest.TestApp(make_middleware(confirm=failing))
    response = post_sns(app, PATH, signer.subscription_confirmation())
    assert response.status_int == status
    assert reason(response) == code
    assert "Traceback" not in response.text and "surprise" not in response.text


def test_subscribe_url_pointing_elsewhere_is_never_confirmed(
    testapp: webtest.TestApp, signer: MessageSigner, confirmer: RecordingConfirmer
) -> None:
    message = signer.subscription_confirmation(
        SubscribeURL="https://evil.example/?Action=ConfirmSubscription"
    )
    response = post_sns(testapp, PATH, message)
    assert response.status_int == 403
    assert reason(response) == "bad_subscribe_url"
    assert confirmer.confirmed == []
    assert signer.fetched == []  # refused before any download


# --- rejections ---------------------------------------------------------------------------


def test_topic_not_on_allowlist_is_refused_before_any_download(
    testapp: webtest.TestApp, signer: MessageSigner, echo_app: EchoApp
) -> None:
    message = signer.notification("x", TopicArn="arn:aws:sns:us-east-1:999999999999:theirs")
    response = post_sns(testapp, PATH, message)
    assert response.status_int == 403
    assert reason(response) == "topic_not_allowed"
    assert signer.fetched == []
    assert echo_app.calls == []


@pytest.mark.parametrize(
    ("tamper", "status", "code"),
    [
        pytest.param({"Message": "altered"}, 403, "bad_signature", id="altered-message"),
        pytest.param({"Subject": "added"}, 403, "bad_signature", id="added-subject"),
        pytest.param({"Signature": "AAAA"}, 403, "bad_signature", id="truncated-signature"),
        pytest.param({"Signature": "not base64!"}, 403, "bad_signature", id="garbage-signature"),
        pytest.param(
            {"SignatureVersion": "3"}, 403, "signature_version_not_allowed", id="unknown-version"
        ),
        pytest.param(
            {
                "SigningCertURL": "https://sns.us-east-1.amazonaws.com.evil.example/"
                "SimpleNotificationService-abc.pem"
            },
            403,
            "bad_cert_url",
            id="lookalike-cert-host",
        ),
        pytest.param(
            {
                "SigningCertURL": "https://sns-us-east-1.s3.amazonaws.com/"
                "SimpleNotificationService-abc.pem"
            },
            403,
            "bad_cert_url",
            id="s3-cert-host",
        ),
        pytest.param({"Timestamp": "yesterday"}, 400, "bad_timestamp", id="bad-timestamp"),
        pytest.param({"MessageId": 7}, 400, "bad_field", id="non-string-field"),
        pytest.param({"Type": "Notice"}, 400, "unknown_type", id="unknown-type"),
        pytest.param({"Message": None}, 400, "missing_field", id="missing-message"),
    ],
)
def test_tampered_messages_are_rejected(
    testapp: webtest.TestApp,
    signer: MessageSigner,
    echo_app: EchoApp,
    tamper: dict[str, Any],
    status: int,
    code: str,
) -> None:
    message = signer.notification("genuine").tampered(**tamper)
    response = post_sns(
        testapp,
        PATH,
        message,
        headers={"x-amz-sns-message-type": "Notification"} if "Type" in tamper else None,
    )
    assert (response.status_int, reason(response)) == (status, code)
    assert echo_app.calls == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"<script>alert(1)</script>": 1}', id="echoed-field-name"),
        pytest.param(b"<html><script>alert(1)</script></html>", id="html-body"),
    ],
)
def test_rejections_quoting_sender_text_are_never_sniffed_as_html(
    testapp: webtest.TestApp, body: bytes
) -> None:
    response = testapp.post(PATH, body, content_type="text/html", expect_errors=True)
    assert response.status_int == 400
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_every_answer_of_the_middleware_says_nosniff(
    testapp: webtest.TestApp, signer: MessageSigner
) -> None:
    for message in (signer.subscription_confirmation(), signer.unsubscribe_confirmation()):
        response = post_sns(testapp, PATH, message)
        assert response.status_int == 200
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    refused = testapp.get(PATH, expect_errors=True)
    assert (refused.status_int, refused.headers["X-Content-Type-Options"]) == (405, "nosniff")


def test_require_signature_v2_refuses_sha1(
    make_middleware: MakeMiddleware, signer: MessageSigner, echo_app: EchoApp
) -> None:
    app = webtest.TestApp(make_middleware(require_signature_v2=True))
    sha1 = replace(signer, signature_version="1")
    response = post_sns(app, PATH, sha1.notification("x"))
    assert (response.status_int, reason(response)) == (403, "signature_version_not_allowed")
    assert signer.signature_version == "2"
    assert post_sns(app, PATH, signer.notification("x")).status_int == 200
    assert len(echo_app.calls) == 1


@pytest.mark.parametrize(
    ("age", "status", "code"),
    [
        (timedelta(hours=1, minutes=6), 403, "stale_message"),
        # Our clock may be the slow one: 503 lets SNS redeliver instead of losing the alert.
        (-timedelta(minutes=6), 503, "future_message"),
    ],
)
def test_timestamps_outside_freshness_window_are_refused(
    testapp: webtest.TestApp,
    signer: MessageSigner,
    echo_app: EchoApp,
    clock: FrozenClock,
    age: timedelta,
    status: int,
    code: str,
) -> None:
    message = signer.notification("x")
    clock.advance(age)
    response = post_sns(testapp, PATH, message)
    assert (response.status_int, reason(response)) == (status, code)
    assert signer.fetched == [] and echo_app.calls == []


def test_message_from_the_future_is_delivered_once_the_clock_catches_up(
    testapp: webtest.TestApp, signer: MessageSigner, echo_app: EchoApp, clock: FrozenClock
) -> None:
    """A host clock ten minutes slow: the first delivery is asked to retry, SNS's redelivery
    after the clock is fixed reaches the app, exactly once."""
    clock.advance(timedelta(minutes=10))
    message = signer.notification("genuine alert")
    clock.advance(-timedelta(minutes=10))
    first = post_sns(testapp, PATH, message)
    assert (first.status_int, reason(first)) == (503, "future_message")
    clock.advance(timedelta(minutes=10))
    assert post_sns(testapp, PATH, message).status_int == 200
    assert post_sns(testapp, PATH, message).status_int == 200
    assert len(echo_app.calls) == 1


def test_message_within_window_including_skew_is_accepted(
    testapp: webtest.TestApp, signer: MessageSigner, clock: FrozenClock
) -> None:
    message = signer.notification("x")
    clock.advance(timedelta(hours=1, minutes=4))
    assert post_sns(testapp, PATH, message).status_int == 200


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        pytest.param(
            {"x-amz-sns-message-type": "SubscriptionConfirmation"},
            "header_mismatch",
            id="type-mismatch",
        ),
        pytest.param({"x-amz-sns-message-id": "other"}, "header_mismatch", id="id-mismatch"),
        pytest.param({"x-amz-sns-rawdelivery": "true"}, "raw_delivery", id="raw-delivery"),
    ],
)
def test_headers_must_agree_with_body(
    testapp: webtest.TestApp, signer: MessageSigner, headers: dict[str, str | None], code: str
) -> None:
    response = post_sns(testapp, PATH, signer.notification("x"), headers=headers)
    assert (response.status_int, reason(response)) == (400, code)


@pytest.mark.parametrize(
    "absent",
    [
        pytest.param(("x-amz-sns-message-type",), id="no-type-header"),
        pytest.param(("x-amz-sns-message-id",), id="no-id-header"),
        pytest.param(("x-amz-sns-topic-arn",), id="no-topic-header"),
        pytest.param(
            ("x-amz-sns-message-type", "x-amz-sns-message-id", "x-amz-sns-topic-arn"),
            id="no-sns-headers-at-all",
        ),
    ],
)
def test_absent_sns_headers_are_accepted(
    testapp: webtest.TestApp, signer: MessageSigner, echo_app: EchoApp, absent: tuple[str, ...]
) -> None:
    """CloudFront, proxies and replay tools drop the unsigned headers: still delivered."""
    message = signer.notification("x")
    response = post_sns(testapp, PATH, message, headers=dict.fromkeys(absent))
    assert response.status_int == 200
    assert [call["body"] for call in echo_app.calls] == [message.body]


def test_title_case_sns_headers_are_read(testapp: webtest.TestApp, signer: MessageSigner) -> None:
    message = signer.notification("x")
    lying = {"X-Amz-Sns-Message-Id": "someone-else", "x-amz-sns-message-id": None}
    response = post_sns(testapp, PATH, message, headers=lying)
    assert (response.status_int, reason(response)) == (400, "header_mismatch")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(b"", "invalid_json", id="empty"),
        pytest.param(b"\xff\xfe{}", "bad_encoding", id="not-utf8"),
        pytest.param(b"[1, 2]", "invalid_json", id="not-object"),
        pytest.param(
            b'{"Type": "Notification", "Type": "Notification"}', "duplicate_key", id="duplicate-key"
        ),
        pytest.param(b"[" * 100_000, "invalid_json", id="deep-nesting"),
        pytest.param(b'{"Type": NaN}', "invalid_json", id="nan"),
    ],
)
def test_malformed_bodies_are_400(testapp: webtest.TestApp, body: bytes, code: str) -> None:
    response = testapp.post(
        PATH, body, headers={"x-amz-sns-message-type": "Notification"}, expect_errors=True
    )
    assert (response.status_int, reason(response)) == (400, code)


def test_oversized_body_is_413(make_middleware: MakeMiddleware, signer: MessageSigner) -> None:
    app = webtest.TestApp(make_middleware(max_body_bytes=1000))
    response = post_sns(app, PATH, signer.notification("x" * 2000))
    assert (response.status_int, reason(response)) == (413, "body_too_large")


def test_certificate_host_trouble_is_503_and_not_cached(
    make_middleware: MakeMiddleware, signer: MessageSigner, echo_app: EchoApp
) -> None:
    attempts: list[str] = []

    def flaky(url: str) -> bytes:
        attempts.append(url)
        if len(attempts) == 1:
            raise ConnectionError("host down")
        return signer.fetch_certificate(url)

    app = webtest.TestApp(make_middleware(fetch_certificate=flaky))
    message = signer.notification("x")
    response = post_sns(app, PATH, message)
    assert (response.status_int, reason(response)) == (503, "certificate_unavailable")
    assert post_sns(app, PATH, message).status_int == 200
    assert len(attempts) == 2 and len(echo_app.calls) == 1


def test_certificate_with_wrong_name_is_403(
    make_middleware: MakeMiddleware, signer: MessageSigner, test_ca: Any
) -> None:
    _, other = test_ca.issue(common_name="sns.evil.example")
    from cryptography.hazmat.primitives.serialization import Encoding

    app = webtest.TestApp(
        make_middleware(fetch_certificate=lambda url: other.public_bytes(Encoding.PEM))
    )
    response = post_sns(app, PATH, signer.notification("x"))
    assert (response.status_int, reason(response)) == (403, "certificate_name_mismatch")


# --- de-duplication -------------------------------------------------------------------------


def test_redelivery_reaches_app_once(
    testapp: webtest.TestApp, signer: MessageSigner, echo_app: EchoApp
) -> None:
    message = signer.notification("once")
    assert post_sns(testapp, PATH, message).status_int == 200
    again = post_sns(testapp, PATH, message)
    assert (again.status_int, reason(again)) == (200, "duplicate")
    assert len(echo_app.calls) == 1


@pytest.mark.parametrize("failure", ["500 Internal Server Error", "raise"])
def test_app_failure_releases_claim_so_redelivery_retries(
    make_middleware: MakeMiddleware, signer: MessageSigner, failure: str
) -> None:
    calls: list[bytes] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        calls.append(environ["wsgi.input"].read())
        if len(calls) == 1:
            if failure == "raise":
                raise RuntimeError("database down: secret=hunter2")
            start_response(failure, [("Content-Type", "text/plain")])
            return [b"try later"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    testapp = webtest.TestApp(make_middleware(app=app))
    message = signer.notification("retry me")
    first = post_sns(testapp, PATH, message)
    assert first.status_int == 500
    assert "hunter2" not in first.text and "Traceback" not in first.text
    second = post_sns(testapp, PATH, message)
    assert (second.status_int, second.text) == (200, "done")
    assert (post_sns(testapp, PATH, message).status_int, len(calls)) == (200, 2)


def test_app_4xx_is_passed_through_and_not_committed(
    make_middleware: MakeMiddleware, signer: MessageSigner
) -> None:
    store = MemoryDedupeStore()
    testapp = webtest.TestApp(
        make_middleware(app=EchoApp("422 Unprocessable Entity"), dedupe=store)
    )
    message = signer.notification("x")
    assert post_sns(testapp, PATH, message).status_int == 422
    assert store.claim(message.fields["MessageId"]).state is ClaimState.CLAIMED


def test_concurrent_duplicate_in_progress_gets_503(
    make_middleware: MakeMiddleware, signer: MessageSigner, echo_app: EchoApp
) -> None:
    store = MemoryDedupeStore()
    testapp = webtest.TestApp(make_middleware(dedupe=store))
    message = signer.notification("x")
    store.claim(message.fields["MessageId"])  # another worker holds it
    response = post_sns(testapp, PATH, message)
    assert (response.status_int, reason(response)) == (503, "in_progress")
    assert echo_app.calls == []


class BrokenStore:
    retention = timedelta(hours=2)

    def claim(self, key: str) -> Claim:
        raise OSError("redis down")

    def commit(self, claim: Claim) -> None:
        raise AssertionError("not reached")

    def release(self, claim: Claim) -> None:
        raise AssertionError("not reached")


def test_store_failure_is_503_and_app_not_called(
    make_middleware: MakeMiddleware, signer: MessageSigner, echo_app: EchoApp
) -> None:
    testapp = webtest.TestApp(make_middleware(dedupe=BrokenStore()))
    response = post_sns(testapp, PATH, signer.notification("x"))
    assert (response.status_int, reason(response)) == (503, "dedupe_unavailable")
    assert echo_app.calls == []


# --- configuration fails at startup --------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"topics": []}, id="empty-topics"),
        pytest.param({"topics": None}, id="no-topics"),
        pytest.param({"topics": TOPIC}, id="topics-as-string"),
        pytest.param({"topics": ["arn:aws:sns:us-east-1:123:short-account"]}, id="bad-arn"),
        pytest.param({"topics": ["arn:aws:*"]}, id="bad-pattern"),
        pytest.param({"paths": []}, id="no-paths"),
        pytest.param({"paths": ["sns"]}, id="relative-path"),
        pytest.param({"confirm": "email"}, id="unknown-confirm"),
        pytest.param({"max_body_bytes": 0}, id="zero-body"),
        pytest.param({"verifier": "x"}, id="verifier-and-topics"),
    ],
)
def test_bad_configuration_raises_at_startup(
    make_middleware: MakeMiddleware, options: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError):
        make_middleware(**options)


def test_one_verifier_serves_several_middlewares(
    signer: MessageSigner, clock: FrozenClock, echo_app: EchoApp
) -> None:
    verifier = SnsVerifier(topics=[TOPIC], fetch_certificate=signer.fetch_certificate, clock=clock)
    apps = [
        webtest.TestApp(SnsMiddleware(echo_app, paths=[path], verifier=verifier, confirm="url"))
        for path in ("/a", "/b")
    ]
    for app, path in zip(apps, ("/a", "/b"), strict=True):
        assert post_sns(app, path, signer.notification(path)).status_int == 200
    assert len(signer.fetched) == 1  # one certificate cache for both


def test_decisions_are_logged_without_secrets(
    testapp: webtest.TestApp, signer: MessageSigner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="snsmiddleware")
    message = signer.subscription_confirmation()
    post_sns(testapp, PATH, message)
    post_sns(testapp, PATH, message.tampered(Message="x"))
    text = caplog.text
    assert "confirmed subscription" in text and "bad_signature" in text
    for secret in (message.fields["Token"], message.fields["Signature"]):
        assert secret not in text


def test_error_body_is_one_short_printable_line(testapp: webtest.TestApp) -> None:
    response = testapp.post(
        PATH, b"{}", headers={"x-amz-sns-message-type": "x"}, expect_errors=True
    )
    assert response.content_type == "text/plain"
    text = response.text.rstrip("\n")
    assert text.startswith(f"{reason(response)}: ")
    assert text.isprintable() and len(text) < 500, text
    assert response.text.endswith("\n") and len(response.text) < 200


def test_app_with_malformed_status_is_500_and_released(
    make_middleware: MakeMiddleware, signer: MessageSigner
) -> None:
    store = MemoryDedupeStore()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("OK", [("Content-Type", "text/plain")])
        return [b"?"]

    testapp = webtest.TestApp(make_middleware(app=app, dedupe=store), lint=False)
    message = signer.notification("x")
    response = post_sns(testapp, PATH, message)
    assert (response.status_int, reason(response)) == (500, "app_error")
    assert store.claim(message.fields["MessageId"]).state is ClaimState.CLAIMED


def test_release_after_a_lapsed_lease_keeps_the_newer_claim() -> None:
    """Regression (issue 7): a request whose lease lapsed must not release the claim of the
    request that took over, or a third delivery would run concurrently with the second."""
    clock = [0.0]
    store = MemoryDedupeStore(lease=timedelta(seconds=10), monotonic=lambda: clock[0])
    first = store.claim("m")
    clock[0] = 11.0
    second = store.claim("m")
    assert (first.state, second.state) == (ClaimState.CLAIMED, ClaimState.CLAIMED)
    store.release(first)
    assert store.claim("m").state is ClaimState.IN_PROGRESS
    store.release(second)
    assert store.claim("m").state is ClaimState.CLAIMED
