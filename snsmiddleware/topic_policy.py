"""Can AWS Budgets (and Cost Anomaly Detection) publish to a topic? Read and write the policy.

Pure functions over a topic's access policy (the ``Policy`` attribute, a JSON document), for
``snsmiddleware doctor`` (which explains what it finds) and ``snsmiddleware connect`` (which
adds what is missing). Budgets publishes as the service principal ``budgets.amazonaws.com``,
Cost Anomaly Detection as ``costalerts.amazonaws.com``; neither is covered by the default
topic policy, whose ``AWS:SourceOwner`` condition only admits principals of the topic's own
account.

:func:`publish_verdict` evaluates the statements the way IAM would for one publish by that
service: an Allow whose principal, action and resource match and whose conditions hold, and
no Deny that matches. It understands the conditions such statements carry (``aws:SourceAccount``,
``aws:SourceOwner``, ``aws:SourceArn`` with the String and Arn operators); any other condition
is reported as not evaluated rather than guessed, so a verdict of ``ok`` is never a guess.

The statements :func:`publisher_statement` writes are scoped with ``aws:SourceAccount``: a
statement naming only the service would let *any* account's budget publish to the topic (the
"confused deputy"), and those alerts are genuinely signed by SNS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Final, Literal

from .errors import TopicPolicyError

BUDGETS_PRINCIPAL: Final = "budgets.amazonaws.com"
COST_ANOMALY_PRINCIPAL: Final = "costalerts.amazonaws.com"
#: The services whose alerts the budget app emails, and the ARN service of their sources.
PUBLISHERS: Final = {BUDGETS_PRINCIPAL: "budgets", COST_ANOMALY_PRINCIPAL: "ce"}
#: The Sid of each statement ``connect`` writes (recognised, and replaced, on later runs).
STATEMENT_IDS: Final = {
    BUDGETS_PRINCIPAL: "snsmiddleware-budgets-publish",
    COST_ANOMALY_PRINCIPAL: "snsmiddleware-costalerts-publish",
}
_PUBLISH: Final = "sns:publish"
_ACCOUNT_KEYS: Final = frozenset({"aws:sourceaccount", "aws:sourceowner"})
_ARN_KEYS: Final = frozenset({"aws:sourcearn"})
_STRING_OPERATORS: Final = frozenset(
    {"stringequals", "stringlike", "stringequalsignorecase", "arnequals", "arnlike"}
)

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class PublishVerdict:
    """Whether ``service`` may publish, in one sentence, and what to do when it may not."""

    status: Status
    detail: str


def load_policy(text: str | None) -> dict[str, Any]:
    """Parse a Policy attribute; an absent or empty one is a policy without statements."""
    if not text:
        return {"Version": "2012-10-17", "Statement": []}
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise TopicPolicyError(f"the topic policy is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise TopicPolicyError("the topic policy is not a JSON object")
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        document["Statement"] = [statements]
    elif not isinstance(statements, list):
        raise TopicPolicyError("the topic policy's Statement is not a list")
    return document


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _principal_matches(statement: dict[str, Any], service: str) -> bool:
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    if "*" in _as_list(principal.get("AWS")):
        return True
    return service in _as_list(principal.get("Service"))


def _action_matches(statement: dict[str, Any]) -> bool:
    if "NotAction" in statement:
        return not any(
            fnmatchcase(_PUBLISH, str(p).lower()) for p in _as_list(statement["NotAction"])
        )
    return any(fnmatchcase(_PUBLISH, str(p).lower()) for p in _as_list(statement.get("Action")))


def _resource_matches(statement: dict[str, Any], topic_arn: str) -> bool:
    return any(fnmatchcase(topic_arn, str(p)) for p in _as_list(statement.get("Resource")))


def _arn_could_come_from(pattern: str, partition: str, service: str, account: str) -> bool:
    """Could ``service``'s source ARN in ``account`` match ``pattern``? The first five
    segments are compared (``arn:aws:budgets::123456789012:``); the resource part names one
    budget or subscription, which the topic policy cannot know about."""
    parts = pattern.split(":", 5)
    if len(parts) == 1 and fnmatchcase("x", parts[0]):  # "*"
        return True
    if len(parts) < 6:
        return False
    wanted = ["arn", partition, service, "", account]
    return all(fnmatchcase(value, glob) for value, glob in zip(wanted, parts[:5], strict=True))


@dataclass(frozen=True)
class _ConditionResult:
    holds: bool
    unknown: tuple[str, ...] = ()
    note: str = ""


def _conditions(
    statement: dict[str, Any], partition: str, service: str, account: str
) -> _ConditionResult:
    """Evaluate a statement's conditions for a publish by ``service`` from ``account``."""
    condition = statement.get("Condition") or {}
    if not isinstance(condition, dict):
        return _ConditionResult(False, ("Condition",))
    unknown: list[str] = []
    notes: list[str] = []
    for operator, keys in condition.items():
        base = str(operator).split(":")[-1].lower().removesuffix("ifexists")
        if not isinstance(keys, dict):
            unknown.append(str(operator))
            continue
        for key, values in keys.items():
            name = str(key).lower()
            patterns = [str(v) for v in _as_list(values)]
            if base not in _STRING_OPERATORS or name not in _ACCOUNT_KEYS | _ARN_KEYS:
                unknown.append(f"{operator} {key}")
                continue
            if name in _ACCOUNT_KEYS:
                if not any(fnmatchcase(account, p) for p in patterns):
                    return _ConditionResult(
                        False, note=f"{key} is limited to {', '.join(patterns)}"
                    )
                notes.append(f"{key} {account}")
            elif not any(_arn_could_come_from(p, partition, service, account) for p in patterns):
                return _ConditionResult(False, note=f"{key} is limited to {', '.join(patterns)}")
            else:
                notes.append(f"{key} {', '.join(patterns)}")
    return _ConditionResult(True, tuple(unknown), "; ".join(notes))


