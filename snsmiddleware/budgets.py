"""AWS Budgets messages as SNS carries them (pure functions, no I/O).

When a topic is attached to a budget, Budgets publishes a Notification with the Subject
``SNS Topic Verified!``. Its body is not documented, so it is recognised by type and subject
alone, and only after the signature and topic checks. The middleware answers it itself so
the wrapped app never mistakes it for an alert.

Alerts are plain text in a template AWS does not promise as a contract (the variants seen in
the wild are the fixtures of ``tests/_budget_helpers.py``). So :func:`parse_budget_alert` is
tolerant where the text may drift and strict where a mistake would mislead a reader:

* labels (``Budget Name:``, ``Alert Type:``...) are matched case-insensitively, unknown lines
  are ignored, and a field whose label appears twice with different values is treated as
  unparsed rather than guessed (a budget name is user text and could carry a look-alike line);
* amounts are :class:`~decimal.Decimal`, never floats, and only plain numbers are accepted
  (no ``NaN``, no exponents);
* dates are read with fixed English month names, never the process locale;
* a genuine alert whose details only partly parse is still an alert: the fields that could
  not be read are listed in :attr:`BudgetAlert.unparsed` and the raw text is kept, so the
  caller can still email it rather than drop it;
* a message that is not a Budgets alert at all (auto-adjusting budgets' JSON, any other text)
  raises :class:`NotABudgetAlertError`, a 4xx: it was delivered, retrying cannot change it.

Everything here is untrusted user text as far as output is concerned: escaping is the job of
whoever renders it (:mod:`snsmiddleware.alert_email`).
"""

from __future__ import annotations

import datetime
import enum
import json
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final

from .errors import BudgetAdjustmentError as BudgetAdjustmentError  # defined there, kept here
from .errors import NotABudgetAlertError as NotABudgetAlertError

# (TOPIC_VERIFIED_SUBJECT and is_topic_verification moved to the message model, which the
# middleware may import; they stay importable from here.)
from .message import TOPIC_VERIFIED_SUBJECT as TOPIC_VERIFIED_SUBJECT
from .message import Notification
from .message import is_topic_verification as is_topic_verification

#: Where the AWS Budgets console lives; used when the message carries no usable link.
DEFAULT_CONSOLE_URL: Final = "https://console.aws.amazon.com/costmanagement/home#/budgets"

# Fields that parse_budget_alert tries to read, in the order they are reported as unparsed.
PARSED_FIELDS: Final = (
    "date",
    "account_id",
    "budget_name",
    "budget_type",
    "budgeted_amount",
    "alert_type",
    "threshold",
    "amount",
    "period",
    "dashboard_url",
)

