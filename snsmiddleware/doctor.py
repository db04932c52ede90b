"""``snsmiddleware doctor``: audit a topic's wiring to an endpoint and explain every finding.

One line per check, ``ok`` / ``warn`` / ``FAIL``, each warning and failure followed by what
to do (an exact command where there is one):

* the topic exists, and signs with SignatureVersion 2 (SHA256);
* its policy lets ``budgets.amazonaws.com`` publish (a FAIL otherwise: no alert can arrive),
  and ``costalerts.amazonaws.com`` (a warning: only Cost Anomaly Detection needs it);
* the endpoint's subscription exists, is confirmed, has raw message delivery off (raw
  bodies carry no signature: every one would be refused), was confirmed with authentication
  (otherwise anyone who sees an UnsubscribeURL can unsubscribe it), and a delivery policy
  that retries;
* with ``--endpoint``, the endpoint itself, from the outside in.

**What the endpoint probe proves without AWS's signing key.** It POSTs a well-shaped
Notification of the audited topic, fresh, with the topic's SignatureVersion, a SigningCertURL
on the topic's real SNS host (or under the emulator) and a signature that cannot be valid.
A snsmiddleware endpoint checks the envelope, the topic allowlist, the signature version,
the URL pin and the clock before it fetches the certificate and finds the signature wrong,
so a ``403`` with ``X-SNS-Reason: bad_signature`` (or ``certificate_not_found``: AWS has no
certificate of that name) proves the endpoint is reachable, is snsmiddleware, accepts this
topic and this version, agrees on the time, reached AWS for the certificate, and refuses a
forgery. Any other answer is explained: ``topic_not_allowed``, a clock difference, a
certificate host it cannot reach, a redirect (SNS counts a 3xx as delivered: the alert would
be lost), an answer without ``X-SNS-Reason`` (something else is in front), and above all a
2xx (the endpoint accepts forgeries). With ``--dev-ca`` a Budgets alert signed by that
development CA is sent as well: a ``serve --dev`` server must accept it (the whole pipeline,
mail included); a server reachable from elsewhere must never.

Redirects are never followed, every request is bounded in time, and nothing the endpoint
answers is printed unescaped. boto3 is imported only when :func:`run_doctor` runs.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal, TextIO
from urllib.parse import urlsplit

from ._version import __version__
from .aws_wiring import (
    PENDING,
    aws_clients,
    error_code,
    explain_aws_error,
    is_true,
    subscriptions_for,
    what_to_do,
)
from .errors import ConfigurationError, SnsError, TopicPolicyError
from .policy import TopicArn, parse_topic_arn
from .reasons import Reason
from .signer import SignedMessage, TestCA, format_timestamp
from .terminal import terminal_safe, without_password
from .topic_policy import (
    BUDGETS_PRINCIPAL,
    COST_ANOMALY_PRINCIPAL,
    load_policy,
    publish_verdict,
    publisher_statement,
)
from .verifier import utc_now

Status = Literal["ok", "warn", "fail"]
_MARKS: Final = {"ok": "[ok]  ", "warn": "[warn]", "fail": "[FAIL]"}
#: SNS waits 15 s for an answer; the probe waits as long (and 5 s for the connection).
PROBE_TIMEOUT: Final = (5.0, 15.0)
#: An answer slower than this is near SNS's limit: a busy moment and it times out.
SLOW_ANSWER_SECONDS: Final = 10.0
#: Bytes of an answer body read (and shown, escaped): enough for our one-line answers.
ANSWER_EXCERPT_BYTES: Final = 2048
#: Where LocalStack serves the certificate it signs with (a fixed path in every version 3-4).
EMULATOR_CERTIFICATE_PATH: Final = (
    "/_aws/sns/SimpleNotificationService-6c6f63616c737461636b69736e696365.pem"
)
PROBE_SUBJECT: Final = "snsmiddleware doctor probe (its signature is wrong on purpose)"
#: Refusals that only come after every check before the certificate passed.
VERIFYING_REASONS: Final = frozenset(
    {
        Reason.BAD_SIGNATURE,
        Reason.CERTIFICATE_NOT_FOUND,
        Reason.CERTIFICATE_NAME_MISMATCH,
        Reason.BAD_CERTIFICATE,
        Reason.CERTIFICATE_EXPIRED,
        Reason.CERTIFICATE_TOO_LARGE,
    }
)
_ENVELOPE_REASONS: Final = frozenset(
    {
        Reason.INVALID_JSON,
        Reason.DUPLICATE_KEY,
        Reason.BAD_ENCODING,
        Reason.BAD_FIELD,
        Reason.MISSING_FIELD,
        Reason.UNKNOWN_TYPE,
        Reason.BAD_TIMESTAMP,
        Reason.HEADER_MISMATCH,
        Reason.RAW_DELIVERY,
        Reason.BAD_CONTENT_LENGTH,
        Reason.BODY_INCOMPLETE,
        Reason.LENGTH_REQUIRED,
    }
)


@dataclass(frozen=True)
class Check:
    """One finding: its verdict, what was checked, what was found, and what to do."""

    status: Status
    title: str
    detail: str
    fix: str = ""

    def lines(self) -> str:
        text = f"{_MARKS[self.status]} {self.title}: {self.detail}\n"
        if self.fix:
            text += f"       fix: {self.fix}\n"
        return text


@dataclass(frozen=True)
class DoctorOptions:
    """What ``doctor`` audits; :func:`doctor_options` builds it from checked arguments."""

    topic: TopicArn
    topic_arn: str
    endpoint: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    dev_ca: str | None = None

    @property
    def aws_region(self) -> str:
        return self.region or self.topic.region

    def cli_suffix(self) -> str:
        """The ``--region``/``--endpoint-url`` an ``aws`` command needs to reach the same
        place as this run."""
        suffix = f" --region {self.aws_region}"
        if self.endpoint_url:
            suffix += f" --endpoint-url {self.endpoint_url}"
        return suffix


def _check_url(value: str, flag: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigurationError(f"{flag} must be an http:// or https:// URL, not {value!r}")


def doctor_options(
    topic_arn: str,
    *,
    endpoint: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    dev_ca: str | None = None,
) -> DoctorOptions:
    """Check the arguments before anything is asked of AWS."""
    try:
        topic = parse_topic_arn(topic_arn)
    except SnsError as exc:
        raise ConfigurationError(f"--topic {terminal_safe(topic_arn)!r}: {exc}") from None
    if endpoint is not None:
        _check_url(endpoint, "--endpoint")
    if endpoint_url is not None:
        _check_url(endpoint_url, "--endpoint-url")
    return DoctorOptions(topic, topic_arn, endpoint, region, endpoint_url, dev_ca)


# --- the topic --------------------------------------------------------------------------


def _aws_failure(title: str, exc: BaseException, permission: str) -> Check:
    fix = what_to_do(exc, permission, "examples/doctor-iam-policy.json")
    return Check("fail", title, f"could not ask AWS: {explain_aws_error(exc)}", fix)


def check_topic(sns: Any, options: DoctorOptions) -> tuple[Check, dict[str, str] | None]:
    """The topic exists (and can be read); returns its attributes for the next checks."""
    arn = terminal_safe(options.topic_arn)
    try:
        attributes = sns.get_topic_attributes(TopicArn=options.topic_arn)["Attributes"]
    except Exception as exc:  # noqa: BLE001 - every failure is a finding, none a traceback
        if error_code(exc) == "NotFound":
            return (
                Check(
                    "fail",
                    "topic",
                    f"{arn} does not exist (region {options.aws_region}, account "
                    f"{options.topic.account})",
                    "check the ARN, or create and wire it: snsmiddleware connect --budget "
                    f"NAME --endpoint URL --topic {arn}",
                ),
                None,
            )
        return _aws_failure("topic", exc, "sns:GetTopicAttributes"), None
    confirmed = attributes.get("SubscriptionsConfirmed", "?")
    pending = attributes.get("SubscriptionsPending", "?")
    return (
        Check(
            "ok",
            "topic",
            f"{arn} exists ({confirmed} confirmed, {pending} pending subscriptions)",
        ),
        attributes,
    )


def check_signature_version(attributes: dict[str, str], options: DoctorOptions) -> Check:
    version = str(attributes.get("SignatureVersion") or "1")  # absent: SNS signs with 1
    if version == "2":
        return Check("ok", "signature version", "SignatureVersion 2 (SHA256)")
    return Check(
        "warn",
        "signature version",
        f"SignatureVersion {terminal_safe(version)} (SHA1, deprecated); the topic should "
        "sign with SHA256",
        f"aws sns set-topic-attributes --topic-arn {options.topic_arn} --attribute-name "
        f"SignatureVersion --attribute-value 2{options.cli_suffix()}",
    )


def check_policy(attributes: dict[str, str], options: DoctorOptions) -> list[Check]:
    """May Budgets publish (FAIL if not)? May Cost Anomaly Detection (a warning if not)?"""
    try:
        policy = load_policy(attributes.get("Policy"))
    except TopicPolicyError as exc:
        return [Check("fail", "topic policy", str(exc), "fix the Policy attribute's JSON")]
    checks = []
    for service in (BUDGETS_PRINCIPAL, COST_ANOMALY_PRINCIPAL):
        verdict = publish_verdict(policy, service, options.topic_arn)
        status: Status = verdict.status
        detail = verdict.detail
        fix = ""
        if verdict.status == "fail":
            statement = json.dumps(publisher_statement(service, options.topic_arn))
            fix = (
                "snsmiddleware connect --budget NAME --endpoint URL --topic ARN adds it; "
                f"or add this statement to the topic policy: {statement}"
            )
            if service == COST_ANOMALY_PRINCIPAL:
                status = "warn"
                detail += "; Cost Anomaly Detection alerts cannot arrive (fine if you use none)"
        elif verdict.status == "warn":
            fix = "review the topic policy (aws sns get-topic-attributes)"
        checks.append(Check(status, f"publish by {service}", terminal_safe(detail), fix))
    return checks


# --- the subscription ---------------------------------------------------------------------


def _delivery_policy(attributes: dict[str, Any]) -> Check:
    text = attributes.get("EffectiveDeliveryPolicy")
    try:
        policy = json.loads(text) if text else None
    except ValueError:
        policy = None
    retry = policy.get("healthyRetryPolicy") if isinstance(policy, dict) else None
    if not isinstance(retry, dict):
        return Check(
            "ok",
            "delivery policy",
            "not reported (SNS's default for HTTP(S): 3 retries, 20 s apart)",
        )
    retries = retry.get("numRetries", 3)
    low, high = retry.get("minDelayTarget", 20), retry.get("maxDelayTarget", 20)
    spacing = f"{low} s" if low == high else f"{low}-{high} s"
    detail = f"{retries} retries, {spacing} apart ({retry.get('backoffFunction', 'linear')})"
    if not isinstance(retries, int) or retries < 3:
        return Check(
            "warn",
            "delivery policy",
            f"{detail}: a restart of the server loses the alerts sent meanwhile",
            "raise healthyRetryPolicy.numRetries (SNS allows up to 100 within an hour) with "
            "aws sns set-subscription-attributes --attribute-name DeliveryPolicy",
        )
    return Check("ok", "delivery policy", detail)


def check_subscriptions(sns: Any, options: DoctorOptions) -> list[Check]:
    """The endpoint's subscription (or, with no endpoint, every HTTP(S) one) and its state."""
    try:
        found = subscriptions_for(sns, options.topic_arn, options.endpoint)
    except Exception as exc:  # noqa: BLE001
        return [_aws_failure("subscription", exc, "sns:ListSubscriptionsByTopic")]
    where = terminal_safe(without_password(options.endpoint or ""))
    if not found:
        if options.endpoint is None:
            return [Check("warn", "subscription", "the topic has no HTTP(S) subscription")]
        protocol = urlsplit(options.endpoint).scheme
        return [
            Check(
                "fail",
                "subscription",
                f"the topic has no subscription for {where}",
                f"snsmiddleware connect --budget NAME --endpoint {where} --topic "
                f"{options.topic_arn}, or: aws sns subscribe --topic-arn {options.topic_arn} "
                f"--protocol {protocol} --notification-endpoint {where}{options.cli_suffix()}",
            )
        ]
    checks: list[Check] = []
    for subscription in found:
        checks.extend(_check_subscription(sns, subscription.arn, subscription.endpoint, options))
    return checks


