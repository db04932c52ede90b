"""DynamoDBDedupeStore: de-duplication shared by replicas on any number of hosts (boto3).

For deployments on ECS, EKS or Lambda, where DynamoDB is the shared store at hand. Each rule
of the store contract is one conditional write, so no step needs a transaction:

* claim is ``PutItem`` of a *held* item with ``attribute_not_exists(pk) OR expires <= :now``:
  exactly one caller wins; a claim whose lease lapsed (its holder died) or an id whose
  retention ended is taken again. The failed condition returns the item that won
  (``ReturnValuesOnConditionCheckFailure``), so a lost claim costs no second read;
* commit is an unconditional ``PutItem`` of a *done* item: done is done, whoever holds the
  claim now (the work happened; refusing the commit would let a redelivery do it again);
* release is ``DeleteItem`` conditioned on this claim's token and the item still *held*:
  a request whose lease lapsed never removes the claim of the request that took over;
* a claim whose holder is a dead process of *this* host (:func:`~.dedupe.holder_is_dead`)
  is taken over at once by a write conditioned on its token; a holder on another host can
  only be outlived (its lease);
* an effect record (:class:`~.dedupe.EffectLedger`) is a *done* item under ``id|effect``,
  read back with a strongly consistent ``GetItem``.

Expiry is decided by the ``expires`` attribute in every condition and read, never by the
table's TTL: DynamoDB deletes expired items only eventually (often within days), so the
``ttl`` attribute (whole epoch seconds) only keeps the table from growing. Times come from
this host's clock: hosts sharing a table need synchronised clocks (NTP), as a host whose
clock runs ahead would see other hosts' leases lapse early.

Every call is bounded (connect 1 s, read 2 s, 2 attempts in botocore's standard retry mode),
so a failing DynamoDB costs a delivery a few seconds, well inside SNS's 15 s answer deadline.
When DynamoDB cannot be reached or throttles us, claim raises
:class:`~snsmiddleware.errors.TransientError` and the middleware answers 503
``dedupe_unavailable`` (SNS retries): processing without de-duplication could send an email
twice. ``fail_open=True`` chooses the other risk explicitly: claims then succeed (logged).

boto3 is imported when a store is built, never by ``import snsmiddleware``.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from .dedupe import (
    DEFAULT_LEASE,
    DEFAULT_RETENTION,
    Claim,
    ClaimState,
    effect_key,
    holder_is_dead,
    new_token,
)
from .errors import ConfigurationError, TransientError
from .reasons import Reason

log = logging.getLogger(__name__)

#: The table's partition key (a string): the MessageId, or ``MessageId|effect``.
PARTITION_KEY: Final = "pk"
#: The table's TTL attribute (whole epoch seconds), for DynamoDB's own purge only.
TTL_ATTRIBUTE: Final = "ttl"
#: How long an item outlives its expiry before DynamoDB may purge it (never needed for
#: correctness: every condition checks ``expires``; the margin only helps an operator
#: looking at recent claims).
TTL_MARGIN: Final = timedelta(hours=1)
#: botocore client bounds that fit SNS's 15 s answer deadline.
CONNECT_TIMEOUT: Final = timedelta(seconds=1)
READ_TIMEOUT: Final = timedelta(seconds=2)
MAX_ATTEMPTS: Final = 2
#: The query keys a ``dynamodb://`` URL may carry.
URL_KEYS: Final = frozenset({"region", "endpoint_url", "key_prefix", "fail_open"})

_TABLE_NAME: Final = re.compile(r"[A-Za-z0-9_.\-]{3,255}", re.ASCII)
_REGION: Final = re.compile(r"[a-z]{2,5}(-[a-z]+)+-\d{1,2}", re.ASCII)  # eusc-de-east-1 too
_HELD: Final = "held"
_DONE: Final = "done"
# Every attribute goes through a placeholder: TTL (and others) are DynamoDB reserved words.
_NAMES: Final = {"#pk": PARTITION_KEY, "#s": "state", "#t": "token", "#e": "expires"}
_CLAIMABLE: Final = "attribute_not_exists(#pk) OR #e <= :now"
_HELD_BY: Final = "#t = :token AND #s = :held"


@dataclass(frozen=True, slots=True)
class DynamoDBLocation:
    """What a ``dynamodb://TABLE?region=...&endpoint_url=...`` URL names."""

    table: str
    region: str | None = None
    endpoint_url: str | None = None
    key_prefix: str = ""
    fail_open: bool = False


