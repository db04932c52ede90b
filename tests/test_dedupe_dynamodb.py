"""DynamoDBDedupeStore beyond the shared contract: faults, configuration, the table schema.

Everything runs against moto's DynamoDB in server mode on 127.0.0.1 (real HTTP, botocore's
own timeouts and retries); the contract itself is in test_dedupe_contract.py and the two
server processes in test_dedupe_processes.py.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import webtest
import yaml

from snsmiddleware import ConfigurationError, SnsMiddleware
from snsmiddleware.config import middleware_options, to_dedupe_spec
from snsmiddleware.dedupe import ClaimState
from snsmiddleware.dedupe_dynamodb import (
    MAX_ATTEMPTS,
    PARTITION_KEY,
    TTL_ATTRIBUTE,
    DynamoDBDedupeStore,
    parse_dynamodb_url,
)
from snsmiddleware.errors import TransientError
from snsmiddleware.server import (
    EMBEDDED_DEFAULTS,
    build_application,
    load_ini_application,
    options_from_env,
    settings_from,
)
from snsmiddleware.testing import MessageSigner, post_sns

from ._dynamodb_helpers import REGION, MotoDynamoDB
from ._net import free_port
from .conftest import PATH, TOPIC, EchoApp

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "examples" / "dynamodb-dedupe-table.yaml"


@pytest.fixture
def table(dynamodb: MotoDynamoDB) -> Iterator[str]:
    name = dynamodb.new_table()
    yield name
    dynamodb.clear_failures()


def store_for(dynamodb: MotoDynamoDB, table: str, **options: Any) -> DynamoDBDedupeStore:
    return DynamoDBDedupeStore(table, region=REGION, endpoint_url=dynamodb.url, **options)


def client(dynamodb: MotoDynamoDB) -> Any:
    import boto3

    return boto3.session.Session().client("dynamodb", region_name=REGION, endpoint_url=dynamodb.url)


# --- faults: throttling and unreachable endpoints fail closed (503), or open when asked ------

THROTTLES = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
]


@pytest.mark.parametrize("code", [*THROTTLES, "InternalServerError"])
def test_throttled_or_failing_dynamodb_answers_503_and_the_redelivery_runs(
    dynamodb: MotoDynamoDB,
    table: str,
    code: str,
    make_middleware: Callable[..., SnsMiddleware],
    signer: MessageSigner,
    echo_app: EchoApp,
) -> None:
    app = webtest.TestApp(make_middleware(dedupe=store_for(dynamodb, table)))
    message = signer.notification("over budget")
    dynamodb.fail_next(
        code, count=MAX_ATTEMPTS, status=500 if code == "InternalServerError" else 400
    )
    before = len(dynamodb.requests)
    response = post_sns(app, PATH, message)
    assert (response.status_int, response.headers["X-SNS-Reason"]) == (503, "dedupe_unavailable")
    assert len(dynamodb.requests) - before == MAX_ATTEMPTS  # botocore retried once, then gave up
    assert echo_app.calls == []
    assert post_sns(app, PATH, message).status_int == 200  # SNS's retry, once DynamoDB is back
    assert post_sns(app, PATH, message).headers["X-SNS-Reason"] == "duplicate"
    assert len(echo_app.calls) == 1


def test_one_throttled_answer_is_retried_within_the_delivery(
    dynamodb: MotoDynamoDB,
    table: str,
    make_middleware: Callable[..., SnsMiddleware],
    signer: MessageSigner,
    echo_app: EchoApp,
) -> None:
    app = webtest.TestApp(make_middleware(dedupe=store_for(dynamodb, table)))
    dynamodb.fail_next("ProvisionedThroughputExceededException", count=1)
    assert post_sns(app, PATH, signer.notification("x")).status_int == 200
    assert len(echo_app.calls) == 1


def test_a_claim_whose_answer_was_lost_is_still_ours(dynamodb: MotoDynamoDB, table: str) -> None:
    """botocore retries a PutItem that took effect: the condition then fails on our own
    claim, which must count as claimed (else nobody processes it until the lease ends)."""
    store = store_for(dynamodb, table)
    dynamodb.lose_next_answer()
    claim = store.claim("m1")
    assert claim.state is ClaimState.CLAIMED
    assert store.claim("m1").state is ClaimState.IN_PROGRESS
    store.commit(claim)
    assert store.claim("m1").state is ClaimState.DONE


def test_unreachable_dynamodb_fails_closed_with_503_or_open_when_chosen(
    make_middleware: Callable[..., SnsMiddleware],
    signer: MessageSigner,
    echo_app: EchoApp,
    dynamodb: MotoDynamoDB,  # its fake credentials: nothing could reach AWS anyway
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed_port = f"http://127.0.0.1:{free_port()}"
    down = DynamoDBDedupeStore("dedupe", region=REGION, endpoint_url=closed_port)
    with pytest.raises(TransientError) as raised:
        down.claim("m0")
    assert raised.value.reason == "dedupe_unavailable" and "dedupe" in raised.value.detail
    closed = webtest.TestApp(make_middleware(dedupe=down))
    response = post_sns(closed, PATH, signer.notification("x"))
    assert (response.status_int, response.headers["X-SNS-Reason"]) == (503, "dedupe_unavailable")
    assert "Traceback" not in response.text and closed_port not in response.text
    assert echo_app.calls == []
    opened = webtest.TestApp(
        make_middleware(
            dedupe=DynamoDBDedupeStore(
                "dedupe", region=REGION, endpoint_url=closed_port, fail_open=True
            )
        )
    )
    with caplog.at_level(logging.WARNING, logger="snsmiddleware.dedupe_dynamodb"):
        assert post_sns(opened, PATH, signer.notification("y")).status_int == 200
    assert len(echo_app.calls) == 1
    assert "without de-duplication (fail_open)" in caplog.text


def test_throttling_with_fail_open_processes_the_message(
    dynamodb: MotoDynamoDB,
    table: str,
    make_middleware: Callable[..., SnsMiddleware],
    signer: MessageSigner,
    echo_app: EchoApp,
) -> None:
    store = store_for(dynamodb, table, fail_open=True)
    app = webtest.TestApp(make_middleware(dedupe=store))
    dynamodb.fail_next("ThrottlingException", count=MAX_ATTEMPTS)
    assert post_sns(app, PATH, signer.notification("x")).status_int == 200
    assert len(echo_app.calls) == 1


@pytest.fixture
def silent_endpoint() -> Iterator[tuple[str, list[socket.socket]]]:
    """An endpoint that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    stop.set()
    thread.join(timeout=5)
    for connection in accepted:
        connection.close()
    listener.close()


