"""Answering SubscriptionConfirmation: ApiConfirmer (boto3) and UrlConfirmer (GET).

* ApiConfirmer against moto in server mode (a real SNS API over HTTP on 127.0.0.1): a topic
  and an http subscription are created there, then confirmed through ``endpoint_url=``. moto
  keeps topics per region, so a confirmation only succeeds in the topic's own region.
* The error-code table through botocore's ``Stubber`` (``client_factory=``): permanent codes
  are 400 ``confirmation_rejected``, transient ones and 5xx are 503 ``confirmation_failed``;
  connection trouble and missing credentials (real boto3 clients) are transient too.
* UrlConfirmer over a real local HTTP server, reached through a requests transport adapter
  mounted for ``https://sns.us-east-1.amazonaws.com/``: only the rebuilt URL is fetched,
  redirects are never followed. Nothing here leaves 127.0.0.1.
"""

from __future__ import annotations

import http.server
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import webtest

from snsmiddleware import ApiConfirmer, ConfigurationError, SnsMiddleware, UrlConfirmer
from snsmiddleware.confirm import make_confirmer
from snsmiddleware.errors import ConfirmationRejectedError, PolicyError, SnsError, TransientError
from snsmiddleware.message import SubscriptionConfirmation, parse_message
from snsmiddleware.testing import MessageSigner, TestCA, post_sns

from ._net import ForwardingAdapter, LocalHttpServer, RefusingAdapter, free_port, serving

ACCOUNT = "123456789012"  # moto's default account
SNS_BASE = "https://sns.us-east-1.amazonaws.com/"


@pytest.fixture(scope="module")
def kit_ca() -> TestCA:
    return TestCA()


def confirmation(ca: TestCA, topic_arn: str, **fields: Any) -> SubscriptionConfirmation:
    signed = MessageSigner(ca, topic_arn=topic_arn).subscription_confirmation(**fields)
    message = parse_message(signed.body)
    assert isinstance(message, SubscriptionConfirmation)
    return message


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[bool], None]:
    """Isolate boto3 from the machine: no profiles, no metadata service, optional fake keys."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SNS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    def credentials(present: bool) -> None:
        if present:
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        else:
            monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
            monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)

    credentials(True)
    return credentials


# --- ApiConfirmer against moto's server ------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def moto_client(endpoint: str, region: str) -> Any:
    import boto3

    return boto3.session.Session().client("sns", region_name=region, endpoint_url=endpoint)


def test_api_confirmer_confirms_in_moto(
    aws_env: Callable[[bool], None], moto_endpoint: str, kit_ca: TestCA
) -> None:
    client = moto_client(moto_endpoint, "eu-west-1")
    topic_arn = client.create_topic(Name="confirm-me")["TopicArn"]
    assert topic_arn == f"arn:aws:sns:eu-west-1:{ACCOUNT}:confirm-me"
    client.subscribe(TopicArn=topic_arn, Protocol="http", Endpoint="http://127.0.0.1:9/sns")
    subscriptions = client.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    assert [s["Endpoint"] for s in subscriptions] == ["http://127.0.0.1:9/sns"]

    confirmer = ApiConfirmer(endpoint_url=moto_endpoint)
    confirmer(confirmation(kit_ca, topic_arn))  # moto accepts any token for a topic it has


def test_api_confirmer_uses_the_topics_region(
    aws_env: Callable[[bool], None], moto_endpoint: str, kit_ca: TestCA
) -> None:
    """moto keeps topics per region: a topic of ap-southeast-2 is unknown in us-east-1, so a
    confirmer that ignored the TopicArn's region would get NotFound."""
    created = moto_client(moto_endpoint, "ap-southeast-2").create_topic(Name="regional")
    confirmer = ApiConfirmer(endpoint_url=moto_endpoint)
    confirmer(confirmation(kit_ca, created["TopicArn"]))
    # The same topic name in a region where it does not exist: a permanent refusal.
    elsewhere = f"arn:aws:sns:us-east-1:{ACCOUNT}:regional"
    with pytest.raises(ConfirmationRejectedError) as caught:
        confirmer(confirmation(kit_ca, elsewhere))
    assert (caught.value.status, caught.value.reason) == (400, "confirmation_rejected")
    assert "NotFound" in caught.value.detail


