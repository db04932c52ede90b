"""Signing certificates: what counts as one, the cache around them, and the HTTP download.

* ``load_signing_certificate``: exactly one PEM certificate, RSA >= 2048 bits, named as AWS
  names SNS signing certificates in the topic's region (``partitions.SIGNING_CERTIFICATE_NAMES``;
  every name of that table is exercised end to end in ``test_compat``); validity checked
  against a given time.
* ``CertificateStore``: cache hits, TTL on an injected monotonic clock, the size bound,
  failures never cached, and one download per URL under 64 concurrent requests.
* ``HttpCertificateFetcher`` against a real HTTP server on 127.0.0.1 (the fetcher does not
  enforce https itself: the policy only ever hands it https URLs of the SNS host).
"""

from __future__ import annotations

import base64
import http.server
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from snsmiddleware import CertificateStore, HttpCertificateFetcher
from snsmiddleware import certs as certs_module
from snsmiddleware.certs import (
    DEFAULT_FETCH_DEADLINE,
    SigningCertificate,
    load_signing_certificate,
)
from snsmiddleware.errors import CertificateError, CertificateFetchError, SnsError, TransientError
from snsmiddleware.http_deadline import DeadlineAdapter
from snsmiddleware.policy import parse_topic_arn

from ._certificates import build_certificate
from ._misbehaving import drip_body, gzip_bomb, trickle
from ._net import LocalHttpServer, serving
from ._vector_helpers import VectorCertificates

US_EAST_1 = parse_topic_arn("arn:aws:sns:us-east-1:123456789012:budget-alerts")
US_WEST_2 = parse_topic_arn("arn:aws:sns:us-west-2:123456789012:budget-alerts")
CN_NORTH_1 = parse_topic_arn("arn:aws-cn:sns:cn-north-1:123456789012:budget-alerts")
URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123abcd.pem"
NOW = datetime.now(UTC).replace(microsecond=0)


# --- certificates made for these tests ---------------------------------------------------------


@cache
def rsa_key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@cache
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_cert(
    *,
    common_name: str | None = "sns.amazonaws.com",
    san: tuple[str, ...] | None = ("sns.amazonaws.com",),
    key: Any = None,
    not_before: datetime = NOW - timedelta(days=1),
    not_after: datetime = NOW + timedelta(days=30),
) -> x509.Certificate:
    """A certificate issued by a throwaway CA: any name, key type and validity."""
    return build_certificate(
        key=key if key is not None else rsa_key(2048),
        issuer_key=rsa_key(2048),
        issuer_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certs test CA")]),
        common_name=common_name,
        san=san,
        not_before=not_before,
        not_after=not_after,
    )


