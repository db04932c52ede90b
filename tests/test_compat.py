"""Genuine deliveries wherever AWS runs SNS and however they reach us (issue 11).

Through the public interface only: :class:`SnsMiddleware` over WebTest and
:class:`SnsVerifier`, with messages signed by the testing kit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import webtest

from snsmiddleware import ConfigurationError, Notification, SnsMiddleware, SnsVerifier
from snsmiddleware.errors import SignatureError
from snsmiddleware.partitions import SIGNING_CERTIFICATE_NAMES, aws_certificate_name, partitions
from snsmiddleware.policy import parse_topic_arn
from snsmiddleware.testing import FrozenClock, MessageSigner, TestCA, post_sns

from ._answers import reason
from .conftest import PATH, EchoApp, RecordingConfirmer

MakeMiddleware = Callable[..., SnsMiddleware]


# --- fetch_certificate may return str ---------------------------------------------------------


def test_a_fetcher_returning_pem_text_works(
    make_middleware: MakeMiddleware, signer: MessageSigner, echo_app: EchoApp
) -> None:
    """What requests' ``response.text`` and most HTTP helpers return."""

    def fetch_text(url: str) -> str:
        return signer.fetch_certificate(url).decode("ascii")

    app = webtest.TestApp(make_middleware(fetch_certificate=fetch_text))
    assert post_sns(app, PATH, signer.notification("x")).status_int == 200
    assert len(echo_app.calls) == 1


@pytest.mark.parametrize(
    "returned",
    [pytest.param(None, id="none"), pytest.param(7, id="int"), pytest.param(["pem"], id="list")],
)
def test_a_fetcher_returning_something_else_is_a_logged_503(
    make_middleware: MakeMiddleware,
    signer: MessageSigner,
    echo_app: EchoApp,
    caplog: pytest.LogCaptureFixture,
    returned: Any,
) -> None:
    """A broken fetch_certificate is our bug, not a forgery: SNS retries while it is fixed."""
    app = webtest.TestApp(make_middleware(fetch_certificate=lambda url: returned))
    with caplog.at_level(logging.ERROR, logger="snsmiddleware.certs"):
        response = post_sns(app, PATH, signer.notification("x"))
    assert (response.status_int, reason(response)) == (503, "certificate_unavailable")
    assert "Traceback" not in response.text
    assert echo_app.calls == []
    assert any(
        f"fetch_certificate returned {type(returned).__name__}" in record.getMessage()
        for record in caplog.records
    )


def test_pem_text_with_non_ascii_is_a_bad_certificate(
    make_middleware: MakeMiddleware, signer: MessageSigner
) -> None:
    app = webtest.TestApp(make_middleware(fetch_certificate=lambda url: "é-----BEGIN"))
    response = post_sns(app, PATH, signer.notification("x"))
    assert (response.status_int, reason(response)) == (403, "bad_certificate")


# --- every partition and every certificate name AWS uses ---------------------------------------

#: One topic per entry of the name table, and one per partition for its default name.
TABLE_TOPICS = [
    f"arn:{found.id}:sns:{region}:123456789012:budget-alerts"
    for region in sorted(SIGNING_CERTIFICATE_NAMES)
    for found in partitions().values()
    if found.knows(region)
] + [
    "arn:aws:sns:us-east-1:123456789012:budget-alerts",
    "arn:aws:sns:eu-west-1:123456789012:budget-alerts",
    "arn:aws-iso:sns:us-iso-west-1:123456789012:budget-alerts",
    "arn:aws-iso-b:sns:us-isob-west-1:123456789012:budget-alerts",
]


def test_every_table_entry_is_exercised() -> None:
    regions = {topic.split(":")[3] for topic in TABLE_TOPICS}
    assert set(SIGNING_CERTIFICATE_NAMES) <= regions
    assert {topic.split(":")[1] for topic in TABLE_TOPICS} == set(partitions())


def middleware_for(
    signer: MessageSigner,
    clock: FrozenClock,
    app: EchoApp,
    confirmer: RecordingConfirmer,
    **options: Any,
) -> webtest.TestApp:
    return webtest.TestApp(
        SnsMiddleware(
            app,
            paths=[PATH],
            topics=options.pop("topics", [signer.topic_arn]),
            fetch_certificate=signer.fetch_certificate,
            clock=clock,
            confirm=confirmer,
            **options,
        ),
        lint=True,
    )