def test_api_confirmer_sends_authenticate_on_unsubscribe_to_moto(
    aws_env: Callable[[bool], None], moto_endpoint: str, kit_ca: TestCA
) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []

    def factory(region: str) -> Any:
        client = moto_client(moto_endpoint, region)
        client.meta.events.register(
            "before-call.sns.ConfirmSubscription",
            lambda params, **kwargs: sent.append((region, dict(params["body"]))),
        )
        return client

    topic_arn = moto_client(moto_endpoint, "us-west-2").create_topic(Name="auth")["TopicArn"]
    message = confirmation(kit_ca, topic_arn)
    ApiConfirmer(client_factory=factory)(message)
    [(region, body)] = sent
    assert region == "us-west-2"
    assert body["Action"] == "ConfirmSubscription"
    assert body["AuthenticateOnUnsubscribe"] == "true"
    assert body["TopicArn"] == topic_arn and body["Token"] == message.token


def test_api_confirmer_connection_refused_is_transient(
    aws_env: Callable[[bool], None], kit_ca: TestCA
) -> None:
    confirmer = ApiConfirmer(endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TransientError) as caught:
        confirmer(confirmation(kit_ca, f"arn:aws:sns:us-east-1:{ACCOUNT}:t"))
    assert (caught.value.status, caught.value.reason) == (503, "confirmation_failed")
    assert "EndpointConnectionError" in caught.value.detail


def test_api_confirmer_without_credentials_is_transient(
    aws_env: Callable[[bool], None], kit_ca: TestCA
) -> None:
    aws_env(False)
    confirmer = ApiConfirmer(endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TransientError) as caught:
        confirmer(confirmation(kit_ca, f"arn:aws:sns:us-east-1:{ACCOUNT}:t"))
    assert "NoCredentialsError" in caught.value.detail


# --- the error-code table through botocore's Stubber -------------------------------------------


class StubbedClients:
    """``client_factory`` handing out real boto3 clients, each wrapped in an active Stubber.

    :meth:`stub` prepares a region's client ahead of the call; :attr:`regions` records the
    regions the confirmer asked for, in order.
    """

    def __init__(self) -> None:
        self.regions: list[str] = []
        self._clients: dict[str, tuple[Any, Any]] = {}

    def stub(self, region: str) -> Any:
        if region not in self._clients:
            import boto3
            from botocore.stub import Stubber

            client = boto3.session.Session().client("sns", region_name=region)
            stubber = Stubber(client)
            stubber.activate()
            self._clients[region] = (client, stubber)
        return self._clients[region][1]

    def __call__(self, region: str) -> Any:
        self.regions.append(region)
        self.stub(region)
        return self._clients[region][0]


def expected_params(message: SubscriptionConfirmation) -> dict[str, str]:
    return {
        "TopicArn": message.topic_arn,
        "Token": message.token,
        "AuthenticateOnUnsubscribe": "true",
    }


def test_stubbed_success_uses_region_and_authenticate_on_unsubscribe(
    aws_env: Callable[[bool], None], kit_ca: TestCA
) -> None:
    clients = StubbedClients()
    confirmer = ApiConfirmer(client_factory=clients)
    topics = [f"arn:aws:sns:{region}:{ACCOUNT}:t" for region in ("eu-central-1", "us-east-2")]
    for topic_arn in topics * 2:
        message = confirmation(kit_ca, topic_arn)
        stubber = clients.stub(topic_arn.split(":")[3])
        stubber.add_response(
            "confirm_subscription",
            {"SubscriptionArn": f"{topic_arn}:sub"},
            expected_params=expected_params(message),
        )
        confirmer(message)
        stubber.assert_no_pending_responses()
    # One client per region, made once and reused.
    assert clients.regions == ["eu-central-1", "us-east-2"]