def test_a_silent_endpoint_is_given_up_after_bounded_attempts(
    silent_endpoint: tuple[str, list[socket.socket]], dynamodb: MotoDynamoDB
) -> None:
    """A hung DynamoDB costs read time-outs on a bounded number of attempts, never SNS's
    whole answer deadline: the claim fails (503) after MAX_ATTEMPTS connections."""
    url, accepted = silent_endpoint
    store = DynamoDBDedupeStore("dedupe", region=REGION, endpoint_url=url)
    with pytest.raises(TransientError, match="ReadTimeoutError"):
        store.claim("m1")
    assert len(accepted) == MAX_ATTEMPTS


def test_errors_after_the_claim_follow_the_middleware_rules(
    dynamodb: MotoDynamoDB,
    table: str,
    make_middleware: Callable[..., SnsMiddleware],
    signer: MessageSigner,
    echo_app: EchoApp,
) -> None:
    """A commit DynamoDB refuses is kept in the middleware's backlog: the work happened,
    so the answer stays 200 and this process answers the redelivery as a duplicate."""
    store = store_for(dynamodb, table)
    middleware = make_middleware(dedupe=store)
    app = webtest.TestApp(middleware)
    message = signer.notification("x")
    original_commit = store.commit

    def failing_commit(claim: Any) -> None:
        dynamodb.fail_next("ProvisionedThroughputExceededException", count=MAX_ATTEMPTS)
        original_commit(claim)

    store.commit = failing_commit  # type: ignore[method-assign]
    assert post_sns(app, PATH, message).status_int == 200
    store.commit = original_commit  # type: ignore[method-assign]
    assert post_sns(app, PATH, message).headers["X-SNS-Reason"] == "duplicate"
    assert len(echo_app.calls) == 1
    assert store.claim(message.fields["MessageId"]).state is ClaimState.DONE  # flushed


