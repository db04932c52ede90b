"""AWS Cost Anomaly Detection alerts as SNS carries them (pure functions, no I/O).

An *immediate* alert subscription of Cost Anomaly Detection publishes each anomaly to an SNS
topic (the topic policy must let ``costalerts.amazonaws.com`` publish) as a JSON ``Message``
with no Subject to rely on; daily and weekly summaries are email-only and never arrive here.
The same anomaly reaches EventBridge as the ``detail`` of an ``Anomaly Detected`` event,
which a rule can forward to the same topic: that envelope is accepted too. The field names
are those of the AWS Cost Management User Guide's examples (``accountId``, ``monitorName``,
``impact.totalImpact``, ``rootCauses[].usageType``, ``anomalyDetailsLink``...); the dimension
is spelt ``dimensionalValue`` over SNS and ``dimensionValue`` over EventBridge, and both are
read.

As with :mod:`snsmiddleware.budgets`, AWS does not promise the format as a contract, so
:func:`parse_anomaly_alert` is tolerant where it may drift and strict where a mistake would
mislead a reader:

* the JSON is read strictly: a key that appears twice in one object, ``NaN`` or
  ``Infinity``, a number literal longer than :data:`MAX_NUMBER_CHARS` or a message larger than
  SNS's 256 KiB make the document *unreadable* (two parsers could disagree about it, so no
  value in it is believed), and amounts are :class:`~decimal.Decimal` (``parse_float`` and
  ``parse_int``), never floats;
* each field is checked for its type and a sane size; a field that is present but wrong is
  listed in :attr:`AnomalyAlert.unparsed` and left ``None`` rather than guessed, and so is a
  field AWS always sends that is missing (:data:`REQUIRED_FIELDS`); optional fields (a
  CUSTOM monitor has no dimension, root causes may be empty or partial) may just be absent;
* ``anomalyDetailsLink`` is publisher-written text: it is kept only when
  :func:`genuine_console_url` accepts it (HTTPS, an exact AWS console host, the Cost
  Management path);
* a message recognised as an anomaly alert never raises, however badly its details read
  (unreadable JSON included): the caller still emails it with its raw text instead of
  dropping a genuine alert. Only a message that is not an anomaly alert at all raises
  :class:`NotAnAnomalyAlertError` (a 422: delivered, and retrying cannot change it).

Everything here is untrusted text as far as output is concerned: escaping is the job of
whoever renders it (:mod:`snsmiddleware.anomaly_email`).
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, NoReturn

from .budgets import BudgetAlert, Money, parse_budget_alert
from .errors import NotAnAnomalyAlertError as NotAnAnomalyAlertError  # defined there
from .errors import excerpt
from .message import Notification

#: Cost Anomaly Detection reports its impact in US dollars.
CURRENCY: Final = "USD"
#: SNS refuses messages over 256 KiB; a longer text did not come from Cost Anomaly Detection.
MAX_MESSAGE_CHARS: Final = 256 * 1024
#: The longest number literal believed (``412.5`` has 5): longer ones are not amounts.
MAX_NUMBER_CHARS: Final = 40
#: Amounts, scores and percentages are below 10**15 with at most 20 decimal places.
MAX_AMOUNT_DIGITS: Final = 15
MAX_DECIMAL_PLACES: Final = 20
#: The most root causes kept (AWS lists the top few); the rest stay in the raw text.
MAX_ROOT_CAUSES: Final = 50
#: The API's limit for names, ids and ARNs (``AnomalyId``, ``MonitorArn``...).
MAX_TEXT_CHARS: Final = 1024
#: A URL longer than this is not a console link.
MAX_URL_CHARS: Final = 2048

# Fields that parse_anomaly_alert reads, in the order they are reported as unparsed.
PARSED_FIELDS: Final = (
    "anomaly_id",
    "account_id",
    "account_name",
    "monitor_arn",
    "monitor_name",
    "monitor_type",
    "dimension_value",
    "subscription_id",
    "subscription_name",
    "start_date",
    "end_date",
    "max_score",
    "current_score",
    "max_impact",
    "total_impact",
    "total_actual_spend",
    "total_expected_spend",
    "total_impact_percentage",
    "root_causes",
    "details_url",
)
#: Fields the API documents as always present (``Anomaly``: AnomalyId, AnomalyScore,
#: Impact.MaxImpact, MonitorArn) plus the account: when missing they count as unparsed.
REQUIRED_FIELDS: Final = (
    "anomaly_id",
    "account_id",
    "monitor_arn",
    "max_score",
    "current_score",
    "max_impact",
)

#: Console hosts of the commercial, China and GovCloud partitions, global and in the home
#: region of Cost Management. Exact names only: no other subdomain is a console.
CONSOLE_HOSTS: Final = frozenset(
    {
        "console.aws.amazon.com",
        "us-east-1.console.aws.amazon.com",
        "console.amazonaws.cn",
        "cn-northwest-1.console.amazonaws.cn",
        "console.amazonaws-us-gov.com",
        "us-gov-west-1.console.amazonaws-us-gov.com",
    }
)
#: The first path segment of a Cost Management console page (both spellings are in use).
CONSOLE_APPS: Final = frozenset({"cost-management", "costmanagement"})

#: The keys of an anomaly alert's shape: two of them, one an ``anomaly...`` key, make one
#: (so a missing ``anomalyId`` does not lose a genuine alert, and no other JSON has them).
SHAPE_KEYS: Final = (
    "anomalyId",
    "anomalyScore",
    "anomalyStartDate",
    "anomalyEndDate",
    "anomalyDetailsLink",
    "monitorArn",
    "impact",
    "rootCauses",
)
# The same keys in text that could not be read as JSON (written as AWS writes them).
_TEXT_KEY: Final = re.compile(r'"(' + "|".join(SHAPE_KEYS) + r')"[ \t\r\n]*:')
_ACCOUNT_ID: Final = re.compile(r"\d{1,12}", re.ASCII)
_DATE: Final = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
    r"(?:T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2}))?",
    re.ASCII,
)
# A whole console URL: https, a lower-case host name (no user information, no port), a
# plain path, an optional plain query and fragment; no percent-encoding, no backslash, no
# blank or control character anywhere.
_CONSOLE_URL: Final = re.compile(
    r"https://(?P<host>[a-z0-9.-]{1,253})(?P<path>/[A-Za-z0-9._~/-]*)"
    r"(?:\?[A-Za-z0-9._~=&-]*)?(?:#[A-Za-z0-9._~/=&?:-]*)?",
    re.ASCII,
)


def genuine_console_url(url: object) -> str | None:
    """``url`` if it is a link into the Cost Management pages of the AWS console, else ``None``.

    Strict on purpose, since the link comes from whoever published: ``https`` only, one of
    :data:`CONSOLE_HOSTS` exactly (lower case, no trailing dot), no user information or
    port, a path whose first segment is one of :data:`CONSOLE_APPS` with no empty or dot
    segments, and only plain characters (no percent-encoding, backslash, blank or control
    character, nothing outside ASCII).
    """
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS:
        return None
    match = _CONSOLE_URL.fullmatch(url)
    if match is None or match["host"] not in CONSOLE_HOSTS:
        return None
    segments = match["path"].split("/")[1:]
    if segments[0] not in CONSOLE_APPS or any(s in ("", ".", "..") for s in segments):
        return None
    return url


@dataclass(frozen=True, slots=True, kw_only=True)
class RootCause:
    """One entry of ``rootCauses``: where the unusual spend is. Any field may be ``None``.

    :param service: the AWS service (``Amazon Elastic Compute Cloud - Compute``).
    :param region: the region (``us-east-1``).
    :param linked_account: the member account the spend is in (its id, as written).
    :param linked_account_name: that account's name.
    :param usage_type: the usage type (``BoxUsage:c7i.4xlarge``).
    :param contribution: this cause's share of the impact, when given.
    """

    service: str | None
    region: str | None
    linked_account: str | None
    linked_account_name: str | None
    usage_type: str | None
    contribution: Money | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AnomalyAlert:
    """One Cost Anomaly Detection alert, as far as its JSON could be read.

    Every field but ``root_causes``, ``raw_text``, ``subject``, ``unparsed`` and
    ``unreadable`` is ``None`` when it was absent or could not be read; in the second case
    (and for a missing :data:`REQUIRED_FIELDS` entry) its name is in ``unparsed``.

    :param anomaly_id: the anomaly's id.
    :param account_id: ``accountId``: the account that owns the monitor (digits; real ids
        have 12). Routing trusts it only where it agrees with the signed TopicArn.
    :param account_name: ``accountName``.
    :param monitor_arn: the monitor's ARN.
    :param monitor_name: the monitor's name: untrusted user text.
    :param monitor_type: ``DIMENSIONAL`` or ``CUSTOM``, as written.
    :param dimension_value: ``dimensionalValue`` (SNS) or ``dimensionValue`` (EventBridge):
        for a services monitor, the service.
    :param subscription_id: the alert subscription's id.
    :param subscription_name: the alert subscription's name: untrusted user text.
    :param start_date: the anomaly's first day.
    :param end_date: its last day so far.
    :param max_score: the highest anomaly score seen.
    :param current_score: the latest anomaly score.
    :param max_impact: the largest impact on one day.
    :param total_impact: actual minus expected spend over the anomaly.
    :param total_actual_spend: what was spent.
    :param total_expected_spend: what the model expected.
    :param total_impact_percentage: ``total_impact`` as a percentage of expected spend.
    :param root_causes: the identified root causes, in the message's order.
    :param details_url: ``anomalyDetailsLink``, only if :func:`genuine_console_url` accepts
        it; a link that was refused is listed in ``unparsed`` as ``details_url``.
    :param subject: the SNS Subject, if any.
    :param raw_text: the message exactly as received.
    :param unparsed: names of the fields above that could not be read.
    :param unreadable: why the JSON could not be read at all (then nothing was read).
    """

    anomaly_id: str | None
    account_id: str | None
    account_name: str | None
    monitor_arn: str | None
    monitor_name: str | None
    monitor_type: str | None
    dimension_value: str | None
    subscription_id: str | None
    subscription_name: str | None
    start_date: datetime.date | None
    end_date: datetime.date | None
    max_score: Decimal | None
    current_score: Decimal | None
    max_impact: Money | None
    total_impact: Money | None
    total_actual_spend: Money | None
    total_expected_spend: Money | None
    total_impact_percentage: Decimal | None
    root_causes: tuple[RootCause, ...]
    details_url: str | None
    subject: str | None
    raw_text: str
    unparsed: tuple[str, ...]
    unreadable: str | None = None

    @property
    def complete(self) -> bool:
        """True when nothing that was there (or had to be) failed to read."""
        return not self.unparsed

    @property
    def details_url_omitted(self) -> bool:
        """True when the message carried a link that is not a genuine AWS console URL."""
        return "details_url" in self.unparsed and self.unreadable is None

    @property
    def routing_names(self) -> tuple[str, ...]:
        """The names a ``recipients`` entry may match: the monitor's and the subscription's."""
        return tuple(
            name for name in (self.monitor_name, self.subscription_name) if name is not None
        )


# --- reading the JSON strictly -------------------------------------------------------------


def _number(literal: str) -> Decimal:
    """``parse_float``/``parse_int``: every JSON number becomes an exact Decimal."""
    if len(literal) > MAX_NUMBER_CHARS:
        raise ValueError(f"a number has more than {MAX_NUMBER_CHARS} characters")
    return Decimal(literal)


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number an alert can hold")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: a repeated key is refused, never silently overwritten."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {excerpt(key)} appears twice in one object")
        result[key] = value
    return result


def _load(text: str) -> tuple[Any, str | None]:
    """(document, None), or (None, why the text is not strictly readable JSON)."""
    if len(text) > MAX_MESSAGE_CHARS:
        return None, f"the message is larger than SNS's {MAX_MESSAGE_CHARS // 1024} KiB"
    try:
        document = json.loads(
            text,
            parse_float=_number,
            parse_int=_number,
            parse_constant=_no_constant,
            object_pairs_hook=_object,
        )
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at character {exc.pos})"
    except RecursionError:
        return None, "the JSON is nested too deeply"
    except ValueError as exc:  # ours, from the hooks above
        return None, str(exc)
    return document, None


def _alert_document(document: Any) -> Mapping[str, Any] | None:
    """The anomaly object of a document (an EventBridge event's ``detail``), if it is one."""
    if not isinstance(document, dict):
        return None
    found: dict[str, Any] = document
    detail = found.get("detail")
    if (
        found.get("source") == "aws.ce"
        and found.get("detail-type") == "Anomaly Detected"
        and isinstance(detail, dict)
    ):
        found = detail
    return found if _has_shape(key for key in SHAPE_KEYS if key in found) else None


def _has_shape(keys: Iterable[str]) -> bool:
    present = set(keys)
    return len(present) >= 2 and any(key.startswith("anomaly") for key in present)


def _mentions_anomaly(text: str) -> bool:
    """Unreadable text that still names the keys of an anomaly alert."""
    return _has_shape(_TEXT_KEY.findall(text))


# --- reading the fields ---------------------------------------------------------------------


class _Fields:
    """Reads typed values out of one JSON object, noting each field that fails."""

    def __init__(self, unparsed: list[str]) -> None:
        self.unparsed = unparsed

    def fail(self, field: str) -> None:
        if field not in self.unparsed:
            self.unparsed.append(field)

    def text(
        self,
        source: Mapping[str, Any],
        key: str,
        field: str,
        *,
        limit: int = MAX_TEXT_CHARS,
        pattern: re.Pattern[str] | None = None,
    ) -> str | None:
        value = source.get(key)
        if value is None or value == "":
            return None
        if (
            isinstance(value, str)
            and len(value) <= limit
            and _encodable(value)
            and (pattern is None or pattern.fullmatch(value) is not None)
        ):
            return value
        self.fail(field)
        return None

    def decimal(
        self, source: Mapping[str, Any], key: str, field: str, *, minimum: Decimal | None = None
    ) -> Decimal | None:
        value = source.get(key)
        if value is None:
            return None
        if isinstance(value, Decimal) and _sane(value) and (minimum is None or value >= minimum):
            return value
        self.fail(field)
        return None

    def money(self, source: Mapping[str, Any], key: str, field: str) -> Money | None:
        amount = self.decimal(source, key, field)
        return None if amount is None else Money(amount, CURRENCY)

    def date(self, source: Mapping[str, Any], key: str, field: str) -> datetime.date | None:
        text = self.text(source, key, field, limit=40, pattern=_DATE)
        if text is None:
            return None
        match = _DATE.fullmatch(text)
        assert match is not None
        try:
            return datetime.date(int(match["year"]), int(match["month"]), int(match["day"]))
        except ValueError:
            self.fail(field)
            return None

    def section(
        self, source: Mapping[str, Any], key: str, fields: tuple[str, ...]
    ) -> Mapping[str, Any]:
        """A nested object (``impact``, ``anomalyScore``); ``{}`` when absent or not one."""
        value = source.get(key)
        if isinstance(value, dict):
            return value
        if value is not None:
            for field in fields:
                self.fail(field)
        return {}


def _sane(value: Decimal) -> bool:
    """Finite, below 10**15 and at most 20 decimal places, checked on the digits alone: an
    arithmetic operation on ``1e999999999`` would overflow the decimal context, and printing
    ``0e-999999999`` in full would write a billion zeros."""
    if not value.is_finite():
        return False
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    return (
        -MAX_DECIMAL_PLACES <= exponent <= MAX_AMOUNT_DIGITS
        and value.adjusted() < MAX_AMOUNT_DIGITS
    )


def _encodable(text: str) -> bool:
    """A JSON ``"\\ud800"`` escape decodes to a lone surrogate, which no email can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _dimension(document: Mapping[str, Any], read: _Fields) -> str | None:
    """``dimensionalValue`` (SNS) or ``dimensionValue`` (EventBridge); both and different:
    ambiguous, so unparsed."""
    values = {
        read.text(document, key, "dimension_value")
        for key in ("dimensionalValue", "dimensionValue")
        if key in document
    } - {None}
    if len(values) > 1:
        read.fail("dimension_value")
        return None
    return next(iter(values), None)


def _root_causes(document: Mapping[str, Any], read: _Fields) -> tuple[RootCause, ...]:
    value = document.get("rootCauses")
    if value is None:
        return ()
    if not isinstance(value, list):
        read.fail("root_causes")
        return ()
    if len(value) > MAX_ROOT_CAUSES:
        read.fail("root_causes")
    causes = []
    for entry in value[:MAX_ROOT_CAUSES]:
        if not isinstance(entry, dict):
            read.fail("root_causes")
            continue
        impact = read.section(entry, "impact", ("root_causes",))
        cause = RootCause(
            service=read.text(entry, "service", "root_causes"),
            region=read.text(entry, "region", "root_causes", limit=64),
            linked_account=read.text(entry, "linkedAccount", "root_causes", limit=64),
            linked_account_name=read.text(entry, "linkedAccountName", "root_causes"),
            usage_type=read.text(entry, "usageType", "root_causes"),
            contribution=read.money(impact, "contribution", "root_causes"),
        )
        if cause != _NO_CAUSE:  # an empty entry says nothing
            causes.append(cause)
    return tuple(causes)


_NO_CAUSE: Final = RootCause(
    service=None,
    region=None,
    linked_account=None,
    linked_account_name=None,
    usage_type=None,
    contribution=None,
)


def _unreadable_alert(message: Notification, why: str) -> AnomalyAlert:
    nothing: dict[str, Any] = dict.fromkeys(PARSED_FIELDS)
    nothing["root_causes"] = ()
    return AnomalyAlert(
        **nothing,
        subject=message.subject,
        raw_text=message.message,
        unparsed=PARSED_FIELDS,
        unreadable=why,
    )


def parse_anomaly_alert(message: Notification) -> AnomalyAlert:
    """Parse a verified Notification into an :class:`AnomalyAlert`.

    Raises :class:`NotAnAnomalyAlertError` (422) when the message is not a Cost Anomaly
    Detection alert: not a JSON object with two of :data:`SHAPE_KEYS`, one of them an
    ``anomaly...`` key (directly or as an EventBridge ``Anomaly Detected`` event's
    ``detail``). A recognised alert never raises: what could not be read is in
    ``unparsed``, and a text that names those keys but is not strictly readable JSON comes
    back with :attr:`~AnomalyAlert.unreadable` set.
    """
    text = message.message
    if not text.lstrip().startswith("{"):
        raise NotAnAnomalyAlertError("the message is not a JSON object")
    loaded, problem = _load(text)
    if problem is not None:
        if _mentions_anomaly(text):
            return _unreadable_alert(message, problem)
        raise NotAnAnomalyAlertError(f"the message is not readable JSON: {problem}")
    document = _alert_document(loaded)
    if document is None:
        raise NotAnAnomalyAlertError(
            "a JSON message without anomalyId, anomalyScore, impact... is not an AWS Cost "
            "Anomaly Detection alert"
        )
    unparsed: list[str] = []
    read = _Fields(unparsed)
    score = read.section(document, "anomalyScore", ("max_score", "current_score"))
    impact = read.section(
        document,
        "impact",
        (
            "max_impact",
            "total_impact",
            "total_actual_spend",
            "total_expected_spend",
            "total_impact_percentage",
        ),
    )
    link = document.get("anomalyDetailsLink")
    details_url = genuine_console_url(link)
    if link is not None and details_url is None:
        read.fail("details_url")
    zero = Decimal(0)
    found: dict[str, Any] = {
        "anomaly_id": read.text(document, "anomalyId", "anomaly_id"),
        "account_id": read.text(document, "accountId", "account_id", pattern=_ACCOUNT_ID),
        "account_name": read.text(document, "accountName", "account_name"),
        "monitor_arn": read.text(document, "monitorArn", "monitor_arn"),
        "monitor_name": read.text(document, "monitorName", "monitor_name"),
        "monitor_type": read.text(document, "monitorType", "monitor_type", limit=64),
        "dimension_value": _dimension(document, read),
        "subscription_id": read.text(document, "subscriptionId", "subscription_id"),
        "subscription_name": read.text(document, "subscriptionName", "subscription_name"),
        "start_date": read.date(document, "anomalyStartDate", "start_date"),
        "end_date": read.date(document, "anomalyEndDate", "end_date"),
        "max_score": read.decimal(score, "maxScore", "max_score", minimum=zero),
        "current_score": read.decimal(score, "currentScore", "current_score", minimum=zero),
        "max_impact": read.money(impact, "maxImpact", "max_impact"),
        "total_impact": read.money(impact, "totalImpact", "total_impact"),
        "total_actual_spend": read.money(impact, "totalActualSpend", "total_actual_spend"),
        "total_expected_spend": read.money(impact, "totalExpectedSpend", "total_expected_spend"),
        "total_impact_percentage": read.decimal(
            impact, "totalImpactPercentage", "total_impact_percentage"
        ),
        "root_causes": _root_causes(document, read),
        "details_url": details_url,
    }
    for field in REQUIRED_FIELDS:
        if found[field] is None:
            read.fail(field)
    return AnomalyAlert(
        **found,
        subject=message.subject,
        raw_text=text,
        unparsed=tuple(name for name in PARSED_FIELDS if name in unparsed),
    )


def parse_cost_alert(message: Notification) -> BudgetAlert | AnomalyAlert:
    """Either kind of cost alert a budget-alert topic carries, told apart by shape.

    A Cost Anomaly Detection alert (see :func:`parse_anomaly_alert`) becomes an
    :class:`AnomalyAlert`; everything else goes to
    :func:`~snsmiddleware.budgets.parse_budget_alert`, which raises
    :class:`~snsmiddleware.errors.NotABudgetAlertError` (or
    :class:`~snsmiddleware.errors.BudgetAdjustmentError`) for what is neither.
    """
    try:
        return parse_anomaly_alert(message)
    except NotAnAnomalyAlertError:
        return parse_budget_alert(message)
