"""Policy tables: TopicArn parsing and the allowlist, SigningCertURL and SubscribeURL pinning
(good URLs per partition and a large hostile table), signature versions and freshness.

Pure unit tests. The URL checks are the SSRF and forged-certificate defence: everything in the
hostile tables must be refused with the exact reason code, and a URL that passes must come
back *rebuilt* in its canonical form, never echoed.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta, timezone

import pytest

from snsmiddleware import ConfigurationError, InsecureConfigurationWarning
from snsmiddleware.errors import PolicyError, TransientError
from snsmiddleware.policy import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_MAX_AGE,
    SIGNATURE_VERSIONS,
    TopicAllowlist,
    TopicArn,
    certificate_url,
    check_freshness,
    check_signature_version,
    parse_topic_arn,
    subscribe_url,
)

from ._hostile_urls import (
    CERT_PATH,
    CERT_URL,
    HEX,
    HOST,
    HOSTILE_CERT_URLS,
    HOSTILE_SUBSCRIBE_URLS,
    OTHER_ARN,
    TOPIC,
    V_TOKEN,
    V_TOPIC_ARN,
    V_URL,
)

US_EAST_1 = parse_topic_arn(TOPIC)


def policy_reason(call: object, *args: object) -> str:
    assert callable(call)
    with pytest.raises(PolicyError) as caught:
        call(*args)
    assert caught.value.status == 403
    return caught.value.reason


# --- TopicArn ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        (TOPIC, TopicArn("aws", "us-east-1", "123456789012", "budget-alerts")),
        (
            "arn:aws-cn:sns:cn-north-1:123456789012:t",
            TopicArn("aws-cn", "cn-north-1", "123456789012", "t"),
        ),
        (
            "arn:aws-us-gov:sns:us-gov-west-1:123456789012:T_1",
            TopicArn("aws-us-gov", "us-gov-west-1", "123456789012", "T_1"),
        ),
        (
            "arn:aws:sns:ap-southeast-4:123456789012:orders.fifo",
            TopicArn("aws", "ap-southeast-4", "123456789012", "orders.fifo"),
        ),
        (
            "arn:aws:sns:us-east-1:123456789012:" + "a" * 256,
            TopicArn("aws", "us-east-1", "123456789012", "a" * 256),
        ),
    ],
)
def test_parse_topic_arn(arn: str, expected: TopicArn) -> None:
    assert parse_topic_arn(arn) == expected


@pytest.mark.parametrize(
    ("topic", "host"),
    [
        (TOPIC, "sns.us-east-1.amazonaws.com"),
        ("arn:aws-cn:sns:cn-northwest-1:123456789012:t", "sns.cn-northwest-1.amazonaws.com.cn"),
        ("arn:aws-us-gov:sns:us-gov-east-1:123456789012:t", "sns.us-gov-east-1.amazonaws.com"),
        ("arn:aws-eusc:sns:eusc-de-east-1:123456789012:t", "sns.eusc-de-east-1.amazonaws.eu"),
        ("arn:aws-iso:sns:us-iso-east-1:123456789012:t", "sns.us-iso-east-1.c2s.ic.gov"),
        ("arn:aws-iso-b:sns:us-isob-east-1:123456789012:t", "sns.us-isob-east-1.sc2s.sgov.gov"),
        ("arn:aws-iso-e:sns:eu-isoe-west-1:123456789012:t", "sns.eu-isoe-west-1.cloud.adc-e.uk"),
        ("arn:aws-iso-f:sns:us-isof-south-1:123456789012:t", "sns.us-isof-south-1.csp.hci.ic.gov"),
    ],
)
def test_sns_host_per_partition(topic: str, host: str) -> None:
    assert parse_topic_arn(topic).sns_host == host


@pytest.mark.parametrize(
    "arn",
    [
        pytest.param("arn:aws:sns:us-east-1:12345678901:t", id="11-digit-account"),
        pytest.param("arn:aws:sns:us-east-1:1234567890123:t", id="13-digit-account"),
        pytest.param("arn:aws:sqs:us-east-1:123456789012:t", id="sqs"),
        pytest.param("arn:aws:sns:us-east-1:123456789012", id="no-name"),
        pytest.param("arn:aws:sns:us-east-1:123456789012:", id="empty-name"),
        pytest.param("arn:aws:sns:us-east-1:123456789012:t:sub", id="subscription-arn"),
        pytest.param("arn:aws:sns:us-east-1:123456789012:a.b", id="dot-in-name"),
        pytest.param("arn:aws:sns:us-east-1:123456789012:.fifo", id="only-fifo"),
        pytest.param("arn:aws:sns:us-east-1:123456789012:" + "a" * 257, id="long-name"),
        pytest.param("arn:aws:sns:US-EAST-1:123456789012:t", id="upper-region"),
        pytest.param("arn:aws:sns:useast1:123456789012:t", id="no-dash-region"),
        pytest.param("arn:aws:sns::123456789012:t", id="no-region"),
        # (The ISO partitions are accepted since issue 11; a region of another partition not.)
        pytest.param("arn:aws-iso:sns:us-east-1:123456789012:t", id="iso-partition-aws-region"),
        pytest.param("arn:aws:sns:cn-north-1:123456789012:t", id="aws-partition-china-region"),
        pytest.param("arn:aws-cn:sns:us-east-1:123456789012:t", id="china-partition-aws-region"),
        pytest.param("arn:aws:sns:us-gov-west-1:123456789012:t", id="aws-partition-gov-region"),
        pytest.param("arn:aws:sns:xx-east-1:123456789012:t", id="no-such-region-prefix"),
        pytest.param("arn:aws-evil:sns:us-east-1:123456789012:t", id="unknown-partition"),
        pytest.param("ARN:aws:sns:us-east-1:123456789012:t", id="upper-arn"),
        pytest.param(TOPIC + "\n", id="trailing-newline"),
        pytest.param(" " + TOPIC, id="leading-space"),
        pytest.param(TOPIC.replace("1234", "\uff11234"), id="fullwidth-digit"),
        pytest.param("", id="empty"),
    ],
)
def test_bad_topic_arns(arn: str) -> None:
    assert policy_reason(parse_topic_arn, arn) == "bad_topic_arn"


# --- TopicAllowlist ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topics", "arn", "allowed"),
    [
        pytest.param([TOPIC], TOPIC, True, id="exact"),
        pytest.param([f"  {TOPIC}\n"], TOPIC, True, id="configured-with-spaces"),
        pytest.param([TOPIC], TOPIC + "-2", False, id="exact-is-not-prefix"),
        pytest.param([TOPIC], TOPIC.upper(), False, id="exact-is-case-sensitive"),
        pytest.param([TOPIC], TOPIC + " ", False, id="message-with-space"),
        pytest.param([TOPIC], "arn:aws:sns:us-east-1:999999999999:budget-alerts", False, id="acct"),
        pytest.param(
            ["arn:aws:sns:*:123456789012:budget-*"],
            "arn:aws:sns:eu-west-1:123456789012:budget-x",
            True,
            id="pattern",
        ),
        pytest.param(
            ["arn:aws:sns:*:123456789012:budget-*"],
            "arn:aws:sns:eu-west-1:999999999999:budget-x",
            False,
            id="pattern-other-account",
        ),
        pytest.param(
            ["arn:aws:sns:*:123456789012:budget-*"],
            "arn:aws:sns:eu-west-1:123456789012:Budget-x",
            False,
            id="pattern-case-sensitive",
        ),
        pytest.param(
            ["arn:aws:sns:us-east-1:123456789012:budget-?"],
            "arn:aws:sns:us-east-1:123456789012:budget-ab",
            False,
            id="question-is-one-char",
        ),
        pytest.param(
            ["arn:aws:sns:us-*:123456789012:t"],
            "arn:aws:sns:us-east-1:999999999999:x:123456789012:t",
            False,
            id="glob-cannot-eat-colons-region",
        ),
        pytest.param(
            ["arn:aws:sns:us-east-1:123456789012:*"],
            "arn:aws:sns:us-east-1:123456789012:t:extra",
            False,
            id="glob-cannot-eat-colons-name",
        ),
        pytest.param(
            ["arn:aws:sns:us-east-1:*:t"],
            "arn:aws:sns:us-east-1:1:2:t",
            False,
            id="glob-cannot-eat-colons-account",
        ),
        pytest.param(
            ["arn:aws:sns:us-east-1:123456789012:[ab]"],
            "arn:aws:sns:us-east-1:123456789012:b",
            True,
            id="character-class",
        ),
        pytest.param([TOPIC], None, False, id="not-a-string"),
    ],
)
def test_allowlist_admits_exactly_its_topics(topics: list[str], arn: str, allowed: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureConfigurationWarning)  # wildcard accounts
        allowlist = TopicAllowlist(topics)
    assert (arn in allowlist) is allowed


@pytest.mark.parametrize(
    "pattern", ["arn:aws:sns:*:*:*", "arn:aws:sns:us-east-1:*:alerts", "arn:aws:sns:*:1?3:*"]
)
def test_wildcard_account_warns_like_star(pattern: str) -> None:
    with pytest.warns(InsecureConfigurationWarning, match="any AWS account.s topics"):
        TopicAllowlist([pattern])


def test_wildcard_within_one_account_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TopicAllowlist(["arn:aws:sns:*:123456789012:budget-*"])


def test_allowlist_check_returns_parsed_arn_and_refuses_others() -> None:
    allowlist = TopicAllowlist([TOPIC, "arn:aws:sns:*:123456789012:budget-*"])
    assert allowlist.check(TOPIC) == US_EAST_1
    assert allowlist.check(TOPIC) == US_EAST_1  # cached path gives the same answer
    assert allowlist.check("arn:aws:sns:eu-west-1:123456789012:budget-x").region == "eu-west-1"
    other = "arn:aws:sns:us-east-1:999999999999:budget-alerts"
    assert policy_reason(allowlist.check, other) == "topic_not_allowed"
    assert policy_reason(allowlist.check, other) == "topic_not_allowed"  # refusals not cached


@pytest.mark.parametrize(
    "arn",
    [
        pytest.param("arn:aws:sns:evil:123456789012:budget-x", id="bad-region"),
        pytest.param("arn:aws:sns:us-east-1:123456789012:budget-a.b", id="bad-name"),
    ],
)
def test_pattern_match_that_is_no_arn_is_bad_topic_arn(arn: str) -> None:
    allowlist = TopicAllowlist(["arn:aws:sns:*:123456789012:budget-*"])
    assert arn in allowlist
    assert policy_reason(allowlist.check, arn) == "bad_topic_arn"


def test_star_accepts_everything_and_warns() -> None:
    with pytest.warns(InsecureConfigurationWarning, match="any SNS topic"):
        allowlist = TopicAllowlist(["*"])
    assert "arn:aws:sns:eu-west-1:999999999999:theirs" in allowlist
    with pytest.warns(InsecureConfigurationWarning):
        TopicAllowlist([TOPIC, " * "])


def test_exact_and_patterns_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TopicAllowlist([TOPIC, "arn:aws:sns:*:123456789012:*"])


@pytest.mark.parametrize(
    "topics",
    [
        pytest.param([], id="empty"),
        pytest.param((), id="empty-tuple"),
        pytest.param(iter([]), id="empty-iterator"),
        pytest.param(TOPIC, id="one-string"),
        pytest.param([""], id="empty-string"),
        pytest.param(["   "], id="blank-string"),
        pytest.param(["arn:aws:sns:us-east-1:123:t"], id="bad-exact-arn"),
        pytest.param(["arn:aws:*"], id="short-pattern"),
        pytest.param(["arn:aws:sns:*:123456789012:t:*"], id="seven-segment-pattern"),
        pytest.param(["arn:aws:sqs:*:123456789012:*"], id="pattern-other-service"),
        pytest.param(["*:aws:sns:*:123456789012:*"], id="pattern-star-arn"),
        pytest.param(["arn:aws:s*:*:123456789012:*"], id="pattern-glob-service"),
        pytest.param(["**"], id="double-star"),
    ],
)
def test_bad_allowlists_fail_at_startup(topics: object) -> None:
    with pytest.raises(ConfigurationError):
        TopicAllowlist(topics)  # type: ignore[arg-type]


@pytest.mark.parametrize("entry", [None, 42, TOPIC.encode()], ids=["none", "int", "bytes"])
def test_non_string_entry_is_a_configuration_error(entry: object) -> None:
    with pytest.raises(ConfigurationError):
        TopicAllowlist([entry])  # type: ignore[list-item]


# --- SigningCertURL ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "url"),
    [
        pytest.param(TOPIC, CERT_URL, id="aws"),
        pytest.param(
            "arn:aws-cn:sns:cn-north-1:123456789012:t",
            f"https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-{HEX}.pem",
            id="aws-cn",
        ),
        pytest.param(
            "arn:aws-us-gov:sns:us-gov-west-1:123456789012:t",
            f"https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-{HEX}.pem",
            id="aws-us-gov",
        ),
        pytest.param(
            "arn:aws:sns:us-east-2:123456789012:t",
            "https://sns.us-east-2.amazonaws.com/SimpleNotificationService-"
            "01d088a6f77103d0fe307c0069e40ed6.pem",
            id="aws-other-hex",
        ),
        pytest.param(
            TOPIC, f"https://{HOST}/SimpleNotificationService-{'a' * 64}.pem", id="64-hex"
        ),
    ],
)
def test_good_certificate_urls_come_back_canonical(topic: str, url: str) -> None:
    rebuilt = certificate_url(url, parse_topic_arn(topic))
    assert rebuilt == url
    assert type(rebuilt) is str


def test_certificate_url_is_rebuilt_not_echoed() -> None:
    class Sneaky(str):
        """A str subclass: an echoed value would keep its type (and any behaviour)."""

    rebuilt = certificate_url(Sneaky(CERT_URL), US_EAST_1)
    assert rebuilt == CERT_URL and type(rebuilt) is str


@pytest.mark.parametrize("url", HOSTILE_CERT_URLS)
def test_hostile_certificate_urls_are_refused(url: str) -> None:
    assert policy_reason(certificate_url, url, US_EAST_1) == "bad_cert_url"


@pytest.mark.parametrize(
    ("topic", "url"),
    [
        pytest.param(
            "arn:aws-cn:sns:cn-north-1:123456789012:t",
            f"https://sns.cn-north-1.amazonaws.com{CERT_PATH}",
            id="cn-topic-com-host",
        ),
        pytest.param(
            "arn:aws-cn:sns:cn-north-1:123456789012:t",
            f"https://sns.cn-northwest-1.amazonaws.com.cn{CERT_PATH}",
            id="cn-topic-other-region",
        ),
        pytest.param(
            "arn:aws-us-gov:sns:us-gov-west-1:123456789012:t",
            f"https://sns.us-gov-east-1.amazonaws.com{CERT_PATH}",
            id="gov-topic-other-region",
        ),
        pytest.param(
            "arn:aws-us-gov:sns:us-gov-west-1:123456789012:t",
            f"https://sns.us-east-1.amazonaws.com{CERT_PATH}",
            id="gov-topic-commercial-host",
        ),
    ],
)
def test_certificate_url_pinned_to_topic_partition_and_region(topic: str, url: str) -> None:
    assert policy_reason(certificate_url, url, parse_topic_arn(topic)) == "bad_cert_url"


# --- SubscribeURL -----------------------------------------------------------------------------

V_TOPIC = parse_topic_arn(V_TOPIC_ARN)
V_CANONICAL = (
    "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
    "&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A820710015775%3AMyTestingTopic"
    f"&Token={V_TOKEN}"
)


def test_real_subscribe_url_is_accepted_and_rebuilt() -> None:
    assert subscribe_url(V_URL, V_TOPIC, V_TOPIC_ARN, V_TOKEN) == V_CANONICAL


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(V_URL, id="as-sent"),
        pytest.param(V_CANONICAL, id="already-encoded"),
        pytest.param(
            f"https://sns.us-east-1.amazonaws.com/?Token={V_TOKEN}&TopicArn={V_TOPIC_ARN}"
            "&Action=ConfirmSubscription",
            id="other-order",
        ),
    ],
)
def test_equivalent_subscribe_urls_rebuild_identically(url: str) -> None:
    assert subscribe_url(url, V_TOPIC, V_TOPIC_ARN, V_TOKEN) == V_CANONICAL


@pytest.mark.parametrize(
    ("topic_arn", "url", "expected"),
    [
        pytest.param(
            "arn:aws-cn:sns:cn-north-1:123456789012:t",
            "https://sns.cn-north-1.amazonaws.com.cn/?Action=ConfirmSubscription"
            "&TopicArn=arn:aws-cn:sns:cn-north-1:123456789012:t&Token=abc",
            "https://sns.cn-north-1.amazonaws.com.cn/?Action=ConfirmSubscription"
            "&TopicArn=arn%3Aaws-cn%3Asns%3Acn-north-1%3A123456789012%3At&Token=abc",
            id="aws-cn",
        ),
        pytest.param(
            "arn:aws-us-gov:sns:us-gov-west-1:123456789012:t",
            "https://sns.us-gov-west-1.amazonaws.com/?Action=ConfirmSubscription"
            "&TopicArn=arn:aws-us-gov:sns:us-gov-west-1:123456789012:t&Token=abc",
            "https://sns.us-gov-west-1.amazonaws.com/?Action=ConfirmSubscription"
            "&TopicArn=arn%3Aaws-us-gov%3Asns%3Aus-gov-west-1%3A123456789012%3At&Token=abc",
            id="aws-us-gov",
        ),
    ],
)
def test_good_subscribe_urls_per_partition(topic_arn: str, url: str, expected: str) -> None:
    assert subscribe_url(url, parse_topic_arn(topic_arn), topic_arn, "abc") == expected


@pytest.mark.parametrize("url", HOSTILE_SUBSCRIBE_URLS)
def test_hostile_subscribe_urls_are_refused(url: str) -> None:
    assert policy_reason(subscribe_url, url, V_TOPIC, V_TOPIC_ARN, V_TOKEN) == "bad_subscribe_url"


def test_subscribe_url_for_another_messages_token_or_topic_is_refused() -> None:
    """The URL must confirm *this* message: same URL, other message fields."""
    assert (
        policy_reason(subscribe_url, V_URL, V_TOPIC, V_TOPIC_ARN, V_TOKEN + "0")
        == "bad_subscribe_url"
    )
    other = parse_topic_arn(OTHER_ARN)
    assert policy_reason(subscribe_url, V_URL, other, OTHER_ARN, V_TOKEN) == "bad_subscribe_url"


def test_subscribe_url_with_an_escaped_token_is_rebuilt_escaped() -> None:
    """A Token with URL metacharacters survives only percent-encoded, and comes back so."""
    token = "a&b=c/d"
    url = (
        "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
        f"&TopicArn={V_TOPIC_ARN}&Token=a%26b%3Dc/d"
    )
    rebuilt = subscribe_url(url, V_TOPIC, V_TOPIC_ARN, token)
    assert rebuilt.endswith("&Token=a%26b%3Dc%2Fd")
    assert rebuilt.startswith("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&")


# --- signature versions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "version",
    [
        pytest.param("3", id="three"),
        pytest.param("", id="empty"),
        pytest.param("0", id="zero"),
        pytest.param("01", id="leading-zero"),
        pytest.param("1.0", id="decimal"),
        pytest.param(" 1", id="space"),
        pytest.param("1\n", id="newline"),
        pytest.param("\uff11", id="fullwidth-one"),
        pytest.param("v2", id="prefixed"),
    ],
)
def test_unknown_signature_versions_are_refused(version: str) -> None:
    assert (
        policy_reason(check_signature_version, version, SIGNATURE_VERSIONS)
        == "signature_version_not_allowed"
    )


def test_signature_version_allowlist() -> None:
    check_signature_version("1", SIGNATURE_VERSIONS)
    check_signature_version("2", SIGNATURE_VERSIONS)
    check_signature_version("2", frozenset({"2"}))
    assert (
        policy_reason(check_signature_version, "1", frozenset({"2"}))
        == "signature_version_not_allowed"
    )


# --- freshness --------------------------------------------------------------------------------

NOW = datetime(2024, 1, 31, 12, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("sent_at", "options"),
    [
        pytest.param(NOW, {}, id="now"),
        pytest.param(NOW - DEFAULT_MAX_AGE, {}, id="max-age"),
        pytest.param(NOW - DEFAULT_MAX_AGE - DEFAULT_CLOCK_SKEW, {}, id="max-age-plus-skew"),
        pytest.param(NOW + DEFAULT_CLOCK_SKEW, {}, id="skew-ahead"),
        pytest.param(
            NOW - timedelta(minutes=10),
            {"max_age": timedelta(minutes=10), "clock_skew": timedelta(0)},
            id="custom-edge",
        ),
        pytest.param(NOW, {"clock_skew": timedelta(0)}, id="no-skew-now"),
    ],
)
def test_messages_within_the_window_are_fresh_enough(
    sent_at: datetime, options: dict[str, timedelta]
) -> None:
    check_freshness(sent_at, NOW, **options)


@pytest.mark.parametrize(
    ("sent_at", "options", "code"),
    [
        pytest.param(
            NOW - DEFAULT_MAX_AGE - DEFAULT_CLOCK_SKEW - TICK, {}, "stale_message", id="stale-edge"
        ),
        pytest.param(NOW - timedelta(days=3650), {}, "stale_message", id="years-old"),
        pytest.param(
            NOW - timedelta(minutes=10) - TICK,
            {"max_age": timedelta(minutes=10), "clock_skew": timedelta(0)},
            "stale_message",
            id="custom-stale",
        ),
    ],
)
def test_stale_messages_are_refused_for_good(
    sent_at: datetime, options: dict[str, timedelta], code: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        check_freshness(sent_at, NOW, **options)
    assert (caught.value.status, caught.value.reason) == (403, code)


@pytest.mark.parametrize(
    ("sent_at", "options"),
    [
        pytest.param(NOW + DEFAULT_CLOCK_SKEW + TICK, {}, id="future-edge"),
        pytest.param(NOW + timedelta(days=1), {}, id="tomorrow"),
        pytest.param(NOW + TICK, {"clock_skew": timedelta(0)}, id="no-skew"),
    ],
)
def test_future_messages_are_retried_not_refused(
    sent_at: datetime, options: dict[str, timedelta]
) -> None:
    """A Timestamp ahead of our clock may mean our clock is slow: 503, so SNS redelivers."""
    with pytest.raises(TransientError) as caught:
        check_freshness(sent_at, NOW, **options)
    assert (caught.value.status, caught.value.reason) == (503, "future_message")


def test_other_time_zones_compare_as_instants() -> None:
    tokyo = NOW.astimezone(timezone(timedelta(hours=9)))
    check_freshness(NOW, tokyo)
    with pytest.raises(PolicyError):
        check_freshness(NOW, tokyo + timedelta(hours=2))


def test_naive_clock_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        check_freshness(NOW, NOW.replace(tzinfo=None))