def _pending(endpoint: str, options: DoctorOptions) -> Check:
    return Check(
        "fail",
        "subscription",
        f"{endpoint} is PENDING CONFIRMATION: the endpoint never confirmed it, and SNS "
        "delivers nothing until it does (an unconfirmed subscription is deleted after 48 h)",
        "check that the server runs, is reachable from the internet and allows this topic "
        "(its log shows the SubscriptionConfirmation); then subscribe again to get a new "
        f"confirmation: aws sns subscribe --topic-arn {options.topic_arn} --protocol "
        f"{urlsplit(endpoint).scheme} --notification-endpoint {endpoint}{options.cli_suffix()}",
    )


def _check_subscription(sns: Any, arn: str, endpoint: str, options: DoctorOptions) -> list[Check]:
    shown = terminal_safe(endpoint)
    if arn == PENDING:  # listed without an ARN: nothing more to read
        return [_pending(shown, options)]
    try:
        attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    except Exception as exc:  # noqa: BLE001
        return [_aws_failure("subscription", exc, "sns:GetSubscriptionAttributes")]
    if is_true(attributes.get("PendingConfirmation")):
        return [_pending(shown, options)]
    checks = [Check("ok", "subscription", f"{shown} confirmed ({terminal_safe(arn)})")]
    if is_true(attributes.get("RawMessageDelivery")):
        checks.append(
            Check(
                "fail",
                "raw message delivery",
                "ON: SNS sends the bare message without its signature, and the endpoint "
                "refuses every one (400 raw_delivery)",
                f"aws sns set-subscription-attributes --subscription-arn {arn} "
                f"--attribute-name RawMessageDelivery --attribute-value false"
                f"{options.cli_suffix()}",
            )
        )
    else:
        checks.append(Check("ok", "raw message delivery", "off (the signed envelope arrives)"))
    authenticated = attributes.get("ConfirmationWasAuthenticated")
    if authenticated is None or is_true(authenticated):
        checks.append(
            Check("ok", "confirmation", "authenticated: only the topic owner can unsubscribe")
        )
    else:
        checks.append(
            Check(
                "warn",
                "confirmation",
                "not authenticated (confirmed by a GET of the SubscribeURL): anyone who sees "
                "an UnsubscribeURL can unsubscribe the endpoint",
                'confirm with the API instead (confirm="api", the default): unsubscribe and '
                "subscribe again",
            )
        )
    checks.append(_delivery_policy(attributes))
    return checks