_HEADER: Final = re.compile(r"AWS Budget Notification\b", re.IGNORECASE)
# SNS caps a Subject at 100 characters; anything much longer is not from Budgets (and the
# bound keeps the lazy patterns below linear on hostile input).
_MAX_SUBJECT_CHARS: Final = 512
_SUBJECT: Final = re.compile(r"AWS Budgets:[ \t]*(?P<name>.+?)[ \t]+has[ \t]+\S.*", re.IGNORECASE)
_DATE: Final = re.compile(
    r"AWS Budget Notification[ \t]+(?P<month>[A-Za-z]{3,9})\.?[ \t]+(?P<day>\d{1,2}),?[ \t]+"
    r"(?P<year>\d{4})\b",
    re.IGNORECASE,
)
# The optional colon is grouped with the blanks before it: "[ \t]*:?[ \t]*" could split a run of
# blanks in quadratically many ways, minutes for one 256 KiB line of tabs.
_ACCOUNT: Final = re.compile(
    r"^AWS Account(?:[ \t]*:)?[ \t]*(?P<id>\d{1,12})[ \t]*$", re.IGNORECASE
)
# A labelled line: letters and spaces, a colon, the value. The label stops at the first
# colon, so a value (a budget name) may contain colons of its own.
_LABELLED: Final = re.compile(
    r"^[ \t]*(?P<label>[A-Za-z][A-Za-z ]{0,40}?)[ \t]*:[ \t]*(?P<value>.*)$"
)
_SENTENCE_TYPE: Final = re.compile(r"alert you when the (?P<type>ACTUAL|FORECASTED)\b", re.I)
_SENTENCE_NAME: Final = re.compile(
    r"associated with your (?P<name>[^\n]{1,200}?) budget is\b", re.I
)
_PERIOD: Final = re.compile(
    r"\b(?:for the current (?P<current>month|quarter|year)|per (?P<per>day|month|quarter|year)"
    r"|(?P<yesterday>yesterday),)",
    re.IGNORECASE,
)
_DASHBOARD: Final = re.compile(r"^\[1\][ \t]*(?P<url>\S+)[ \t]*$")
# The console, global or regional (us-east-1.console.aws.amazon.com), or China's.
_CONSOLE_URL: Final = re.compile(
    r"https://(?:[a-z0-9-]+\.)?console\.(?:aws\.amazon\.com|amazonaws\.cn)/[A-Za-z0-9/#._~?=&%+-]*"
)
# "$0.59", "$1,234.50", "USD 12", "12.00 EUR", "€3": plain numbers only, bounded length.
_MONEY: Final = re.compile(
    r"(?P<pre>[$€£]|US\$|[A-Z]{3})?[ \t]*"
    r"(?P<number>\d{1,3}(?:,\d{3}){1,10}(?:\.\d{1,10})?|\d{1,30}(?:\.\d{1,10})?)"
    r"[ \t]*(?P<post>[A-Z]{3})?"
)
_THRESHOLD: Final = re.compile(r"(?P<op>>=|<=|>|<|=)?[ \t]*(?P<rest>.*)")
_PERCENT: Final = re.compile(r"(?P<number>\d{1,3}(?:\.\d{1,10})?)[ \t]*%")
_CURRENCY_SYMBOLS: Final = {"$": "USD", "US$": "USD", "€": "EUR", "£": "GBP"}
_MONTHS: Final = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_CENT: Final = Decimal("0.01")


def _cents(value: Decimal, rounding: str | None = None) -> Decimal | None:
    """``value`` rounded to cents, or ``None`` when that needs more than decimal's 28 digits
    of precision (an absurd amount in hostile text must not make the app fail)."""
    try:
        return value.quantize(_CENT, rounding=rounding)
    except InvalidOperation:
        return None


class AlertType(enum.Enum):
    """Whether the threshold was crossed by spend already incurred or by the forecast."""

    ACTUAL = "ACTUAL"
    FORECASTED = "FORECASTED"


class BudgetPeriod(enum.Enum):
    """The budget's time unit, as the alert sentence words it."""

    DAY = "day"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


@dataclass(frozen=True, slots=True)
class Money:
    """An amount and its ISO 4217 currency code (``$`` is read as USD)."""

    amount: Decimal
    currency: str

    def __str__(self) -> str:
        # At least two decimals ("$0.5" reads 0.50 USD), more if the message had more.
        exponent = self.amount.as_tuple().exponent
        fine = isinstance(exponent, int) and exponent < -2
        cents = None if fine or not self.amount.is_finite() else _cents(self.amount)
        shown = self.amount if cents is None else cents
        return f"{shown:,f} {self.currency}"


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetAlert:
    """One AWS Budgets alert, as far as its text could be read.

    Every field but ``raw_text``, ``subject`` and ``unparsed`` is ``None`` when it could not
    be read; its name is then in ``unparsed``.

    :param account_id: the ``AWS Account`` line (digits; real ids have 12).
    :param budget_name: the budget's name: untrusted user text.
    :param budget_type: ``Cost``, ``Usage``... as written.
    :param budgeted_amount: the budget limit.
    :param alert_type: actual spend or forecast.
    :param threshold: the absolute threshold (Budgets sends ``> $90.00`` even when the user
        configured a percentage).
    :param threshold_percent: ``threshold / budgeted_amount`` in percent, rounded to two
        decimals (``None`` when either is missing or the budget is zero).
    :param amount: the actual or forecasted amount, per ``alert_type``.
    :param period: the budget's period from the sentence (``per day``, ``for the current
        month``...).
    :param date: the date in the first line.
    :param dashboard_url: the console link, only if it points at the AWS console.
    :param subject: the SNS Subject, if any.
    :param raw_text: the message exactly as received.
    :param unparsed: names of the fields above that could not be read.
    """

    account_id: str | None
    budget_name: str | None
    budget_type: str | None
    budgeted_amount: Money | None
    alert_type: AlertType | None
    threshold: Money | None
    threshold_percent: Decimal | None
    amount: Money | None
    period: BudgetPeriod | None
    date: datetime.date | None
    dashboard_url: str | None
    subject: str | None
    raw_text: str
    unparsed: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """True when every field was read."""
        return not self.unparsed

    @property
    def console_url(self) -> str:
        """The link to show a reader: the message's own console link, else the default."""
        return self.dashboard_url or DEFAULT_CONSOLE_URL


