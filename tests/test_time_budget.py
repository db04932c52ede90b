"""Every bounded wait on a request's path fits SNS's answer deadline, by its real defaults.

SNS abandons an attempt after ``policy.SNS_ANSWER_DEADLINE`` and retries it; a component that
can wait longer turns a slow dependency into a second delivery. Each worst case here is
computed from the defaults the components actually use (built objects or their signatures),
so changing a default, or the deadline, fails this file instead of a comment going stale.
"""

from __future__ import annotations

import inspect
from datetime import timedelta
from typing import Any

import pytest

from snsmiddleware.certs import DOWNLOAD_WAIT_SLACK, CertificateStore, HttpCertificateFetcher
from snsmiddleware.confirm import ApiConfirmer, UrlConfirmer
from snsmiddleware.dedupe import MemoryDedupeStore
from snsmiddleware.dedupe_dynamodb import DynamoDBDedupeStore
from snsmiddleware.dedupe_dynamodb import _client_config as dynamodb_client_config
from snsmiddleware.dedupe_redis import RedisDedupeStore
from snsmiddleware.dedupe_sqlite import SQLiteDedupeStore
from snsmiddleware.graceful import GracefulServer
from snsmiddleware.mail import SesMailer, SmtpMailer
from snsmiddleware.policy import SNS_ANSWER_DEADLINE, SNS_DEFAULT_RETRY_DELAY

DEADLINE = SNS_ANSWER_DEADLINE.total_seconds()


def default_of(callable_: Any, name: str) -> Any:
    """The default value of parameter ``name`` of ``callable_``."""
    return inspect.signature(callable_).parameters[name].default


def botocore_worst_case(config: Any) -> float:
    """Worst time of one boto3 call under this client config ("standard" retry mode).

    Each attempt may spend its connect and read time-outs; between attempts "standard" mode
    sleeps a random share of ``2 ** (attempt - 1)`` seconds, capped at 20 s.
    """
    attempts = config.retries["total_max_attempts"]
    per_attempt = config.connect_timeout + config.read_timeout
    back_off = sum(min(2.0**retry, 20.0) for retry in range(attempts - 1))
    return float(attempts * per_attempt + back_off)


def test_certificate_download_waits_inside_the_deadline() -> None:
    store = CertificateStore()
    longest_wait = store.download_deadline + DOWNLOAD_WAIT_SLACK
    assert longest_wait.total_seconds() < DEADLINE
    # The fetcher's own deadline is what the store waits for by default.
    assert store.download_deadline.total_seconds() == HttpCertificateFetcher().deadline


def test_confirm_subscription_api_fits_the_deadline() -> None:
    client = ApiConfirmer()._make_client("us-east-1")  # built offline; no call is made
    assert client.meta.config.retries["mode"] == "standard"
    assert botocore_worst_case(client.meta.config) < DEADLINE


def test_url_confirmer_fits_the_deadline() -> None:
    connect, read = UrlConfirmer().timeout
    assert connect + read < DEADLINE


def test_ses_send_fits_the_deadline() -> None:
    mailer = SesMailer(region="us-east-1")  # built offline; no call is made
    config = mailer._client.meta.config
    assert config.retries["mode"] == "standard"
    assert botocore_worst_case(config) < DEADLINE


def test_the_botocore_bound_can_fail() -> None:
    """The old SES defaults (2 x (3 + 5) s + back-off = 17 s) did not fit: the check sees it."""
    config = SesMailer(
        region="us-east-1", connect_timeout=3.0, read_timeout=5.0, max_attempts=2
    )._client.meta.config
    assert botocore_worst_case(config) == 17.0 > DEADLINE


def test_ses_max_attempts_counts_the_first_try() -> None:
    """``max_attempts`` is the total (botocore's own ``max_attempts`` would add one)."""
    config = SesMailer(region="us-east-1", max_attempts=1)._client.meta.config
    assert config.retries["total_max_attempts"] == 1


def test_smtp_operation_timeout_fits_the_deadline() -> None:
    # One socket operation; SmtpMailer bounds each operation, not the whole exchange.
    assert SmtpMailer("mail.invalid").timeout < DEADLINE


@pytest.mark.parametrize(
    ("store", "parameter", "calls"),
    [
        # A delivery makes at most a claim and then a commit or release; each may connect.
        pytest.param(RedisDedupeStore, "socket_timeout", 2 * 2, id="redis"),
        # Each statement may wait for the write lock once: claim, then commit or release.
        pytest.param(SQLiteDedupeStore, "busy_timeout", 2, id="sqlite"),
    ],
)
def test_dedupe_store_calls_fit_the_deadline(store: Any, parameter: str, calls: int) -> None:
    timeout: timedelta = default_of(store, parameter)
    assert (calls * timeout).total_seconds() < DEADLINE


STORES = [MemoryDedupeStore, RedisDedupeStore, SQLiteDedupeStore, DynamoDBDedupeStore]


@pytest.mark.parametrize("store", STORES)
def test_lease_outlasts_an_attempt_and_lapses_before_the_retry(store: Any) -> None:
    """No live attempt outlives its claim; a dead holder's claim is gone when SNS retries."""
    lease: timedelta = default_of(store, "lease")
    assert SNS_ANSWER_DEADLINE <= lease < SNS_DEFAULT_RETRY_DELAY


def slowest_send() -> float:
    """The longest a built-in mailer can take to send one email, by its defaults."""
    ses = botocore_worst_case(SesMailer(region="us-east-1")._client.meta.config)
    return max(ses, SmtpMailer("mail.invalid").deadline)


def slowest_store_call() -> float:
    """The longest one call to a built-in store can take (the one recording a send)."""
    redis: timedelta = default_of(RedisDedupeStore, "socket_timeout")
    sqlite: timedelta = default_of(SQLiteDedupeStore, "busy_timeout")
    dynamodb = botocore_worst_case(dynamodb_client_config())
    return max(2 * redis.total_seconds(), sqlite.total_seconds(), dynamodb)  # redis: connect + read


@pytest.mark.parametrize("store", STORES)
def test_a_claim_outlasts_the_slowest_send_and_the_call_recording_it(store: Any) -> None:
    """SNS stops waiting after 15 s, our send does not: a redelivery arriving while the
    first attempt is still sending must find the claim held (``in_progress``), else the
    email goes out twice. SES (11 s) + DynamoDB (7 s) is the slowest pair today."""
    lease: timedelta = default_of(store, "lease")
    assert slowest_send() + slowest_store_call() < lease.total_seconds()


def test_the_smtp_exchange_has_a_deadline_inside_sns_answer_deadline() -> None:
    """Per-operation time-outs alone let a server that drips its replies hold a send for
    ever; the whole exchange is bounded (tests/test_mail.py shows it cut off)."""
    assert SmtpMailer("mail.invalid").deadline < DEADLINE


def test_graceful_shutdown_waits_as_long_as_sns_does() -> None:
    assert default_of(GracefulServer, "timeout") == SNS_ANSWER_DEADLINE