# --- the endpoint, from the outside in ------------------------------------------------------


def _certificate_base(options: DoctorOptions) -> str:
    if options.endpoint_url:  # an emulator: a server in emulator mode trusts only its base
        return options.endpoint_url.rstrip("/")
    return f"https://{options.topic.sns_host}"


def _certificate_url(options: DoctorOptions) -> str:
    if options.endpoint_url:
        # LocalStack serves its one signing certificate here (moto answers 404): the probe
        # then fails where a forgery must, at the signature itself.
        return _certificate_base(options) + EMULATOR_CERTIFICATE_PATH
    return f"{_certificate_base(options)}/SimpleNotificationService-{uuid.uuid4().hex}.pem"


def probe_message(options: DoctorOptions, signature_version: str) -> SignedMessage:
    """A Notification of the audited topic, well shaped and fresh, whose signature cannot be
    valid (random bytes of the right length); nothing in it is a URL we would mind fetched."""
    base = _certificate_base(options)
    fields = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": options.topic_arn,
        "Subject": PROBE_SUBJECT,
        "Message": "A test POST by snsmiddleware doctor. It must be refused (403).",
        "Timestamp": format_timestamp(utc_now()),
        "SignatureVersion": signature_version,
        "Signature": base64.b64encode(os.urandom(256)).decode("ascii"),
        "SigningCertURL": _certificate_url(options),
        "UnsubscribeURL": f"{base}/?Action=Unsubscribe&SubscriptionArn="
        f"{options.topic_arn}:{uuid.uuid4()}",
    }
    return SignedMessage(fields)


