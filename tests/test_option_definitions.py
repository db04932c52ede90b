"""Each option and default is defined once, by the class that uses it: the README's options
tables, the CLI's help and the string layers (INI, environment, flags) are checked here
against the constructors' signatures, so that a copy that drifts fails a test."""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from snsmiddleware import SnsMiddleware, SnsVerifier
from snsmiddleware.basicauth import BasicAuth
from snsmiddleware.budget_app import DEFAULT_OUTBOX, BudgetApp
from snsmiddleware.cli import build_parser
from snsmiddleware.config import BUDGET_APP_OPTIONS, MIDDLEWARE_OPTIONS
from snsmiddleware.dedupe import DEFAULT_LEASE
from snsmiddleware.mail import SesMailer, SmtpMailer
from snsmiddleware.server import SERVER_OPTIONS, ServerSettings
from snsmiddleware.verifier import VERIFIER_OPTIONS

from ._project import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
REQUIRED = inspect.Parameter.empty
_UNITS = {"hour": timedelta(hours=1), "minute": timedelta(minutes=1), "s": timedelta(seconds=1)}


def readme_table(heading: str) -> dict[str, str]:
    """``option -> default`` of the first ``| option | default | meaning |`` table after
    ``heading``."""
    section = README[README.index(heading) :]
    rows: dict[str, str] = {}
    for line in section[section.index("| option | default | meaning |") :].splitlines()[2:]:
        if not line.startswith("| `"):
            break
        name, default = (cell.strip() for cell in line.split("|")[1:3])
        rows[name.strip("`")] = default
    return rows