@pytest.mark.parametrize(
    ("code", "http_status", "expected"),
    [
        pytest.param("InvalidParameter", 400, ConfirmationRejectedError, id="invalid-param"),
        pytest.param("NotFound", 404, ConfirmationRejectedError, id="not-found"),
        # Credentials, permissions and clock skew on our side: an operator can fix them.
        pytest.param("AuthorizationError", 403, TransientError, id="authz"),
        pytest.param("AccessDenied", 403, TransientError, id="access-denied"),
        pytest.param("ExpiredToken", 403, TransientError, id="expired-token"),
        pytest.param("ExpiredTokenException", 400, TransientError, id="expired-token-exc"),
        pytest.param("InvalidClientTokenId", 403, TransientError, id="invalid-token"),
        pytest.param("UnrecognizedClientException", 400, TransientError, id="unrecognized"),
        pytest.param("MissingAuthenticationToken", 403, TransientError, id="no-auth-token"),
        pytest.param("SignatureDoesNotMatch", 403, TransientError, id="signature-mismatch"),
        pytest.param("RequestExpired", 400, TransientError, id="request-expired"),
        pytest.param("InvalidSignatureException", 400, TransientError, id="invalid-signature"),
        pytest.param("RequestTimeTooSkewed", 403, TransientError, id="skewed"),
        pytest.param("AuthFailure", 401, TransientError, id="auth-failure"),
        pytest.param("SubscriptionLimitExceeded", 403, ConfirmationRejectedError, id="limit"),
        pytest.param(
            "FilterPolicyLimitExceeded", 403, ConfirmationRejectedError, id="filter-limit"
        ),
        pytest.param("ReplayLimitExceeded", 403, ConfirmationRejectedError, id="replay"),
        pytest.param("InternalError", 500, TransientError, id="internal-error"),
        pytest.param("InternalFailure", 500, TransientError, id="internal-failure"),
        pytest.param("ServiceUnavailable", 503, TransientError, id="unavailable"),
        pytest.param("Throttling", 400, TransientError, id="throttling"),
        pytest.param("ThrottlingException", 400, TransientError, id="throttling-exc"),
        pytest.param("RequestTimeout", 408, TransientError, id="request-timeout"),
        pytest.param("SomethingNew", 502, TransientError, id="unknown-5xx"),
        pytest.param("SomethingNew", 400, ConfirmationRejectedError, id="unknown-4xx"),
    ],
)
def test_stubbed_error_codes_map_to_status(
    aws_env: Callable[[bool], None],
    kit_ca: TestCA,
    code: str,
    http_status: int,
    expected: type[SnsError],
) -> None:
    clients = StubbedClients()
    message = confirmation(kit_ca, f"arn:aws:sns:sa-east-1:{ACCOUNT}:t")
    stubber = clients.stub("sa-east-1")
    stubber.add_client_error(
        "confirm_subscription",
        service_error_code=code,
        service_message="secret-ish server text",
        http_status_code=http_status,
        expected_params=expected_params(message),
    )
    with pytest.raises(expected) as caught:
        ApiConfirmer(client_factory=clients)(message)
    stubber.assert_no_pending_responses()  # the call was made, with the expected parameters
    error = caught.value
    if expected is TransientError:
        assert (type(error), error.status, error.reason) == (
            TransientError,
            503,
            "confirmation_failed",
        )
    else:
        assert (error.status, error.reason) == (400, "confirmation_rejected")
    assert code in error.detail
    assert message.token not in error.detail and "secret-ish" not in error.detail


def confirming_app(signer: MessageSigner, **options: Any) -> webtest.TestApp:
    """SnsMiddleware on ``/sns`` for the signer's topic, confirming as ``options`` say."""
    return webtest.TestApp(
        SnsMiddleware(
            lambda environ, start_response: [],
            paths=["/sns"],
            topics=[signer.topic_arn],
            fetch_certificate=signer.fetch_certificate,
            **options,
        )
    )