def _label(statement: dict[str, Any], index: int) -> str:
    sid = statement.get("Sid")
    return f"statement {sid!r}" if sid else f"statement #{index + 1}"


def _topic_parts(topic_arn: str) -> tuple[str, str]:
    parts = topic_arn.split(":")
    return (parts[1], parts[4]) if len(parts) >= 6 else ("aws", "")


def publish_verdict(policy: dict[str, Any], service: str, topic_arn: str) -> PublishVerdict:
    """May ``service`` publish to ``topic_arn`` under ``policy`` (from :func:`load_policy`)?

    ``fail``: no statement allows it, or one denies it; ``warn``: allowed, but only under
    conditions not evaluated here, or by a statement open to anyone or to any account;
    ``ok``: allowed, scoped to the topic's account.
    """
    partition, account = _topic_parts(topic_arn)
    source = PUBLISHERS.get(service, service.split(".")[0])
    allowed: list[tuple[str, _ConditionResult, bool]] = []
    refusals: list[str] = []
    for index, statement in enumerate(_as_list(policy.get("Statement"))):
        if not isinstance(statement, dict) or "NotPrincipal" in statement:
            continue
        if "NotResource" in statement:
            continue
        if not (
            _principal_matches(statement, service)
            and _action_matches(statement)
            and _resource_matches(statement, topic_arn)
        ):
            continue
        label = _label(statement, index)
        principal = statement.get("Principal")
        named = isinstance(principal, dict) and service in _as_list(principal.get("Service"))
        if not named and statement.get("Condition") and statement.get("Effect") == "Allow":
            # "Anyone, under conditions": the default policy's AWS:SourceOwner statement is
            # one, and it does not admit AWS Budgets (the service must be named).
            refusals.append(f"{label} has Principal * with conditions, which do not admit it")
            continue
        result = _conditions(statement, partition, source, account)
        if str(statement.get("Effect")) == "Deny":
            if result.holds and not result.unknown:
                return PublishVerdict("fail", f"{label} denies {service} sns:Publish")
            continue
        if str(statement.get("Effect")) != "Allow":
            continue
        if not result.holds:
            refusals.append(f"{label}: {result.note}")
            continue
        allowed.append((label, result, named))
    for label, result, named in allowed:
        if named and not result.unknown and result.note:
            return PublishVerdict("ok", f"{label} allows {service} ({result.note})")
    for label, result, _named in allowed:
        if result.unknown:
            return PublishVerdict(
                "warn",
                f"{label} allows {service} only under conditions not evaluated here "
                f"({', '.join(result.unknown)}): check them",
            )
    for label, _result, named in allowed:
        if named:
            return PublishVerdict(
                "warn",
                f"{label} allows {service} from ANY account: scope it with a Condition "
                f'{{"StringEquals": {{"aws:SourceAccount": "{account}"}}}}',
            )
        return PublishVerdict(
            "warn", f"{label} lets ANYONE publish (Principal *): name {service} instead"
        )
    why = f" ({'; '.join(refusals)})" if refusals else ""
    return PublishVerdict("fail", f"no statement lets {service} sns:Publish to this topic{why}")


def publisher_statement(service: str, topic_arn: str) -> dict[str, Any]:
    """The statement ``connect`` adds: ``service`` may publish to this topic only, and only
    on behalf of the topic's own account."""
    _partition, account = _topic_parts(topic_arn)
    return {
        "Sid": STATEMENT_IDS.get(service, service),
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sns:Publish",
        "Resource": topic_arn,
        "Condition": {"StringEquals": {"aws:SourceAccount": account}},
    }


def with_publishers(
    policy: dict[str, Any], topic_arn: str, services: tuple[str, ...] = tuple(PUBLISHERS)
) -> tuple[dict[str, Any], list[str]]:
    """``policy`` with a statement for each of ``services`` that may not publish yet (a
    statement of ours with the same Sid is replaced; every other statement is kept).
    Returns the new document and the services added (empty: nothing to change)."""
    added = [s for s in services if publish_verdict(policy, s, topic_arn).status != "ok"]
    if not added:
        return policy, []
    replaced = {STATEMENT_IDS.get(s, s) for s in added}
    statements = [
        statement
        for statement in _as_list(policy.get("Statement"))
        if not (isinstance(statement, dict) and statement.get("Sid") in replaced)
    ]
    statements.extend(publisher_statement(service, topic_arn) for service in added)
    document = {"Version": policy.get("Version", "2012-10-17"), **policy, "Statement": statements}
    return document, added
