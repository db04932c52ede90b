"""The standalone server: the README's first command, send-test-alert, INI files (our CLI and
pserve), and refusing to start on bad configuration."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import webtest
from webtest.http import StopableWSGIServer

from snsmiddleware import SnsMiddleware
from snsmiddleware.budget_app import BudgetApp
from snsmiddleware.certs import CertificateStore
from snsmiddleware.cli import main
from snsmiddleware.dedupe_sqlite import SQLiteDedupeStore
from snsmiddleware.devmode import load_or_create_dev_ca, sample_budget_alert
from snsmiddleware.errors import CertificateError
from snsmiddleware.server import (
    EMBEDDED_DEFAULTS,
    build_application,
    options_from_env,
    settings_from,
)
from snsmiddleware.testing import MessageSigner, post_sns

from ._hardening_helpers import emails_in
from ._net import free_port
from ._serve_helpers import SNS_PATH, Server, refuse_to_serve

ROOT = Path(__file__).resolve().parent.parent
PASTE_INI = ROOT / "examples" / "paste.ini"


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[Server]:
    """`snsmiddleware serve --dev` on the embedded defaults, in an empty directory."""
    port = free_port()
    server = Server(
        [sys.executable, "-m", "snsmiddleware", "serve", "--dev", "--port", str(port)],
        tmp_path,
        port,
    )
    yield server
    server.stop()


def test_send_test_alert_to_dev_server_writes_one_email(
    dev_server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev_ca = str(tmp_path / "var" / "dev-ca")
    assert main(["send-test-alert", dev_server.url, "--dev-ca", dev_ca]) == 0
    out = capsys.readouterr().out
    assert "answer 200 sent" in out
    [mail] = emails_in(tmp_path / "outbox")
    assert "Test Budget" in str(mail["Subject"])
    assert "budget-owner@localhost" in str(mail["To"])
    log = dev_server.log.read_text()
    assert "DEVELOPMENT MODE" in log and "embedded defaults" in log

    assert (
        main(
            [
                "send-test-alert",
                dev_server.url,
                "--dev-ca",
                dev_ca,
                "--subscription-confirmation",
                "--json",
            ]
        )
        == 0
    )
    assert '"reason": "subscription_confirmed"' in capsys.readouterr().out
    assert len(emails_in(tmp_path / "outbox")) == 1


def send_test_alert_to(app: Any, tmp_path: Path) -> int:
    """Run send-test-alert against a throwaway server running ``app``; its exit status."""
    server = StopableWSGIServer.create(app)
    try:
        url = f"{server.application_url.rstrip('/')}{SNS_PATH}"
        return main(["send-test-alert", url, "--dev-ca", str(tmp_path / "ca")])
    finally:
        server.shutdown()


def test_send_test_alert_explains_a_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def refusing(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(
            "503 Service Unavailable",
            [("Content-Type", "text/plain"), ("X-SNS-Reason", "certificate_unavailable")],
        )
        return [b"certificate_unavailable: could not download the signing certificate\n"]

    assert send_test_alert_to(refusing, tmp_path) == 1
    out = capsys.readouterr().out
    assert "answer 503 certificate_unavailable" in out
    assert "serve --dev" in out


def test_send_test_alert_escapes_what_the_server_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hostile (or confused) server's answer cannot retitle, clear or recolour the
    terminal: escape sequences, carriage returns and bidi overrides come out escaped."""
    hostile = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\rover\u202eevil\x9b"

    def answering(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(
            "400 Bad Request",
            [("Content-Type", "text/plain; charset=utf-8"), ("X-SNS-Reason", "bad\x1b[2Jx")],
        )
        return [f"nope: {hostile}\nsecond line".encode()]

    assert send_test_alert_to(answering, tmp_path) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert "\u202e" not in out and "\x9b" not in out
    assert "answer 400 bad\\x1b[2Jx" in out
    assert "nope: \\x1b]0;pwned\\x07\\x1b[2J" in out
    assert "\\u202eevil\\x9b\\nsecond line" in out


def test_send_test_alert_without_a_server(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}{SNS_PATH}"
    assert main(["send-test-alert", url, "--dev-ca", str(tmp_path / "ca")]) == 2


def test_development_ca_is_not_trusted_without_dev_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = build_application(settings_from(dict(EMBEDDED_DEFAULTS)))
    asked: list[str] = []

    def aws(url: str) -> bytes:  # stands in for AWS, which has no such certificate
        asked.append(url)
        raise CertificateError("404 from the certificate host", reason="certificate_not_found")

    app.verifier.certificates = CertificateStore(aws)
    signer = MessageSigner(
        load_or_create_dev_ca(tmp_path / "ca"), topic_arn=EMBEDDED_DEFAULTS["topics"]
    )
    subject, text = sample_budget_alert()
    response = post_sns(webtest.TestApp(app), SNS_PATH, signer.notification(text, Subject=subject))
    assert response.status_int == 403
    assert len(asked) == 1 and asked[0].startswith("https://sns.us-east-1.amazonaws.com/")
    assert emails_in(tmp_path / "outbox") == []


def test_embedded_defaults_build_budget_app_behind_middleware(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = build_application(settings_from(dict(EMBEDDED_DEFAULTS)))
    assert isinstance(app, SnsMiddleware) and isinstance(app.app, BudgetApp)
    assert app.paths == frozenset({SNS_PATH})
    assert (tmp_path / "outbox").is_dir()
    assert isinstance(app.dedupe, SQLiteDedupeStore)
    assert app.dedupe.path == Path("var/dedupe.sqlite3")
    assert (tmp_path / "var" / "dedupe.sqlite3").is_file()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param(
            {"SNSMIDDLEWARE_TOPIC": "x"},
            "unknown environment variable SNSMIDDLEWARE_TOPIC",
            id="unknown-env",
        ),
        pytest.param({"SNSMIDDLEWARE_TOPICS": "not-an-arn"}, "not an SNS TopicArn", id="bad-topic"),
        pytest.param({"SNSMIDDLEWARE_TOPICS": " "}, "topics is required", id="empty-topics"),
        pytest.param(
            {"SNSMIDDLEWARE_PORT": "eighty"},
            "SNSMIDDLEWARE_PORT=eighty: 'eighty' is not a positive whole number",
            id="bad-port",
        ),
        pytest.param({"SNSMIDDLEWARE_MAILER": "smtp"}, "smtp_host", id="smtp-without-host"),
        pytest.param(
            {"SNSMIDDLEWARE_SMTP_HOST": "mail"},
            "do not apply to mailer = file",
            id="option-of-other-mailer",
        ),
        pytest.param(
            {"SNSMIDDLEWARE_REQUIRE_SIGNATURE_V2": "ture"}, "not a boolean", id="misspelt-boolean"
        ),
        # Development trust comes from --dev only (README); the variable must not enable it.
        pytest.param(
            {"SNSMIDDLEWARE_DEVELOPMENT": "yes"},
            "SNSMIDDLEWARE_DEVELOPMENT is not read: development mode is enabled only by the --dev",
            id="development-from-env",
        ),
    ],
)
def test_serve_refuses_to_start_on_bad_configuration(
    env: dict[str, str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("snsmiddleware.graceful.GracefulServer", refuse_to_serve)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["serve"]) == 2
    assert message in capsys.readouterr().err


def test_serve_refuses_unwritable_outbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("snsmiddleware.graceful.GracefulServer", refuse_to_serve)
    (tmp_path / "outbox").write_text("a file where the outbox directory should be")
    assert main(["serve"]) == 2
    assert "outbox" in capsys.readouterr().err


def test_serve_refuses_missing_ini_and_ini_without_topics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("snsmiddleware.graceful.GracefulServer", refuse_to_serve)
    monkeypatch.chdir(tmp_path)  # the INI's relative outbox is created before topics fail
    assert main(["serve", "--config", str(tmp_path / "missing.ini")]) == 2
    assert "no such configuration file" in capsys.readouterr().err
    ini = tmp_path / "no-topics.ini"
    ini.write_text(
        PASTE_INI.read_text().replace(
            "topics = arn:aws:sns:us-east-1:123456789012:budget-alerts\n", ""
        )
    )
    assert main(["serve", "--config", str(ini)]) == 2
    assert "topics is required" in capsys.readouterr().err


def test_env_options_are_strict() -> None:
    assert options_from_env({"SNSMIDDLEWARE_TOPICS": "a", "PATH": "/bin"}) == {"topics": "a"}


def copy_ini_with_port(tmp_path: Path, port: int) -> Path:
    ini = tmp_path / "paste.ini"
    ini.write_text(PASTE_INI.read_text().replace("http_port = 8080", f"http_port = {port}"))
    return ini


def test_example_ini_runs_under_our_cli_in_dev_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    ini = copy_ini_with_port(tmp_path, port)
    server = Server(
        [sys.executable, "-m", "snsmiddleware", "serve", "--config", str(ini), "--dev"],
        tmp_path,
        port,
    )
    try:
        dev_ca = str(tmp_path / "var" / "dev-ca")
        assert main(["send-test-alert", server.url, "--dev-ca", dev_ca]) == 0
        assert (
            main(["send-test-alert", server.url, "--dev-ca", dev_ca, "--budget", "prod-web"]) == 0
        )
    finally:
        server.stop()
    mails = emails_in(tmp_path / "outbox")
    recipients = sorted(str(mail["To"]) for mail in mails)
    assert recipients == [
        "Ana Lima <ana@example.com>",
        "Platform <platform@example.com>, cto@example.com",
    ]
    assert f"configuration {ini}" in server.log.read_text()


@pytest.mark.skipif(
    shutil.which("pserve", path=str(Path(sys.executable).parent)) is None,
    reason="pserve (Pyramid) is not installed",
)
def test_example_ini_runs_under_pserve(tmp_path: Path) -> None:
    port = free_port()
    ini = copy_ini_with_port(tmp_path, port)
    pserve = str(Path(sys.executable).parent / "pserve")
    server = Server([pserve, str(ini)], tmp_path, port)
    try:
        response = requests.post(
            server.url, data=b"{}", timeout=10, headers={"x-amz-sns-message-type": "Notification"}
        )
        assert (response.status_code, response.headers["X-SNS-Reason"]) == (400, "unknown_type")
        response = requests.get(server.url, timeout=10)
        assert response.status_code == 405
    finally:
        server.stop()


def test_development_mode_keeps_emulator_mode_name_check_off(tmp_path: Path) -> None:
    from snsmiddleware.server import enable_development_mode

    app = SnsMiddleware(
        lambda e, s: [],
        paths=[SNS_PATH],
        topics=[EMBEDDED_DEFAULTS["topics"]],
        emulator="http://127.0.0.1:4566",
        confirm="url",
    )
    assert app.verifier.certificates.check_names is False
    enable_development_mode(app, str(tmp_path / "ca"))
    assert app.verifier.certificates.check_names is False
    plain = SnsMiddleware(
        lambda e, s: [], paths=[SNS_PATH], topics=[EMBEDDED_DEFAULTS["topics"]], confirm="url"
    )
    enable_development_mode(plain, str(tmp_path / "ca"))
    assert plain.verifier.certificates.check_names is True