def defaults(function: Callable[..., Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """``name -> default`` (``REQUIRED`` when none) of a function's keyword parameters."""
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if name not in {"self", *skip}
        and parameter.kind not in {parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL}
    }


def middleware_defaults() -> dict[str, Any]:
    """SnsMiddleware's own options, and the verifier options it forwards, with the
    verifier's defaults (``require_signature_v2`` is the middleware's spelling of
    ``signature_versions``)."""
    own = defaults(SnsMiddleware.__init__, skip=("app",))
    own["basic_auth_realm"] = defaults(BasicAuth.__init__)["realm"]  # None: BasicAuth's own
    verifier = defaults(SnsVerifier.__init__)
    forwarded = {name: verifier.get(name, False) for name in VERIFIER_OPTIONS}
    return {**own, **forwarded}


def readme_value(text: str) -> Iterator[Any]:
    """What a README default cell states, when it states a value (else nothing)."""
    literal = re.fullmatch(r"`([^`]*)`", text)
    if literal:
        try:
            yield ast.literal_eval(literal[1])
        except (ValueError, SyntaxError):
            yield literal  # text that must appear in the default (an address)
        return
    duration = re.fullmatch(r"(\d+) (hour|minute|s)s?", text)
    if duration:
        yield int(duration[1]) * _UNITS[duration[2]]
        return
    size = re.fullmatch(r"(\d+) MiB", text)
    if size:
        yield int(size[1]) * 1024 * 1024


@pytest.mark.parametrize(
    ("heading", "documented"),
    [
        pytest.param("## Options", middleware_defaults, id="SnsMiddleware"),
        pytest.param("## Budget alerts", lambda: defaults(BudgetApp.__init__), id="BudgetApp"),
    ],
)
def test_readme_options_tables_match_the_constructors(
    heading: str, documented: Callable[[], dict[str, Any]]
) -> None:
    table, actual = readme_table(heading), documented()
    assert set(table) == set(actual), "README options table and constructor differ"
    for name, cell in table.items():
        default = actual[name]
        if cell == "required":
            assert default is REQUIRED or (name == "topics" and default is None), name
            continue
        assert default is not REQUIRED, f"{name} is required but README shows {cell!r}"
        for stated in readme_value(cell):
            if default is None and stated is not None:
                continue  # "not given": the default of the object built from it (see below)
            if isinstance(stated, re.Match):
                assert stated[1] in str(default), (name, cell, default)
            else:
                assert stated == default, (name, cell, default)


def test_readme_names_the_outbox_default_budget_app_uses() -> None:
    assert readme_table("## Budget alerts")["mailer"] == f'`FileOutbox("{DEFAULT_OUTBOX}")`'


def test_string_options_name_constructor_parameters() -> None:
    """The INI/env/CLI converters translate strings for real parameters, nothing else."""
    middleware = set(middleware_defaults()) | {"dedupe_lease"}  # the spec's lease
    assert set(MIDDLEWARE_OPTIONS) <= middleware
    mailers = {
        **{f"smtp_{name}": None for name in defaults(SmtpMailer.__init__)},
        **{f"ses_{name}": None for name in defaults(SesMailer.__init__)},
        "outbox": None,
    }
    assert set(BUDGET_APP_OPTIONS) <= set(defaults(BudgetApp.__init__)) | {"mailer"} | set(mailers)
    assert set(SERVER_OPTIONS) <= set(ServerSettings.__dataclass_fields__)


def test_verifier_options_are_the_verifiers_parameters() -> None:
    verifier = set(defaults(SnsVerifier.__init__))
    assert set(VERIFIER_OPTIONS) - {"require_signature_v2"} <= verifier
    assert not set(VERIFIER_OPTIONS) & set(defaults(SnsMiddleware.__init__))  # declared once


def test_serve_help_shows_the_server_settings_defaults() -> None:
    parser = build_parser()
    serve = next(
        action.choices["serve"]
        for action in parser._actions
        if getattr(action, "choices", None) and "serve" in action.choices
    )
    text = " ".join(serve.format_help().split())
    assert f"(default {ServerSettings.host})" in text
    assert f"(default {ServerSettings.port})" in text


@pytest.mark.parametrize(
    ("variable", "default"),
    [
        ("SNSMIDDLEWARE_DEDUPE_LEASE", DEFAULT_LEASE),
        ("SNSMIDDLEWARE_SHUTDOWN_TIMEOUT", ServerSettings.shutdown_timeout),
        ("SNSMIDDLEWARE_DEAD_LETTER_AFTER", defaults(BudgetApp.__init__)["dead_letter_after"]),
    ],
)
def test_readme_environment_defaults_match(variable: str, default: timedelta) -> None:
    match = re.search(rf"\| `{variable}` \| `(\d+)s` \(default", README)
    assert match is not None, variable
    assert timedelta(seconds=int(match[1])) == default


def test_readme_serve_defaults_match_the_server_settings() -> None:
    assert f"listens on `{ServerSettings.host}:{ServerSettings.port}`" in " ".join(README.split())


def test_middleware_forwards_verifier_options_and_refuses_them_next_to_a_verifier() -> None:
    from snsmiddleware import ConfigurationError

    from .conftest import TOPIC, EchoApp

    built = SnsMiddleware(
        EchoApp(),
        paths=["/sns"],
        topics=[TOPIC],
        max_age=timedelta(minutes=30),
        require_signature_v2=True,
    )
    assert built.verifier.max_age == timedelta(minutes=30)
    assert built.verifier.signature_versions == frozenset({"2"})
    assert built.verifier.clock_skew == defaults(SnsVerifier.__init__)["clock_skew"]
    assert built.dedupe.retention == built.verifier.freshness_window  # type: ignore[attr-defined]
    verifier = SnsVerifier(topics=[TOPIC])
    shared = SnsMiddleware(EchoApp(), paths=["/sns"], verifier=verifier, topics=None)
    assert shared.verifier is verifier
    with pytest.raises(ConfigurationError, match="give either verifier or topics, max_age, not"):
        SnsMiddleware(
            EchoApp(), paths=["/"], verifier=verifier, max_age=timedelta(1), topics=[TOPIC]
        )
    with pytest.raises(ConfigurationError, match="topics is required"):
        SnsMiddleware(EchoApp(), paths=["/"])
    with pytest.raises(TypeError, match="max_ages"):
        SnsMiddleware(EchoApp(), paths=["/"], topics=[TOPIC], max_ages=timedelta(1))  # type: ignore[call-arg]
