"""``snsmiddleware doctor`` against moto's server (SNS over real HTTP, on 127.0.0.1) and real
endpoints: our budget server (waitress + SnsMiddleware in emulator mode, trusting moto,
which answers 404 for a certificate it does not have, as AWS does), and impostors (an app
that accepts anything, a 404, a redirect, nothing listening). Each failure a user can meet is
shown with the message they would read. The unconfirmed-subscription case against a real
SNS that sends confirmations is in tests/test_doctor_localstack.py."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from webtest.http import StopableWSGIServer

from snsmiddleware import SnsMiddleware
from snsmiddleware.budget_app import BudgetApp
from snsmiddleware.cli import main
from snsmiddleware.devmode import DevelopmentTrust
from snsmiddleware.doctor import check_endpoint, doctor_options, run_doctor
from snsmiddleware.errors import CertificateError
from snsmiddleware.mail import FileOutbox
from snsmiddleware.reasons import Reason
from snsmiddleware.signer import TestCA

from ._aws_wiring_helpers import ACCOUNT, MotoAws
from ._net import free_port
from ._project import HEAVY, modules_after

PATH = "/sns/budgets"
TOPIC_NAME = "budget-alerts"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:{TOPIC_NAME}"


def _aws_not_found(url: str) -> bytes:
    raise CertificateError("HTTP 404", reason=Reason.CERTIFICATE_NOT_FOUND)


class Endpoint:
    """A real server on 127.0.0.1 running ``app``; closed by the fixture."""

    def __init__(self, app: Any) -> None:
        self.server = StopableWSGIServer.create(app, host="127.0.0.1", expose_tracebacks=False)
        self.url = self.server.application_url.rstrip("/") + PATH
        self.requests: list[str] = []


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[Any]:
    """Start servers: ``endpoint(app)`` or ``endpoint.budget_server(...)``."""
    started: list[Endpoint] = []

    def start(app: Any) -> Endpoint:
        server = Endpoint(app)
        started.append(server)
        return server

    yield start
    for server in started:
        server.server.shutdown()


def budget_server(
    tmp_path: Path,
    *,
    topics: list[str] | None = None,
    emulator: str | None = None,
    trust: DevelopmentTrust | None = None,
    **options: Any,
) -> Any:
    """The budget app behind SnsMiddleware, writing to a file outbox in ``tmp_path``."""
    app = BudgetApp(
        recipients={"*": "ops@example.com"},
        sender="alerts@example.com",
        mailer=FileOutbox(tmp_path / "outbox"),
        dead_letter=FileOutbox(tmp_path / "dead-letter"),
    )
    if trust is not None:
        options["fetch_certificate"] = trust.fetch_certificate
    elif emulator is None:
        options["fetch_certificate"] = _aws_not_found  # AWS's answer to an unknown name
    return SnsMiddleware(
        app,
        paths=[PATH],
        topics=topics or [TOPIC],
        emulator=emulator,
        confirm=lambda message: None,
        **options,
    )


def connected_topic(moto: MotoAws, endpoint_url: str) -> str:
    """Wire a budget to ``endpoint_url`` with connect (as a user would)."""
    moto.create_budget("Monthly")
    out = io.StringIO()
    code = _connect(moto, endpoint_url, out)
    assert code == 0, out.getvalue()
    return TOPIC


def _connect(moto: MotoAws, endpoint_url: str, out: io.StringIO) -> int:
    from snsmiddleware.connect import connect_options, run_connect

    options = connect_options(
        "Monthly", endpoint_url, region="us-east-1", endpoint_url=moto.url, allow_http=True
    )
    return run_connect(options, out)


def doctor(moto: MotoAws, endpoint_url: str | None = None, **options: Any) -> tuple[int, str]:
    topic = options.pop("topic", TOPIC)
    out = io.StringIO()
    checked = doctor_options(topic, endpoint=endpoint_url, endpoint_url=moto.url, **options)
    code = run_doctor(checked, out)
    return code, out.getvalue()


def line(output: str, title: str) -> str:
    """The line of check ``title`` (and its fix line, when there is one)."""
    lines = output.splitlines()
    for index, text in enumerate(lines):
        if re.match(rf"\[(ok|warn|FAIL)\] +{re.escape(title)}:", text):
            following = lines[index + 1] if index + 1 < len(lines) else ""
            return text + ("\n" + following if following.strip().startswith("fix:") else "")
    raise AssertionError(f"no {title!r} line in:\n{output}")


# --- all well -----------------------------------------------------------------------------


def test_a_connected_topic_and_our_server_pass_every_check(
    moto: MotoAws, endpoint: Any, tmp_path: Path
) -> None:
    server = endpoint(budget_server(tmp_path, emulator=moto.url))
    connected_topic(moto, server.url)
    code, output = doctor(moto, server.url)
    assert code == 0, output
    assert "[FAIL]" not in output and "[warn]" not in output, output
    assert line(output, "topic").startswith("[ok]")
    assert "SignatureVersion 2" in line(output, "signature version")
    assert "aws:SourceAccount 123456789012" in line(output, "publish by budgets.amazonaws.com")
    assert line(output, "publish by costalerts.amazonaws.com").startswith("[ok]")
    assert "confirmed" in line(output, "subscription")
    assert line(output, "raw message delivery").startswith("[ok]")
    assert "3 retries" in line(output, "delivery policy")
    probe = line(output, "endpoint")
    # moto has no certificate of that name: the server got a definitive answer from the
    # emulator, after every check before the certificate had passed.
    assert probe.startswith("[ok]") and "403 certificate_not_found" in probe, probe
    assert output.splitlines()[-1] == "RESULT: 9 ok, 0 warning(s), 0 FAILED"
    assert not list((tmp_path / "outbox").glob("*.eml"))  # the probe reached no mailer


def test_the_cli_prints_the_same_and_exits_0(
    moto: MotoAws, endpoint: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = endpoint(budget_server(tmp_path, emulator=moto.url))
    connected_topic(moto, server.url)
    code = main(["doctor", "--topic", TOPIC, "--endpoint", server.url, "--endpoint-url", moto.url])
    output = capsys.readouterr().out
    assert code == 0, output
    assert output.startswith(f"snsmiddleware doctor {TOPIC}\n  endpoint {server.url}\n")


def test_a_bad_signature_probe_reaches_verification_without_aws_keys(
    moto: MotoAws, endpoint: Any, tmp_path: Path
) -> None:
    """Without an emulator: the server trusts AWS; AWS has no certificate of the probe's
    made-up name (answered here as AWS answers), so the server says certificate_not_found;
    a real certificate would end in bad_signature. Both prove verification."""
    server = endpoint(budget_server(tmp_path))
    connected_topic(moto, server.url)
    options = doctor_options(TOPIC, endpoint=server.url)
    with requests.Session() as session:
        checks = list(check_endpoint(session, options, "2"))
    assert [c.status for c in checks] == ["ok"], checks
    assert "403 certificate_not_found" in checks[0].detail


# --- the topic ----------------------------------------------------------------------------


def test_a_missing_topic_fails_and_says_how_to_create_it(moto: MotoAws) -> None:
    code, output = doctor(moto, topic=f"arn:aws:sns:us-east-1:{ACCOUNT}:no-such-topic")
    assert code == 1
    topic = line(output, "topic")
    assert topic.startswith(
        "[FAIL] topic: arn:aws:sns:us-east-1:123456789012:no-such-topic "
        "does not exist (region us-east-1, account 123456789012)"
    )
    assert "fix: check the ARN, or create and wire it: snsmiddleware connect" in topic
    assert output.splitlines()[-1] == "RESULT: 0 ok, 0 warning(s), 1 FAILED"


def test_a_topic_signing_with_sha1_warns_with_the_exact_command(moto: MotoAws) -> None:
    moto.client("sns").create_topic(Name=TOPIC_NAME, Attributes={"SignatureVersion": "1"})
    code, output = doctor(moto)
    check = line(output, "signature version")
    assert check.startswith("[warn] signature version: SignatureVersion 1 (SHA1, deprecated)")
    assert (
        "fix: aws sns set-topic-attributes --topic-arn "
        f"{TOPIC} --attribute-name SignatureVersion --attribute-value 2 --region us-east-1 "
        f"--endpoint-url {moto.url}"
    ) in check


def test_the_default_policy_does_not_let_budgets_publish(moto: MotoAws) -> None:
    moto.client("sns").create_topic(Name=TOPIC_NAME)
    code, output = doctor(moto)
    assert code == 1
    budgets = line(output, "publish by budgets.amazonaws.com")
    assert budgets.startswith(
        "[FAIL] publish by budgets.amazonaws.com: no statement lets budgets.amazonaws.com "
        "sns:Publish to this topic"
    ), budgets
    assert '"Principal": {"Service": "budgets.amazonaws.com"}' in budgets
    assert '"aws:SourceAccount": "123456789012"' in budgets
    costalerts = line(output, "publish by costalerts.amazonaws.com")
    assert costalerts.startswith("[warn]") and "fine if you use none" in costalerts


def test_a_policy_for_another_account_fails(moto: MotoAws) -> None:
    sns = moto.client("sns")
    sns.create_topic(Name=TOPIC_NAME)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "budgets",
                "Effect": "Allow",
                "Principal": {"Service": "budgets.amazonaws.com"},
                "Action": "SNS:Publish",
                "Resource": TOPIC,
                "Condition": {"StringEquals": {"aws:SourceAccount": "999999999999"}},
            }
        ],
    }
    sns.set_topic_attributes(
        TopicArn=TOPIC, AttributeName="Policy", AttributeValue=json.dumps(policy)
    )
    code, output = doctor(moto)
    assert code == 1
    assert "aws:SourceAccount is limited to 999999999999" in line(
        output, "publish by budgets.amazonaws.com"
    )


# --- the subscription ---------------------------------------------------------------------


def test_no_subscription_for_the_endpoint_fails_with_the_subscribe_command(
    moto: MotoAws,
) -> None:
    moto.client("sns").create_topic(Name=TOPIC_NAME)
    code, output = doctor(moto, "https://alerts.example.com/sns/budgets?x=1")
    assert code == 1
    check = line(output, "subscription")
    assert "the topic has no subscription for https://alerts.example.com/sns/budgets?x=1" in check
    assert "aws sns subscribe --topic-arn" in check and "--protocol https" in check


def test_raw_message_delivery_fails_with_the_command_that_turns_it_off(moto: MotoAws) -> None:
    sns = moto.client("sns")
    sns.create_topic(Name=TOPIC_NAME)
    arn = sns.subscribe(
        TopicArn=TOPIC, Protocol="https", Endpoint="https://alerts.example.com/sns/budgets"
    )["SubscriptionArn"]
    sns.set_subscription_attributes(
        SubscriptionArn=arn, AttributeName="RawMessageDelivery", AttributeValue="true"
    )
    code, output = doctor(moto)
    assert code == 1
    check = line(output, "raw message delivery")
    assert check.startswith(
        "[FAIL] raw message delivery: ON: SNS sends the bare message without its signature"
    )
    assert (
        f"fix: aws sns set-subscription-attributes --subscription-arn {arn} --attribute-name "
        "RawMessageDelivery --attribute-value false"
    ) in check


def test_an_unconfirmed_subscription_fails(moto: MotoAws) -> None:
    """moto confirms every HTTP subscription at once; AWS keeps it pending until the
    endpoint confirms. Put moto's record in that state (LocalStack reaches it for real)."""
    sns = moto.client("sns")
    sns.create_topic(Name=TOPIC_NAME)
    arn = sns.subscribe(
        TopicArn=TOPIC, Protocol="https", Endpoint="https://alerts.example.com/sns/budgets"
    )["SubscriptionArn"]
    moto.subscription_attributes(arn)["PendingConfirmation"] = "true"
    code, output = doctor(moto, "https://alerts.example.com/sns/budgets")
    assert code == 1
    check = line(output, "subscription")
    assert "https://alerts.example.com/sns/budgets is PENDING CONFIRMATION" in check
    assert "fix: check that the server runs, is reachable from the internet" in check


