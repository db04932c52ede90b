"""SNS signing certificates: download, identity checks and a bounded, single-flight cache.

This module only ever fetches URLs produced by :func:`snsmiddleware.policy.certificate_url`
(the verifier passes nothing else), and the default fetcher follows no redirects, so the
only host it talks to is ``sns.<region>.amazonaws.com[.cn]`` over HTTPS, whose TLS identity
is the trust anchor for the certificate it serves.

What a certificate must be: exactly one PEM certificate and nothing else, an RSA key of at
least 2048 bits, and named (SAN DNS, or CN when there is no SAN) ``sns.amazonaws.com`` or
the topic region's own SNS host (China and some opt-in regions use regional names). Its
validity period is checked on every use against the injectable clock, because a cached
certificate can expire while it sits in the cache.

The cache is bounded (oldest entries go first) and entries expire after a TTL. Under
concurrency one URL is downloaded by one thread at a time while the others wait for its
result; failures are not cached, so a certificate host that comes back is used at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .errors import CertificateError, CertificateFetchError, NotYetValidError, SnsError
from .policy import TopicArn

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

#: ``url -> PEM bytes``. Raise :class:`CertificateFetchError` for transient trouble and
#: :class:`CertificateError` for a definitive "no"; any other exception counts as transient.
CertificateFetcher = Callable[[str], bytes]

#: Real SNS certificates are about 2 KiB; anything much larger is not one.
DEFAULT_MAX_CERTIFICATE_BYTES: Final = 32 * 1024
#: (connect, read) time-outs. SNS waits 15 s for our answer; the download must fit well inside.
DEFAULT_FETCH_TIMEOUT: Final = (3.05, 4.0)
#: Upper bound on one whole download, so a host that drips bytes cannot hold a request.
DEFAULT_FETCH_DEADLINE: Final = timedelta(seconds=6)
#: Certificate URLs change when AWS rotates, so a long TTL is safe; it bounds staleness.
DEFAULT_CACHE_TTL: Final = timedelta(hours=12)
DEFAULT_CACHE_ENTRIES: Final = 32
MIN_RSA_KEY_BITS: Final = 2048

_PEM_BEGIN: Final = b"-----BEGIN CERTIFICATE-----"
_PEM_END: Final = b"-----END CERTIFICATE-----"


@dataclass(frozen=True, slots=True)
class SigningCertificate:
    """A certificate that passed the identity checks, with its key ready for verification."""

    url: str
    public_key: rsa.RSAPublicKey
    not_before: datetime
    not_after: datetime
    names: frozenset[str]

    def check_validity(self, now: datetime) -> None:
        """Raise unless ``now`` is inside the certificate's validity period: 403 once it has
        expired, 503 before it starts (our clock may be slow; see :class:`NotYetValidError`)."""
        if now < self.not_before:
            raise NotYetValidError(
                "the signing certificate is not valid yet", reason="certificate_not_yet_valid"
            )
        if now > self.not_after:
            raise CertificateError(
                "the signing certificate has expired", reason="certificate_expired"
            )


def allowed_certificate_names(topic: TopicArn) -> frozenset[str]:
    """Names a genuine SNS signing certificate for ``topic`` may carry."""
    return frozenset({f"sns.{topic.domain}", topic.sns_host})


def _certificate_names(cert: x509.Certificate) -> frozenset[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return frozenset(
            str(attribute.value)
            for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        )
    return frozenset(san.value.get_values_for_type(x509.DNSName))


def load_signing_certificate(
    url: str, pem: bytes, topic: TopicArn, *, check_name: bool = True
) -> SigningCertificate:
    """Parse and check what the certificate URL served; raise 403 if it is not acceptable.

    :param check_name: ``False`` only in emulator mode, where the emulator signs with its
        own throwaway certificate and the trust comes from the pinned emulator URL.
    """
    data = pem.strip()
    if (
        not data.startswith(_PEM_BEGIN)
        or not data.endswith(_PEM_END)
        or data.count(b"-----BEGIN") != 1
    ):
        raise CertificateError(
            "the certificate URL did not serve exactly one PEM certificate",
            reason="bad_certificate",
        )
    try:
        cert = x509.load_pem_x509_certificate(data)
        public_key = cert.public_key()
        names = _certificate_names(cert)
    # Neither of the x509 errors is a ValueError: without them, a certificate with two SAN
    # extensions or an x400Address name answered 500 instead of 403.
    except (
        ValueError,
        UnsupportedAlgorithm,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
    ):
        raise CertificateError(
            "the certificate could not be parsed", reason="bad_certificate"
        ) from None
    if not isinstance(public_key, rsa.RSAPublicKey) or public_key.key_size < MIN_RSA_KEY_BITS:
        raise CertificateError(
            f"the certificate's key is not RSA of at least {MIN_RSA_KEY_BITS} bits",
            reason="bad_certificate",
        )
    if check_name and not names & allowed_certificate_names(topic):
        raise CertificateError(
            "the certificate is not issued to SNS", reason="certificate_name_mismatch"
        )
    return SigningCertificate(
        url=url,
        public_key=public_key,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        names=names,
    )


class HttpCertificateFetcher:
    """Download a certificate over HTTPS with requests: no redirects, time-outs, a size cap.

    :param timeout: ``(connect, read)`` seconds for each network operation.
    :param deadline: bound on the whole download.
    :param max_bytes: a larger body is refused (403): it is not an SNS certificate.
    :param session: a ``requests.Session`` to reuse (connection pooling, proxies, tests).
    """

    def __init__(
        self,
        *,
        timeout: tuple[float, float] = DEFAULT_FETCH_TIMEOUT,
        deadline: timedelta = DEFAULT_FETCH_DEADLINE,
        max_bytes: int = DEFAULT_MAX_CERTIFICATE_BYTES,
        session: requests.Session | None = None,
    ) -> None:
        self.timeout = timeout
        self.deadline = deadline.total_seconds()
        self.max_bytes = max_bytes
        self._session = session

    def _get_session(self) -> requests.Session:
        if self._session is None:
            import requests  # imported on first download: keeps `import snsmiddleware` cheap

            self._session = requests.Session()
        return self._session

    def __call__(self, url: str) -> bytes:
        import requests
        import urllib3

        started = time.monotonic()
        try:
            response = self._get_session().get(
                url, timeout=self.timeout, allow_redirects=False, stream=True
            )
        except requests.RequestException as exc:
            raise CertificateFetchError(
                f"could not download the signing certificate ({type(exc).__name__})"
            ) from None
        with response:
            status = response.status_code
            if status >= 500 or status == 429:
                raise CertificateFetchError(f"the certificate host answered HTTP {status}")
            if status != 200:
                raise CertificateError(
                    f"the certificate host answered HTTP {status}",
                    reason="certificate_not_found",
                )
            body = bytearray()
            try:
                # read1 returns whatever has arrived (iter_content would wait for a full
                # chunk), so a host that drips bytes meets the deadline check in time.
                while chunk := response.raw.read1(8192, decode_content=True):
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise CertificateError(
                            "the certificate URL served more than a certificate",
                            reason="certificate_too_large",
                        )
                    if time.monotonic() - started > self.deadline:
                        raise CertificateFetchError("the certificate download was too slow")
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise CertificateFetchError(
                    f"the certificate download failed ({type(exc).__name__})"
                ) from None
        return bytes(body)


@dataclass(slots=True)
class _Download:
    """One in-flight download that other threads wait on."""

    done: threading.Event
    result: SigningCertificate | None = None
    error: SnsError | None = None


class CertificateStore:
    """Bounded TTL cache of checked signing certificates, one download per URL at a time.

    Hits take no lock and do not refresh recency, so eviction is oldest-first; AWS uses a
    handful of certificate URLs at a time, far below the bound.

    :param fetch: ``url -> bytes``; defaults to :class:`HttpCertificateFetcher`.
    :param max_entries: how many certificates to keep (AWS uses a handful at a time).
    :param ttl: how long a downloaded certificate is reused.
    :param monotonic: time source for the TTL (tests inject a fake).
    :param check_names: require an SNS certificate name; ``False`` only for an emulator.
    """

    def __init__(
        self,
        fetch: CertificateFetcher | None = None,
        *,
        max_entries: int = DEFAULT_CACHE_ENTRIES,
        ttl: timedelta = DEFAULT_CACHE_TTL,
        monotonic: Callable[[], float] = time.monotonic,
        check_names: bool = True,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.check_names = check_names
        self._fetch = fetch if fetch is not None else HttpCertificateFetcher()
        self._max_entries = max_entries
        self._ttl = ttl.total_seconds()
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[float, SigningCertificate]] = OrderedDict()
        self._downloads: dict[str, _Download] = {}

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, url: str, topic: TopicArn) -> SigningCertificate:
        """Return the checked certificate at ``url`` (a policy-validated URL)."""
        # Fast path without the lock: a dict read is atomic, and a hit needs no LRU bookkeeping
        # precise enough to be worth a lock on every message (AWS uses a handful of URLs).
        cached = self._cache.get(url)
        if cached is not None and self._monotonic() < cached[0]:
            return cached[1]
        with self._lock:
            cached = self._cache.get(url)
            if cached is not None:
                expires, certificate = cached
                if self._monotonic() < expires:
                    self._cache.move_to_end(url)
                    return certificate
                del self._cache[url]
            download = self._downloads.get(url)
            leader = download is None
            if download is None:
                download = self._downloads[url] = _Download(threading.Event())
        if leader:
            return self._download(url, topic, download)
        download.done.wait()
        if download.result is not None:
            return download.result
        error = download.error or CertificateFetchError("the certificate download failed")
        # A fresh exception per waiting thread: one instance raised in many threads would
        # share (and garble) its traceback.
        raise type(error)(error.detail, reason=error.reason)

    def _download(self, url: str, topic: TopicArn, download: _Download) -> SigningCertificate:
        try:
            download.result = self._fetch_and_check(url, topic)
        except SnsError as exc:
            download.error = exc
            log.warning("certificate %s rejected: %s (%s)", url, exc.reason, exc.detail)
            raise
        finally:
            with self._lock:
                del self._downloads[url]
                if download.result is not None:
                    self._cache[url] = (self._monotonic() + self._ttl, download.result)
                    while len(self._cache) > self._max_entries:
                        self._cache.popitem(last=False)
            download.done.set()
        return download.result

    def _fetch_and_check(self, url: str, topic: TopicArn) -> SigningCertificate:
        try:
            pem = self._fetch(url)
        except SnsError:
            raise
        except Exception as exc:  # a user-supplied fetcher may raise anything
            raise CertificateFetchError(
                f"could not download the signing certificate ({type(exc).__name__})"
            ) from None
        return load_signing_certificate(url, pem, topic, check_name=self.check_names)