def parse_dynamodb_url(url: str) -> DynamoDBLocation:
    """Check a ``dynamodb://`` URL strictly (at start-up): a valid table name and only the
    known query keys (``region``, ``endpoint_url``, ``key_prefix``, ``fail_open``), each at
    most once. Raises :class:`ValueError` naming what is wrong."""
    parts = urlsplit(url.strip())
    if parts.scheme != "dynamodb":
        raise ValueError(f"{url!r} is not a dynamodb:// URL")
    table = parts.netloc
    if parts.path not in {"", "/"} or parts.fragment or not _TABLE_NAME.fullmatch(table):
        raise ValueError(
            f"{url!r}: the table name must be 3-255 letters, digits, '_', '-' or '.' "
            "(dynamodb://TABLE?region=REGION)"
        )
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ValueError(f"{url!r}: the query must be key=value pairs joined by '&'") from None
    query: dict[str, str] = {}
    for key, value in pairs:
        if key not in URL_KEYS:
            raise ValueError(f"{url!r}: unknown key {key!r}; known: {', '.join(sorted(URL_KEYS))}")
        if key in query:
            raise ValueError(f"{url!r}: {key} is given twice")
        query[key] = value
    region = query.get("region")
    if region is not None and not _REGION.fullmatch(region):
        raise ValueError(f"{url!r}: {region!r} is not an AWS region name")
    endpoint = query.get("endpoint_url")
    if endpoint is not None:
        endpoint_parts = urlsplit(endpoint)
        if endpoint_parts.scheme not in {"http", "https"} or not endpoint_parts.hostname:
            raise ValueError(f"{url!r}: endpoint_url must be an http:// or https:// URL")
    fail_open = query.get("fail_open", "false").lower()
    if fail_open not in {"true", "false"}:
        raise ValueError(f"{url!r}: fail_open must be true or false")
    return DynamoDBLocation(
        table=table,
        region=region,
        endpoint_url=endpoint,
        key_prefix=query.get("key_prefix", ""),
        fail_open=fail_open == "true",
    )


def _client_config() -> Any:
    from botocore.config import Config

    return Config(
        connect_timeout=CONNECT_TIMEOUT.total_seconds(),
        read_timeout=READ_TIMEOUT.total_seconds(),
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
    )


def _make_client(region: str | None, endpoint_url: str | None) -> Any:
    try:
        import boto3
    except ImportError:  # pragma: no cover - boto3 is a dependency
        raise ConfigurationError("the DynamoDB store needs boto3: pip install boto3") from None
    return boto3.session.Session().client(
        "dynamodb", region_name=region, endpoint_url=endpoint_url, config=_client_config()
    )


