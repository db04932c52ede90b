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

from ._vector_helpers import SUBSCRIPTION_VECTOR, vector_fields

TOPIC = "arn:aws:sns:us-east-1:123456789012:budget-alerts"
US_EAST_1 = parse_topic_arn(TOPIC)
HOST = "sns.us-east-1.amazonaws.com"
HEX = "7ff5318490ec183fbaddaa2a969abfda"
CERT_URL = f"https://{HOST}/SimpleNotificationService-{HEX}.pem"


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
def test_allowlist_membership(topics: list[str], arn: str, allowed: bool) -> None:
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


_PATH = f"/SimpleNotificationService-{HEX}.pem"

HOSTILE_CERT_URLS = [
    pytest.param(f"http://{HOST}{_PATH}", id="http"),
    pytest.param(f"HTTPS://{HOST}{_PATH}", id="upper-scheme"),
    pytest.param(f"https:/{HOST}{_PATH}", id="one-slash"),
    pytest.param(f"https:///{HOST}{_PATH}", id="three-slashes"),
    pytest.param(f"//{HOST}{_PATH}", id="scheme-relative"),
    pytest.param(f"https://{HOST}.evil.example{_PATH}", id="lookalike-suffix"),
    pytest.param(f"https://{HOST}.{_PATH}", id="trailing-dot-host"),
    pytest.param(f"https://evil.example/{HOST}{_PATH}", id="host-in-path"),
    pytest.param(f"https://sns-us-east-1.amazonaws.com{_PATH}", id="dash-for-dot"),
    pytest.param(f"https://snsxus-east-1.amazonaws.com{_PATH}", id="x-for-dot"),
    pytest.param(f"https://sns.us-east-1.amazonaws.co{_PATH}", id="co-tld"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com.cn{_PATH}", id="other-partition-cn"),
    pytest.param(f"https://sns.us-west-2.amazonaws.com{_PATH}", id="other-region"),
    pytest.param(f"https://sns.amazonaws.com{_PATH}", id="global-host"),
    pytest.param(f"https://sns.s3.amazonaws.com{_PATH}", id="s3-bucket-sns"),
    pytest.param(f"https://sns.s3.us-east-1.amazonaws.com{_PATH}", id="s3-regional-bucket"),
    pytest.param(f"https://s3.amazonaws.com/sns.us-east-1.amazonaws.com{_PATH}", id="s3-path"),
    pytest.param(f"https://{HOST}.s3.amazonaws.com{_PATH}", id="s3-bucket-named-host"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com.s3.amazonaws.com{_PATH}", id="s3-sub"),
    pytest.param(f"https://evil.example@{HOST}{_PATH}", id="userinfo"),
    pytest.param(f"https://{HOST}@evil.example{_PATH}", id="host-as-userinfo"),
    pytest.param(f"https://{HOST}:443{_PATH}", id="default-port"),
    pytest.param(f"https://{HOST}:8443{_PATH}", id="other-port"),
    pytest.param(f"https://{HOST}:{_PATH}", id="empty-port"),
    pytest.param(f"https://{HOST}{_PATH}?x=1", id="query"),
    pytest.param(f"https://{HOST}{_PATH}?", id="empty-query"),
    pytest.param(f"https://{HOST}{_PATH}#x", id="fragment"),
    pytest.param(f"https://{HOST}{_PATH}#", id="empty-fragment"),
    pytest.param(f"https://{HOST}/SimpleNotificationService-{HEX[:-1]}%61.pem", id="pct-hex"),
    pytest.param(f"https://{HOST}/%53impleNotificationService-{HEX}.pem", id="pct-name"),
    pytest.param(f"https://{HOST}/%2e%2e{_PATH}", id="pct-2e-dots"),
    pytest.param(f"https://{HOST}/%2E%2E{_PATH}", id="pct-2E-dots"),
    pytest.param(f"https://{HOST}/SimpleNotificationService-{HEX}%2epem", id="pct-2e-ext"),
    pytest.param(f"https://sns.us-east-1.amazonaws%2ecom{_PATH}", id="pct-in-host"),
    pytest.param(f"https://{HOST}%2f{_PATH}", id="pct-slash-host"),
    pytest.param(f"https://{HOST}/../SimpleNotificationService-{HEX}.pem", id="dotdot"),
    pytest.param(f"https://{HOST}/x/../SimpleNotificationService-{HEX}.pem", id="x-dotdot"),
    pytest.param(f"https://{HOST}/./SimpleNotificationService-{HEX}.pem", id="dot-segment"),
    pytest.param(f"https://{HOST}//SimpleNotificationService-{HEX}.pem", id="double-slash"),
    pytest.param(f"https://{HOST}/a{_PATH}", id="subdirectory"),
    pytest.param(f"https://{HOST}{_PATH}/", id="trailing-slash"),
    pytest.param(f"https://{HOST}\\{_PATH[1:]}", id="backslash-path"),
    pytest.param(f"https://{HOST}\\@evil.example{_PATH}", id="backslash-userinfo"),
    pytest.param(f"https://{HOST};x{_PATH}", id="semicolon"),
    pytest.param(f"https://SNS.us-east-1.amazonaws.com{_PATH}", id="upper-host"),
    pytest.param(f"https://sns.US-EAST-1.amazonaws.com{_PATH}", id="upper-region"),
    pytest.param(f"https://sns.us-east-1.AMAZONAWS.COM{_PATH}", id="upper-domain"),
    pytest.param(f"https://sns.us-east-1.\u0430mazonaws.com{_PATH}", id="cyrillic-a"),
    pytest.param(f"https://sns.us-east-1.amazonaws\uff0ecom{_PATH}", id="fullwidth-dot"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com\u3002{_PATH}", id="ideographic-dot"),
    pytest.param(f"https://{HOST}/SimpleNotificationService-{HEX.upper()}.pem", id="upper-hex"),
    pytest.param(f"https://{HOST}/SimpleNotificationService-.pem", id="empty-hex"),
    pytest.param(f"https://{HOST}/SimpleNotificationService-{'a' * 65}.pem", id="65-hex"),
    pytest.param(f"https://{HOST}/SimpleNotificationService-xyz.pem", id="non-hex"),
    pytest.param(f"https://{HOST}/SimpleNotificationService-{HEX}.PEM", id="upper-ext"),
    pytest.param(f"https://{HOST}/SimpleNotificationService-{HEX}.pem.exe", id="double-ext"),
    pytest.param(f"https://{HOST}/SimpleNotificationService-{HEX}.crt", id="other-ext"),
    pytest.param(f"https://{HOST}/simplenotificationservice-{HEX}.pem", id="lower-name"),
    pytest.param(f"https://{HOST}/SimpleNotificationService{HEX}.pem", id="no-dash"),
    pytest.param(f"https://{HOST}/", id="no-file"),
    pytest.param(f"https://{HOST}", id="no-path"),
    pytest.param(f"{CERT_URL}\n", id="trailing-newline"),
    pytest.param(f"{CERT_URL}\r\n", id="trailing-crlf"),
    pytest.param(f"{CERT_URL} ", id="trailing-space"),
    pytest.param(f"{CERT_URL}\x00", id="trailing-nul"),
    pytest.param(f"{CERT_URL}\t", id="trailing-tab"),
    pytest.param(f" {CERT_URL}", id="leading-space"),
    pytest.param(f"\n{CERT_URL}", id="leading-newline"),
    pytest.param(CERT_URL.replace("https://", "https://\x00"), id="nul-in-authority"),
    pytest.param(CERT_URL.replace("Service-", "Service-\n"), id="newline-in-path"),
    pytest.param(CERT_URL.replace("Service-", "Service-\u200b"), id="zero-width-space"),
    pytest.param(f"https://[::1]{_PATH}", id="ipv6"),
    pytest.param(f"https://127.0.0.1{_PATH}", id="ip"),
    pytest.param(f"file://{HOST}{_PATH}", id="file-scheme"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("url", HOSTILE_CERT_URLS)
def test_hostile_certificate_urls_are_refused(url: str) -> None:
    assert policy_reason(certificate_url, url, US_EAST_1) == "bad_cert_url"


@pytest.mark.parametrize(
    ("topic", "url"),
    [
        pytest.param(
            "arn:aws-cn:sns:cn-north-1:123456789012:t",
            f"https://sns.cn-north-1.amazonaws.com{_PATH}",
            id="cn-topic-com-host",
        ),
        pytest.param(
            "arn:aws-cn:sns:cn-north-1:123456789012:t",
            f"https://sns.cn-northwest-1.amazonaws.com.cn{_PATH}",
            id="cn-topic-other-region",
        ),
        pytest.param(
            "arn:aws-us-gov:sns:us-gov-west-1:123456789012:t",
            f"https://sns.us-gov-east-1.amazonaws.com{_PATH}",
            id="gov-topic-other-region",
        ),
        pytest.param(
            "arn:aws-us-gov:sns:us-gov-west-1:123456789012:t",
            f"https://sns.us-east-1.amazonaws.com{_PATH}",
            id="gov-topic-commercial-host",
        ),
    ],
)
def test_certificate_url_pinned_to_topic_partition_and_region(topic: str, url: str) -> None:
    assert policy_reason(certificate_url, url, parse_topic_arn(topic)) == "bad_cert_url"


# --- SubscribeURL -----------------------------------------------------------------------------

VECTOR = vector_fields(SUBSCRIPTION_VECTOR)
V_TOPIC_ARN: str = VECTOR["TopicArn"]
V_TOKEN: str = VECTOR["Token"]
V_TOPIC = parse_topic_arn(V_TOPIC_ARN)
V_URL: str = VECTOR["SubscribeURL"]
V_CANONICAL = (
    "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
    "&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A820710015775%3AMyTestingTopic"
    f"&Token={V_TOKEN}"
)
V_QUERY = V_URL.split("?", 1)[1]


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


_Q = V_QUERY
OTHER_ARN = "arn:aws:sns:us-east-1:820710015775:OtherTopic"

HOSTILE_SUBSCRIBE_URLS = [
    pytest.param(f"https://evil.example/?{_Q}", id="other-host"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com.evil.example/?{_Q}", id="lookalike"),
    pytest.param(f"https://sns.us-west-2.amazonaws.com/?{_Q}", id="other-region"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com.cn/?{_Q}", id="other-partition"),
    pytest.param(f"https://sns.s3.amazonaws.com/?{_Q}", id="s3-bucket"),
    pytest.param(f"http://sns.us-east-1.amazonaws.com/?{_Q}", id="http"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com:443/?{_Q}", id="port"),
    pytest.param(f"https://user@sns.us-east-1.amazonaws.com/?{_Q}", id="userinfo"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com@evil.example/?{_Q}", id="host-userinfo"),
    pytest.param(f"https://SNS.us-east-1.amazonaws.com/?{_Q}", id="upper-host"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com?{_Q}", id="no-slash"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/x?{_Q}", id="other-path"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com//?{_Q}", id="double-slash"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/%3F{_Q}", id="encoded-question"),
    pytest.param("https://sns.us-east-1.amazonaws.com/", id="no-query"),
    pytest.param("https://sns.us-east-1.amazonaws.com/?", id="empty-query"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/?{_Q}#x", id="fragment"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/?{_Q}&x=1", id="extra-param"),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{_Q}&AuthenticateOnUnsubscribe=false",
        id="extra-known-param",
    ),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/?{_Q}&Token={V_TOKEN}", id="dup-token"),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{_Q}&Action=ConfirmSubscription", id="dup-action"
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{_Q}&TopicArn={V_TOPIC_ARN}", id="dup-topic"
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{_Q}&Action=Unsubscribe", id="dup-other-action"
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{_Q.replace('ConfirmSubscription', 'Unsubscribe')}",
        id="other-action",
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{_Q.replace('Action=', 'action=')}",
        id="lower-action-name",
    ),
    pytest.param(
        "https://sns.us-east-1.amazonaws.com/?"
        + _Q.replace("ConfirmSubscription", "confirmsubscription"),
        id="lower-action-value",
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{_Q.replace('Action=ConfirmSubscription&', '')}",
        id="no-action",
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{_Q.replace(V_TOPIC_ARN, OTHER_ARN)}",
        id="other-topic",
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{_Q.replace(f'TopicArn={V_TOPIC_ARN}&', '')}",
        id="no-topic",
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{_Q.replace(V_TOKEN, V_TOKEN[:-1] + 'e')}",
        id="other-token",
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{_Q.replace(V_TOKEN, V_TOKEN + '0')}",
        id="longer-token",
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{_Q.replace(f'&Token={V_TOKEN}', '')}",
        id="no-token",
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{_Q.replace(V_TOKEN, '')}", id="empty-token"
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{_Q.replace('Token=', 'token=')}",
        id="lower-token-name",
    ),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{_Q.replace('&', ';')}", id="semicolon-separator"
    ),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/?{_Q}&", id="trailing-ampersand"),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{_Q.replace('&', '&&', 1)}", id="empty-field"
    ),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/?{_Q}&Action", id="bare-name"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/?{_Q}\n", id="trailing-newline"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/?{_Q} ", id="trailing-space"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/?{_Q}\x00", id="trailing-nul"),
    pytest.param(f" https://sns.us-east-1.amazonaws.com/?{_Q}", id="leading-space"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com/?{_Q}@evil.example", id="at-in-query"),
    pytest.param(f"https://sns.us-east-1.amazonaws.com\\?{_Q}", id="backslash"),
    pytest.param(
        f"https://sns.us-east-1.amazonaws.com/?{_Q}" + "&x=" + "a" * 5000, id="overlong-query"
    ),
]


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
def test_fresh_enough(sent_at: datetime, options: dict[str, timedelta]) -> None:
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