@dataclass(frozen=True)
class Answer:
    """What the endpoint said (or why it said nothing)."""

    status: int | None
    reason: str | None
    text: str
    seconds: float
    location: str = ""
    error: str = ""
    error_kind: str = ""


def post(session: Any, url: str, message: SignedMessage) -> Answer:
    """POST ``message`` as SNS would; never follow a redirect; read a bounded excerpt."""
    import requests

    headers = dict(message.headers)
    headers["User-Agent"] = f"snsmiddleware-doctor/{__version__}"
    started = time.monotonic()
    try:
        response = session.post(
            url,
            data=message.body,
            headers=headers,
            timeout=PROBE_TIMEOUT,
            allow_redirects=False,
            stream=True,
        )
    except requests.exceptions.SSLError as exc:
        return Answer(None, None, "", time.monotonic() - started, error=str(exc), error_kind="tls")
    except requests.exceptions.Timeout as exc:
        kind = "timeout"
        return Answer(None, None, "", time.monotonic() - started, error=str(exc), error_kind=kind)
    except requests.RequestException as exc:
        kind = "connection"
        return Answer(None, None, "", time.monotonic() - started, error=str(exc), error_kind=kind)
    try:
        raw = response.raw.read(ANSWER_EXCERPT_BYTES, decode_content=True) or b""
    except Exception:  # noqa: BLE001 - a broken body is still an answer
        raw = b""
    finally:
        response.close()
    return Answer(
        response.status_code,
        response.headers.get("X-SNS-Reason"),
        terminal_safe(raw.decode("utf-8", "replace").strip()[:200]),
        time.monotonic() - started,
        location=terminal_safe(response.headers.get("Location", "")),
    )


