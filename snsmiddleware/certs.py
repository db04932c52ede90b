"""SNS signing certificates: download, identity checks and a bounded, single-flight cache.

This module only ever fetches URLs produced by :func:`snsmiddleware.policy.certificate_url`
(the verifier passes nothing else), and the default fetcher follows no redirects, so the
only host it talks to is ``sns.<region>.<partition's DNS suffix>`` over HTTPS, whose TLS identity
is the trust anchor for the certificate it serves.

What a certificate must be: exactly one PEM certificate and nothing else, an RSA key of at
least 2048 bits, and named (SAN DNS, or CN when there is no SAN) with one of the names AWS
gives SNS signing certificates in the topic's region (``sns.amazonaws.com``; China, GovCloud,
the ISO partitions, the European Sovereign Cloud and the opt-in regions use their own: see
:data:`snsmiddleware.partitions.SIGNING_CERTIFICATE_NAMES`). Its
validity period is checked on every use against the injectable clock, because a cached
certificate can expire while it sits in the cache.

The cache is bounded (oldest entries go first) and entries expire after a TTL. Under
concurrency one URL is downloaded by one thread at a time while the others wait for its
result, each for at most the download deadline. Because anyone who knows an allowed TopicArn
can name a certificate URL, what they can make us download is bounded too: a definitive "no"
is remembered per URL for a short while, and only a few downloads run at once. Transient
failures are not remembered, so a certificate host that comes back is used at once.
"""

from __future__ import annotations

import enum
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

from .errors import CertificateError, CertificateUnavailableError, NotYetValidError, SnsError
from .hooks import HookGuard
from .partitions import signing_certificate_names
from .policy import TopicArn
from .reasons import Reason

if TYPE_CHECKING:
    import requests

    from .http_deadline import Deadline

log = logging.getLogger(__name__)

#: ``url -> PEM`` as ``bytes`` or ``str`` (what most HTTP helpers return). Raise
#: :class:`CertificateUnavailableError` for transient trouble and :class:`CertificateError` for a
#: definitive "no"; any other exception counts as transient.
CertificateFetcher = Callable[[str], bytes | str]

#: Real SNS certificates are about 2 KiB; anything much larger is not one.
DEFAULT_MAX_CERTIFICATE_BYTES: Final = 32 * 1024
#: (connect, read) time-outs. SNS waits ``policy.SNS_ANSWER_DEADLINE`` (15 s) for our answer;
#: the download must fit well inside.
DEFAULT_FETCH_TIMEOUT: Final = (3.05, 4.0)
#: Upper bound on one whole download, so a host that drips bytes cannot hold a request.
DEFAULT_FETCH_DEADLINE: Final = timedelta(seconds=6)
#: Certificate URLs change when AWS rotates, so a long TTL is safe; it bounds staleness.
DEFAULT_CACHE_TTL: Final = timedelta(hours=12)
DEFAULT_CACHE_ENTRIES: Final = 32
#: A definitive "no" for a URL (404, not a certificate, wrong name) is remembered this long,
#: so one missing URL repeated costs one download; short, so a URL AWS starts using a moment
#: later is not refused for long.
DEFAULT_NEGATIVE_TTL: Final = timedelta(seconds=30)
DEFAULT_NEGATIVE_ENTRIES: Final = 1024
#: Downloads of not-yet-cached certificates running at once; beyond it: 503, SNS retries.
DEFAULT_MAX_CONCURRENT_DOWNLOADS: Final = 2
#: How much longer than the download deadline a request waits for a download's answer.
DOWNLOAD_WAIT_SLACK: Final = timedelta(seconds=0.5)
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
                "the signing certificate is not valid yet", reason=Reason.CERTIFICATE_NOT_YET_VALID
            )
        if now > self.not_after:
            raise CertificateError(
                "the signing certificate has expired", reason=Reason.CERTIFICATE_EXPIRED
            )


def allowed_certificate_names(topic: TopicArn) -> frozenset[str]:
    """Names a genuine SNS signing certificate for ``topic`` may carry (see
    :func:`snsmiddleware.partitions.signing_certificate_names`, built from AWS's Java SDKs)."""
    return signing_certificate_names(topic.partition, topic.region)


