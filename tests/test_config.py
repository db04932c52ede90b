"""Strict string options and the PasteDeploy filter factory."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import webtest
from paste.deploy import loadapp

from snsmiddleware import ConfigurationError, MemoryDedupeStore, SnsMiddleware, SnsVerifier
from snsmiddleware.config import (
    StoreSpec,
    middleware_options,
    to_bool,
    to_duration,
    to_lines,
    to_positive_int,
    to_words,
)
from snsmiddleware.testing import MessageSigner, post_sns

from .conftest import TOPIC, EchoApp

DATA = Path(__file__).parent / "data"


def echo_app_factory(global_conf: dict[str, Any], **local_conf: str) -> EchoApp:
    return EchoApp()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("Yes", True),
        (" on ", True),
        ("1", True),
        ("false", False),
        ("NO", False),
        ("off", False),
        ("0", False),
    ],
)
def test_to_bool_accepts_only_real_booleans(text: str, expected: bool) -> None:
    assert to_bool(text) is expected


@pytest.mark.parametrize("text", ["ture", "", "2", "y", "enabled", "truee"])
def test_to_bool_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        to_bool(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", timedelta(seconds=90)),
        ("90s", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("2d", timedelta(days=2)),
        ("250ms", timedelta(milliseconds=250)),
    ],
)
def test_to_duration(text: str, expected: timedelta) -> None:
    assert to_duration(text) == expected


@pytest.mark.parametrize("text", ["-5", "1.5h", "h", "5 minutes", "", "1e3"])
def test_to_duration_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        to_duration(text)


@pytest.mark.parametrize("text", ["0", "-1", "1.0", "ten", "", "１２"])
def test_to_positive_int_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        to_positive_int(text)


def test_list_converters() -> None:
    assert to_words(" /a, /b\n/c ") == ["/a", "/b", "/c"]
    assert to_lines("\n Ana Lima <ana@example.com>\n\nBo <bo@example.com> \n") == [
        "Ana Lima <ana@example.com>",
        "Bo <bo@example.com>",
    ]


def test_middleware_options_convert_and_name_bad_keys() -> None:
    options = middleware_options({"paths": "/a /b", "max_age": "10m", "confirm": "url"})
    assert options == {"paths": ["/a", "/b"], "max_age": timedelta(minutes=10), "confirm": "url"}
    with pytest.raises(ConfigurationError, match=r"unknown option\(s\) in \[sns\]: topic"):
        middleware_options({"topic": TOPIC})
    with pytest.raises(ConfigurationError, match=r"\[sns\] confirm"):
        middleware_options({"confirm": "email"})


def store_built_from(conf: dict[str, str]) -> Any:
    """The store a middleware built from string options (``dedupe`` and friends)."""
    return SnsMiddleware(EchoApp(), paths=["/"], topics=[TOPIC], **middleware_options(conf)).dedupe


def test_dedupe_spec_builds_a_store_covering_the_freshness_window(tmp_path: Path) -> None:
    from snsmiddleware.dedupe_sqlite import SQLiteDedupeStore

    options = middleware_options({"dedupe": f"sqlite:{tmp_path / 'd.sqlite3'}", "max_age": "2h"})
    assert isinstance(options["dedupe"], StoreSpec)  # built where the window is known
    store = SnsMiddleware(EchoApp(), paths=["/"], topics=[TOPIC], **options).dedupe
    assert isinstance(store, SQLiteDedupeStore)
    assert store._retention == (timedelta(hours=2) + timedelta(minutes=10)).total_seconds()
    assert isinstance(store_built_from({"dedupe": "memory"}), MemoryDedupeStore)
    from snsmiddleware.dedupe_redis import RedisDedupeStore

    redis_store = store_built_from({"dedupe": "redis://127.0.0.1:1/0"})
    assert isinstance(redis_store, RedisDedupeStore)  # built without connecting
    for bad in ("redis", "sqlite:", "sqlite", "mem", "http://redis"):
        with pytest.raises(ConfigurationError, match="dedupe"):
            middleware_options({"dedupe": bad})
        with pytest.raises(ConfigurationError, match="dedupe"):
            StoreSpec(bad)


def test_dedupe_lease_is_configurable_and_checked(tmp_path: Path) -> None:
    import time

    from snsmiddleware.dedupe import DEFAULT_LEASE, ClaimState

    assert timedelta(seconds=20) > DEFAULT_LEASE  # shorter than SNS's retry interval
    short = store_built_from({"dedupe": "memory", "dedupe_lease": "50ms"})
    assert short.claim("m").state is ClaimState.CLAIMED
    assert short.claim("m").state is ClaimState.IN_PROGRESS
    time.sleep(0.1)  # the holder "died": its claim lapses after 50 ms
    assert short.claim("m").state is ClaimState.CLAIMED
    implied = store_built_from({"dedupe_lease": "50ms"})  # memory is implied
    assert isinstance(implied, MemoryDedupeStore)
    sqlite = store_built_from({"dedupe": f"sqlite:{tmp_path / 'd.sqlite3'}", "dedupe_lease": "3s"})
    assert sqlite._lease == 3.0
    for bad in ("0s", "soon", "-1s"):
        with pytest.raises(ConfigurationError, match="dedupe_lease"):
            middleware_options({"dedupe": "memory", "dedupe_lease": bad})
    with pytest.raises(ConfigurationError, match="dedupe_lease"):
        middleware_options({"dedupe": MemoryDedupeStore(), "dedupe_lease": "5s"})


def test_paste_egg_entry_point_builds_the_configured_middleware() -> None:
    app = loadapp(f"config:{DATA / 'filter.ini'}")
    assert isinstance(app, SnsMiddleware)
    assert app.paths == frozenset({"/sns/budgets"})
    assert app.verifier.signature_versions == frozenset({"2"})
    assert app.verifier.max_age == timedelta(minutes=30)
    assert app.max_body_bytes == 65536
    assert TOPIC in app.verifier.topics
    assert "arn:aws:sns:eu-west-1:123456789012:anything" in app.verifier.topics
    assert "arn:aws:sns:eu-west-2:123456789012:anything" not in app.verifier.topics


def test_paste_loaded_pipeline_verifies_end_to_end(signer: MessageSigner) -> None:
    middleware = loadapp(f"config:{DATA / 'filter.ini'}", name="direct")
    assert isinstance(middleware, SnsMiddleware)
    # INI files cannot carry a callable: swap in a verifier that serves the kit's certificate.
    middleware.verifier = SnsVerifier(topics=[TOPIC], fetch_certificate=signer.fetch_certificate)
    app = webtest.TestApp(middleware)
    assert post_sns(app, "/sns", signer.notification("via paste")).status_int == 200
    assert middleware.app.calls[0]["body"]  # type: ignore[attr-defined]
    assert post_sns(app, "/sns", signer.notification("x").tampered(Message="y")).status_int == 403


@pytest.mark.parametrize(
    ("name", "message"), [("typo", "require_signature_v2"), ("unknown", "unknown option")]
)
def test_paste_bad_options_fail_at_load(name: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        loadapp(f"config:{DATA / 'filter.ini'}", name=name)


def test_recipients_lines_and_json() -> None:
    from snsmiddleware.config import to_addresses, to_recipients

    routes = to_recipients(
        "Test Budget: Ana Lima <ana@example.com>\n"
        'prod-*: "Ops, Platform" <ops@example.com>, cto@example.com\n'
        "123456789012: owner@example.com\n"
    )
    assert routes == {
        "Test Budget": ["Ana Lima <ana@example.com>"],
        "prod-*": ['"Ops, Platform" <ops@example.com>', "cto@example.com"],
        "123456789012": ["owner@example.com"],
    }
    assert to_recipients('{"a": "x@example.com", "b": ["y@example.com"]}') == {
        "a": ["x@example.com"],
        "b": ["y@example.com"],
    }
    assert to_addresses("A <a@example.com>\nb@example.com") == [
        "A <a@example.com>",
        "b@example.com",
    ]
    for bad in ("no separator here", ": a@example.com", '{"a": 1}', "x: "):
        with pytest.raises(ValueError):
            to_recipients(bad)


def test_budget_app_options_choose_one_mailer(tmp_path: Path) -> None:
    from snsmiddleware.config import budget_app_options
    from snsmiddleware.mail import FileOutbox, SesMailer, SmtpMailer

    options = budget_app_options({"outbox": str(tmp_path / "out"), "recipients": "a: a@x.io"})
    assert isinstance(options["mailer"], FileOutbox)
    assert options["recipients"] == {"a": ["a@x.io"]}
    smtp = budget_app_options(
        {
            "mailer": "smtp",
            "smtp_host": "mail.example.com",
            "smtp_port": "2525",
            "smtp_security": "none",
            "smtp_timeout": "3s",
        }
    )["mailer"]
    assert isinstance(smtp, SmtpMailer)
    ses = budget_app_options({"mailer": "ses", "ses_region": "eu-west-1"})["mailer"]
    assert isinstance(ses, SesMailer)
    with pytest.raises(ConfigurationError, match="do not apply to mailer = ses"):
        budget_app_options({"mailer": "ses", "outbox": "x"})
    with pytest.raises(ConfigurationError, match="unknown option"):
        budget_app_options({"recipient": "a: a@x.io"})


def test_paste_app_factory_for_budget_app(tmp_path: Path) -> None:
    from snsmiddleware.budget_app import BudgetApp

    ini = tmp_path / "app.ini"
    ini.write_text(
        "[app:main]\nuse = egg:snsmiddleware#budget_app\n"
        f"outbox = {tmp_path / 'outbox'}\nrecipients =\n    Test Budget: ana@example.com\n"
    )
    app = loadapp(f"config:{ini}")
    assert isinstance(app, BudgetApp)
    assert app.rules[0].key == "Test Budget"