def test_an_unauthenticated_confirmation_and_few_retries_warn(moto: MotoAws) -> None:
    sns = moto.client("sns")
    sns.create_topic(Name=TOPIC_NAME)
    arn = sns.subscribe(
        TopicArn=TOPIC, Protocol="https", Endpoint="https://alerts.example.com/sns/budgets"
    )["SubscriptionArn"]
    attributes = moto.subscription_attributes(arn)
    attributes["ConfirmationWasAuthenticated"] = "false"
    attributes["EffectiveDeliveryPolicy"] = json.dumps(
        {"healthyRetryPolicy": {"numRetries": 0, "minDelayTarget": 20, "maxDelayTarget": 20}}
    )
    _code, output = doctor(moto)
    assert line(output, "confirmation").startswith("[warn] confirmation: not authenticated")
    assert line(output, "delivery policy").startswith("[warn] delivery policy: 0 retries")


# --- the endpoint, from the outside in ----------------------------------------------------


def _subscribed(moto: MotoAws, url: str) -> None:
    connected_topic(moto, url)


def test_an_unreachable_endpoint_fails(moto: MotoAws) -> None:
    url = f"http://127.0.0.1:{free_port()}{PATH}"
    _subscribed(moto, url)
    code, output = doctor(moto, url)
    assert code == 1
    check = line(output, "endpoint")
    assert check.startswith("[FAIL] endpoint: http://127.0.0.1:") and "is unreachable" in check
    assert "fix: SNS must reach it from the internet" in check


