"""Answering SubscriptionConfirmation messages, only ever after full verification.

Two ways, both bounded inside SNS's answer deadline (``policy.SNS_ANSWER_DEADLINE``):

* :class:`ApiConfirmer` (the default) calls ``ConfirmSubscription`` through boto3 in the
  topic's own region with ``AuthenticateOnUnsubscribe=true``, so that nobody who merely sees
  an UnsubscribeURL can unsubscribe the endpoint. Needs credentials allowed to call
  ``sns:ConfirmSubscription``.
* :class:`UrlConfirmer` GETs the SubscribeURL, but only the URL rebuilt by
  :func:`snsmiddleware.policy.subscribe_url` (pinned host, this topic, this token), never
  following redirects.

A confirmer raises :class:`~snsmiddleware.errors.TransientError` (503: SNS redelivers the
confirmation, its only way to resend it; also for credential, permission and clock trouble
on our side, which an operator can fix) or
:class:`~snsmiddleware.errors.ConfirmationRejectedError` (400: retrying cannot help).
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from .errors import ConfigurationError, ConfirmationRejectedError, TransientError
from .message import SubscriptionConfirmation
from .policy import parse_topic_arn, subscribe_url
from .reasons import Reason
from .redact import REDACTOR, install

if TYPE_CHECKING:
    import requests

#: A confirmer receives the verified message and returns when the subscription is confirmed.
Confirmer = Callable[[SubscriptionConfirmation], None]

#: ConfirmSubscription errors that may clear on retry (botocore's SNS model); any other
#: client error is permanent: InvalidParameter (also a wrong region or a bad token), NotFound
#: (expired token), SubscriptionLimitExceeded, FilterPolicyLimitExceeded, ReplayLimitExceeded.
TRANSIENT_API_ERRORS: Final = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
#: Errors about *our* request's credentials, signature or clock, not about the subscription:
#: expired or unknown keys, a slow host clock, a missing permission. An operator can fix each
#: of them, so they answer 503 like missing credentials do: SNS redelivers the confirmation
#: (its only way to resend it) while the operator works. The clock-skew list is the one the
#: AWS SDKs retry after correcting their clock.
CREDENTIAL_API_ERRORS: Final = frozenset(
    {
        # expired temporary credentials
        "ExpiredToken",
        "ExpiredTokenException",
        "TokenRefreshRequired",
        # unknown or malformed credentials
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "MissingAuthenticationToken",
        "IncompleteSignature",
        # clock skew
        "AuthFailure",
        "InvalidSignatureException",
        "RequestExpired",
        "RequestInTheFuture",
        "RequestTimeTooSkewed",
        "SignatureDoesNotMatch",
        # a missing IAM permission for sns:ConfirmSubscription
        "AuthorizationError",
        "AccessDenied",
        "AccessDeniedException",
    }
)
#: Connect and read time-outs of one confirmation call. The API makes at most
#: :data:`DEFAULT_API_MAX_ATTEMPTS` attempts (boto3 "standard" retries): 2 x (2 + 4) s plus at
#: most 1 s of back-off = 13 s, inside ``policy.SNS_ANSWER_DEADLINE`` (3 s and 5 s made it 17 s).
DEFAULT_CONNECT_TIMEOUT: Final = 2.0
DEFAULT_READ_TIMEOUT: Final = 4.0
DEFAULT_API_MAX_ATTEMPTS: Final = 2


def require_boto3(feature: str) -> None:
    """Fail at startup, not per request, when boto3 is missing (without importing it)."""
    if importlib.util.find_spec("boto3") is None:
        raise ConfigurationError(f"{feature} needs boto3: pip install boto3")


class ApiConfirmer:
    """Confirm through the SNS API (boto3), in the topic's region.

    :param endpoint_url: an SNS endpoint to use instead of AWS's (an emulator such as
        moto's server or LocalStack).
    :param client_factory: ``region -> client``, replacing boto3 client creation (tests).
    """

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        client_factory: Callable[[str], Any] | None = None,
    ) -> None:
        if client_factory is None:
            require_boto3('confirm="api"')
        install()  # botocore logs the Token among the call's parameters at DEBUG
        self._endpoint_url = endpoint_url
        self._client_factory = client_factory or self._make_client
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _make_client(self, region: str) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=DEFAULT_CONNECT_TIMEOUT,
            read_timeout=DEFAULT_READ_TIMEOUT,
            # Total attempts, first try included (botocore's "max_attempts" counts retries).
            retries={"total_max_attempts": DEFAULT_API_MAX_ATTEMPTS, "mode": "standard"},
        )
        return boto3.session.Session().client(
            "sns", region_name=region, endpoint_url=self._endpoint_url, config=config
        )

    def _client(self, region: str) -> Any:
        # boto3 client creation is not thread-safe; one client per region is, once made.
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                client = self._clients[region] = self._client_factory(region)
            return client

    def __call__(self, message: SubscriptionConfirmation) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        region = parse_topic_arn(message.topic_arn).region
        try:
            with REDACTOR.hiding(message.token):
                self._client(region).confirm_subscription(
                    TopicArn=message.topic_arn,
                    Token=message.token,
                    AuthenticateOnUnsubscribe="true",
                )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code in TRANSIENT_API_ERRORS or code in CREDENTIAL_API_ERRORS or status >= 500:
                raise TransientError(
                    f"ConfirmSubscription failed for now ({code})",
                    reason=Reason.CONFIRMATION_FAILED,
                ) from None
            raise ConfirmationRejectedError(f"ConfirmSubscription was refused ({code})") from None
        except BotoCoreError as exc:
            # Connection trouble, time-outs, missing credentials: retrying may help (and
            # gives an operator the hour of SNS retries to fix credentials).
            raise TransientError(
                f"ConfirmSubscription could not be sent ({type(exc).__name__})",
                reason=Reason.CONFIRMATION_FAILED,
            ) from None


def _aws_subscribe_url(message: SubscriptionConfirmation) -> str:
    topic = parse_topic_arn(message.topic_arn)
    return subscribe_url(message.subscribe_url, topic, message.topic_arn, message.token)


class UrlConfirmer:
    """Confirm by GETting the validated SubscribeURL (no boto3, no credentials needed).

    A GET cannot set ``AuthenticateOnUnsubscribe``: prefer :class:`ApiConfirmer` when the
    endpoint has AWS credentials.

    :param timeout: ``(connect, read)`` seconds.
    :param session: a ``requests.Session`` (proxies, tests).
    :param url_for: returns the validated, rebuilt SubscribeURL of a message; the middleware
        passes its verifier's (which knows about emulator mode). Default: the AWS rules.
    """

    def __init__(
        self,
        *,
        timeout: tuple[float, float] = (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT),
        session: requests.Session | None = None,
        url_for: Callable[[SubscriptionConfirmation], str] | None = None,
    ) -> None:
        self.timeout = timeout
        self._session = session
        self._url_for = url_for or _aws_subscribe_url
        install()  # urllib3 logs the request line, query and Token included, at DEBUG

    def __call__(self, message: SubscriptionConfirmation) -> None:
        import requests

        url = self._url_for(message)
        if self._session is None:
            self._session = requests.Session()  # reused: one connection pool per confirmer
        session = self._session
        try:
            with REDACTOR.hiding(message.token, urlsplit(url).query):
                response = session.get(url, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise TransientError(
                f"the SubscribeURL could not be reached ({type(exc).__name__})",
                reason=Reason.CONFIRMATION_FAILED,
            ) from None
        status = response.status_code
        response.close()
        if status == 200:
            return
        if status >= 500 or status == 429:
            raise TransientError(
                f"the SubscribeURL answered HTTP {status}", reason=Reason.CONFIRMATION_FAILED
            )
        raise ConfirmationRejectedError(f"the SubscribeURL answered HTTP {status}")


def make_confirmer(
    confirm: str | Confirmer,
    *,
    endpoint_url: str | None = None,
    url_for: Callable[[SubscriptionConfirmation], str] | None = None,
) -> Confirmer:
    """Turn the middleware's ``confirm=`` option into a confirmer, failing at startup."""
    if confirm == "api":
        return ApiConfirmer(endpoint_url=endpoint_url)
    if endpoint_url is not None:
        raise ConfigurationError('confirm_endpoint_url only applies to confirm="api"')
    if confirm == "url":
        return UrlConfirmer(url_for=url_for)
    if callable(confirm):
        return confirm
    raise ConfigurationError('confirm must be "api", "url" or a callable')
