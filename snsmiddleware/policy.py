"""Pure policy checks, all made before any network I/O: topic, version, URLs, freshness.

This module decides which URLs the rest of the package may ever fetch. It never returns a
URL it was given: it returns one *rebuilt* from parts it validated, so no byte of an
attacker's choosing (userinfo, port, an encoded dot, a trailing newline) can reach the HTTP
client.

Why each rule exists:

* **Topic allowlist.** A valid signature proves AWS sent a message, not that it came from
  *your* topic: anyone can subscribe your URL to their own topic.
* **SigningCertURL pinned to the topic's region.** A suffix check such as
  ``endswith(".amazonaws.com")`` accepts an S3 bucket anyone can create; even the shared
  regex of AWS's own validators once accepted an S3 bucket named ``sns``. We accept exactly
  ``https://sns.<region of the TopicArn>.<partition domain>/SimpleNotificationService-<hex>.pem``.
* **SubscribeURL pinned the same way**, and only ``Action=ConfirmSubscription`` with this
  message's own TopicArn and Token: fetching an unvalidated SubscribeURL is a known SSRF
  (CVE-2019-6715).
* **Freshness.** SNS retries for at most one hour with the original Timestamp; anything older
  (plus a small clock-skew allowance) is a replay, and anything from the future is forged or
  a broken clock.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Final
from urllib.parse import parse_qsl, urlencode

from .errors import ConfigurationError, NotYetValidError, PolicyError, excerpt
from .errors import InsecureConfigurationWarning as InsecureConfigurationWarning  # kept here
from .partitions import PARTITION_DOMAINS as PARTITION_DOMAINS  # kept importable from here
from .partitions import partition, partitions
from .reasons import Reason

log = logging.getLogger(__name__)

#: SNS retries within a hard one-hour span, reusing the original Timestamp.
DEFAULT_MAX_AGE: Final = timedelta(hours=1)
#: Allowance for the difference between AWS's clock and ours.
DEFAULT_CLOCK_SKEW: Final = timedelta(minutes=5)
#: SNS abandons a delivery attempt it has no answer to after 15 s, and retries it. Every
#: bounded wait on a request's path (certificate download, confirmation, de-duplication
#: store, mail) is chosen to fit inside it; tests/test_time_budget.py checks each default.
SNS_ANSWER_DEADLINE: Final = timedelta(seconds=15)
#: How far apart SNS's default HTTP(S) delivery policy spaces its retries (3 of them, 20 s).
SNS_DEFAULT_RETRY_DELAY: Final = timedelta(seconds=20)


def freshness_window(
    max_age: timedelta = DEFAULT_MAX_AGE, clock_skew: timedelta = DEFAULT_CLOCK_SKEW
) -> timedelta:
    """How long copies of one genuine message can keep arriving: ``max_age + 2 × clock_skew``.

    A message is accepted from ``clock_skew`` before its Timestamp (by our clock) until
    ``max_age + clock_skew`` after it, so its first and last accepted deliveries can lie this
    far apart. De-duplication must remember a processed MessageId at least this long, or a
    late redelivery (or a replay) is processed a second time.
    """
    return max_age + 2 * clock_skew


#: The freshness window of the defaults (1 h 10 min): the default de-duplication retention.
DEFAULT_FRESHNESS_WINDOW: Final = freshness_window()

SIGNATURE_VERSIONS: Final = frozenset({"1", "2"})


def accepted_signature_versions(require_signature_v2: bool) -> frozenset[str]:
    """The SignatureVersions accepted with or without ``require_signature_v2`` (which
    refuses SignatureVersion 1, SHA1): the one place that flag is translated."""
    return frozenset({"2"}) if require_signature_v2 else SIGNATURE_VERSIONS


_TOPIC_ARN: Final = re.compile(
    r"arn:(?P<partition>aws(?:-[a-z]+)*):sns:(?P<region>[a-z]{2,4}(?:-[a-z]+)+-\d{1,2})"
    r":(?P<account>\d{12}):(?P<name>[A-Za-z0-9_-]{1,256}(?:\.fifo)?)",
    re.ASCII,
)
# The domain is compared with the topic's partition suffix afterwards; here only its shape.
_DOMAIN: Final = r"(?P<domain>[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63}){1,4})"
_CERT_URL: Final = re.compile(
    r"https://sns\.(?P<region>[a-z0-9-]{1,40})\."
    + _DOMAIN
    + r"/SimpleNotificationService-(?P<digest>[0-9a-f]{1,64})\.pem",
    re.ASCII,
)
# The query is validated separately; here only its characters: printable ASCII without
# space, '#', '@', '\\' and without the characters a browser would "fix up".
_SUBSCRIBE_URL: Final = re.compile(
    r"https://sns\.(?P<region>[a-z0-9-]{1,40})\."
    + _DOMAIN
    + r"/\?(?P<query>[A-Za-z0-9\-._~%:=&+/]{1,4096})",
    re.ASCII,
)


_ALLOWED_CACHE_ENTRIES: Final = 1024


def _has_glob(text: str) -> bool:
    return any(char in text for char in "*?[")


@dataclass(frozen=True, slots=True)
class TopicArn:
    """The parts of a validated SNS TopicArn."""

    partition: str
    region: str
    account: str
    name: str

    @property
    def domain(self) -> str:
        """DNS domain of this partition's SNS endpoints (botocore's ``dnsSuffix``)."""
        found = partition(self.partition)
        assert found is not None, "parse_topic_arn admits only known partitions"
        return found.dns_suffix

    @property
    def known_region(self) -> bool:
        """True when the partition data lists this region (False: perhaps newly launched)."""
        found = partition(self.partition)
        return found is not None and found.knows(self.region)

    @property
    def sns_host(self) -> str:
        """The one host allowed to serve this topic's certificates and confirmations."""
        return f"sns.{self.region}.{self.domain}"