class DynamoDBDedupeStore:
    """De-duplication in a DynamoDB table, for replicas on one or several hosts.

    The table needs a string partition key ``pk`` and nothing else; enable TTL on the
    ``ttl`` attribute so DynamoDB purges old ids (:meth:`create_table` does both).

    :param table: the table name.
    :param region: its region (default: boto3's, from the environment or profile).
    :param endpoint_url: another endpoint (DynamoDB Local, LocalStack, a VPC endpoint).
    :param lease: how long an unfinished claim blocks redeliveries.
    :param retention: how long a processed id is remembered.
    :param key_prefix: namespace of the keys (several apps can share one table).
    :param fail_open: when DynamoDB fails, process anyway (logged) instead of 503.
    :param client: a ready boto3 DynamoDB client (then region and endpoint_url are unused).
    :param clock: wall-clock seconds (tests inject a fake one).
    """

    def __init__(
        self,
        table: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        lease: timedelta = DEFAULT_LEASE,
        retention: timedelta = DEFAULT_RETENTION,
        key_prefix: str = "",
        fail_open: bool = False,
        client: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not _TABLE_NAME.fullmatch(table):
            raise ConfigurationError(f"{table!r} is not a DynamoDB table name")
        if lease <= timedelta(0) or retention <= timedelta(0):
            raise ConfigurationError("the lease and the retention must be positive")
        self.table = table
        self._client = client if client is not None else _make_client(region, endpoint_url)
        from botocore.exceptions import BotoCoreError, ClientError

        self._errors: tuple[type[Exception], ...] = (BotoCoreError, ClientError)
        self._client_error = ClientError
        self._lease = lease.total_seconds()
        self._retention = retention.total_seconds()
        self._prefix = key_prefix
        self.fail_open = fail_open
        self._clock = clock

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        lease: timedelta = DEFAULT_LEASE,
        retention: timedelta = DEFAULT_RETENTION,
    ) -> DynamoDBDedupeStore:
        """The store a ``dynamodb://TABLE?region=...`` URL names (checked strictly)."""
        try:
            where = parse_dynamodb_url(url)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        return cls(
            where.table,
            region=where.region,
            endpoint_url=where.endpoint_url,
            key_prefix=where.key_prefix,
            fail_open=where.fail_open,
            lease=lease,
            retention=retention,
        )

    def __repr__(self) -> str:
        return f"DynamoDBDedupeStore({self.table!r}, fail_open={self.fail_open})"

    @property
    def retention(self) -> timedelta:
        """How long a processed id is remembered."""
        return timedelta(seconds=self._retention)

    # --- the contract --------------------------------------------------------------------

    def claim(self, key: str) -> Claim:
        token = new_token()
        try:
            return self._claim(key, token)
        except self._errors as exc:
            if not self.fail_open:
                raise TransientError(
                    f"DynamoDB table {self.table} is unavailable ({_error_code(exc)})",
                    reason=Reason.DEDUPE_UNAVAILABLE,
                ) from exc
            log.warning(
                "DynamoDB failed (%s): processing %s without de-duplication (fail_open)",
                _error_code(exc),
                key,
            )
            return Claim(key, ClaimState.CLAIMED, token)

    def _claim(self, key: str, token: str) -> Claim:
        now = self._clock()
        current = self._put_if(self._item(key, _HELD, token, now + self._lease), _CLAIMABLE, now)
        if current is None:
            return Claim(key, ClaimState.CLAIMED, token)
        if current.get("state") == _DONE:
            return Claim(key, ClaimState.DONE)
        held_by = current.get("token", "")
        if held_by == token:  # botocore retried a put that had succeeded: it is ours
            return Claim(key, ClaimState.CLAIMED, token)
        if held_by and holder_is_dead(held_by):
            taken = self._put_if(
                self._item(key, _HELD, token, now + self._lease),
                _HELD_BY,
                now,
                {":token": {"S": held_by}, ":held": {"S": _HELD}},
            )
            if taken is None:
                log.warning("took over the claim of a dead process message_id=%s", key)
                return Claim(key, ClaimState.CLAIMED, token)
        return Claim(key, ClaimState.IN_PROGRESS)

    def commit(self, claim: Claim) -> None:
        # Unconditional on purpose: the work happened, so the id is done whoever holds it.
        now = self._clock()
        self._client.put_item(
            TableName=self.table,
            Item=self._item(claim.key, _DONE, claim.token, now + self._retention),
        )

    def release(self, claim: Claim) -> None:
        try:
            self._client.delete_item(
                TableName=self.table,
                Key={PARTITION_KEY: {"S": self._prefix + claim.key}},
                ConditionExpression=_HELD_BY,
                ExpressionAttributeNames={"#t": "token", "#s": "state"},
                ExpressionAttributeValues={":token": {"S": claim.token}, ":held": {"S": _HELD}},
            )
        except self._client_error as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise  # otherwise: done, or taken over by someone else, or gone: leave it

    def record_effect(self, key: str, effect: str) -> None:
        now = self._clock()
        self._client.put_item(
            TableName=self.table,
            Item=self._item(effect_key(key, effect), _DONE, "", now + self._retention),
        )

    def effect_recorded(self, key: str, effect: str) -> bool:
        item = self._read(effect_key(key, effect))
        return item is not None and item.get("state") == _DONE and item["expires"] > self._clock()

    # --- DynamoDB plumbing ---------------------------------------------------------------

    def _item(self, key: str, state: str, token: str, expires: float) -> dict[str, Any]:
        ttl = math.ceil(expires + TTL_MARGIN.total_seconds())
        return {
            PARTITION_KEY: {"S": self._prefix + key},
            "state": {"S": state},
            "token": {"S": token},
            "expires": {"N": repr(round(expires, 3))},
            TTL_ATTRIBUTE: {"N": str(ttl)},
        }

    def _put_if(
        self,
        item: dict[str, Any],
        condition: str,
        now: float,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Put ``item`` if ``condition`` holds: None when written, else the current item
        (decoded; empty when the condition failed on an item that has gone since)."""
        names = {name: attr for name, attr in _NAMES.items() if name in condition}
        bound = dict(values) if values is not None else {":now": {"N": repr(round(now, 3))}}
        try:
            self._client.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=bound,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._client_error as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = exc.response.get("Item")
            if not isinstance(old, dict):  # an endpoint without ReturnValuesOnConditionCheckFailure
                return self._read(item[PARTITION_KEY]["S"][len(self._prefix) :]) or {}
            return _decode(old)
        return None

    def _read(self, key: str) -> dict[str, Any] | None:
        """The item, read strongly consistently (an eventually consistent read could miss a
        record written a moment ago by another replica)."""
        answer = self._client.get_item(
            TableName=self.table,
            Key={PARTITION_KEY: {"S": self._prefix + key}},
            ConsistentRead=True,
        )
        item = answer.get("Item")
        return None if item is None else _decode(item)

    def ping(self) -> bool:
        """True when the table exists and answers (for start-up checks and health
        endpoints; needs ``dynamodb:DescribeTable``)."""
        try:
            self._client.describe_table(TableName=self.table)
        except self._errors:
            return False
        return True

    @classmethod
    def create_table(
        cls,
        table: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        client: Any = None,
        wait: bool = True,
    ) -> None:
        """Create the table this store needs (on-demand capacity, partition key ``pk``,
        TTL on ``ttl``); for set-up scripts and tests. Infrastructure code can use
        ``examples/dynamodb-dedupe-table.yaml`` (CloudFormation) instead."""
        if client is None:
            client = _make_client(region, endpoint_url)
        client.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": PARTITION_KEY, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        if wait:
            client.get_waiter("table_exists").wait(
                TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
        client.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )


def _decode(item: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes this store writes, as Python values."""
    return {
        "state": item.get("state", {}).get("S", ""),
        "token": item.get("token", {}).get("S", ""),
        "expires": float(item.get("expires", {}).get("N", "0")),
    }


def _error_code(exc: Exception) -> str:
    """DynamoDB's error code (``ProvisionedThroughputExceededException``...), or the name
    of the botocore error (``EndpointConnectionError``, ``ReadTimeoutError``...)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if isinstance(code, str) and code:
            return code
    return type(exc).__name__