def pem_of(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@cache
def good_pem() -> bytes:
    return pem_of(make_cert())


def load(pem: bytes, topic: Any = US_EAST_1, **options: Any) -> SigningCertificate:
    return load_signing_certificate(URL, pem, topic, **options)


def _unsupported_key_pem() -> bytes:
    """A certificate whose key algorithm OID no library knows (rsaEncryption's last arc
    changed to 99; the signature is not checked, so the rest still parses)."""
    der = make_cert().public_bytes(serialization.Encoding.DER)
    rsa_encryption = bytes.fromhex("06092a864886f70d0101010500")
    assert der.count(rsa_encryption) == 1
    der = der.replace(rsa_encryption, bytes.fromhex("06092a864886f70d0101630500"))
    return (
        b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"
    )


# --- load_signing_certificate --------------------------------------------------------------------


def test_good_certificate_loads() -> None:
    cert = make_cert()
    loaded = load(pem_of(cert))
    assert loaded.url == URL
    assert loaded.names == frozenset({"sns.amazonaws.com"})
    assert loaded.public_key.public_numbers() == cert.public_key().public_numbers()
    assert loaded.not_before == cert.not_valid_before_utc
    assert loaded.not_after == cert.not_valid_after_utc


@pytest.mark.parametrize(
    "pem",
    [
        pytest.param(good_pem() + b"\n\n", id="trailing-newlines"),
        pytest.param(b"\r\n" + good_pem().replace(b"\n", b"\r\n"), id="crlf"),
        pytest.param(b"  " + good_pem() + b"\t", id="surrounding-whitespace"),
    ],
)
def test_whitespace_around_one_pem_is_fine(pem: bytes) -> None:
    assert load(pem).names == frozenset({"sns.amazonaws.com"})


def _private_key_pem() -> bytes:
    return rsa_key(2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    "make_pem",
    [
        pytest.param(lambda: good_pem() + good_pem(), id="two-pems"),
        pytest.param(lambda: good_pem() + pem_of(make_cert(common_name="ca")), id="leaf-and-ca"),
        pytest.param(lambda: good_pem() + b"garbage", id="trailing-garbage"),
        pytest.param(lambda: good_pem() + b"\x00", id="trailing-nul"),
        pytest.param(lambda: b"garbage\n" + good_pem(), id="leading-garbage"),
        pytest.param(lambda: b"subject=CN=sns.amazonaws.com\n" + good_pem(), id="openssl-text"),
        pytest.param(lambda: make_cert().public_bytes(serialization.Encoding.DER), id="der-bytes"),
        pytest.param(_private_key_pem, id="private-key-pem"),
        pytest.param(lambda: good_pem() + _private_key_pem(), id="cert-and-private-key"),
        pytest.param(
            lambda: (
                rsa_key(2048)
                .public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            ),
            id="public-key-pem",
        ),
        pytest.param(
            lambda: b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
            id="bad-base64",
        ),
        pytest.param(
            lambda: b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            id="not-a-certificate",
        ),
        pytest.param(lambda: good_pem()[:-40] + b"\n-----END CERTIFICATE-----\n", id="truncated"),
        pytest.param(lambda: b"", id="empty"),
        pytest.param(lambda: b"<html>404</html>", id="html"),
        pytest.param(lambda: pem_of(make_cert(key=ec_key())), id="ec-key"),
        pytest.param(lambda: pem_of(make_cert(key=rsa_key(1024))), id="rsa-1024"),
    ],
)
def test_not_one_acceptable_pem_certificate(make_pem: Callable[[], bytes]) -> None:
    with pytest.raises(CertificateError) as caught:
        load(make_pem())
    assert (caught.value.status, caught.value.reason) == (403, "bad_certificate")


def test_unknown_key_algorithm_is_bad_certificate() -> None:
    with pytest.raises(CertificateError) as caught:
        load(_unsupported_key_pem())
    assert caught.value.reason == "bad_certificate"


@pytest.mark.parametrize(
    ("common_name", "san", "topic"),
    [
        pytest.param("sns.amazonaws.com", ("sns.amazonaws.com",), US_EAST_1, id="global-name"),
        pytest.param("x", ("x", "sns.amazonaws.com"), US_EAST_1, id="one-of-several-sans"),
        pytest.param("sns.amazonaws.com", None, US_EAST_1, id="cn-only-no-san"),
        pytest.param(
            "x", ("sns.us-east-1.amazonaws.com",), US_EAST_1, id="regional-name-own-region"
        ),
        # China's certificates are named sns-<region>.amazonaws.com.cn (both Java SDKs); the
        # regional and partition-wide sns. names are still accepted (they are AWS's too).
        pytest.param("x", ("sns-cn-north-1.amazonaws.com.cn",), CN_NORTH_1, id="china-sdk-name"),
        pytest.param("sns-cn-north-1.amazonaws.com.cn", None, CN_NORTH_1, id="china-cn-only"),
        pytest.param("x", ("sns.cn-north-1.amazonaws.com.cn",), CN_NORTH_1, id="china-regional"),
        pytest.param("x", ("sns.amazonaws.com.cn",), CN_NORTH_1, id="china-global"),
    ],
)
def test_sns_certificate_names_are_accepted(
    common_name: str, san: tuple[str, ...] | None, topic: Any
) -> None:
    assert load(pem_of(make_cert(common_name=common_name, san=san)), topic).names


@pytest.mark.parametrize(
    ("common_name", "san", "topic"),
    [
        pytest.param("sns.evil.example", ("sns.evil.example",), US_EAST_1, id="wrong-name"),
        pytest.param("sns.amazonaws.com", ("sns.evil.example",), US_EAST_1, id="san-wins-over-cn"),
        pytest.param("sns.evil.example", None, US_EAST_1, id="cn-only-wrong-name"),
        pytest.param(None, None, US_EAST_1, id="no-name-at-all"),
        pytest.param("sns.amazonaws.com", (), US_EAST_1, id="empty-san"),
        pytest.param("x", ("*.amazonaws.com",), US_EAST_1, id="wildcard"),
        pytest.param("x", ("sns.us-east-1.amazonaws.com",), US_WEST_2, id="other-region-name"),
        pytest.param("x", ("sns.amazonaws.com.evil.example",), US_EAST_1, id="suffixed"),
        pytest.param("x", ("s3.amazonaws.com",), US_EAST_1, id="other-aws-service"),
        pytest.param("x", ("sns.amazonaws.com",), CN_NORTH_1, id="global-name-for-china"),
        pytest.param(
            "x", ("sns-cn-northwest-1.amazonaws.com.cn",), CN_NORTH_1, id="other-china-region"
        ),
        pytest.param("x", ("sns-cn-north-1.amazonaws.com",), CN_NORTH_1, id="china-name-wrong-tld"),
        pytest.param("x", ("sns-signing.us-east-1.amazonaws.com",), US_EAST_1, id="signing-known"),
        pytest.param("x", ("sns-cn-north-1.amazonaws.com.cn",), US_EAST_1, id="china-name-for-aws"),
    ],
)
def test_a_certificate_not_named_for_sns_is_refused(
    common_name: str | None, san: tuple[str, ...] | None, topic: Any
) -> None:
    pem = pem_of(make_cert(common_name=common_name, san=san))
    with pytest.raises(CertificateError) as caught:
        load(pem, topic)
    assert (caught.value.status, caught.value.reason) == (403, "certificate_name_mismatch")


def test_name_check_can_be_skipped_for_an_emulator() -> None:
    pem = pem_of(make_cert(common_name="localhost", san=("localhost",)))
    assert load(pem, check_name=False).names == frozenset({"localhost"})
    with pytest.raises(CertificateError, match="not issued to SNS"):
        load(pem)


def test_key_size_is_checked_even_without_name_check() -> None:
    with pytest.raises(CertificateError) as caught:
        load(pem_of(make_cert(key=rsa_key(1024))), check_name=False)
    assert caught.value.reason == "bad_certificate"


def test_certificate_is_valid_exactly_from_not_before_to_not_after() -> None:
    start, end = NOW - timedelta(days=1), NOW + timedelta(days=1)
    loaded = load(pem_of(make_cert(not_before=start, not_after=end)))
    tick = timedelta(microseconds=1)
    loaded.check_validity(start)
    loaded.check_validity(NOW)
    loaded.check_validity(end)
    with pytest.raises(TransientError) as early:  # our clock may be slow: SNS retries
        loaded.check_validity(start - tick)
    assert (early.value.status, early.value.reason) == (503, "certificate_not_yet_valid")
    with pytest.raises(CertificateError) as late:
        loaded.check_validity(end + tick)
    assert (late.value.status, late.value.reason) == (403, "certificate_expired")


def test_expired_certificate_still_loads_validity_is_checked_per_use() -> None:
    """A cached certificate can expire while cached: loading does not judge the time."""
    expired = make_cert(not_before=NOW - timedelta(days=30), not_after=NOW - timedelta(days=1))
    loaded = load(pem_of(expired))
    with pytest.raises(CertificateError, match="expired"):
        loaded.check_validity(NOW)


def test_real_aws_certificates_load_and_have_expired() -> None:
    certs = VectorCertificates()
    assert len(certs.pems) == 3
    for name, pem in certs.pems.items():
        loaded = load(pem)
        assert "sns.amazonaws.com" in loaded.names, name
        assert loaded.public_key.key_size >= 2048
        loaded.check_validity(loaded.not_before + (loaded.not_after - loaded.not_before) / 2)
        with pytest.raises(CertificateError, match="expired"):
            loaded.check_validity(NOW)


# --- CertificateStore ----------------------------------------------------------------------


@dataclass
class CountingFetcher:
    """``fetch_certificate`` that serves fixed bytes (or raises) and counts calls per URL."""

    pem: bytes = field(default_factory=good_pem)
    error: BaseException | None = None
    calls: list[str] = field(default_factory=list)

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        if self.error is not None:
            raise self.error
        return self.pem


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_hit_downloads_once() -> None:
    fetch = CountingFetcher()
    store = CertificateStore(fetch)
    first = store.get(URL, US_EAST_1)
    assert store.get(URL, US_EAST_1) is first
    assert fetch.calls == [URL]
    assert len(store) == 1


def test_ttl_expiry_with_injected_monotonic() -> None:
    fetch = CountingFetcher()
    clock = FakeMonotonic()
    store = CertificateStore(fetch, ttl=timedelta(seconds=60), monotonic=clock)
    store.get(URL, US_EAST_1)
    clock.now += 59.999
    store.get(URL, US_EAST_1)
    assert len(fetch.calls) == 1
    clock.now += 0.001  # exactly at the TTL: expired
    store.get(URL, US_EAST_1)
    assert len(fetch.calls) == 2
    clock.now += 30
    store.get(URL, US_EAST_1)
    assert len(fetch.calls) == 2  # the fresh download restarted the TTL


def test_size_bound_evicts_the_oldest_entry() -> None:
    fetch = CountingFetcher()
    store = CertificateStore(fetch, max_entries=2)
    a, b, c = (URL.replace("0123abcd", digest) for digest in ("aa", "bb", "cc"))
    for url in (a, b, c):
        store.get(url, US_EAST_1)
    assert len(store) == 2
    store.get(b, US_EAST_1)
    store.get(c, US_EAST_1)
    assert fetch.calls == [a, b, c]
    store.get(a, US_EAST_1)  # evicted: downloaded again, and now b is the oldest
    assert fetch.calls == [a, b, c, a]
    assert len(store) == 2


def test_max_entries_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CertificateStore(CountingFetcher(), max_entries=0)


@pytest.mark.parametrize(
    ("error", "expected_type", "status", "code"),
    [
        pytest.param(
            CertificateFetchError("down"), CertificateFetchError, 503, "certificate_unavailable"
        ),
        pytest.param(
            ConnectionResetError("secret-detail"),
            CertificateFetchError,
            503,
            "certificate_unavailable",
            id="arbitrary-oserror",
        ),
        pytest.param(
            RuntimeError("secret-detail"),
            CertificateFetchError,
            503,
            "certificate_unavailable",
            id="arbitrary-runtimeerror",
        ),
        pytest.param(
            KeyError("secret-detail"),
            CertificateFetchError,
            503,
            "certificate_unavailable",
            id="arbitrary-keyerror",
        ),
    ],
)
def test_transient_failures_map_and_are_not_cached(
    error: Exception, expected_type: type[SnsError], status: int, code: str
) -> None:
    fetch = CountingFetcher(error=error)
    store = CertificateStore(fetch)
    with pytest.raises(expected_type) as caught:
        store.get(URL, US_EAST_1)
    assert (caught.value.status, caught.value.reason) == (status, code)
    assert "secret-detail" not in caught.value.detail
    assert len(store) == 0
    fetch.error = None  # the host recovers: the very next request uses it
    assert store.get(URL, US_EAST_1).names == frozenset({"sns.amazonaws.com"})
    assert len(fetch.calls) == 2


NOT_FOUND = CertificateError("gone", reason="certificate_not_found")


@pytest.mark.parametrize(
    ("fetch", "reason"),
    [
        pytest.param(CountingFetcher(error=NOT_FOUND), "certificate_not_found", id="http-404"),
        pytest.param(CountingFetcher(pem=b"not a certificate"), "bad_certificate", id="bad"),
        pytest.param(
            CountingFetcher(pem=pem_of(make_cert(san=("sns.evil.example",)))),
            "certificate_name_mismatch",
            id="wrong-name",
        ),
        pytest.param(
            CountingFetcher(error=CertificateError("big", reason="certificate_too_large")),
            "certificate_too_large",
            id="too-large",
        ),
    ],
)
def test_definitive_answers_are_remembered_for_the_negative_ttl(
    fetch: CountingFetcher, reason: str
) -> None:
    fetch.calls.clear()
    clock = FakeMonotonic()
    store = CertificateStore(fetch, negative_ttl=timedelta(seconds=30), monotonic=clock)
    answers = []
    for _ in range(40):
        with pytest.raises(CertificateError) as caught:
            store.get(URL, US_EAST_1)
        answers.append(caught.value)
    assert len(fetch.calls) == 1  # 40 requests, one download
    assert {(answer.status, answer.reason) for answer in answers} == {(403, reason)}
    assert len({id(answer) for answer in answers}) == 40  # fresh exceptions, no shared traceback
    other = URL.replace("0123abcd", "ffff")
    with pytest.raises(CertificateError):
        store.get(other, US_EAST_1)
    assert len(fetch.calls) == 2  # remembered per URL
    clock.now += 29.999
    with pytest.raises(CertificateError):
        store.get(URL, US_EAST_1)
    assert len(fetch.calls) == 2
    clock.now += 0.001  # the "no" has expired: AWS may have published the certificate since
    fetch.error, fetch.pem = None, good_pem()
    assert store.get(URL, US_EAST_1).names == frozenset({"sns.amazonaws.com"})
    assert len(fetch.calls) == 3


def test_negative_cache_is_bounded_and_can_be_turned_off() -> None:
    fetch = CountingFetcher(error=NOT_FOUND)
    store = CertificateStore(fetch, negative_entries=2)
    a, b, c = (URL.replace("0123abcd", digest) for digest in ("aa", "bb", "cc"))
    for url in (a, b, c, b, c):
        with pytest.raises(CertificateError):
            store.get(url, US_EAST_1)
    assert fetch.calls == [a, b, c]
    with pytest.raises(CertificateError):
        store.get(a, US_EAST_1)  # evicted: asked again
    assert fetch.calls == [a, b, c, a]

    fetch.calls.clear()
    store = CertificateStore(fetch, negative_ttl=timedelta(0))
    for _ in range(3):
        with pytest.raises(CertificateError):
            store.get(URL, US_EAST_1)
    assert len(fetch.calls) == 3


@pytest.mark.parametrize(
    "options",
    [
        {"negative_entries": 0},
        {"max_concurrent_downloads": 0},
        {"negative_ttl": timedelta(seconds=-1)},
    ],
)
def test_store_knobs_are_checked(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CertificateStore(CountingFetcher(), **options)


def test_names_are_not_checked_for_an_emulator_store() -> None:
    fetch = CountingFetcher(pem=pem_of(make_cert(common_name="localhost", san=("localhost",))))
    assert CertificateStore(fetch, check_names=False).get(URL, US_EAST_1).names == {"localhost"}
    with pytest.raises(CertificateError):
        CertificateStore(fetch).get(URL, US_EAST_1)


def test_store_maps_unknown_key_algorithm_to_bad_certificate() -> None:
    store = CertificateStore(CountingFetcher(pem=_unsupported_key_pem()))
    with pytest.raises(CertificateError):
        store.get(URL, US_EAST_1)


THREADS = 64


class SlowFetcher:
    """Blocks every download until released, so concurrent requests pile up behind it."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, url: str) -> bytes:
        with self._lock:
            self.calls += 1
        self.entered.set()
        assert self.release.wait(10), "the test never released the download"
        if self.error is not None:
            raise self.error
        return good_pem()


def _waiting_for_another_download(thread: threading.Thread) -> bool:
    """True when ``thread`` sits in ``CertificateStore.get`` waiting on a download thread's
    result (its ``get`` frame calls ``Event.wait`` directly, not the fetcher)."""
    frame = sys._current_frames().get(thread.ident or -1)
    callee = None
    while frame is not None:
        code = frame.f_code
        if code.co_name == "get" and code.co_filename == certs_module.__file__:
            return (
                callee is not None
                and callee.co_name == "wait"
                and callee.co_filename == threading.__file__
            )
        callee, frame = code, frame.f_back
    return False


def _run_concurrently(store: CertificateStore, fetch: SlowFetcher) -> list[object]:
    """Ask for one URL from 64 threads while the first download is held open, and release
    it only once all 64 are provably waiting for it (the download runs in its own thread)."""
    barrier = threading.Barrier(THREADS)
    results: list[object] = [None] * THREADS

    def worker(index: int) -> None:
        barrier.wait()
        try:
            results[index] = store.get(URL, US_EAST_1)
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 10
        waiting = 0
        while time.monotonic() < deadline and fetch.calls <= 1:
            waiting = sum(_waiting_for_another_download(thread) for thread in threads)
            if fetch.entered.is_set() and waiting == THREADS:
                break
            time.sleep(0.005)
        assert fetch.calls == 1, "a second download started while the first was running"
        assert waiting == THREADS
    finally:
        fetch.release.set()
        for thread in threads:
            thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_64_concurrent_requests_for_one_url_download_once() -> None:
    fetch = SlowFetcher()
    store = CertificateStore(fetch)
    results = _run_concurrently(store, fetch)
    assert fetch.calls == 1
    assert all(isinstance(result, SigningCertificate) for result in results)
    assert len({id(result) for result in results}) == 1


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(CertificateFetchError("down"), CertificateFetchError, id="fetch-error"),
        pytest.param(OSError("boom"), CertificateFetchError, id="arbitrary-error"),
        pytest.param(
            CertificateError("gone", reason="certificate_not_found"),
            CertificateError,
            id="definitive-no",
        ),
    ],
)
def test_waiters_of_a_failed_download_all_get_an_error(
    error: Exception, expected: type[SnsError]
) -> None:
    fetch = SlowFetcher(error)
    store = CertificateStore(fetch)
    results = _run_concurrently(store, fetch)
    assert all(type(result) is expected for result in results), results
    reasons = {result.reason for result in results if isinstance(result, SnsError)}
    assert len(reasons) == 1
    # Each thread raised its own exception object (shared ones garble tracebacks).
    assert len({id(result) for result in results}) == THREADS
    assert fetch.calls == 1  # the waiters shared the leader's failure
    assert len(store) == 0


class BlockingFetcher:
    """Holds every download until released, counting how many run at once."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, url: str) -> bytes:
        with self._lock:
            self.calls.append(url)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            assert self.release.wait(10), "the test never released the download"
            return good_pem()
        finally:
            with self._lock:
                self.running -= 1


def _ask_in_threads(store: CertificateStore, urls: list[str]) -> list[tuple[float, object]]:
    """``store.get`` for each URL in its own thread; (seconds taken, outcome) per URL."""
    results: list[tuple[float, object]] = [(0.0, None)] * len(urls)

    def ask(index: int) -> None:
        started = time.monotonic()
        try:
            outcome: object = store.get(urls[index], US_EAST_1)
        except Exception as exc:
            outcome = exc
        results[index] = (time.monotonic() - started, outcome)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_a_fetcher_that_hangs_holds_no_request_past_the_deadline() -> None:
    """Whatever the fetcher does, a request waits at most the download deadline (+ slack);
    the hung download keeps its URL single-flight and fills the cache when it ends."""
    fetch = BlockingFetcher()
    store = CertificateStore(fetch, download_deadline=timedelta(seconds=0.3))
    try:
        for elapsed, outcome in _ask_in_threads(store, [URL] * 8):
            assert isinstance(outcome, CertificateFetchError), outcome
            assert (outcome.status, outcome.reason) == (503, "certificate_unavailable")
            assert "in time" in outcome.detail
            assert elapsed < 0.3 + 2.5, f"a request waited {elapsed:.1f} s"
        with pytest.raises(CertificateFetchError):
            store.get(URL, US_EAST_1)  # still hung: answered at once, no second download
        assert fetch.calls == [URL]
    finally:
        fetch.release.set()
    deadline = time.monotonic() + 10
    while len(store) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.get(URL, US_EAST_1).names == frozenset({"sns.amazonaws.com"})
    assert fetch.calls == [URL]


def test_download_deadline_defaults_to_the_fetchers() -> None:
    fetcher = HttpCertificateFetcher(deadline=timedelta(seconds=2))
    assert CertificateStore(fetcher).download_deadline == timedelta(seconds=2)
    assert CertificateStore(CountingFetcher()).download_deadline == DEFAULT_FETCH_DEADLINE


def test_concurrent_downloads_are_bounded() -> None:
    fetch = BlockingFetcher()
    store = CertificateStore(fetch, max_concurrent_downloads=2)
    urls = [URL.replace("0123abcd", f"{index:04x}") for index in range(16)]
    holders = [threading.Thread(target=store.get, args=(url, US_EAST_1)) for url in urls[:2]]
    for thread in holders:
        thread.start()
    try:
        deadline = time.monotonic() + 10
        while fetch.running < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert fetch.running == 2
        # Two downloads run: every request for a third unknown URL is refused at once.
        for _, outcome in _ask_in_threads(store, urls[2:]):
            assert isinstance(outcome, CertificateFetchError), outcome
            assert (outcome.status, outcome.reason) == (503, "certificate_unavailable")
            assert "too many" in outcome.detail
        assert len(fetch.calls) == 2
    finally:
        fetch.release.set()
        for thread in holders:
            thread.join(10)
    assert fetch.most_at_once == 2
    assert store.get(urls[2], US_EAST_1)  # the slots are free again
    assert len(fetch.calls) == 3


# --- HttpCertificateFetcher against a real local server ---------------------------------------


class CertificateServer(LocalHttpServer):
    def __init__(self) -> None:
        super().__init__(CertificateHandler)
        self.requested: list[str] = []


class CertificateHandler(http.server.BaseHTTPRequestHandler):
    server: CertificateServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        self.server.requested.append(self.path)
        route = self.path.split("?")[0]
        if route == "/ok.pem":
            self._send(200, good_pem())
        elif route == "/redirect.pem":
            self._send(302, headers={"Location": f"{self.server.base}/target.pem"})
        elif route == "/target.pem":
            self._send(200, good_pem())
        elif route.startswith("/status/"):
            self._send(int(route.rsplit("/", 1)[1]), b"no")
        elif route == "/huge.pem":
            self._send(200, b"A" * 200_000)
        elif route == "/huge-unsized.pem":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"A" * 200_000)
            self.close_connection = True
        elif route == "/gzip-bomb.pem":
            self._send(200, gzip_bomb(), {"Content-Encoding": "gzip"})
        elif route == "/drip.pem":
            drip_body(self)
        elif route == "/stall.pem":
            self.server.stop.wait(3)
        elif route in _MISBEHAVIOURS:
            _MISBEHAVIOURS[route](self)
            self.close_connection = True
        else:
            self._send(404, b"no such path")


# Misbehaviour before (or instead of) the body. The slow ones last MISBEHAVE_FOR seconds,
# far longer than the test deadline, with every byte well inside the read time-out: only a
# deadline on the whole exchange ends them in time.
MISBEHAVE_FOR = 8.0


def _drip_status_line(handler: CertificateHandler) -> None:
    # The reason phrase may be long (http.client reads up to 64 KiB of status line).
    trickle(handler, b"HTTP/1.1 200 ", b"O" * 1000, MISBEHAVE_FOR)


def _drip_headers(handler: CertificateHandler) -> None:
    trickle(handler, b"HTTP/1.1 200 OK\r\nX-Padding: ", b"a" * 1000, MISBEHAVE_FOR)


def _headers_then_stall(handler: CertificateHandler) -> None:
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n")
    handler.wfile.flush()
    handler.server.stop.wait(MISBEHAVE_FOR)


def _cut_mid_headers(handler: CertificateHandler) -> None:
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-pem-file\r\nX-Cu")


def _short_body(handler: CertificateHandler) -> None:
    pem = good_pem()
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(pem))
    handler.wfile.write(pem[: len(pem) // 2])


def _empty_200(handler: CertificateHandler) -> None:
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


def _pem_without_end_unsized(handler: CertificateHandler) -> None:
    # No Content-Length: the body ends when the connection does, so only its content shows
    # that it was cut short.
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
    handler.wfile.write(good_pem()[:300])


_MISBEHAVIOURS: dict[str, Callable[[CertificateHandler], None]] = {
    "/drip-status.pem": _drip_status_line,
    "/drip-headers.pem": _drip_headers,
    "/headers-then-stall.pem": _headers_then_stall,
    "/cut-mid-headers.pem": _cut_mid_headers,
    "/short-body.pem": _short_body,
    "/empty-200.pem": _empty_200,
    "/pem-without-end.pem": _pem_without_end_unsized,
}


@pytest.fixture(scope="module")
def cert_server() -> Iterator[CertificateServer]:
    gzip_bomb()
    with serving(CertificateServer()) as server:
        yield server


@pytest.fixture
def fetcher() -> Iterator[HttpCertificateFetcher]:
    import requests

    with requests.Session() as session:
        yield HttpCertificateFetcher(
            timeout=(2.0, 0.5), deadline=timedelta(seconds=0.4), session=session
        )


#: The deadline of the hard-deadline tests, and the slack they allow on top of it (generous:
#: the machine is shared; without the fix each of them takes MISBEHAVE_FOR seconds or more).
TEST_DEADLINE = 0.5
SLACK = 2.5


@pytest.fixture
def hard_fetcher() -> Iterator[HttpCertificateFetcher]:
    """Per-read time-outs far above the deadline: only the deadline can end the exchange."""
    import requests

    with requests.Session() as session:
        session.mount("http://", DeadlineAdapter(max_retries=0))
        session.mount("https://", DeadlineAdapter(max_retries=0))
        yield HttpCertificateFetcher(
            timeout=(5.0, 5.0), deadline=timedelta(seconds=TEST_DEADLINE), session=session
        )


SLOW_PATHS = ["/drip-status.pem", "/drip-headers.pem", "/headers-then-stall.pem", "/drip.pem"]
CUT_SHORT_PATHS = [
    "/cut-mid-headers.pem",
    "/short-body.pem",
    "/empty-200.pem",
    "/pem-without-end.pem",
]


@pytest.mark.parametrize("path", SLOW_PATHS + CUT_SHORT_PATHS)
def test_whole_exchange_is_bounded_and_transient(
    cert_server: CertificateServer, hard_fetcher: HttpCertificateFetcher, path: str
) -> None:
    started = time.monotonic()
    with pytest.raises(CertificateFetchError) as caught:
        hard_fetcher(f"{cert_server.base}{path}")
    elapsed = time.monotonic() - started
    assert (caught.value.status, caught.value.reason) == (503, "certificate_unavailable")
    assert elapsed < TEST_DEADLINE + SLACK, f"{path} held the download for {elapsed:.1f} s"
    if path in SLOW_PATHS:
        assert "too slow" in caught.value.detail


class TlsDripHandler(socketserver.BaseRequestHandler):
    """Reads the ClientHello, announces a 16 KiB TLS handshake record and sends its bytes
    one every 20 ms: each arrives well inside the read time-out, the handshake never ends."""

    server: TlsDripServer

    def handle(self) -> None:
        self.request.settimeout(MISBEHAVE_FOR)
        started = time.monotonic()
        try:
            self.request.recv(4096)
            self.request.sendall(b"\x16\x03\x03\x40\x00")
            while time.monotonic() - started < MISBEHAVE_FOR and not self.server.stop.is_set():
                self.request.sendall(b"\x00")
                time.sleep(0.02)
        except OSError:
            pass  # the client hung up: that is the point


class TlsDripServer(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), TlsDripHandler)
        self.stop = threading.Event()


def test_a_dripped_tls_handshake_is_bounded(hard_fetcher: HttpCertificateFetcher) -> None:
    with serving(TlsDripServer()) as server:
        started = time.monotonic()
        with pytest.raises(CertificateFetchError) as caught:
            hard_fetcher(f"https://127.0.0.1:{server.server_address[1]}/cert.pem")
        elapsed = time.monotonic() - started
    assert elapsed < TEST_DEADLINE + SLACK, f"the handshake held the download {elapsed:.1f} s"
    assert (caught.value.status, caught.value.reason) == (503, "certificate_unavailable")
    assert "too slow" in caught.value.detail


def test_waiters_of_a_slow_download_return_by_the_deadline(
    cert_server: CertificateServer, hard_fetcher: HttpCertificateFetcher
) -> None:
    store = CertificateStore(hard_fetcher)
    url = f"{cert_server.base}/drip-headers.pem"
    before = cert_server.requested.count("/drip-headers.pem")
    results: list[tuple[float, object]] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait()
        started = time.monotonic()
        try:
            outcome: object = store.get(url, US_EAST_1)
        except Exception as exc:
            outcome = exc
        results.append((time.monotonic() - started, outcome))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(MISBEHAVE_FOR + 5)
    assert len(results) == 8
    for elapsed, outcome in results:
        assert isinstance(outcome, CertificateFetchError), outcome
        assert outcome.status == 503
        assert elapsed < TEST_DEADLINE + SLACK, f"a request waited {elapsed:.1f} s"
    assert cert_server.requested.count("/drip-headers.pem") == before + 1


def test_http_200_returns_the_body(
    cert_server: CertificateServer, fetcher: HttpCertificateFetcher
) -> None:
    assert fetcher(f"{cert_server.base}/ok.pem") == good_pem()


def test_http_404_is_certificate_not_found(
    cert_server: CertificateServer, fetcher: HttpCertificateFetcher
) -> None:
    with pytest.raises(CertificateError) as caught:
        fetcher(f"{cert_server.base}/status/404")
    assert type(caught.value) is CertificateError
    assert (caught.value.status, caught.value.reason) == (403, "certificate_not_found")


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_http_5xx_and_429_are_transient(
    cert_server: CertificateServer, fetcher: HttpCertificateFetcher, status: int
) -> None:
    with pytest.raises(CertificateFetchError) as caught:
        fetcher(f"{cert_server.base}/status/{status}")
    assert (caught.value.status, caught.value.reason) == (503, "certificate_unavailable")


def test_redirect_is_not_followed(
    cert_server: CertificateServer, fetcher: HttpCertificateFetcher
) -> None:
    with pytest.raises(CertificateError) as caught:
        fetcher(f"{cert_server.base}/redirect.pem")
    assert caught.value.status == 403
    assert "/redirect.pem" in cert_server.requested
    assert "/target.pem" not in cert_server.requested


@pytest.mark.parametrize("path", ["/huge.pem", "/huge-unsized.pem", "/gzip-bomb.pem"])
def test_huge_body_is_certificate_too_large(
    cert_server: CertificateServer, fetcher: HttpCertificateFetcher, path: str
) -> None:
    with pytest.raises(CertificateError) as caught:
        fetcher(f"{cert_server.base}{path}")
    assert (caught.value.status, caught.value.reason) == (403, "certificate_too_large")


def test_stalled_server_times_out(
    cert_server: CertificateServer, fetcher: HttpCertificateFetcher
) -> None:
    with pytest.raises(CertificateFetchError) as caught:
        fetcher(f"{cert_server.base}/stall.pem")
    assert caught.value.status == 503


def test_dripping_server_hits_the_deadline(
    cert_server: CertificateServer, fetcher: HttpCertificateFetcher
) -> None:
    with pytest.raises(CertificateFetchError) as caught:
        fetcher(f"{cert_server.base}/drip.pem")
    assert caught.value.status == 503
    assert "too slow" in caught.value.detail


def test_connection_refused_is_transient(fetcher: HttpCertificateFetcher) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nobody listens on the port any more.
    with pytest.raises(CertificateFetchError) as caught:
        fetcher(f"http://127.0.0.1:{port}/ok.pem")
    assert (caught.value.status, caught.value.reason) == (503, "certificate_unavailable")


def test_store_with_http_fetcher_end_to_end(
    cert_server: CertificateServer, fetcher: HttpCertificateFetcher
) -> None:
    store = CertificateStore(fetcher)
    before = cert_server.requested.count("/ok.pem")
    url = f"{cert_server.base}/ok.pem"
    assert store.get(url, US_EAST_1) is store.get(url, US_EAST_1)
    assert cert_server.requested.count("/ok.pem") == before + 1