@pytest.mark.parametrize("topic_arn", TABLE_TOPICS)
def test_genuine_messages_of_every_region_and_partition_are_delivered(
    topic_arn: str,
    test_ca: TestCA,
    clock: FrozenClock,
    echo_app: EchoApp,
    confirmer: RecordingConfirmer,
    signature_version: str,
) -> None:
    """Signed with a certificate named as AWS names it there, posted with and without the
    x-amz-sns-* headers; the certificate is fetched from that region's SNS host only."""
    signer = MessageSigner.for_topic(
        topic_arn, ca=test_ca, clock=clock, signature_version=signature_version
    )
    topic = parse_topic_arn(topic_arn)
    assert signer.ca.certificate.subject.rfc4514_string() == (
        f"CN={aws_certificate_name(topic.partition, topic.region)}"
    )
    app = middleware_for(signer, clock, echo_app, confirmer)

    confirmation = signer.subscription_confirmation()
    assert post_sns(app, PATH, confirmation).status_int == 200
    assert [message.message_id for message in confirmer.confirmed] == [
        confirmation.fields["MessageId"]
    ]
    with_headers = signer.notification("with headers", Subject="s")
    without = signer.notification("without headers")
    assert post_sns(app, PATH, with_headers).status_int == 200
    bare = dict.fromkeys(("x-amz-sns-message-type", "x-amz-sns-message-id", "x-amz-sns-topic-arn"))
    assert post_sns(app, PATH, without, headers=bare).status_int == 200
    assert [call["body"] for call in echo_app.calls] == [with_headers.body, without.body]
    assert set(signer.fetched) == {f"https://{topic.sns_host}/" + signer.fetched[0].split("/")[-1]}


@pytest.mark.parametrize(
    ("topic_arn", "other_name"),
    [
        pytest.param(
            "arn:aws-cn:sns:cn-north-1:123456789012:t",
            "sns-cn-northwest-1.amazonaws.com.cn",
            id="other-china-region",
        ),
        pytest.param(
            "arn:aws-eusc:sns:eusc-de-east-1:123456789012:t",
            "sns-signing.eusc-de-east-1.amazonaws.com",
            id="eusc-name-in-aws-domain",
        ),
        pytest.param(
            "arn:aws:sns:af-south-1:123456789012:t",
            "sns-signing.eu-south-1.amazonaws.com",
            id="other-opt-in-region",
        ),
        pytest.param(
            "arn:aws-iso-f:sns:us-isof-east-1:123456789012:t",
            "sns.amazonaws.com",
            id="iso-with-commercial-name",
        ),
    ],
)
def test_a_certificate_named_for_elsewhere_is_refused(
    topic_arn: str,
    other_name: str,
    test_ca: TestCA,
    clock: FrozenClock,
    echo_app: EchoApp,
    confirmer: RecordingConfirmer,
) -> None:
    signer = MessageSigner(test_ca.with_name(other_name), topic_arn=topic_arn, clock=clock)
    app = middleware_for(signer, clock, echo_app, confirmer)
    response = post_sns(app, PATH, signer.notification("x"))
    assert (response.status_int, reason(response)) == (403, "certificate_name_mismatch")
    assert echo_app.calls == []


@pytest.mark.parametrize(
    ("topic_arn", "cert_host"),
    [
        pytest.param(
            "arn:aws-cn:sns:cn-north-1:123456789012:t",
            "sns-cn-north-1.amazonaws.com.cn",
            id="certificate-name-as-host",
        ),
        pytest.param(
            "arn:aws-us-gov:sns:us-gov-east-1:123456789012:t",
            "sns.us-gov-west-1.amazonaws.com",
            id="gov-other-region-host",
        ),
        pytest.param(
            "arn:aws-eusc:sns:eusc-de-east-1:123456789012:t",
            "sns.eusc-de-east-1.amazonaws.com",
            id="eusc-region-commercial-domain",
        ),
        pytest.param(
            "arn:aws-iso:sns:us-iso-east-1:123456789012:t",
            "sns.us-iso-east-1.sc2s.sgov.gov",
            id="iso-region-iso-b-domain",
        ),
    ],
)
def test_the_certificate_host_stays_pinned_to_the_topic_region(
    topic_arn: str,
    cert_host: str,
    test_ca: TestCA,
    clock: FrozenClock,
    echo_app: EchoApp,
    confirmer: RecordingConfirmer,
) -> None:
    """Only accepted names widened: the URL fetched is still the topic region's SNS host."""
    signer = MessageSigner.for_topic(topic_arn, ca=test_ca, clock=clock)
    url = f"https://{cert_host}/SimpleNotificationService-{signer.certificate_digest}.pem"
    app = middleware_for(signer, clock, echo_app, confirmer)
    response = post_sns(app, PATH, signer.notification("x", SigningCertURL=url))
    assert (response.status_int, reason(response)) == (403, "bad_cert_url")
    assert signer.fetched == []


# --- regions that do not exist ------------------------------------------------------------------


