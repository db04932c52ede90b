"""SnsVerifier: from raw body bytes to a verified SNS message, with no WSGI involved.

The order of checks is the security design: everything cheap and local (parse, headers,
topic allowlist, signature version, URL pinning, freshness) runs before the only network
I/O (the certificate download), so a hostile request can make us fetch nothing but a
certificate URL on the SNS host of an allowed topic's region, and a message from a topic that
is not ours never costs a download. Usable on its own from Lambda, Django views or a queue
consumer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, Unpack

from .certs import CertificateFetcher, CertificateStore
from .errors import ConfigurationError, MessageFormatError
from .message import (
    SnsMessage,
    SubscriptionConfirmation,
    check_headers,
    check_not_raw,
    parse_message,
    sns_headers,
)
from .policy import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_MAX_AGE,
    SIGNATURE_VERSIONS,
    EmulatorEndpoint,
    TopicAllowlist,
    TopicArn,
    accepted_signature_versions,
    certificate_url,
    check_freshness,
    check_signature_version,
    freshness_window,
    subscribe_url,
)
from .reasons import Reason
from .signing import verify_signature

Clock = Callable[[], datetime]

#: (TopicArn, SigningCertURL) pairs whose checks passed, remembered per verifier.
_LOCATION_ENTRIES = 256


def utc_now() -> datetime:
    """The default clock: the current aware UTC time."""
    return datetime.now(UTC)


class VerifierOptions(TypedDict, total=False):
    """The verification options :class:`~snsmiddleware.SnsMiddleware` accepts and forwards
    to :class:`SnsVerifier` (see :func:`build_verifier`).

    They are declared here once; their defaults are :class:`SnsVerifier`'s own (an option
    that is not given is not passed). ``require_signature_v2`` stands for
    ``signature_versions`` (:func:`~snsmiddleware.policy.accepted_signature_versions`).
    ``None`` for ``topics``, ``fetch_certificate`` or ``emulator`` means "not given".
    """

    topics: Iterable[str] | None
    fetch_certificate: CertificateFetcher | None
    clock: Clock
    require_signature_v2: bool
    max_age: timedelta
    clock_skew: timedelta
    emulator: str | None


#: The names of :class:`VerifierOptions`, in their documented order.
VERIFIER_OPTIONS: tuple[str, ...] = tuple(VerifierOptions.__annotations__)


def given_verifier_options(options: VerifierOptions) -> dict[str, Any]:
    """The options that were really given: unknown names are a :class:`TypeError` (as for
    any keyword argument), and ``None`` (or ``require_signature_v2=False``) is "not given"."""
    unknown = sorted(set(options) - set(VERIFIER_OPTIONS))
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
    given: dict[str, Any] = dict(options)
    return {
        name: given[name]
        for name in VERIFIER_OPTIONS
        if given.get(name) is not None and not (name == "require_signature_v2" and not given[name])
    }


def build_verifier(**options: Unpack[VerifierOptions]) -> SnsVerifier:
    """An :class:`SnsVerifier` from :class:`VerifierOptions`; what is not given keeps the
    verifier's default."""
    given = given_verifier_options(options)
    if "topics" not in given:
        raise ConfigurationError("topics is required: the TopicArns this endpoint accepts")
    require_v2 = given.pop("require_signature_v2", False)
    return SnsVerifier(signature_versions=accepted_signature_versions(require_v2), **given)