def parse_money(text: str) -> Money | None:
    """Read ``$1,234.50``-style amounts exactly; ``None`` for anything else."""
    match = _MONEY.fullmatch(text.strip())
    if match is None:
        return None
    pre, post = match["pre"], match["post"]
    if pre and post:
        return None
    symbol = pre or post
    if symbol is None:
        return None
    currency = _CURRENCY_SYMBOLS.get(symbol, symbol)
    try:
        return Money(Decimal(match["number"].replace(",", "")), currency)
    except InvalidOperation:  # pragma: no cover - the pattern admits plain numbers only
        return None


def _parse_date(text: str) -> datetime.date | None:
    match = _DATE.search(text)
    if match is None:
        return None
    month = _MONTHS.get(match["month"].lower())
    if month is None:
        return None
    try:
        return datetime.date(int(match["year"]), month, int(match["day"]))
    except ValueError:
        return None


def _labelled_values(lines: list[str]) -> dict[str, str | None]:
    """Lower-cased label -> value; ``None`` when the label repeats with another value."""
    values: dict[str, str | None] = {}
    for line in lines:
        match = _LABELLED.match(line)
        if match is None:
            continue
        label = " ".join(match["label"].lower().split())
        value = match["value"].strip()
        if label in values and values[label] != value:
            values[label] = None
        else:
            values.setdefault(label, value)
    return values


def _subject_name(subject: str | None) -> str | None:
    """The budget name in ``AWS Budgets: <name> has exceeded your alert threshold``."""
    if subject is None or len(subject) > _MAX_SUBJECT_CHARS:
        return None
    match = _SUBJECT.fullmatch(subject.strip())
    return match["name"] if match is not None else None


def _check_is_alert(message: Notification) -> None:
    text = message.message
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            document = json.loads(stripped)
        except (ValueError, RecursionError):
            document = None
        if isinstance(document, dict) and (
            "previousBudgetLimit" in document or "currentBudgetLimit" in document
        ):
            raise BudgetAdjustmentError(
                "this is an auto-adjusting budget's limit change, not an alert"
            )
        if document is not None:
            raise NotABudgetAlertError("a JSON message is not an AWS Budgets alert")
    if _HEADER.match(stripped):
        return
    if _subject_name(message.subject) is not None:
        return
    raise NotABudgetAlertError("the message is not an AWS Budgets alert")


def _percent(threshold: Money | None, budgeted: Money | None) -> Decimal | None:
    if threshold is None or budgeted is None or budgeted.amount == 0:
        return None
    if threshold.currency != budgeted.currency:
        return None
    return _cents(threshold.amount * 100 / budgeted.amount, ROUND_HALF_UP)


def _parse_threshold(
    value: str | None, budgeted: Money | None
) -> tuple[Money | None, Decimal | None]:
    """``> $90.00`` (what Budgets sends) or ``> 90%`` -> (absolute, percent)."""
    if value is None:
        return None, None
    rest = _THRESHOLD.fullmatch(value.strip())
    body = rest["rest"] if rest is not None else value
    percent_match = _PERCENT.fullmatch(body.strip())
    if percent_match is not None:
        percent = Decimal(percent_match["number"])
        amount = _cents(budgeted.amount * percent / 100) if budgeted is not None else None
        absolute = (
            Money(amount, budgeted.currency)
            if amount is not None and budgeted is not None
            else None
        )
        return absolute, percent.quantize(_CENT)
    threshold = parse_money(body)
    return threshold, _percent(threshold, budgeted)


