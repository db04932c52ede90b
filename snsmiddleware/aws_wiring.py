"""What ``doctor`` and ``connect`` share: bounded boto3 clients, and finding an endpoint's
subscription among a topic's.

boto3 is imported only inside :func:`aws_clients`, when one of those commands runs.

Endpoints are compared the way SNS stores them, not as typed: the scheme and host in lower
case, a default port dropped, and the password ignored, because SNS masks a password in the
``Endpoint`` it lists (``https://user:****@host/path``), so the one in the operator's URL can
never be compared with it (a different password is SNS's problem to report, at delivery).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from .partitions import partitions
from .terminal import terminal_safe

#: Connect and read timeouts (seconds) and attempts of every AWS call: a command that hangs
#: on a black-holed endpoint tells the operator nothing.
AWS_CONNECT_TIMEOUT: Final = 5
AWS_READ_TIMEOUT: Final = 15
AWS_MAX_ATTEMPTS: Final = 3
#: Where the Budgets API lives, per partition (a global service with one regional endpoint).
BUDGETS_REGIONS: Final = {"aws": "us-east-1", "aws-cn": "cn-northwest-1"}
HTTP_PROTOCOLS: Final = frozenset({"http", "https"})
PENDING: Final = "PendingConfirmation"


def aws_clients(
    services: tuple[str, ...], region: str, endpoint_url: str | None = None
) -> dict[str, Any]:
    """One boto3 client per service, bounded in time, in ``region`` (``endpoint_url``: an
    emulator for all of them)."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=AWS_CONNECT_TIMEOUT,
        read_timeout=AWS_READ_TIMEOUT,
        retries={"mode": "standard", "max_attempts": AWS_MAX_ATTEMPTS},
    )
    make_client: Any = boto3.session.Session().client  # one overload per service name
    clients = {}
    for service in services:
        kwargs: dict[str, Any] = {"region_name": region, "config": config}
        if endpoint_url is not None:
            kwargs["endpoint_url"] = endpoint_url
        clients[service] = make_client(service, **kwargs)
    return clients


def budgets_region(partition: str, region: str) -> str:
    """The region of the Budgets endpoint for a topic in ``partition`` and ``region``."""
    return BUDGETS_REGIONS.get(partition, region)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``NotFound``...), else ``""``."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def explain_aws_error(exc: BaseException) -> str:
    """One terminal-safe line: the error code and AWS's message, or the exception's text."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        text = f"{error.get('Code', type(exc).__name__)}: {error.get('Message', '')}"
        return terminal_safe(text.rstrip().rstrip(":.").rstrip())
    return terminal_safe(f"{type(exc).__name__}: {exc}")


#: The codes AWS answers for a missing permission.
ACCESS_DENIED_CODES: Final = frozenset(
    {"AuthorizationError", "AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
)


def what_to_do(exc: BaseException, permission: str, policy_file: str) -> str:
    """The fix line for a failed AWS call: a permission, the credentials, or the service."""
    code = error_code(exc)
    if code in ACCESS_DENIED_CODES:
        return f"allow {permission} ({policy_file})"
    if not code:  # no answer at all: credentials, network, endpoint
        return "check credentials (AWS_PROFILE, aws configure), the region and --endpoint-url"
    return (
        "see AWS's message; an emulator may not implement this call (LocalStack's free "
        "edition has no Budgets API)"
    )


def endpoint_key(url: str) -> tuple[str, str, str]:
    """What identifies an HTTP(S) subscription endpoint: (scheme, user@host:port, path?query),
    normalised as SNS compares them, the password left out."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and port != {"http": 80, "https": 443}.get(scheme):
        host = f"{host}:{port}"
    if parts.username:
        host = f"{parts.username}@{host}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, path


@dataclass(frozen=True)
class Subscription:
    """One entry of ListSubscriptionsByTopic."""

    arn: str
    protocol: str
    endpoint: str

    @property
    def pending(self) -> bool:
        """SNS lists an unconfirmed subscription with the ARN ``PendingConfirmation``."""
        return self.arn == PENDING


def subscriptions(sns: Any, topic_arn: str) -> Iterator[Subscription]:
    """Every subscription of the topic (all pages)."""
    token: str | None = None
    while True:
        kwargs = {"TopicArn": topic_arn, **({"NextToken": token} if token else {})}
        page = sns.list_subscriptions_by_topic(**kwargs)
        for entry in page.get("Subscriptions", []):
            yield Subscription(
                str(entry.get("SubscriptionArn", "")),
                str(entry.get("Protocol", "")),
                str(entry.get("Endpoint", "")),
            )
        token = page.get("NextToken")
        if not token:
            return


def subscriptions_for(sns: Any, topic_arn: str, endpoint: str | None) -> list[Subscription]:
    """The topic's HTTP(S) subscriptions; only those for ``endpoint`` when it is given."""
    found = [s for s in subscriptions(sns, topic_arn) if s.protocol in HTTP_PROTOCOLS]
    if endpoint is None:
        return found
    wanted = endpoint_key(endpoint)
    return [s for s in found if endpoint_key(s.endpoint) == wanted]


def is_true(value: Any) -> bool:
    """SNS attributes are strings (``"true"``); emulators sometimes answer booleans."""
    return str(value).lower() == "true"


def partition_of(region: str) -> str:
    """The partition a region belongs to (``aws`` for a name nobody knows: the API will say)."""
    candidates = list(partitions().values())
    for found in candidates:
        if found.knows(region):
            return found.id
    for found in candidates:
        if found.has_region_shape(region):
            return found.id
    return "aws"
