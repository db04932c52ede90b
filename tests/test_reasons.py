"""One catalogue of reason codes: the code raises only catalogued codes, the README documents
exactly the catalogue, and ``diagnose`` places every code at its stage (or says it cannot)."""

from __future__ import annotations

import ast
import inspect
import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest

import snsmiddleware
from snsmiddleware import SnsVerifier, errors
from snsmiddleware.cli import _report
from snsmiddleware.diagnose import STAGE_OF_REASON, STAGES, diagnose
from snsmiddleware.errors import CertificateError, SnsError, TransientError
from snsmiddleware.reasons import Reason
from snsmiddleware.testing import FrozenClock, MessageSigner

from ._project import ROOT
from .conftest import TOPIC

PACKAGE = Path(snsmiddleware.__file__).parent
CATALOGUE = {str(reason) for reason in Reason}
_CODE = re.compile(r"`([a-z][a-z0-9_]*)`")


def readme_table_codes() -> set[str]:
    """The codes in the reason column of every README table that has one."""
    codes: set[str] = set()
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    column: int | None = None
    for line, following in zip(lines, [*lines[1:], ""], strict=True):
        if not line.startswith("|"):
            column = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if following.startswith("|---"):  # a header row
            column = next(
                (i for i, cell in enumerate(cells) if cell in ("reason", "reason codes")), None
            )
        elif column is not None and not line.startswith("|---"):
            codes.update(_CODE.findall(cells[column]))
    return codes


def test_the_readme_tables_have_reason_columns() -> None:
    # The parser must find the tables at all, or the two tests below prove nothing.
    assert {"bad_signature", "sent", "no_recipients"} <= readme_table_codes()


def test_every_catalogued_code_is_documented_in_a_readme_table() -> None:
    assert sorted(CATALOGUE - readme_table_codes()) == []


def test_every_code_in_the_readme_tables_is_catalogued() -> None:
    assert sorted(readme_table_codes() - CATALOGUE) == []


def test_reasons_are_their_strings() -> None:
    assert Reason.BAD_SIGNATURE == "bad_signature"
    assert f"{Reason.BAD_SIGNATURE}" == str(Reason.BAD_SIGNATURE) == "bad_signature"
    assert all(reason.value == reason.name.lower() for reason in Reason)


def _reason_given(node: ast.AST) -> ast.expr | None:
    """The expression ``node`` gives as a reason code, if it gives one: ``reason=...``,
    ``default_reason = ...``, or the reason argument of an ``_answer(..., reason, detail)``
    (the middleware's and the budget app's, both second to last)."""
    if isinstance(node, ast.keyword) and node.arg == "reason":
        return node.value
    if isinstance(node, ast.Assign) and any(
        isinstance(target, ast.Name) and target.id == "default_reason" for target in node.targets
    ):
        return node.value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_answer":
        return node.args[-2] if len(node.args) >= 3 else None
    return None


def _literal_reasons(tree: ast.AST) -> list[tuple[int, str]]:
    """The reason codes written as string constants in ``tree``, with their lines."""
    found = []
    for node in ast.walk(tree):
        value = _reason_given(node)
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            found.append((value.lineno, value.value))
    return sorted(found)


def test_every_reason_written_as_a_string_is_catalogued() -> None:
    uncatalogued = [
        f"{path.name}:{line}: {code}"
        for path in sorted(PACKAGE.glob("*.py"))
        for line, code in _literal_reasons(ast.parse(path.read_text(encoding="utf-8")))
        if code not in CATALOGUE
    ]
    assert uncatalogued == []


def test_the_scan_finds_string_reasons() -> None:
    source = 'raise E("x", reason="nope")\n_answer(start_response, 200, "sent", "ok")\n'
    assert [code for _, code in _literal_reasons(ast.parse(source))] == ["nope", "sent"]


def test_every_error_class_defaults_to_a_catalogued_code() -> None:
    classes = [
        cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, SnsError)
    ]
    assert len(classes) >= 15
    uncatalogued = {cls.__name__ for cls in classes if cls.default_reason not in CATALOGUE}
    assert uncatalogued == set()


# --- diagnose ---------------------------------------------------------------------------


def test_every_reason_maps_to_a_stage_or_explicitly_to_none() -> None:
    assert set(STAGE_OF_REASON) == set(Reason)
    stage_names = {stage.name for stage in STAGES}
    assert set(STAGE_OF_REASON.values()) == stage_names | {None}


def test_each_stage_lists_the_reasons_mapped_to_it() -> None:
    for stage in STAGES:
        assert stage.reasons == {r for r, name in STAGE_OF_REASON.items() if name == stage.name}
        assert stage.reasons, stage.name


def _verifier(clock: FrozenClock, fetch: Callable[[str], bytes]) -> SnsVerifier:
    return SnsVerifier(topics=[TOPIC], fetch_certificate=fetch, clock=clock)


@pytest.mark.parametrize(
    ("error", "stage"),
    [
        (CertificateError("gone", reason=Reason.CERTIFICATE_NOT_FOUND), "certificate"),
        (CertificateError("no"), "certificate"),  # bad_certificate, the class default
    ],
)
def test_a_failure_is_placed_at_its_stage(
    signer: MessageSigner, clock: FrozenClock, error: SnsError, stage: str
) -> None:
    def fetch(url: str) -> bytes:
        raise error

    diagnosis = diagnose(signer.notification().body, _verifier(clock, fetch))
    statuses = {result.stage.name: result.status for result in diagnosis.stages}
    assert statuses[stage] == "failed"
    assert statuses["freshness"] == "passed" and statuses["signature"] == "not_run"


@pytest.mark.parametrize(
    "error",
    [
        TransientError("the cache is down"),  # temporarily_unavailable: no stage raises it
        SnsError("mine", reason="my_own_code"),  # not in the catalogue at all
    ],
)
def test_a_failure_no_stage_raises_is_not_blamed_on_one(
    signer: MessageSigner, clock: FrozenClock, error: SnsError
) -> None:
    def fetch(url: str) -> bytes:
        raise error

    diagnosis = diagnose(signer.notification().body, _verifier(clock, fetch))
    assert not diagnosis.ok and diagnosis.error is not None
    assert diagnosis.error.reason == error.reason
    assert {result.status for result in diagnosis.stages} == {"unknown"}
    out = io.StringIO()
    _report(diagnosis, [], out)
    assert "[????] signature matches the signed fields" in out.getvalue()
    assert f"error: {error.reason}: {error.detail}\n" in out.getvalue()
    assert f"RESULT: REJECTED ({error.status} {error.reason})" in out.getvalue()