def parse_topic_arn(value: str) -> TopicArn:
    """Split an SNS TopicArn into its parts, refusing anything not shaped like one."""
    match = _TOPIC_ARN.fullmatch(value)
    if match is None:
        raise PolicyError("TopicArn is not an SNS topic ARN", reason=Reason.BAD_TOPIC_ARN)
    found = partition(match["partition"])
    if found is None:
        raise PolicyError(
            f"AWS partition {excerpt(match['partition'], 32)} is not supported",
            reason=Reason.BAD_TOPIC_ARN,
        )
    region = match["region"]
    if not (found.knows(region) or found.has_region_shape(region)):
        raise PolicyError(
            f"{excerpt(region, 32)} is not a region of AWS partition {found.id}",
            reason=Reason.BAD_TOPIC_ARN,
        )
    return TopicArn(found.id, region, match["account"], match["name"])


class TopicAllowlist:
    """The TopicArns this endpoint accepts: exact ARNs or explicit per-segment patterns.

    A topic's region must exist: listed in the partition data (botocore's), or named
    literally by an entry (a region newer than the installed botocore that the operator
    vouches for). So a region wildcard cannot be used to invent certificate hosts.

    A pattern is an ARN whose segments may use ``*``/``?`` globs, for example
    ``arn:aws:sns:*:123456789012:budget-*``; a glob never crosses a ``:``. The single
    pattern ``"*"`` accepts every topic and warns: a signature alone does not make a
    message yours.

    :param topics: at least one ARN or pattern; an empty allowlist is a configuration error.
    """

    def __init__(self, topics: Iterable[str]) -> None:
        if isinstance(topics, str):
            raise ConfigurationError("topics must be a list of TopicArns, not one string")
        self._exact: set[str] = set()
        self._patterns: list[tuple[str, ...]] = []
        self._allowed_cache: dict[str, TopicArn] = {}
        # Regions an entry names literally: the operator vouches for them even when the
        # installed botocore does not list them yet (a region launched after its release).
        self._literal_regions: set[str] = set()
        self.accept_all = False
        entries = list(topics)
        partitions()  # read the partition data now, at start-up, never during a request
        if not all(isinstance(topic, str) for topic in entries):
            raise ConfigurationError("every entry of topics must be a TopicArn string")
        self.entries = tuple(topic.strip() for topic in entries)
        for topic in self.entries:
            self._add(topic)
        if not (self._exact or self._patterns or self.accept_all):
            raise ConfigurationError(
                "topics is empty: give the TopicArns this endpoint accepts "
                '(a wildcard must be spelled out, e.g. "arn:aws:sns:*:123456789012:*")'
            )
        if self.accept_all:
            self._warn('topics=["*"] accepts messages from any SNS topic')
        elif any(_has_glob(pattern[4]) for pattern in self._patterns):
            self._warn("a topics pattern with a wildcard account accepts any AWS account's topics")

    @staticmethod
    def _warn(what: str) -> None:
        warnings.warn(
            f"{what}, including topics that other AWS accounts subscribe to your endpoint",
            InsecureConfigurationWarning,
            stacklevel=4,
        )

    def _add(self, topic: str) -> None:
        if topic == "*":
            self.accept_all = True
            return
        if not _has_glob(topic):
            try:
                parsed = parse_topic_arn(topic)
            except PolicyError as exc:
                raise ConfigurationError(f"not an SNS TopicArn: {topic!r} ({exc.detail})") from None
            self._exact.add(topic)
            self._add_literal_region(parsed.partition, parsed.region)
            return
        segments = tuple(topic.split(":"))
        if len(segments) != 6 or segments[0] != "arn" or segments[2] != "sns":
            raise ConfigurationError(
                f"topic pattern {topic!r} must look like arn:<partition>:sns:<region>:"
                "<account>:<name>, with * or ? inside segments"
            )
        self._patterns.append(segments)
        if not _has_glob(segments[3]):
            self._add_literal_region(segments[1], segments[3])

    def _add_literal_region(self, partition_id: str, region: str) -> None:
        self._literal_regions.add(region)
        found = None if _has_glob(partition_id) else partition(partition_id)
        if found is not None and not found.knows(region):
            log.info(
                "region %s is not in the installed botocore's partition data (new?); "
                "accepted because topics names it",
                region,
            )

    def __str__(self) -> str:
        return ", ".join(self.entries)

    def __contains__(self, topic_arn: object) -> bool:
        if not isinstance(topic_arn, str):
            return False
        if self.accept_all or topic_arn in self._exact:
            return True
        segments = topic_arn.split(":")
        return any(
            len(segments) == len(pattern)
            and all(fnmatchcase(seg, pat) for seg, pat in zip(segments, pattern, strict=True))
            for pattern in self._patterns
        )

    def check(self, topic_arn: str) -> TopicArn:
        """Return the parsed ARN if it is allowed, else raise 403 ``topic_not_allowed``."""
        parsed = self._allowed_cache.get(topic_arn)
        if parsed is not None:
            return parsed
        if topic_arn not in self:
            raise PolicyError(
                "TopicArn is not on this endpoint's allowlist", reason=Reason.TOPIC_NOT_ALLOWED
            )
        parsed = parse_topic_arn(topic_arn)
        if not parsed.known_region and parsed.region not in self._literal_regions:
            # A region wildcard must not let a forger invent certificate hosts (each one a
            # download): only regions the partition data lists, or that topics names.
            log.warning(
                "refused TopicArn region %s: unknown to the installed botocore; if AWS has "
                "launched it, upgrade botocore or name the region in topics",
                excerpt(parsed.region, 32),
            )
            raise PolicyError(
                f"{excerpt(parsed.region, 32)} is not a known region of AWS partition "
                f"{parsed.partition}",
                reason=Reason.BAD_TOPIC_ARN,
            )
        # Only allowed topics are cached, so senders cannot grow it; the bound covers
        # patterns that match many topics.
        if len(self._allowed_cache) >= _ALLOWED_CACHE_ENTRIES:
            self._allowed_cache.clear()
        self._allowed_cache[topic_arn] = parsed
        return parsed