# --- the items and the table ---------------------------------------------------------------


def test_items_carry_a_ttl_in_whole_epoch_seconds_beyond_their_expiry(
    dynamodb: MotoDynamoDB, table: str
) -> None:
    now = 1_900_000_000.25
    store = store_for(dynamodb, table, clock=lambda: now, retention=timedelta(hours=1))
    store.commit(store.claim("m1"))
    item = client(dynamodb).get_item(TableName=table, Key={PARTITION_KEY: {"S": "m1"}})["Item"]
    assert item["state"] == {"S": "done"}
    assert float(item["expires"]["N"]) == pytest.approx(now + 3600)
    ttl = item[TTL_ATTRIBUTE]["N"]
    assert ttl.isdigit() and int(ttl) >= now + 3600


def test_expiry_never_waits_for_dynamodbs_ttl_deletion(dynamodb: MotoDynamoDB, table: str) -> None:
    """DynamoDB deletes expired items days late (moto never does): the store must treat an
    item past its expiry as absent while it is still in the table."""
    now = [1_900_000_000.0]
    store = store_for(dynamodb, table, clock=lambda: now[0], retention=timedelta(minutes=61))
    store.commit(store.claim("m1"))
    now[0] += 2 * 3600
    assert "Item" in client(dynamodb).get_item(TableName=table, Key={PARTITION_KEY: {"S": "m1"}})
    assert store.claim("m1").state is ClaimState.CLAIMED


def test_create_table_enables_ttl_on_the_documented_attribute(
    dynamodb: MotoDynamoDB, table: str
) -> None:
    described = client(dynamodb).describe_table(TableName=table)["Table"]
    assert described["KeySchema"] == [{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}]
    ttl = client(dynamodb).describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": TTL_ATTRIBUTE}
    assert store_for(dynamodb, table).ping()
    assert not store_for(dynamodb, "no-such-table").ping()


def test_key_prefix_separates_apps_sharing_a_table(dynamodb: MotoDynamoDB, table: str) -> None:
    first = store_for(dynamodb, table, key_prefix="app-a:")
    second = store_for(dynamodb, table, key_prefix="app-b:")
    first.commit(first.claim("m1"))
    assert second.claim("m1").state is ClaimState.CLAIMED
    assert first.claim("m1").state is ClaimState.DONE


def _template() -> Any:
    return yaml.safe_load(TEMPLATE.read_text())