def _parse_alert_type(
    labelled: dict[str, str | None], text: str
) -> tuple[AlertType | None, Money | None]:
    """The alert type from its label (or, failing that, the only amount line or the sentence),
    and the amount of that type."""
    amounts = {
        kind: labelled.get(f"{kind.value.lower()} amount")
        for kind in AlertType
        if f"{kind.value.lower()} amount" in labelled
    }
    alert_type: AlertType | None = None
    stated = labelled.get("alert type")
    if stated is not None:
        alert_type = next((k for k in AlertType if k.value == stated.strip().upper()), None)
    elif "alert type" not in labelled:
        if len(amounts) == 1:
            alert_type = next(iter(amounts))
        else:
            sentence = _SENTENCE_TYPE.search(text)
            alert_type = AlertType(sentence["type"].upper()) if sentence else None
    amount_text = amounts.get(alert_type) if alert_type is not None else None
    return alert_type, parse_money(amount_text) if amount_text is not None else None


def _parse_period(text: str) -> BudgetPeriod | None:
    match = _PERIOD.search(text)
    if match is None:
        return None
    if match["yesterday"]:
        return BudgetPeriod.DAY
    return BudgetPeriod((match["current"] or match["per"]).lower())


def _budget_name(labelled: dict[str, str | None], subject: str | None, text: str) -> str | None:
    if "budget name" in labelled:
        name = labelled["budget name"]
        return name or None
    from_subject = _subject_name(subject)
    if from_subject is not None:
        return from_subject
    sentence = _SENTENCE_NAME.search(text)
    return sentence["name"] if sentence else None


def parse_budget_alert(message: Notification) -> BudgetAlert:
    """Parse a verified Notification into a :class:`BudgetAlert`.

    Raises :class:`NotABudgetAlertError` (422) when the message is not a Budgets alert at
    all (:class:`BudgetAdjustmentError` for an auto-adjusting budget's JSON notice). A
    recognised alert never raises: what could not be read is listed in ``unparsed``.
    """
    _check_is_alert(message)
    text = message.message
    # splitlines() also breaks on CR, NEL, U+2028...: no field value can span "lines".
    lines = text.splitlines()
    labelled = _labelled_values(lines)

    account_id = next((m["id"] for m in map(_ACCOUNT.match, lines) if m is not None), None)
    budgeted_text = labelled.get("budgeted amount")
    budgeted = parse_money(budgeted_text) if budgeted_text is not None else None
    threshold, percent = _parse_threshold(labelled.get("alert threshold"), budgeted)
    alert_type, amount = _parse_alert_type(labelled, text)
    dashboard_url = next(
        (
            m["url"]
            for m in map(_DASHBOARD.match, lines)
            if m is not None and _CONSOLE_URL.fullmatch(m["url"])
        ),
        None,
    )
    budget_name = _budget_name(labelled, message.subject, text)
    budget_type = labelled.get("budget type") or None
    period = _parse_period(text)
    alert_date = _parse_date(text)
    found: dict[str, object] = {
        "date": alert_date,
        "account_id": account_id,
        "budget_name": budget_name,
        "budget_type": budget_type,
        "budgeted_amount": budgeted,
        "alert_type": alert_type,
        "threshold": threshold,
        "amount": amount,
        "period": period,
        "dashboard_url": dashboard_url,
    }
    return BudgetAlert(
        account_id=account_id,
        budget_name=budget_name,
        budget_type=budget_type,
        budgeted_amount=budgeted,
        alert_type=alert_type,
        threshold=threshold,
        threshold_percent=percent,
        amount=amount,
        period=period,
        date=alert_date,
        dashboard_url=dashboard_url,
        subject=message.subject,
        raw_text=text,
        unparsed=tuple(name for name in PARSED_FIELDS if found[name] is None),
    )