def _said(answer: Answer) -> str:
    reason = f" {terminal_safe(answer.reason)}" if answer.reason else " (no X-SNS-Reason)"
    return f"{answer.status}{reason} in {answer.seconds:.2f} s"


def _unanswered(answer: Answer, shown: str) -> Check:
    if answer.error_kind == "tls":
        return Check(
            "fail",
            "endpoint",
            f"TLS failed for {shown}: {terminal_safe(answer.error)[:300]}",
            "SNS needs a certificate from a publicly trusted CA that names the host "
            "(self-signed and private-CA certificates are refused)",
        )
    if answer.error_kind == "timeout":
        return Check(
            "fail",
            "endpoint",
            f"no answer from {shown} within {PROBE_TIMEOUT[1]:.0f} s: SNS gives up after 15 s "
            "and retries, then loses the alert",
            "check the server is running and not stalled, and what sits in front of it",
        )
    return Check(
        "fail",
        "endpoint",
        f"{shown} is unreachable: {terminal_safe(answer.error)[:300]}",
        "SNS must reach it from the internet: DNS name, firewall or security group, the "
        "server running on that port",
    )


def judge_probe(answer: Answer, options: DoctorOptions, version: str) -> Check:
    """What the answer to the forged probe proves, and what to do about it."""
    shown = terminal_safe(without_password(options.endpoint or ""))
    if answer.status is None:
        return _unanswered(answer, shown)
    said = _said(answer)
    status, reason = answer.status, answer.reason
    if 200 <= status < 300:
        return Check(
            "fail",
            "endpoint",
            f"ACCEPTED a message with a forged signature ({said}): whatever answers there "
            "does not verify SNS signatures, so anyone can send it alerts",
            "put SnsMiddleware (or the snsmiddleware server) in front of the app",
        )
    if 300 <= status < 400:
        return Check(
            "fail",
            "endpoint",
            f"answered a redirect ({said}) to {answer.location or '(no Location)'}: SNS counts "
            "a 3xx as delivered and never follows it, so every alert would be lost",
            "subscribe the final URL (doctor does not follow redirects)",
        )
    if reason is None:
        what = (
            f"nothing is at this path ({said})"
            if status == 404
            else f"answered {said}: something other than snsmiddleware answered (a proxy, a "
            "load balancer, a WAF or another app)"
        )
        return Check(
            "fail",
            "endpoint",
            what + f"; body: {answer.text[:120]!r}",
            "check the URL's path (serve prints its SNS endpoints at start) and that the "
            "proxy passes POSTs and the x-amz-sns-* headers through",
        )
    if status == 403 and reason in VERIFYING_REASONS:
        detail = (
            f"refused the forged probe with {said}: reachable, answered by snsmiddleware, "
            f"this topic and SignatureVersion {version} accepted, clocks agree, signatures "
            "checked"
        )
        if answer.seconds > SLOW_ANSWER_SECONDS:
            return Check(
                "warn", "endpoint", detail + "; but slowly: SNS waits 15 s", "find the delay"
            )
        return Check("ok", "endpoint", detail)
    return _explain_refusal(answer, said, options, version)


