"""Configuration errors speak the language of the surface used: an environment variable is
named with its value, a flag as a flag, an INI value by its file and key; secrets are named,
never repeated; unknown names get the closest known one; a bare duration is seconds."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from snsmiddleware.cli import main
from snsmiddleware.config import to_duration
from snsmiddleware.server import INI_SERVER_OPTIONS, assemble

from ._project import ROOT
from ._serve_helpers import refuse_to_serve

PASTE_INI = ROOT / "examples" / "paste.ini"
#: ``serve_error(argv, env=None)`` -> the error line of ``serve``.
ServeError = Callable[..., str]


@pytest.fixture
def serve_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> ServeError:
    """``serve_error(argv, env)``: the one line `serve` prints on stderr, exit status 2."""
    monkeypatch.setattr("snsmiddleware.graceful.GracefulServer", refuse_to_serve)

    def run(argv: list[str], env: dict[str, str] | None = None) -> str:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        assert main(["serve", *argv]) == 2
        [line] = capsys.readouterr().err.splitlines()
        return line.removeprefix("snsmiddleware serve: ")

    return run


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param(
            {"SNSMIDDLEWARE_DEDUPE_LEASE": "abc"},
            "SNSMIDDLEWARE_DEDUPE_LEASE=abc: 'abc' is not a duration like 90s, 5m or 1h "
            "(a number alone means seconds)",
            id="duration",
        ),
        pytest.param(
            {"SNSMIDDLEWARE_THREADS": "-4"},
            "SNSMIDDLEWARE_THREADS=-4: '-4' is not a positive whole number",
            id="server-option",
        ),
        pytest.param(
            {"SNSMIDDLEWARE_SMTP_SECURITY": "ssl"},
            "SNSMIDDLEWARE_SMTP_SECURITY=ssl: 'ssl' is not one of starttls, tls, none",
            id="app-option",
        ),
        pytest.param(
            {"SNSMIDDLEWARE_TOPIC": "x"},
            "unknown environment variable SNSMIDDLEWARE_TOPIC (did you mean SNSMIDDLEWARE_TOPICS?)",
            id="did-you-mean",
        ),
        pytest.param(
            {"SNSMIDDLEWARE_REQUIRE_SIGNATURE_V3": "true"},
            "unknown environment variable SNSMIDDLEWARE_REQUIRE_SIGNATURE_V3 (did you mean "
            "SNSMIDDLEWARE_REQUIRE_SIGNATURE_V2?)",
            id="did-you-mean-safety-switch",
        ),
        pytest.param(
            {"SNSMIDDLEWARE_SMTP_HOST": "mail.example.com"},
            "[budgets] smtp_host do not apply to mailer = file "
            "(smtp_host from SNSMIDDLEWARE_SMTP_HOST)",
            id="two-options",
        ),
    ],
)
def test_an_environment_error_names_the_variable(
    env: dict[str, str], expected: str, serve_error: ServeError
) -> None:
    assert serve_error([], env) == expected


def test_an_unknown_variable_far_from_every_name_lists_the_known_ones(
    serve_error: ServeError,
) -> None:
    line = serve_error([], {"SNSMIDDLEWARE_XYZZY": "1"})
    assert line.startswith("unknown environment variable SNSMIDDLEWARE_XYZZY; known: ")
    assert "SNSMIDDLEWARE_TOPICS" in line and "did you mean" not in line


@pytest.mark.parametrize(
    ("name", "value"),
    [("SNSMIDDLEWARE_BASIC_AUTH", "sns-hunter2"), ("SNSMIDDLEWARE_SMTP_PASSWORD", " ")],
)
def test_a_secret_is_named_never_repeated(name: str, value: str, serve_error: ServeError) -> None:
    line = serve_error([], {name: value})
    assert line.startswith(f"{name}=***: ")
    assert "hunter2" not in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--port", "0"], "--port 0: '0' is not a positive whole number"),
        (["--host", " "], "--host  : must not be empty"),
        (
            ["--topic", "budget-alerts"],
            "not an SNS TopicArn: 'budget-alerts' (TopicArn is not an SNS topic ARN) "
            "(topics from --topic)",
        ),
        (
            ["--basic-auth-file", "missing.txt"],
            "--basic-auth-file missing.txt: cannot be read (No such file or directory)",
        ),
    ],
)
def test_a_flag_error_names_the_flag(
    argv: list[str], expected: str, serve_error: ServeError
) -> None:
    assert serve_error(argv) == expected


def test_a_basic_auth_file_error_never_repeats_the_file(
    tmp_path: Path, serve_error: ServeError
) -> None:
    (tmp_path / "auth").write_text("no-colon-hunter2\n")
    line = serve_error(["--basic-auth-file", str(tmp_path / "auth")])
    assert line.startswith("--basic-auth-file: ") and "hunter2" not in line


def test_a_bare_duration_is_seconds() -> None:
    assert to_duration("300") == timedelta(minutes=5) == to_duration("5m")


def ini_with(tmp_path: Path, old: str, new: str) -> Path:
    text = PASTE_INI.read_text()
    assert old in text
    ini = tmp_path / "server.ini"
    ini.write_text(text.replace(old, new))
    return ini


def test_an_ini_error_names_the_file_and_the_key(tmp_path: Path, serve_error: ServeError) -> None:
    typo = ini_with(tmp_path, "dedupe = sqlite:", "dedup = sqlite:")
    line = serve_error(["--config", str(typo)])
    assert line.startswith(f"{typo}: unknown option(s) in [sns]: dedup (did you mean dedupe?);")
    bad = ini_with(tmp_path, "confirm = api", "confirm = api\nmax_age = an hour")
    assert serve_error(["--config", str(bad)]) == (
        f"{bad}: [sns] max_age: 'an hour' is not a duration like 90s, 5m or 1h "
        "(a number alone means seconds)"
    )
    port = ini_with(tmp_path, "port = %(http_port)s", "port = eighty")
    assert serve_error(["--config", str(port)]) == (
        f"{port} [server:main] port: 'eighty' is not a positive whole number"
    )


def test_what_an_ini_start_ignores_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ini = ini_with(tmp_path, "port = %(http_port)s", "port = %(http_port)s\nthread = 8")
    environ = {"SNSMIDDLEWARE_TOPICS": "arn:aws:sns:us-east-1:123456789012:other"}
    with caplog.at_level(logging.WARNING, logger="snsmiddleware.server"):
        assemble({}, environ, ini)
    warnings = [record.getMessage() for record in caplog.records]
    assert warnings == [
        f"{ini} [server:main] thread is not read by snsmiddleware serve (did you mean "
        f"threads?) (it reads {', '.join(INI_SERVER_OPTIONS)})",
        f"SNSMIDDLEWARE_TOPICS is set but {ini} never uses %(topics)s: it has no effect",
    ]


def test_a_variable_named_like_an_ini_option_no_longer_deletes_that_option(
    tmp_path: Path,
) -> None:
    # PasteDeploy drops every option named like a default it is given: offering
    # SNSMIDDLEWARE_DEDUPE as "dedupe" used to swap the INI's SQLite store for memory.
    from snsmiddleware import SnsMiddleware
    from snsmiddleware.dedupe_sqlite import SQLiteDedupeStore

    environ = {
        "SNSMIDDLEWARE_DEDUPE": "memory",
        "SNSMIDDLEWARE_TOPICS": "arn:aws:sns:us-east-1:123456789012:other",
    }
    app = assemble({}, environ, PASTE_INI).app
    assert isinstance(app, SnsMiddleware)
    assert isinstance(app.dedupe, SQLiteDedupeStore)
    assert app.verifier.topics.entries == ("arn:aws:sns:us-east-1:123456789012:budget-alerts",)
    ini = ini_with(
        tmp_path, "dedupe = sqlite:var/dedupe.sqlite3", "dedupe = %(SNSMIDDLEWARE_DEDUPE)s"
    )
    app = assemble({}, environ, ini).app
    assert repr(app.dedupe).startswith("MemoryDedupeStore(")