def _certificate_names(cert: x509.Certificate) -> frozenset[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return frozenset(
            str(attribute.value)
            for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        )
    return frozenset(san.value.get_values_for_type(x509.DNSName))


def _pem_bytes(url: str, pem: object) -> bytes:
    """What a fetcher returned, as bytes: ``bytes``-like or ``str`` PEM text.

    Anything else (``None``, a number, a response object) is a bug in a user-supplied
    ``fetch_certificate``, not a verdict on the certificate: answer 503 so SNS retries
    while the operator reads the logged explanation, never a TypeError (500) or a 403.
    """
    if isinstance(pem, bytes):
        return pem
    if isinstance(pem, bytearray | memoryview):
        return bytes(pem)
    if isinstance(pem, str):
        # PEM is ASCII; anything else cannot be one certificate (403 bad_certificate below).
        return pem.encode("utf-8", "replace")
    log.error(
        "fetch_certificate returned %s for %s; it must return the PEM as bytes or str",
        type(pem).__name__,
        url,
    )
    raise CertificateUnavailableError(
        f"fetch_certificate returned {type(pem).__name__}, not the PEM as bytes or str"
    )


def load_signing_certificate(
    url: str, pem: bytes | str, topic: TopicArn, *, check_name: bool = True
) -> SigningCertificate:
    """Parse and check what the certificate URL served; raise 403 if it is not acceptable.

    :param pem: the PEM as ``bytes`` or ``str``; any other type answers 503
        ``certificate_unavailable`` (a broken ``fetch_certificate``), logged.
    :param check_name: ``False`` only in emulator mode, where the emulator signs with its
        own throwaway certificate and the trust comes from the pinned emulator URL.
    """
    data = _pem_bytes(url, pem).strip()
    if (
        not data.startswith(_PEM_BEGIN)
        or not data.endswith(_PEM_END)
        or data.count(b"-----BEGIN") != 1
    ):
        raise CertificateError(
            "the certificate URL did not serve exactly one PEM certificate",
            reason=Reason.BAD_CERTIFICATE,
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
            "the certificate could not be parsed", reason=Reason.BAD_CERTIFICATE
        ) from None
    if not isinstance(public_key, rsa.RSAPublicKey) or public_key.key_size < MIN_RSA_KEY_BITS:
        raise CertificateError(
            f"the certificate's key is not RSA of at least {MIN_RSA_KEY_BITS} bits",
            reason=Reason.BAD_CERTIFICATE,
        )
    if check_name and not names & allowed_certificate_names(topic):
        raise CertificateError(
            "the certificate is not issued to SNS", reason=Reason.CERTIFICATE_NAME_MISMATCH
        )
    return SigningCertificate(
        url=url,
        public_key=public_key,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        names=names,
    )


class HttpCertificateFetcher:
    """Download a certificate over HTTPS with requests: no redirects, a hard deadline, a cap.

    The deadline bounds the whole exchange, not single reads: connect, TLS handshake, status
    line, headers and body (see :mod:`snsmiddleware.http_deadline`; a host that drips bytes
    just inside the read time-out is cut off when it passes). An answer that was cut short
    (headers that never ended, a body shorter than its Content-Length, an empty 200, a PEM
    without its end line) is transient (503), never a permanent "no".

    :param timeout: ``(connect, read)`` seconds for each network operation (each is also
        clipped to what is left of the deadline).
    :param deadline: bound on the whole download (default 6 s; SNS waits
        :data:`~snsmiddleware.policy.SNS_ANSWER_DEADLINE`, 15 s, for us).
    :param max_bytes: a larger body is refused (403): it is not an SNS certificate.
    :param session: a ``requests.Session`` to reuse (proxies, tests). Mount
        :class:`~snsmiddleware.http_deadline.DeadlineAdapter` (or a subclass) on it for the
        hard deadline; with other adapters only :class:`CertificateStore` bounds the wait.
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

            from .http_deadline import DeadlineAdapter

            session = requests.Session()
            for prefix in ("https://", "http://"):
                session.mount(prefix, DeadlineAdapter(max_retries=0))
            self._session = session
        return self._session

    def __call__(self, url: str) -> bytes:
        from .http_deadline import Deadline

        with Deadline(self.deadline) as deadline:
            body = self._download(url, deadline)
        if deadline.expired:
            raise CertificateUnavailableError("the certificate download was too slow")
        # A 200 that ends before any body, or a PEM that stops before its end line, is an
        # answer cut short (a connection dropped mid-headers reads as an empty 200): retry.
        if not body.strip():
            raise CertificateUnavailableError("the certificate host sent an empty answer")
        if body.lstrip().startswith(_PEM_BEGIN) and _PEM_END not in body:
            raise CertificateUnavailableError("the certificate download was cut short")
        return body

    def _download(self, url: str, deadline: Deadline) -> bytes:
        import requests
        import urllib3

        try:
            response = self._get_session().get(
                url, timeout=deadline.clip(self.timeout), allow_redirects=False, stream=True
            )
        except requests.RequestException as exc:
            raise _fetch_failure(deadline, exc) from None
        with response:
            status = response.status_code
            if status >= 500 or status == 429:
                raise CertificateUnavailableError(f"the certificate host answered HTTP {status}")
            if status != 200:
                raise CertificateError(
                    f"the certificate host answered HTTP {status}",
                    reason=Reason.CERTIFICATE_NOT_FOUND,
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
                            reason=Reason.CERTIFICATE_TOO_LARGE,
                        )
                    if deadline.expired:
                        raise CertificateUnavailableError("the certificate download was too slow")
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise _fetch_failure(deadline, exc) from None
            if response.raw.length_remaining:
                raise CertificateUnavailableError("the certificate download was cut short")
        return bytes(body)


def _fetch_failure(deadline: Deadline, exc: Exception) -> CertificateUnavailableError:
    if deadline.expired:
        return CertificateUnavailableError("the certificate download was too slow")
    return CertificateUnavailableError(
        f"could not download the signing certificate ({type(exc).__name__})"
    )


class CertificateEventKind(enum.Enum):
    """What :class:`CertificateStore` did for one lookup or download."""

    #: a cached, checked certificate was served
    HIT = "hit"
    #: not cached: the request waited for a download (its own or one already running)
    MISS = "miss"
    #: a definitive "no" for this URL was answered from memory (``negative_ttl``)
    REFUSAL_REMEMBERED = "refusal_remembered"
    #: a download ended with a usable certificate (now cached)
    DOWNLOAD = "download"
    #: a download ended without one, or could not start (``reason`` says why)
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class CertificateEvent:
    """One event of the certificate cache, for its ``observer``.

    No URL: anyone who knows an allowed TopicArn can name any certificate URL on its
    region's SNS host, so the URL is the sender's choice (the log line names it).

    :param kind: what happened.
    :param reason: the reason code of a ``FAILURE`` or ``REFUSAL_REMEMBERED``, else ``None``.
    """

    kind: CertificateEventKind
    reason: str | None = None


#: ``event -> None``, called by :class:`CertificateStore` (never raises into it).
CertificateObserver = Callable[[CertificateEvent], object]

_HIT: Final = CertificateEvent(CertificateEventKind.HIT)
_MISS: Final = CertificateEvent(CertificateEventKind.MISS)
_DOWNLOADED: Final = CertificateEvent(CertificateEventKind.DOWNLOAD)


@dataclass(slots=True)
class _Download:
    """One in-flight download that requests for its URL wait on, until ``wait_until``."""

    done: threading.Event
    wait_until: float
    result: SigningCertificate | None = None
    error: SnsError | None = None


def _fresh_copy(error: SnsError) -> SnsError:
    # A fresh exception per raising thread: one instance raised in many threads would share
    # (and garble) its traceback.
    return type(error)(error.detail, reason=error.reason)


class CertificateStore:
    """Bounded TTL cache of checked signing certificates, one download per URL at a time.

    Hits take no lock and do not refresh recency, so eviction is oldest-first; AWS uses a
    handful of certificate URLs at a time, far below the bound.

    What a forger can make it download is bounded three ways (anyone who knows an allowed
    TopicArn can name any ``SimpleNotificationService-<hex>.pem`` on that region's host):

    * one download per URL at a time: concurrent requests wait for it, each at most the
      download deadline plus :data:`DOWNLOAD_WAIT_SLACK`, then answer 503;
    * definitive answers (HTTP 404/403, not a usable certificate, wrong name, too large) are
      remembered per URL for ``negative_ttl``, so repeating a missing URL costs nothing;
      transient failures are not, so SNS's retries reach a host that has recovered;
    * at most ``max_concurrent_downloads`` downloads run at once; a request that would
      start one more answers 503 ``certificate_unavailable`` (SNS retries) at once.

    Each download runs in a thread of its own and holds its slot until it really ends, so
    even a fetcher that ignores its deadline cannot hold a request past
    ``download_deadline`` nor open more than ``max_concurrent_downloads`` connections.

    :param fetch: ``url -> bytes``; defaults to :class:`HttpCertificateFetcher`.
    :param max_entries: how many certificates to keep (AWS uses a handful at a time).
    :param ttl: how long a downloaded certificate is reused.
    :param monotonic: time source for the TTLs (tests inject a fake).
    :param check_names: require an SNS certificate name; ``False`` only for an emulator.
    :param negative_ttl: how long a definitive "no" for a URL is answered from memory
        (default 30 s; ``timedelta(0)`` turns it off). Short on purpose: a certificate URL
        that AWS starts using a moment after someone asked for it works again within it.
    :param negative_entries: how many such answers to remember (oldest go first).
    :param max_concurrent_downloads: downloads running at once (default 2: a handful of
        certificate URLs are in use at a time, and the default server's 4 threads keep at
        least two for requests whose certificate is cached).
    :param download_deadline: how long a request waits for a download; default: the
        fetcher's own ``deadline`` attribute if it has one (``HttpCertificateFetcher``),
        else :data:`DEFAULT_FETCH_DEADLINE`.
    :param observer: called with a :class:`CertificateEvent` for every lookup (hit, miss,
        refusal remembered) and every download's end (download, failure), from the
        request's thread or the download's; what it raises is logged (rate-limited) and
        changes nothing. Settable later as the ``observer`` attribute.
    """

    def __init__(
        self,
        fetch: CertificateFetcher | None = None,
        *,
        max_entries: int = DEFAULT_CACHE_ENTRIES,
        ttl: timedelta = DEFAULT_CACHE_TTL,
        monotonic: Callable[[], float] = time.monotonic,
        check_names: bool = True,
        negative_ttl: timedelta = DEFAULT_NEGATIVE_TTL,
        negative_entries: int = DEFAULT_NEGATIVE_ENTRIES,
        max_concurrent_downloads: int = DEFAULT_MAX_CONCURRENT_DOWNLOADS,
        download_deadline: timedelta | None = None,
        observer: CertificateObserver | None = None,
    ) -> None:
        self.observer = observer
        self._observer_guard = HookGuard("the CertificateStore observer")
        if max_entries < 1 or negative_entries < 1 or max_concurrent_downloads < 1:
            raise ValueError(
                "max_entries, negative_entries and max_concurrent_downloads must be at least 1"
            )
        if negative_ttl < timedelta(0):
            raise ValueError("negative_ttl must not be negative")
        self.check_names = check_names
        self._fetch = fetch if fetch is not None else HttpCertificateFetcher()
        self._max_entries = max_entries
        self._ttl = ttl.total_seconds()
        self._monotonic = monotonic
        self._negative_ttl = negative_ttl.total_seconds()
        self._negative_entries = negative_entries
        self._max_downloads = max_concurrent_downloads
        if download_deadline is not None:
            deadline = download_deadline.total_seconds()
        else:
            fetcher_deadline = getattr(self._fetch, "deadline", None)
            deadline = (
                float(fetcher_deadline)
                if isinstance(fetcher_deadline, int | float)
                else DEFAULT_FETCH_DEADLINE.total_seconds()
            )
        self.download_deadline = timedelta(seconds=deadline)
        self._wait = deadline + DOWNLOAD_WAIT_SLACK.total_seconds()
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[float, SigningCertificate]] = OrderedDict()
        self._refused: OrderedDict[str, tuple[float, SnsError]] = OrderedDict()
        self._downloads: dict[str, _Download] = {}
        self._running = 0

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, url: str, topic: TopicArn) -> SigningCertificate:
        """Return the checked certificate at ``url`` (a policy-validated URL)."""
        # Fast path without the lock: a dict read is atomic, and a hit needs no LRU bookkeeping
        # precise enough to be worth a lock on every message (AWS uses a handful of URLs).
        cached = self._cache.get(url)
        if cached is not None and self._monotonic() < cached[0]:
            if self.observer is not None:
                self._notify(_HIT)
            return cached[1]
        event = _MISS
        try:
            with self._lock:
                cached = self._cache.get(url)
                if cached is not None:
                    expires, certificate = cached
                    if self._monotonic() < expires:
                        self._cache.move_to_end(url)
                        event = _HIT
                        return certificate
                    del self._cache[url]
                refused = self._refused.get(url)
                if refused is not None:
                    if self._monotonic() < refused[0]:
                        error = _fresh_copy(refused[1])
                        event = CertificateEvent(
                            CertificateEventKind.REFUSAL_REMEMBERED, error.reason
                        )
                        raise error
                    del self._refused[url]
                download = self._downloads.get(url)
                leader = download is None
                if download is None:
                    if self._running >= self._max_downloads:
                        busy = CertificateUnavailableError(
                            "too many certificate downloads at once; try again later"
                        )
                        event = CertificateEvent(CertificateEventKind.FAILURE, busy.reason)
                        raise busy
                    self._running += 1
                    download = self._downloads[url] = _Download(
                        threading.Event(), wait_until=time.monotonic() + self._wait
                    )
        finally:  # outside the lock: an observer may take its time, or look at the store
            self._notify(event)
        if leader:
            self._start(url, topic, download)
        # Waiting happens right here, in get, for every request (tests look for it here).
        download.done.wait(max(0.0, download.wait_until - time.monotonic()))
        if download.result is not None:
            return download.result
        if download.error is None:
            raise CertificateUnavailableError("the certificate download did not finish in time")
        raise _fresh_copy(download.error)

    def _start(self, url: str, topic: TopicArn, download: _Download) -> None:
        thread = threading.Thread(
            target=self._download,
            args=(url, topic, download),
            name="snsmiddleware-certificate-download",
            daemon=True,
        )
        try:
            thread.start()
        except RuntimeError:  # no thread to be had (interpreter shutdown, limits)
            download.error = CertificateUnavailableError("could not start the certificate download")
            self._finish(url, download)

    def _download(self, url: str, topic: TopicArn, download: _Download) -> None:
        try:
            download.result = self._fetch_and_check(url, topic)
        except SnsError as exc:
            download.error = exc
            log.warning("certificate %s rejected: %s (%s)", url, exc.reason, exc.detail)
        except Exception as exc:  # never leave the waiters without an answer
            download.error = CertificateUnavailableError(
                f"the certificate check failed ({type(exc).__name__})"
            )
            log.exception("certificate %s: unexpected error", url)
        finally:
            self._finish(url, download)

    def _finish(self, url: str, download: _Download) -> None:
        with self._lock:
            del self._downloads[url]
            self._running -= 1
            now = self._monotonic()
            if download.result is not None:
                self._cache[url] = (now + self._ttl, download.result)
                while len(self._cache) > self._max_entries:
                    self._cache.popitem(last=False)
            elif (
                download.error is not None
                and not download.error.transient
                and self._negative_ttl > 0
            ):
                self._refused[url] = (now + self._negative_ttl, download.error)
                self._refused.move_to_end(url)
                while len(self._refused) > self._negative_entries:
                    self._refused.popitem(last=False)
        # Before the waiters wake: once a request is answered, its download has been counted.
        if download.result is not None:
            self._notify(_DOWNLOADED)
        else:
            reason = download.error.reason if download.error is not None else None
            self._notify(CertificateEvent(CertificateEventKind.FAILURE, reason))
        download.done.set()

    def _notify(self, event: CertificateEvent) -> None:
        observer = self.observer
        if observer is not None:
            self._observer_guard.call(observer, event)

    def _fetch_and_check(self, url: str, topic: TopicArn) -> SigningCertificate:
        try:
            pem = self._fetch(url)
        except SnsError:
            raise
        except Exception as exc:  # a user-supplied fetcher may raise anything
            raise CertificateUnavailableError(
                f"could not download the signing certificate ({type(exc).__name__})"
            ) from None
        return load_signing_certificate(url, pem, topic, check_name=self.check_names)