def _explain_refusal(answer: Answer, said: str, options: DoctorOptions, version: str) -> Check:
    reason = answer.reason
    table: dict[str, tuple[str, str]] = {
        Reason.TOPIC_NOT_ALLOWED: (
            f"refused the topic ({said}): the server does not accept {options.topic_arn}",
            "add it to the server's topics (serve --topic, SNSMIDDLEWARE_TOPICS, topics =)",
        ),
        Reason.SIGNATURE_VERSION_NOT_ALLOWED: (
            f"refuses SignatureVersion {version}, which the topic signs with ({said})",
            f"aws sns set-topic-attributes --topic-arn {options.topic_arn} --attribute-name "
            f"SignatureVersion --attribute-value 2{options.cli_suffix()}",
        ),
        Reason.BAD_CERT_URL: (
            f"refused the certificate URL {_certificate_base(options)}/... ({said})",
            "a server in emulator mode trusts only its emulator: pass doctor the same "
            "--endpoint-url (or none, for a server that trusts AWS)",
        ),
        Reason.STALE_MESSAGE: (
            f"called the probe stale ({said}): the server's clock is more than 5 minutes "
            "ahead of this machine's",
            "synchronise the clocks (NTP): genuine alerts are refused the same way",
        ),
        Reason.FUTURE_MESSAGE: (
            f"called the probe future-dated ({said}): the server's clock is more than 5 "
            "minutes behind this machine's",
            "synchronise the clocks (NTP): genuine alerts are refused the same way",
        ),
        Reason.CERTIFICATE_UNAVAILABLE: (
            f"could not download an SNS certificate ({said}): genuine alerts are answered "
            "503 the same way until SNS gives up",
            f"allow the server outbound HTTPS to {urlsplit(_certificate_base(options)).netloc}",
        ),
        Reason.UNAUTHORIZED: (
            f"wants HTTP Basic credentials ({said})",
            "put them in the subscription's URL and in --endpoint: https://user:password@host/path",
        ),
        Reason.NOT_VERIFIED: (
            f"the budget app answered without SnsMiddleware in front ({said})",
            "serve the app behind SnsMiddleware",
        ),
        Reason.SHUTTING_DOWN: (f"the server is shutting down ({said})", "run doctor again"),
    }
    if reason in table:
        detail, fix = table[reason]
        return Check("fail", "endpoint", detail, fix)
    if reason in _ENVELOPE_REASONS or answer.status == 413:
        detail = f"refused the probe's envelope ({said}): {answer.text[:160]}"
        return Check("fail", "endpoint", detail, "is a proxy altering the request's body?")
    return Check(
        "fail",
        "endpoint",
        f"refused the probe ({said}): {answer.text[:160]}",
        "see the server's log line for this MessageId",
    )