def test_the_cloudformation_example_names_the_stores_attributes() -> None:
    resources = _template()["Resources"]
    table = resources["DedupeTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": PARTITION_KEY, "AttributeType": "S"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    statement = resources["DedupePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    readme = (ROOT / "README.md").read_text()
    for action in statement["Action"]:
        assert f'"{action}"' in readme  # the README's IAM policy lists the same actions


# --- configuration: dynamodb:// in every surface, checked strictly at start-up --------------


def test_dynamodb_urls_are_parsed_with_every_known_key() -> None:
    where = parse_dynamodb_url(
        "dynamodb://My_Table.v2-prod?region=eu-west-1&endpoint_url=http://127.0.0.1:8000"
        "&key_prefix=budgets:&fail_open=true"
    )
    assert (where.table, where.region, where.endpoint_url) == (
        "My_Table.v2-prod",
        "eu-west-1",
        "http://127.0.0.1:8000",
    )
    assert (where.key_prefix, where.fail_open) == ("budgets:", True)
    assert parse_dynamodb_url("dynamodb://dedupe").region is None  # boto3's own default
    for region in ("us-gov-west-1", "cn-northwest-1", "eusc-de-east-1", "us-isob-east-1"):
        assert parse_dynamodb_url(f"dynamodb://dedupe?region={region}").region == region


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("dynamodb://ab?region=us-east-1", "table name"),
        ("dynamodb://bad/name?region=us-east-1", "table name"),
        ("dynamodb://bad name", "table name"),
        ("dynamodb://user@dedupe", "table name"),
        ("dynamodb://dedupe:8000", "table name"),
        ("dynamodb://" + "t" * 256, "table name"),
        ("dynamodb://dedupe#x", "table name"),
        ("dynamodb://dedupe?regoin=us-east-1", "unknown key 'regoin'"),
        ("dynamodb://dedupe?region=us-east-1&region=eu-west-1", "twice"),
        ("dynamodb://dedupe?region=moon-base", "region"),
        ("dynamodb://dedupe?endpoint_url=file:///etc/passwd", "endpoint_url"),
        ("dynamodb://dedupe?fail_open=ture", "fail_open"),
        ("dynamodb://dedupe?garbage", "key=value"),
        ("dynamodb:dedupe", "table name"),
    ],
)
def test_bad_dynamodb_urls_fail_at_start_up_naming_the_problem(spec: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        to_dedupe_spec(spec)
    with pytest.raises(ConfigurationError, match="dedupe"):
        middleware_options({"dedupe": spec})


def test_the_dedupe_option_builds_the_store_with_the_windows_retention(
    dynamodb: MotoDynamoDB, table: str
) -> None:
    spec = dynamodb.spec(table) + "&key_prefix=p:&fail_open=true"
    options = middleware_options({"dedupe": spec, "max_age": "2h", "dedupe_lease": "10s"})
    store = SnsMiddleware(EchoApp(), paths=["/"], topics=[TOPIC], **options).dedupe
    assert isinstance(store, DynamoDBDedupeStore)
    assert (store.table, store.fail_open) == (table, True)
    assert store.retention >= timedelta(hours=2)
    claim = store.claim("m1")
    item = client(dynamodb).get_item(TableName=table, Key={PARTITION_KEY: {"S": "p:m1"}})["Item"]
    assert item["token"] == {"S": claim.token}


def test_environment_and_ini_surfaces_accept_a_dynamodb_store(
    dynamodb: MotoDynamoDB,
    table: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)

    environ = {
        "SNSMIDDLEWARE_TOPICS": "arn:aws:sns:us-east-1:123456789012:budget-alerts",
        "SNSMIDDLEWARE_DEDUPE": dynamodb.spec(table),
    }
    app = build_application(settings_from({**EMBEDDED_DEFAULTS, **options_from_env(environ)}))
    assert isinstance(app.dedupe, DynamoDBDedupeStore) and app.dedupe.table == table
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[pipeline:main]\npipeline = sns budgets\n\n"
        "[filter:sns]\nuse = egg:snsmiddleware#sns\npaths = /sns\n"
        "topics = arn:aws:sns:us-east-1:123456789012:budget-alerts\n"
        f"dedupe = {dynamodb.spec(table)}\n\n"
        "[app:budgets]\nuse = egg:snsmiddleware#budget_app\n"
        "default_recipients = ana@example.com\n"
    )
    loaded, _ = load_ini_application(ini, {})
    assert isinstance(loaded, SnsMiddleware)
    assert isinstance(loaded.dedupe, DynamoDBDedupeStore) and loaded.dedupe.table == table
    ini.write_text(ini.read_text().replace("?region=", "?regoin="))
    with pytest.raises(ConfigurationError, match="regoin"):
        load_ini_application(ini, {})