@pytest.mark.parametrize(
    ("code", "http_status", "status", "reason"),
    [
        pytest.param("ExpiredToken", 403, 503, "confirmation_failed", id="expired-credentials"),
        pytest.param("SignatureDoesNotMatch", 403, 503, "confirmation_failed", id="clock-skew"),
        pytest.param("InvalidParameter", 400, 400, "confirmation_rejected", id="bad-token"),
    ],
)
def test_confirmation_through_the_middleware_retries_what_an_operator_can_fix(
    aws_env: Callable[[bool], None],
    kit_ca: TestCA,
    code: str,
    http_status: int,
    status: int,
    reason: str,
) -> None:
    """End to end: a signed SubscriptionConfirmation through SnsMiddleware and WebTest, whose
    ConfirmSubscription fails with ``code``: 503 (SNS redelivers) or 400 (for good)."""
    signer = MessageSigner(kit_ca, topic_arn=f"arn:aws:sns:sa-east-1:{ACCOUNT}:t")
    signed = signer.subscription_confirmation()
    message = parse_message(signed.body)
    assert isinstance(message, SubscriptionConfirmation)
    clients = StubbedClients()
    clients.stub("sa-east-1").add_client_error(
        "confirm_subscription",
        service_error_code=code,
        http_status_code=http_status,
        expected_params=expected_params(message),
    )
    app = confirming_app(signer, confirm=ApiConfirmer(client_factory=clients))
    response = post_sns(app, "/sns", signed)
    assert (response.status_int, response.headers["X-SNS-Reason"]) == (status, reason)
    assert message.token not in response.text


def test_client_factory_errors_are_not_swallowed_as_confirmations(
    aws_env: Callable[[bool], None], kit_ca: TestCA
) -> None:
    """A broken factory is a bug, not an SNS answer: it surfaces (the middleware gives 500)."""

    def broken(region: str) -> Any:
        raise RuntimeError("factory bug")

    with pytest.raises(RuntimeError):
        ApiConfirmer(client_factory=broken)(
            confirmation(kit_ca, f"arn:aws:sns:us-east-1:{ACCOUNT}:t")
        )


# --- make_confirmer ---------------------------------------------------------------------------


def test_make_confirmer_choices() -> None:
    assert isinstance(make_confirmer("api"), ApiConfirmer)
    assert isinstance(make_confirmer("url"), UrlConfirmer)

    def own(message: SubscriptionConfirmation) -> None:
        pass

    assert make_confirmer(own) is own