def _accept_everything(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"thanks"]


def test_an_endpoint_that_accepts_a_forgery_fails_loudly(moto: MotoAws, endpoint: Any) -> None:
    server = endpoint(_accept_everything)
    _subscribed(moto, server.url)
    code, output = doctor(moto, server.url)
    assert code == 1
    check = line(output, "endpoint")
    assert "ACCEPTED a message with a forged signature (200 (no X-SNS-Reason)" in check
    assert "fix: put SnsMiddleware" in check


def _not_found(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/html")])
    return [b"<h1>Not Found</h1>"]


def test_a_non_sns_answer_means_something_else_is_in_front(moto: MotoAws, endpoint: Any) -> None:
    server = endpoint(_not_found)
    _subscribed(moto, server.url)
    code, output = doctor(moto, server.url)
    assert code == 1
    assert "nothing is at this path (404 (no X-SNS-Reason)" in line(output, "endpoint")


class _Redirect:
    def __init__(self, target: str) -> None:
        self.target = target

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("307 Temporary Redirect", [("Location", self.target)])
        return [b""]


def test_a_redirect_fails_and_is_never_followed(
    moto: MotoAws, endpoint: Any, tmp_path: Path
) -> None:
    hits: list[str] = []

    def target_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        hits.append(environ["PATH_INFO"])
        return _accept_everything(environ, start_response)

    target = endpoint(target_app)
    server = endpoint(_Redirect(target.url))
    _subscribed(moto, server.url)
    code, output = doctor(moto, server.url)
    assert code == 1
    check = line(output, "endpoint")
    assert "answered a redirect (307 (no X-SNS-Reason)" in check and target.url in check
    assert "SNS counts a 3xx as delivered" in check
    assert hits == []  # not followed


def test_a_server_that_does_not_accept_the_topic_fails(
    moto: MotoAws, endpoint: Any, tmp_path: Path
) -> None:
    other = f"arn:aws:sns:us-east-1:{ACCOUNT}:something-else"
    server = endpoint(budget_server(tmp_path, topics=[other], emulator=moto.url))
    _subscribed(moto, server.url)
    code, output = doctor(moto, server.url)
    assert code == 1
    check = line(output, "endpoint")
    assert "refused the topic (403 topic_not_allowed" in check
    assert "fix: add it to the server's topics" in check


def test_a_server_that_requires_v2_refuses_a_sha1_topic(
    moto: MotoAws, endpoint: Any, tmp_path: Path
) -> None:
    server = endpoint(budget_server(tmp_path, emulator=moto.url, require_signature_v2=True))
    _subscribed(moto, server.url)
    moto.client("sns").set_topic_attributes(
        TopicArn=TOPIC, AttributeName="SignatureVersion", AttributeValue="1"
    )
    code, output = doctor(moto, server.url)
    assert code == 1
    assert "refuses SignatureVersion 1, which the topic signs with" in line(output, "endpoint")


def test_a_development_server_accepts_a_development_alert(
    moto: MotoAws, endpoint: Any, tmp_path: Path
) -> None:
    ca = TestCA()
    ca.save(tmp_path / "dev-ca")
    trust = DevelopmentTrust(ca, fallback=_aws_not_found)
    server = endpoint(budget_server(tmp_path, trust=trust))
    _subscribed(moto, server.url)
    options = doctor_options(TOPIC, endpoint=server.url, dev_ca=str(tmp_path / "dev-ca"))
    with requests.Session() as session:
        checks = list(check_endpoint(session, options, "2"))
    assert [c.status for c in checks] == ["ok", "ok"], checks
    assert "200 sent" in checks[1].detail and "development mode" in checks[1].detail
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def test_a_production_server_refuses_a_development_alert(
    moto: MotoAws, endpoint: Any, tmp_path: Path
) -> None:
    TestCA().save(tmp_path / "dev-ca")
    server = endpoint(budget_server(tmp_path, emulator=moto.url))
    _subscribed(moto, server.url)
    code, output = doctor(moto, server.url, dev_ca=str(tmp_path / "dev-ca"))
    assert code == 1
    check = line(output, "development alert")
    assert check.startswith("[FAIL] development alert: refused the development-CA alert (403 ")


def test_aws_out_of_reach_is_a_failure_with_what_to_check() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    out = io.StringIO()
    assert run_doctor(doctor_options(TOPIC, endpoint_url=url), out) == 1
    check = line(out.getvalue(), "topic")
    assert check.startswith("[FAIL] topic: could not ask AWS: EndpointConnectionError: ")
    assert "fix: check credentials (AWS_PROFILE, aws configure), the region and --endpoint-url" in (
        check
    )


# --- usage and imports --------------------------------------------------------------------


def test_a_bad_topic_arn_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--topic", "arn:aws:sqs:us-east-1:1:q"]) == 2
    assert "--topic 'arn:aws:sqs:us-east-1:1:q'" in capsys.readouterr().err


def test_the_commands_import_boto3_only_when_they_run() -> None:
    loaded = modules_after("import snsmiddleware.doctor, snsmiddleware.connect, snsmiddleware.cli")
    assert not loaded & set(HEAVY)