def _is_local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_development_alert(session: Any, options: DoctorOptions) -> Check:
    """With ``--dev-ca``: a server in development mode accepts an alert that CA signed."""
    from .devmode import sample_budget_alert
    from .signer import MessageSigner

    assert options.endpoint is not None and options.dev_ca is not None
    try:
        ca = TestCA.load(options.dev_ca)
    except FileNotFoundError:
        return Check(
            "fail",
            "development alert",
            f"no development CA in {terminal_safe(options.dev_ca)}",
            "give the --dev-ca directory the server uses (serve --dev creates var/dev-ca)",
        )
    subject, text = sample_budget_alert("snsmiddleware doctor")
    message = MessageSigner(ca, topic_arn=options.topic_arn).notification(text, Subject=subject)
    answer = post(session, options.endpoint, message)
    if answer.status is None:
        return _unanswered(answer, terminal_safe(without_password(options.endpoint)))
    said = _said(answer)
    if 200 <= answer.status < 300:
        if not _is_local(options.endpoint):
            return Check(
                "fail",
                "development alert",
                f"a server reachable at {urlsplit(options.endpoint).hostname} is in "
                f"DEVELOPMENT MODE ({said}): anyone with the development key can send it alerts",
                "never run serve --dev where others can reach it",
            )
        return Check(
            "ok",
            "development alert",
            f"a development-CA Budgets alert was accepted ({said}): the server is in "
            "development mode and the alert went to its mailer",
        )
    return Check(
        "fail",
        "development alert",
        f"refused the development-CA alert ({said})",
        "is the server running with serve --dev and this --dev-ca directory?",
    )


def check_endpoint(session: Any, options: DoctorOptions, signature_version: str) -> Iterator[Check]:
    assert options.endpoint is not None
    if urlsplit(options.endpoint).scheme == "http" and not _is_local(options.endpoint):
        yield Check(
            "warn",
            "endpoint scheme",
            "http://: alerts cross the internet unencrypted",
            "use an https:// endpoint with a publicly trusted certificate",
        )
    answer = post(session, options.endpoint, probe_message(options, signature_version))
    yield judge_probe(answer, options, signature_version)
    if options.dev_ca is not None:
        yield check_development_alert(session, options)


# --- the run --------------------------------------------------------------------------------


def audit(options: DoctorOptions, sns: Any, session: Any) -> Iterator[Check]:
    """Every check, in order, each as soon as it is known."""
    topic_check, attributes = check_topic(sns, options)
    yield topic_check
    signature_version = "2"
    if attributes is not None:
        signature_version = str(attributes.get("SignatureVersion") or "1")
        yield check_signature_version(attributes, options)
        yield from check_policy(attributes, options)
        yield from check_subscriptions(sns, options)
    if options.endpoint is not None:
        yield from check_endpoint(session, options, signature_version)


def run_doctor(
    options: DoctorOptions,
    out: TextIO,
    *,
    sns: Any = None,
    session: Any = None,
) -> int:
    """Print every check and the verdict; 0 when nothing FAILed, 1 otherwise.

    :param sns: a boto3 SNS client (default: one for the topic's region or ``--region``).
    :param session: a ``requests.Session`` for the endpoint probes.
    """
    import requests

    if sns is None:
        sns = aws_clients(("sns",), options.aws_region, options.endpoint_url)["sns"]
    session = session if session is not None else requests.Session()
    emit = out.write
    emit(f"snsmiddleware doctor {terminal_safe(options.topic_arn)}\n")
    if options.endpoint:
        emit(f"  endpoint {terminal_safe(without_password(options.endpoint))}\n")
    if options.endpoint_url:
        emit(f"  AWS API  {terminal_safe(options.endpoint_url)} (an emulator)\n")
    counts = {"ok": 0, "warn": 0, "fail": 0}
    for check in audit(options, sns, session):
        counts[check.status] += 1
        emit(check.lines())
        out.flush()
    emit(f"RESULT: {counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} FAILED\n")
    return 1 if counts["fail"] else 0
