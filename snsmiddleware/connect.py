"""``snsmiddleware connect``: wire a budget to an endpoint through an SNS topic, idempotently.

What it makes true, reading everything first and changing only what differs:

1. the topic exists (created, or reused: ``--topic`` or the name ``budget-alerts``), signs
   with SignatureVersion 2, and its policy lets ``budgets.amazonaws.com`` and
   ``costalerts.amazonaws.com`` publish, scoped with ``aws:SourceAccount`` to the topic's
   account (every other statement is kept);
2. the endpoint is subscribed (HTTPS; plain HTTP only with ``--allow-http``, for local
   development) with raw message delivery off; SNS then sends a SubscriptionConfirmation,
   which the server confirms; a subscription still pending is asked for again;
3. every notification of the budget sends to the topic (``CreateSubscriber``); a budget with
   no notification gets one (ACTUAL above ``--threshold`` percent). A notification already
   sending to another topic is reported, not changed: a notification has one SNS subscriber.

The budget is looked up before anything is changed, so a mistyped name changes nothing.
Every change is printed as it is made (``--dry-run`` prints them and makes none); a second
run prints only ``[unchanged]`` lines. boto3 is imported only when :func:`run_connect` runs.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TextIO
from urllib.parse import urlsplit

from .aws_wiring import (
    PENDING,
    Subscription,
    aws_clients,
    budgets_region,
    error_code,
    explain_aws_error,
    is_true,
    partition_of,
    subscriptions_for,
    what_to_do,
)
from .errors import ConfigurationError, SnsError, TopicPolicyError
from .policy import parse_topic_arn
from .terminal import terminal_safe, without_password
from .topic_policy import PUBLISHERS, load_policy, with_publishers

DEFAULT_TOPIC_NAME: Final = "budget-alerts"
#: The IAM action behind each Budgets call connect makes (SNS calls are named as they are).
_BUDGETS_WRITES: Final = {
    "CreateSubscriber": "budgets:ModifyBudget",
    "CreateNotification": "budgets:ModifyBudget",
}
DEFAULT_THRESHOLD: Final = "80"
_MARKS: Final = {
    "changed": "[changed]  ",
    "dry": "[would do] ",
    "same": "[unchanged]",
    "fail": "[FAIL]     ",
    "warn": "[warn]     ",
    "note": "           ",
}


@dataclass(frozen=True)
class ConnectOptions:
    """What ``connect`` wires; :func:`connect_options` builds it from checked arguments."""

    budget: str
    endpoint: str
    topic_arn: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    dry_run: bool = False
    threshold: str = DEFAULT_THRESHOLD
    topic_name: str = DEFAULT_TOPIC_NAME


def connect_options(
    budget: str,
    endpoint: str,
    *,
    topic_arn: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    dry_run: bool = False,
    allow_http: bool = False,
    threshold: str = DEFAULT_THRESHOLD,
) -> ConnectOptions:
    """Check the arguments before anything is asked of AWS."""
    if not budget.strip():
        raise ConfigurationError("--budget must name a budget")
    parts = urlsplit(endpoint)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigurationError(
            f"--endpoint must be an https:// URL, not {terminal_safe(endpoint)!r}"
        )
    if parts.scheme == "http" and not allow_http:
        raise ConfigurationError(
            "--endpoint must be https:// (SNS delivers to http:// in clear text; for local "
            "development pass --allow-http)"
        )
    if topic_arn is not None:
        try:
            parse_topic_arn(topic_arn)
        except SnsError as exc:
            raise ConfigurationError(f"--topic {terminal_safe(topic_arn)!r}: {exc}") from None
    if endpoint_url is not None and urlsplit(endpoint_url).scheme not in {"http", "https"}:
        raise ConfigurationError("--endpoint-url must be an http:// or https:// URL")
    try:
        percent = Decimal(threshold)
    except InvalidOperation:
        percent = Decimal(-1)
    if not 0 < percent <= 1000:
        raise ConfigurationError("--threshold must be a percentage above 0, for example 80")
    return ConnectOptions(
        budget, endpoint, topic_arn, region, endpoint_url, dry_run, threshold=str(percent)
    )


class _Failed(Exception):
    """A finding that stops the run (printed already)."""


@dataclass
class _Printer:
    """Prints each step as it happens and counts them."""

    out: TextIO
    dry_run: bool
    changes: int = 0
    failures: int = 0
    warnings: int = 0

    def line(self, mark: str, text: str, fix: str = "") -> None:
        self.out.write(f"{_MARKS[mark]} {text}\n")
        if fix:
            self.out.write(f"             fix: {fix}\n")
        self.out.flush()

    def change(self, text: str, action: Callable[[], Any]) -> Any:
        """Make a change (unless this is a dry run) and say so once it is made."""
        if self.dry_run:
            self.changes += 1
            self.line("dry", text)
            return None
        try:
            result = action()
        except Exception as exc:  # noqa: BLE001 - reported, never a traceback
            operation = str(getattr(exc, "operation_name", ""))
            permission = _BUDGETS_WRITES.get(operation, f"sns:{operation}")
            self.fail(
                f"could not {text}: {explain_aws_error(exc)}",
                f"{what_to_do(exc, permission, 'examples/connect-iam-policy.json')}; the "
                "changes above were made, none after this one",
            )
        self.changes += 1
        self.line("changed", text)
        return result

    def same(self, text: str) -> None:
        self.line("same", text)

    def warn(self, text: str, fix: str = "") -> None:
        self.warnings += 1
        self.line("warn", text, fix)

    def fail(self, text: str, fix: str = "") -> None:
        self.failures += 1
        self.line("fail", text, fix)
        raise _Failed


def _refused(printer: _Printer, what: str, exc: BaseException, permission: str) -> None:
    """Report an AWS read that failed, before anything was changed, and stop."""
    fix = what_to_do(exc, permission, "examples/connect-iam-policy.json")
    printer.fail(f"could not {what}: {explain_aws_error(exc)}; nothing was changed", fix)


def _read(printer: _Printer, what: str, call: Callable[[], Any], permission: str) -> Any:
    """An AWS read whose failure stops the run before anything was changed."""
    try:
        return call()
    except Exception as exc:  # noqa: BLE001
        _refused(printer, what, exc, permission)


@dataclass
class _Plan:
    """What was read before any change."""

    account: str
    region: str
    topic_arn: str
    topic_attributes: dict[str, str] | None
    notifications: list[tuple[dict[str, Any], list[dict[str, Any]]]] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)


def _notification_text(notification: dict[str, Any]) -> str:
    kind = notification.get("ThresholdType", "PERCENTAGE")
    unit = "%" if kind == "PERCENTAGE" else " (absolute)"
    operator = {"GREATER_THAN": ">", "LESS_THAN": "<", "EQUAL_TO": "="}.get(
        notification.get("ComparisonOperator", ""), "?"
    )
    try:
        threshold = f"{float(notification.get('Threshold', '')):g}"  # 80.0 -> 80
    except ValueError:
        threshold = "?"
    return f"{notification.get('NotificationType', '?')} {operator} {threshold}{unit}"


def _only_keys(notification: dict[str, Any]) -> dict[str, Any]:
    """The notification as the Budgets API identifies it (no NotificationState)."""
    keys = ("NotificationType", "ComparisonOperator", "Threshold", "ThresholdType")
    return {key: notification[key] for key in keys if key in notification}


def _read_budget(printer: _Printer, budgets: Any, account: str, name: str) -> None:
    try:
        budgets.describe_budget(AccountId=account, BudgetName=name)
        return
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) != "NotFoundException":
            _refused(printer, f"read budget {name!r}", exc, "budgets:ViewBudget")
    names: list[str] = []
    with contextlib.suppress(Exception):  # the names are a suggestion only
        names = [b["BudgetName"] for b in budgets.describe_budgets(AccountId=account)["Budgets"]]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(n) for n in close)}? " if close else ""
    known = f" (the account has: {', '.join(repr(n) for n in names[:8])})" if names else ""
    printer.fail(
        f"budget {terminal_safe(name)!r} not found in account {account}{known}; nothing "
        "was changed",
        f"{terminal_safe(hint)}budget names are case-sensitive; create it in the Billing "
        "console or with aws budgets create-budget",
    )


def _read_notifications(
    printer: _Printer, budgets: Any, account: str, name: str
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    found: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"AccountId": account, "BudgetName": name}
        if token:
            kwargs["NextToken"] = token
        page = _read(
            printer,
            f"read the notifications of budget {name!r}",
            functools.partial(budgets.describe_notifications_for_budget, **kwargs),
            "budgets:ViewBudget",
        )
        for notification in page.get("Notifications", []):
            answer = _read(
                printer,
                "read a notification's subscribers",
                functools.partial(
                    budgets.describe_subscribers_for_notification,
                    AccountId=account,
                    BudgetName=name,
                    Notification=_only_keys(notification),
                ),
                "budgets:ViewBudget",
            )
            found.append((notification, list(answer.get("Subscribers", []))))
        token = page.get("NextToken")
        if not token:
            return found


def _plan(printer: _Printer, options: ConnectOptions, clients: dict[str, Any]) -> _Plan:
    sns = clients["sns"]
    if options.topic_arn is not None:
        topic = parse_topic_arn(options.topic_arn)
        account, region, topic_arn = topic.account, topic.region, options.topic_arn
    else:
        identity = _read(
            printer,
            "find the account (sts GetCallerIdentity)",
            lambda: clients["sts"].get_caller_identity(),
            "sts:GetCallerIdentity",
        )
        account = str(identity["Account"])
        region = str(sns.meta.region_name)
        topic_arn = f"arn:{partition_of(region)}:sns:{region}:{account}:{options.topic_name}"
    _read_budget(printer, clients["budgets"], account, options.budget)
    notifications = _read_notifications(printer, clients["budgets"], account, options.budget)
    try:
        attributes = sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) != "NotFound":
            _refused(printer, "read the topic", exc, "sns:GetTopicAttributes")
        attributes = None
    plan = _Plan(account, region, topic_arn, attributes, notifications)
    if attributes is not None:
        try:
            load_policy(attributes.get("Policy"))
        except TopicPolicyError as exc:
            printer.fail(
                f"{exc}: connect does not rewrite a policy it cannot read; nothing was changed",
                "repair the topic's Policy attribute, then run connect again",
            )
        plan.subscriptions = _read(
            printer,
            "list the topic's subscriptions",
            lambda: subscriptions_for(sns, topic_arn, options.endpoint),
            "sns:ListSubscriptionsByTopic",
        )
    return plan


def _wire_topic(printer: _Printer, sns: Any, plan: _Plan, options: ConnectOptions) -> None:
    arn = plan.topic_arn
    publishers = " and ".join(PUBLISHERS)
    scope = f"(aws:SourceAccount {plan.account})"
    if plan.topic_attributes is None:
        name = arn.rsplit(":", 1)[1]

        def create() -> None:
            made = sns.create_topic(Name=name, Attributes={"SignatureVersion": "2"})["TopicArn"]
            if made != arn:
                raise ConfigurationError(f"AWS created {made}, not {arn}")

        def allow_publishers() -> None:
            # The new topic's default policy, with our statements added to it.
            policy = load_policy(_topic_attributes(sns, arn).get("Policy"))
            document, _added = with_publishers(policy, arn)
            _set_topic_attribute(sns, arn, "Policy", json.dumps(document))

        printer.change(f"create topic {arn} with SignatureVersion 2", create)
        printer.change(f"let {publishers} publish to it {scope}", allow_publishers)
        return
    printer.same(f"topic {arn} exists")
    version = str(plan.topic_attributes.get("SignatureVersion") or "1")
    if version == "2":
        printer.same("the topic signs with SignatureVersion 2")
    else:
        printer.change(
            f"set the topic's SignatureVersion to 2 (was {terminal_safe(version)})",
            lambda: _set_topic_attribute(sns, arn, "SignatureVersion", "2"),
        )
    document, added = with_publishers(load_policy(plan.topic_attributes.get("Policy")), arn)
    if not added:
        printer.same(f"the topic policy lets {publishers} publish")
    else:
        printer.change(
            f"let {' and '.join(added)} publish to the topic {scope}",
            lambda: _set_topic_attribute(sns, arn, "Policy", json.dumps(document)),
        )


def _topic_attributes(sns: Any, arn: str) -> dict[str, str]:
    return dict(sns.get_topic_attributes(TopicArn=arn)["Attributes"])


def _set_topic_attribute(sns: Any, arn: str, name: str, value: str) -> None:
    sns.set_topic_attributes(TopicArn=arn, AttributeName=name, AttributeValue=value)


def _subscribe(sns: Any, plan: _Plan, options: ConnectOptions) -> str:
    made = sns.subscribe(
        TopicArn=plan.topic_arn,
        Protocol=urlsplit(options.endpoint).scheme,
        Endpoint=options.endpoint,
        ReturnSubscriptionArn=True,
    )
    return str(made.get("SubscriptionArn", PENDING))


def _wire_subscription(printer: _Printer, sns: Any, plan: _Plan, options: ConnectOptions) -> None:
    shown = terminal_safe(without_password(options.endpoint))
    if not plan.subscriptions:
        arn = printer.change(
            f"subscribe {shown} to the topic", lambda: _subscribe(sns, plan, options)
        )
        if arn is not None and _is_pending(sns, arn):
            printer.line(
                "note",
                "  SNS has sent it a SubscriptionConfirmation: the server confirms it (then "
                "doctor shows it confirmed)",
            )
        return
    for subscription in plan.subscriptions:
        if subscription.pending or _is_pending(sns, subscription.arn):
            printer.change(
                f"ask SNS to send {shown} the SubscriptionConfirmation again (the "
                "subscription is still pending: is the server reachable?)",
                lambda: _subscribe(sns, plan, options),
            )
            continue
        attributes = _read(
            printer,
            "read the subscription's attributes",
            functools.partial(sns.get_subscription_attributes, SubscriptionArn=subscription.arn),
            "sns:GetSubscriptionAttributes",
        )["Attributes"]
        printer.same(f"{shown} is subscribed and confirmed ({terminal_safe(subscription.arn)})")
        if is_true(attributes.get("RawMessageDelivery")):
            printer.change(
                "turn raw message delivery off (raw bodies carry no signature: the server "
                "refuses them)",
                functools.partial(
                    sns.set_subscription_attributes,
                    SubscriptionArn=subscription.arn,
                    AttributeName="RawMessageDelivery",
                    AttributeValue="false",
                ),
            )


def _is_pending(sns: Any, arn: str) -> bool:
    if arn == PENDING:
        return True
    try:
        attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    except Exception:  # noqa: BLE001 - unknown: not reported as pending
        return False
    return is_true(attributes.get("PendingConfirmation"))


def _wire_budget(printer: _Printer, budgets: Any, plan: _Plan, options: ConnectOptions) -> None:
    name = options.budget
    shown = terminal_safe(name)
    subscriber = {"SubscriptionType": "SNS", "Address": plan.topic_arn}
    if not plan.notifications:
        notification = {
            "NotificationType": "ACTUAL",
            "ComparisonOperator": "GREATER_THAN",
            "Threshold": float(options.threshold),
            "ThresholdType": "PERCENTAGE",
        }
        printer.change(
            f"create notification {_notification_text(notification)} on budget {shown!r}, "
            "sending to the topic",
            lambda: budgets.create_notification(
                AccountId=plan.account,
                BudgetName=name,
                Notification=notification,
                Subscribers=[subscriber],
            ),
        )
        return
    connected = 0
    for notification, subscribers in plan.notifications:
        what = f"notification {_notification_text(notification)} of budget {shown!r}"
        topics = [s["Address"] for s in subscribers if s.get("SubscriptionType") == "SNS"]
        if plan.topic_arn in topics:
            connected += 1
            printer.same(f"{what} sends to the topic")
        elif topics:
            printer.warn(
                f"{what} already sends to another topic, {terminal_safe(topics[0])}: not "
                "changed (a notification has one SNS subscriber)",
                f"aws budgets update-subscriber ... --new-subscriber SubscriptionType=SNS,"
                f"Address={plan.topic_arn}, or run connect with --topic {terminal_safe(topics[0])}",
            )
        else:
            connected += 1
            printer.change(
                f"make {what} send to the topic",
                functools.partial(
                    budgets.create_subscriber,
                    AccountId=plan.account,
                    BudgetName=name,
                    Notification=_only_keys(notification),
                    Subscriber=subscriber,
                ),
            )
    if not connected:
        printer.fail(f"no notification of budget {shown!r} sends to {plan.topic_arn}")


def run_connect(
    options: ConnectOptions, out: TextIO, *, clients: dict[str, Any] | None = None
) -> int:
    """Wire it all; 0 when done (or nothing to do), 1 when something could not be.

    :param clients: boto3 clients by service (``sns``, ``budgets``, ``sts``); tests pass
        their own. By default they are made for ``--region`` (or the topic's) and
        ``--endpoint-url``.
    """
    if clients is None:
        clients = _default_clients(options)
    printer = _Printer(out, options.dry_run)
    out.write(
        f"snsmiddleware connect: budget {terminal_safe(options.budget)!r} -> "
        f"{terminal_safe(without_password(options.endpoint))}"
        + (" (DRY RUN: nothing will be changed)" if options.dry_run else "")
        + "\n"
    )
    try:
        plan = _plan(printer, options, clients)
        out.write(f"  account {plan.account}, topic {plan.topic_arn}\n")
        _wire_topic(printer, clients["sns"], plan, options)
        _wire_subscription(printer, clients["sns"], plan, options)
        _wire_budget(printer, clients["budgets"], plan, options)
    except _Failed:
        out.write(f"RESULT: FAILED ({_changes(printer)})\n")
        return 1
    if printer.changes == 0:
        out.write("RESULT: nothing to change: already connected\n")
    elif options.dry_run:
        out.write(f"RESULT: {printer.changes} change(s) to make (dry run: none made)\n")
    else:
        out.write(f"RESULT: {printer.changes} change(s) made\n")
    if not options.dry_run:
        out.write(
            f"next: snsmiddleware doctor --topic {plan.topic_arn} --endpoint "
            f"{terminal_safe(without_password(options.endpoint))}"
            + (f" --endpoint-url {options.endpoint_url}" if options.endpoint_url else "")
            + "\n"
        )
    return 1 if printer.failures else 0


def _changes(printer: _Printer) -> str:
    if printer.changes == 0:
        return "nothing was changed"
    if printer.dry_run:
        return f"after {printer.changes} change(s) planned, none made"
    return f"after {printer.changes} change(s) made"


def _default_clients(options: ConnectOptions) -> dict[str, Any]:
    region = options.region
    if region is None and options.topic_arn is not None:
        region = parse_topic_arn(options.topic_arn).region
    if region is None:
        import boto3

        region = boto3.session.Session().region_name
    if region is None:
        raise ConfigurationError("give --region (or --topic ARN, whose region is used)")
    clients = aws_clients(("sns", "sts"), region, options.endpoint_url)
    budgets_at = budgets_region(partition_of(region), region)
    clients.update(aws_clients(("budgets",), budgets_at, options.endpoint_url))
    return clients