def check_signature_version(version: str, allowed: frozenset[str]) -> None:
    """Refuse unknown or disallowed SignatureVersions (for example "1" when v2 is required)."""
    if version not in allowed:
        raise PolicyError(
            f"SignatureVersion must be one of {', '.join(sorted(allowed))}",
            reason=Reason.SIGNATURE_VERSION_NOT_ALLOWED,
        )


def _check_host(region: str, domain: str, topic: TopicArn, what: str, reason: str) -> None:
    if region != topic.region or domain != topic.domain:
        raise PolicyError(
            f"{what} is not on the SNS host of the topic's region ({topic.sns_host})",
            reason=reason,
        )


@functools.lru_cache(maxsize=256)  # AWS uses a handful of certificate URLs at a time
def certificate_url(signing_cert_url: str, topic: TopicArn) -> str:
    """Validate a SigningCertURL for ``topic`` and return the URL to fetch, rebuilt.

    Accepts only ``https://sns.<topic region>.<partition domain>/SimpleNotificationService-
    <hex>.pem``: no userinfo, port, query, fragment, percent-encoding or control characters.
    """
    match = _CERT_URL.fullmatch(signing_cert_url)
    if match is None:
        raise PolicyError(
            "SigningCertURL is not an SNS certificate URL", reason=Reason.BAD_CERT_URL
        )
    _check_host(match["region"], match["domain"], topic, "SigningCertURL", Reason.BAD_CERT_URL)
    return f"https://{topic.sns_host}/SimpleNotificationService-{match['digest']}.pem"