class SnsVerifier:
    """Verify SNS HTTP(S) deliveries: structure, policy, certificate and signature.

    :param topics: TopicArns (or explicit patterns) to accept; required and non-empty.
    :param signature_versions: accepted SignatureVersions; ``("2",)`` refuses SHA1.
    :param max_age: how old a Timestamp may be (SNS retries within one hour).
    :param clock_skew: allowance for clock differences, both ways.
    :param fetch_certificate: ``url -> bytes`` (or ``str`` PEM text) replacing the HTTPS
        download.
    :param certificates: a prebuilt :class:`CertificateStore` (to share one cache); give this
        or ``fetch_certificate``, not both.
    :param clock: returns the current aware datetime; drives freshness and certificate validity.
    :param emulator: base URL of an SNS emulator (``"http://127.0.0.1:4566"``) whose
        certificate and confirmation URLs to trust instead of AWS's; see
        :class:`~snsmiddleware.policy.EmulatorEndpoint`. Never for production.

    Example::

        verifier = SnsVerifier(topics=["arn:aws:sns:us-east-1:123456789012:alerts"])
        message = verifier.verify(body, headers)   # raises an SnsError subclass
    """

    def __init__(
        self,
        *,
        topics: Iterable[str],
        signature_versions: Iterable[str] = SIGNATURE_VERSIONS,
        max_age: timedelta = DEFAULT_MAX_AGE,
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
        fetch_certificate: CertificateFetcher | None = None,
        certificates: CertificateStore | None = None,
        clock: Clock = utc_now,
        emulator: str | None = None,
    ) -> None:
        self._locations: dict[tuple[str, str], tuple[TopicArn, str]] = {}
        self.emulator = EmulatorEndpoint(emulator) if emulator is not None else None
        self.topics = TopicAllowlist(topics)
        self.signature_versions = frozenset(signature_versions)
        if not self.signature_versions or not self.signature_versions <= SIGNATURE_VERSIONS:
            raise ConfigurationError('signature_versions must be a non-empty subset of {"1", "2"}')
        if max_age <= timedelta(0) or clock_skew < timedelta(0):
            raise ConfigurationError("max_age must be positive and clock_skew not negative")
        if certificates is not None and fetch_certificate is not None:
            raise ConfigurationError("give either certificates or fetch_certificate, not both")
        self._max_age = max_age
        self.clock_skew = clock_skew
        self.certificates = (
            certificates
            if certificates is not None
            else CertificateStore(fetch_certificate, check_names=self.emulator is None)
        )
        self.clock = clock

    @property
    def topics(self) -> TopicAllowlist:
        """The TopicArns this verifier accepts."""
        return self._topics

    @topics.setter
    def topics(self, topics: TopicAllowlist) -> None:
        self._topics = topics
        self._locations = {}  # validated against the previous allowlist

    @property
    def emulator(self) -> EmulatorEndpoint | None:
        """The emulator whose URLs are trusted instead of AWS's, if any."""
        return self._emulator

    @emulator.setter
    def emulator(self, emulator: EmulatorEndpoint | None) -> None:
        self._emulator = emulator
        self._locations = {}  # validated for the previous endpoint

    @property
    def max_age(self) -> timedelta:
        """How old a Timestamp may be."""
        return self._max_age

    @max_age.setter
    def max_age(self, max_age: timedelta) -> None:
        self._max_age = max_age
        self._oldest = max_age + self._clock_skew

    @property
    def clock_skew(self) -> timedelta:
        """The allowance for clock differences, both ways."""
        return self._clock_skew

    @clock_skew.setter
    def clock_skew(self, clock_skew: timedelta) -> None:
        self._clock_skew = clock_skew
        # The ages a fresh message can have, for the in-line check of verify_message.
        self._youngest = -clock_skew
        self._oldest = self._max_age + clock_skew

    @property
    def freshness_window(self) -> timedelta:
        """How long a genuine message can be redelivered; de-duplication must cover it."""
        return freshness_window(self.max_age, self.clock_skew)

    def verify(self, body: bytes, headers: Mapping[str, Any] | None = None) -> SnsMessage:
        """Parse and verify one delivery; return the message or raise an ``SnsError``.

        :param headers: the request's headers, any mapping, names in any case (Django's
            ``request.headers``, a Lambda event's ``headers``). When given, raw delivery is
            refused and every ``x-amz-sns-*`` header present must match the body; absent
            ones are fine (SNS does not sign them).
        """
        found = sns_headers(headers) if headers is not None else None
        if found is not None:
            check_not_raw(found)
        message = parse_message(body)
        if found is not None:
            check_headers(message, found)
        return self.verify_message(message)

    def verify_lambda_record(self, record: Mapping[str, Any]) -> SnsMessage:
        """Verify one record of a Lambda event from an SNS trigger; return its message.

        ``record`` is ``event["Records"][i]`` (``{"EventSource": "aws:sns", "Sns": {...}}``)
        or its ``Sns`` object. Lambda's spelling (``SigningCertUrl``, ``UnsubscribeUrl``,
        ``"Subject": null``) is accepted; everything else is checked exactly as for an
        HTTP(S) delivery (types, required fields, topic, certificate, signature, freshness:
        verify as the record arrives, or pass a ``max_age`` covering your retries). For an
        SQS record whose body carries an SNS envelope, use :meth:`verify` on the body.

        Example::

            def handler(event, context):
                for record in event["Records"]:
                    message = verifier.verify_lambda_record(record)
        """
        envelope: Any = record
        if isinstance(record, Mapping) and "Sns" in record:
            if record.get("EventSource", "aws:sns") != "aws:sns":
                raise MessageFormatError(
                    "the record's EventSource is not aws:sns", reason=Reason.BAD_FIELD
                )
            envelope = record["Sns"]
        if not isinstance(envelope, Mapping) or "Type" not in envelope:
            raise MessageFormatError(
                "not an SNS record or envelope (for an SQS record, verify its body)",
                reason=Reason.BAD_FIELD,
            )
        try:
            # Through the same strict parser as an HTTP body: a dict has no duplicate keys,
            # and every type is checked there. ASCII escapes keep lone surrogates visible.
            body = json.dumps(dict(envelope), allow_nan=False).encode("ascii")
        except (TypeError, ValueError, RecursionError):
            raise MessageFormatError(
                "the record holds a value that is not JSON", reason=Reason.BAD_FIELD
            ) from None
        return self.verify(body)

    def verify_message(self, message: SnsMessage) -> SnsMessage:
        """Run the policy, certificate and signature checks on a parsed message."""
        key = (message.topic_arn, message.signing_cert_url)
        location = self._locations.get(key)
        if location is None:
            topic = self.topics.check(message.topic_arn)
            check_signature_version(message.signature_version, self.signature_versions)
            location = self._remember_location(key, topic, message.signing_cert_url)
        elif message.signature_version not in self.signature_versions:
            check_signature_version(message.signature_version, self.signature_versions)
        topic, cert_url = location
        if isinstance(message, SubscriptionConfirmation):
            self.confirmation_url(message)
        now = self.clock()
        # In line for a fresh message; check_freshness says what is wrong with the others.
        if now.tzinfo is None or not self._youngest <= now - message.sent_at <= self._oldest:
            check_freshness(message.sent_at, now, max_age=self.max_age, clock_skew=self.clock_skew)
        certificate = self.certificates.get(cert_url, topic)
        if not certificate.not_before <= now <= certificate.not_after:
            certificate.check_validity(now)
        verify_signature(certificate.public_key, message)
        return message

    def _remember_location(
        self, key: tuple[str, str], topic: TopicArn, signing_cert_url: str
    ) -> tuple[TopicArn, str]:
        """Validate a SigningCertURL for an allowed topic; remember the pair's outcome.

        A pair that passed once passes again (the allowlist and the URL rules are fixed), so
        later messages skip both checks. Only pairs that passed are kept, and at most
        :data:`_LOCATION_ENTRIES` of them (a pattern can allow many topics).
        """
        if self.emulator is not None:
            cert_url = self.emulator.certificate_url(signing_cert_url)
        else:
            cert_url = certificate_url(signing_cert_url, topic)
        if len(self._locations) >= _LOCATION_ENTRIES:
            self._locations.clear()
        location = self._locations[key] = (topic, cert_url)
        return location

    def confirmation_url(self, message: SubscriptionConfirmation) -> str:
        """The validated, rebuilt SubscribeURL of ``message`` (the only URL ever GET)."""
        if self.emulator is not None:
            return self.emulator.subscribe_url(
                message.subscribe_url, message.topic_arn, message.token
            )
        topic = self.topics.check(message.topic_arn)
        return subscribe_url(message.subscribe_url, topic, message.topic_arn, message.token)