@pytest.mark.parametrize(
    ("confirm", "options"),
    [
        pytest.param("URL", {}, id="upper-case"),
        pytest.param("email", {}, id="unknown"),
        pytest.param("url", {"endpoint_url": "http://127.0.0.1:4566"}, id="endpoint-with-url"),
        pytest.param(None, {}, id="none"),
    ],
)
def test_make_confirmer_refuses_at_startup(confirm: Any, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        make_confirmer(confirm, **options)


# --- UrlConfirmer over a real local server -----------------------------------------------------


class SnsLikeServer(LocalHttpServer):
    """Answers GET /?...&Token=status-NNN with status NNN (302: a redirect elsewhere)."""

    def __init__(self) -> None:
        super().__init__(SnsLikeHandler)
        self.requests: list[str] = []


class SnsLikeHandler(http.server.BaseHTTPRequestHandler):
    server: SnsLikeServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        self.server.requests.append(self.path)
        token = parse_qs(urlsplit(self.path).query).get("Token", [""])[0]
        if token == "stall":
            self.server.stop.wait(3)
            return
        status = int(token.removeprefix("status-")) if token.startswith("status-") else 400
        body = b"<ConfirmSubscriptionResponse/>"
        self.send_response(status)
        if status in (301, 302, 303, 307, 308):
            target = "https://evil.example/steal" if status == 302 else SNS_BASE + "followed"
            self.send_header("Location", target)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def sns_server() -> Iterator[SnsLikeServer]:
    with serving(SnsLikeServer()) as server:
        yield server


@pytest.fixture
def session(
    sns_server: SnsLikeServer,
) -> Iterator[tuple[requests.Session, ForwardingAdapter, RefusingAdapter]]:
    forward = ForwardingAdapter(sns_server.base)
    refuse = RefusingAdapter()
    with requests.Session() as session:
        session.mount("http://", refuse)
        session.mount("https://", refuse)
        session.mount(SNS_BASE, forward)  # the longest matching prefix wins
        yield session, forward, refuse


TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:budget-alerts"
ENCODED_TOPIC = TOPIC.replace(":", "%3A")


def canonical_url(token: str) -> str:
    return f"{SNS_BASE}?Action=ConfirmSubscription&TopicArn={ENCODED_TOPIC}&Token={token}"


def test_url_confirmer_200_fetches_only_the_rebuilt_url(
    session: tuple[requests.Session, ForwardingAdapter, RefusingAdapter],
    sns_server: SnsLikeServer,
    kit_ca: TestCA,
) -> None:
    http_session, forward, refuse = session
    message = confirmation(kit_ca, TOPIC, Token="status-200")
    assert ":" in message.subscribe_url.split("TopicArn=")[1]  # SNS writes the ARN unescaped
    UrlConfirmer(session=http_session)(message)
    assert forward.sent == [canonical_url("status-200")]
    assert refuse.sent == []
    assert sns_server.requests[-1] == (
        f"/?Action=ConfirmSubscription&TopicArn={ENCODED_TOPIC}&Token=status-200"
    )


@pytest.mark.parametrize(
    ("status", "expected", "code"),
    [
        pytest.param(400, ConfirmationRejectedError, "confirmation_rejected", id="400"),
        pytest.param(403, ConfirmationRejectedError, "confirmation_rejected", id="403"),
        pytest.param(404, ConfirmationRejectedError, "confirmation_rejected", id="404"),
        pytest.param(429, TransientError, "confirmation_failed", id="429"),
        pytest.param(500, TransientError, "confirmation_failed", id="500"),
        pytest.param(503, TransientError, "confirmation_failed", id="503"),
        pytest.param(302, ConfirmationRejectedError, "confirmation_rejected", id="302-elsewhere"),
        pytest.param(307, ConfirmationRejectedError, "confirmation_rejected", id="307-same-host"),
    ],
)
def test_url_confirmer_status_mapping_and_no_redirects(
    session: tuple[requests.Session, ForwardingAdapter, RefusingAdapter],
    kit_ca: TestCA,
    status: int,
    expected: type[SnsError],
    code: str,
) -> None:
    http_session, forward, refuse = session
    token = f"status-{status}"
    with pytest.raises(expected) as caught:
        UrlConfirmer(session=http_session)(confirmation(kit_ca, TOPIC, Token=token))
    assert caught.value.reason == code
    assert caught.value.status == (503 if expected is TransientError else 400)
    # Exactly one request, to the rebuilt URL; a redirect target is never requested.
    assert forward.sent == [canonical_url(token)]
    assert refuse.sent == []


def test_url_confirmer_connection_error_is_transient(kit_ca: TestCA) -> None:
    forward = ForwardingAdapter(f"http://127.0.0.1:{free_port()}")
    with requests.Session() as http_session:
        http_session.mount("http://", RefusingAdapter())
        http_session.mount("https://", RefusingAdapter())
        http_session.mount(SNS_BASE, forward)
        with pytest.raises(TransientError) as caught:
            UrlConfirmer(session=http_session)(confirmation(kit_ca, TOPIC, Token="status-200"))
    assert (caught.value.status, caught.value.reason) == (503, "confirmation_failed")
    assert forward.sent == [canonical_url("status-200")]


def test_url_confirmer_read_timeout_is_transient(
    session: tuple[requests.Session, ForwardingAdapter, RefusingAdapter], kit_ca: TestCA
) -> None:
    http_session, forward, _ = session
    confirmer = UrlConfirmer(session=http_session, timeout=(2.0, 0.3))
    with pytest.raises(TransientError) as caught:
        confirmer(confirmation(kit_ca, TOPIC, Token="stall"))
    assert caught.value.reason == "confirmation_failed"
    assert len(forward.sent) == 1


@pytest.mark.parametrize(
    "subscribe_url",
    [
        pytest.param(
            f"https://evil.example/?Action=ConfirmSubscription&TopicArn={TOPIC}", id="host"
        ),
        pytest.param(
            f"{SNS_BASE}?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=other", id="token"
        ),
        pytest.param(
            f"{SNS_BASE}?Action=Unsubscribe&TopicArn={TOPIC}&Token=status-200", id="action"
        ),
        pytest.param(
            f"http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}"
            "&Token=status-200",
            id="http",
        ),
    ],
)
def test_url_confirmer_refuses_hostile_url_before_any_request(
    session: tuple[requests.Session, ForwardingAdapter, RefusingAdapter],
    kit_ca: TestCA,
    subscribe_url: str,
) -> None:
    http_session, forward, refuse = session
    message = confirmation(kit_ca, TOPIC, Token="status-200", SubscribeURL=subscribe_url)
    with pytest.raises(PolicyError) as caught:
        UrlConfirmer(session=http_session)(message)
    assert caught.value.reason == "bad_subscribe_url"
    assert forward.sent == [] and refuse.sent == []


def test_url_confirmer_uses_the_given_url_for(
    session: tuple[requests.Session, ForwardingAdapter, RefusingAdapter], kit_ca: TestCA
) -> None:
    """The middleware passes its verifier's rebuilder (emulator mode); it is what is fetched."""
    http_session, forward, _ = session
    wanted = f"{SNS_BASE}?Token=status-200"
    UrlConfirmer(session=http_session, url_for=lambda message: wanted)(confirmation(kit_ca, TOPIC))
    assert forward.sent == [wanted]


# --- the Token stays out of third-party DEBUG logs ------------------------------------------


def _library_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What botocore and urllib3 logged (formatted), the records an operator would keep."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith(("botocore", "urllib3"))
    ]