def _confirmation_query(query: str, topic_arn: str, token: str) -> str:
    """Check a SubscribeURL query and return it rebuilt from the validated values."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise PolicyError(
            "SubscribeURL has a malformed query", reason=Reason.BAD_SUBSCRIBE_URL
        ) from None
    params = dict(pairs)
    if len(params) != len(pairs) or params != {
        "Action": "ConfirmSubscription",
        "TopicArn": topic_arn,
        "Token": token,
    }:
        raise PolicyError(
            "SubscribeURL must confirm this message's own topic and token, and nothing else",
            reason=Reason.BAD_SUBSCRIBE_URL,
        )
    return urlencode([("Action", "ConfirmSubscription"), ("TopicArn", topic_arn), ("Token", token)])


def subscribe_url(url: str, topic: TopicArn, topic_arn: str, token: str) -> str:
    """Validate a SubscribeURL for this message and return the URL to fetch, rebuilt.

    The URL must be the topic region's SNS host with exactly the query parameters
    ``Action=ConfirmSubscription``, ``TopicArn`` (this message's) and ``Token`` (this
    message's), each once.
    """
    match = _SUBSCRIBE_URL.fullmatch(url)
    if match is None:
        raise PolicyError(
            "SubscribeURL is not an SNS confirmation URL", reason=Reason.BAD_SUBSCRIBE_URL
        )
    _check_host(match["region"], match["domain"], topic, "SubscribeURL", Reason.BAD_SUBSCRIBE_URL)
    return f"https://{topic.sns_host}/?{_confirmation_query(match['query'], topic_arn, token)}"


_EMULATOR_BASE: Final = re.compile(
    r"(?P<scheme>https?)://(?P<host>[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:]{2,39}\])"
    r"(?::(?P<port>[0-9]{1,5}))?/?",
    re.ASCII,
)
_EMULATOR_CERT_PATH: Final = re.compile(
    r"(?:/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}){1,8}\.pem", re.ASCII
)
_QUERY_CHARS: Final = re.compile(r"[A-Za-z0-9\-._~%:=&+/]{1,4096}", re.ASCII)


def _valid_host_and_port(host: str, port: str | None) -> bool:
    """The grammar admits ``[:41:]`` and port 99999: check what it cannot."""
    if port is not None and not 0 < int(port) < 65536:
        return False
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
    return True


class EmulatorEndpoint:
    """Emulator mode: trust certificate and confirmation URLs under one base URL only.

    An SNS emulator (LocalStack, moto) signs with its own throwaway certificate served from
    its own address. In emulator mode the SigningCertURL and SubscribeURL must start with
    exactly this base (scheme, host and port as given) and are rebuilt from it; the
    certificate-name pin is skipped; every other check stays on. Never for production.

    :param base: for example ``"http://127.0.0.1:4566"``; no path, query or userinfo.
    """

    def __init__(self, base: str) -> None:
        match = _EMULATOR_BASE.fullmatch(base)
        if match is None or not _valid_host_and_port(match["host"], match["port"]):
            raise ConfigurationError(
                f"emulator must be a base URL like http://127.0.0.1:4566, not {base!r}"
            )
        port = f":{match['port']}" if match["port"] else ""
        self.base = f"{match['scheme']}://{match['host']}{port}"

    def __repr__(self) -> str:
        return f"EmulatorEndpoint({self.base!r})"

    def _path_after_base(self, url: str, what: str, reason: str) -> str:
        if not url.startswith(self.base + "/"):
            raise PolicyError(f"{what} is not under the emulator base {self.base}", reason=reason)
        return url[len(self.base) :]

    def certificate_url(self, signing_cert_url: str) -> str:
        """Validate a SigningCertURL under the base; return it rebuilt."""
        path = self._path_after_base(signing_cert_url, "SigningCertURL", Reason.BAD_CERT_URL)
        if _EMULATOR_CERT_PATH.fullmatch(path) is None or "/.." in path or "/./" in path:
            raise PolicyError("SigningCertURL has an unexpected path", reason=Reason.BAD_CERT_URL)
        return self.base + path

    def subscribe_url(self, url: str, topic_arn: str, token: str) -> str:
        """Validate a SubscribeURL under the base; return it rebuilt."""
        rest = self._path_after_base(url, "SubscribeURL", Reason.BAD_SUBSCRIBE_URL)
        if not rest.startswith("/?") or _QUERY_CHARS.fullmatch(rest[2:]) is None:
            raise PolicyError(
                "SubscribeURL is not a confirmation URL", reason=Reason.BAD_SUBSCRIBE_URL
            )
        return f"{self.base}/?{_confirmation_query(rest[2:], topic_arn, token)}"


def check_freshness(
    sent_at: datetime,
    now: datetime,
    *,
    max_age: timedelta = DEFAULT_MAX_AGE,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> None:
    """Refuse messages older than ``max_age`` (+ skew) for good (403: a replay), and ask for a
    retry (503) of messages dated in the future beyond the skew: our clock may be slow."""
    if now.tzinfo is None:
        raise ConfigurationError("the clock must return an aware datetime")
    age = now - sent_at
    if age > max_age + clock_skew:
        raise PolicyError(
            "Timestamp is older than the freshness window (a replay?)", reason=Reason.STALE_MESSAGE
        )
    if -age > clock_skew:
        raise NotYetValidError(
            "Timestamp is in the future (is this host's clock slow?)", reason=Reason.FUTURE_MESSAGE
        )