@pytest.mark.parametrize(
    "topic_arn",
    [
        pytest.param("arn:aws:sns:us-east-9:123456789012:budget-alerts", id="invented-number"),
        pytest.param("arn:aws:sns:eu-nowhere-1:123456789012:budget-alerts", id="invented-name"),
        pytest.param("arn:aws-cn:sns:cn-south-7:123456789012:budget-alerts", id="invented-china"),
    ],
)
def test_an_invented_region_under_a_region_wildcard_is_refused_before_any_io(
    topic_arn: str,
    test_ca: TestCA,
    clock: FrozenClock,
    echo_app: EchoApp,
    confirmer: RecordingConfirmer,
) -> None:
    """A forger who knows an allowed account cannot make us try invented certificate hosts."""
    signer = MessageSigner.for_topic(topic_arn, ca=test_ca, clock=clock)
    app = middleware_for(
        signer,
        clock,
        echo_app,
        confirmer,
        topics=["arn:aws:sns:*:123456789012:budget-*", "arn:aws-cn:sns:*:123456789012:*"],
    )
    for _ in range(5):
        response = post_sns(app, PATH, signer.notification("x"))
        assert (response.status_int, reason(response)) == (403, "bad_topic_arn")
    assert signer.fetched == [] and echo_app.calls == []


def test_a_region_wildcard_still_accepts_every_known_region(
    test_ca: TestCA, clock: FrozenClock, echo_app: EchoApp, confirmer: RecordingConfirmer
) -> None:
    aws = partitions()["aws"]
    for region in sorted(aws.regions):
        signer = MessageSigner.for_topic(
            f"arn:aws:sns:{region}:123456789012:budget-alerts", ca=test_ca, clock=clock
        )
        app = middleware_for(
            signer, clock, echo_app, confirmer, topics=["arn:aws:sns:*:123456789012:budget-*"]
        )
        assert post_sns(app, PATH, signer.notification(region)).status_int == 200, region
    assert len(echo_app.calls) == len(aws.regions)


@pytest.mark.parametrize(
    "topics",
    [
        pytest.param(["arn:aws:sns:us-east-7:123456789012:budget-alerts"], id="exact-arn"),
        pytest.param(["arn:aws:sns:us-east-7:123456789012:*"], id="pattern-naming-the-region"),
    ],
)
def test_a_region_newer_than_botocore_is_accepted_when_topics_names_it(
    topics: list[str],
    test_ca: TestCA,
    clock: FrozenClock,
    echo_app: EchoApp,
    confirmer: RecordingConfirmer,
) -> None:
    """A region AWS launched after the installed botocore (us-east-7 stands in for it): the
    operator who names it is trusted, and its certificate may carry the sns-signing name
    every region since 2019 uses."""
    topic_arn = "arn:aws:sns:us-east-7:123456789012:budget-alerts"
    assert not parse_topic_arn(topic_arn).known_region
    signer = MessageSigner(
        test_ca.with_name("sns-signing.us-east-7.amazonaws.com"), topic_arn=topic_arn, clock=clock
    )
    app = middleware_for(signer, clock, echo_app, confirmer, topics=topics)
    assert post_sns(app, PATH, signer.notification("x")).status_int == 200
    assert signer.fetched == [
        f"https://sns.us-east-7.amazonaws.com/SimpleNotificationService-"
        f"{signer.certificate_digest}.pem"
    ]


def test_a_region_of_another_partition_is_refused_at_configuration() -> None:
    with pytest.raises(ConfigurationError, match="not a region of AWS partition aws"):
        SnsVerifier(topics=["arn:aws:sns:cn-north-1:123456789012:t"])


# --- Lambda records signed by the kit -----------------------------------------------------------


@pytest.mark.parametrize(
    "topic_arn",
    [
        "arn:aws:sns:us-east-1:123456789012:budget-alerts",
        "arn:aws-cn:sns:cn-northwest-1:123456789012:budget-alerts",
        "arn:aws-eusc:sns:eusc-de-east-1:123456789012:budget-alerts",
    ],
)
@pytest.mark.parametrize("subject", [None, "Budget alert"], ids=["no-subject", "subject"])
def test_a_lambda_record_with_message_attributes_verifies(
    topic_arn: str, subject: str | None, test_ca: TestCA, clock: FrozenClock
) -> None:
    signer = MessageSigner.for_topic(topic_arn, ca=test_ca, clock=clock)
    attributes = {"Test": {"Type": "String", "Value": "TestString"}}
    message = signer.notification("hello", Subject=subject, MessageAttributes=attributes)
    record = message.lambda_record()
    assert "SigningCertUrl" in record["Sns"] and record["Sns"]["Subject"] == subject
    verifier = SnsVerifier(
        topics=[topic_arn], fetch_certificate=signer.fetch_certificate, clock=clock
    )
    verified = verifier.verify_lambda_record(record)
    assert isinstance(verified, Notification) and verified.subject == subject
    assert verified.message_attributes["Test"].value == "TestString"
    forged = message.tampered(Message="evil").lambda_record()
    with pytest.raises(SignatureError):
        verifier.verify_lambda_record(forged)