def test_url_confirmation_keeps_the_token_out_of_urllib3_debug_log(
    session: tuple[requests.Session, ForwardingAdapter, RefusingAdapter],
    kit_ca: TestCA,
    caplog: pytest.LogCaptureFixture,
) -> None:
    http_session, forward, _ = session
    signer = MessageSigner(kit_ca, topic_arn=TOPIC)
    token = "status-200"
    app = confirming_app(signer, confirm=UrlConfirmer(session=http_session))
    caplog.set_level(logging.DEBUG, logger="urllib3")
    response = post_sns(app, "/sns", signer.subscription_confirmation(Token=token))
    assert response.headers["X-SNS-Reason"] == "subscription_confirmed"
    assert forward.sent == [canonical_url(token)]  # the real request carried the token
    lines = _library_log(caplog)
    assert any('"GET /?<redacted> HTTP/1.1" 200' in line for line in lines), lines
    assert not any(token in line or ENCODED_TOPIC in line for line in lines), lines


def test_api_confirmation_keeps_the_token_out_of_botocore_debug_log(
    aws_env: Callable[[bool], None],
    moto_endpoint: str,
    kit_ca: TestCA,
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic_arn = moto_client(moto_endpoint, "eu-west-2").create_topic(Name="quiet")["TopicArn"]
    signer = MessageSigner(kit_ca, topic_arn=topic_arn)
    message = signer.subscription_confirmation()
    token = message.fields["Token"]
    app = confirming_app(signer, confirm="api", confirm_endpoint_url=moto_endpoint)
    caplog.set_level(logging.DEBUG, logger="botocore")
    caplog.set_level(logging.DEBUG, logger="urllib3")
    response = post_sns(app, "/sns", message)
    assert response.headers["X-SNS-Reason"] == "subscription_confirmed"
    lines = _library_log(caplog)
    [params] = [line for line in lines if "OperationModel(name=ConfirmSubscription)" in line]
    assert "'Token': '<redacted>'" in params and topic_arn in params
    assert not any(token in line for line in lines), lines
    # Outside a confirmation nothing is redacted.
    logging.getLogger("botocore.endpoint").debug("Token %s", token)
    assert token in caplog.records[-1].getMessage()
