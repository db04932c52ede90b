"""tests/_pip.py: only an unreachable package index is a skip, and never under CI."""

from __future__ import annotations

import sys

import pytest

from ._pip import run_with_index


def _pip_that_says(message: str, code: int = 1) -> list[str]:
    script = f"import sys; sys.stderr.write({message!r} + '\\n'); sys.exit({code})"
    return [sys.executable, "-c", script]


def test_unreachable_index_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    unreachable = _pip_that_says("WARNING: Retrying ... NewConnectionError('refused')")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="index is unreachable"):
        run_with_index(unreachable, what="installing x", timeout=60)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="installing x must run in CI"):
        run_with_index(unreachable, what="installing x", timeout=60)


def test_other_failures_fail_even_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    broken = _pip_that_says("ERROR: No matching distribution found for nothing-here")
    with pytest.raises(pytest.fail.Exception, match="No matching distribution"):
        run_with_index(broken, what="installing x", timeout=60)
    assert run_with_index(_pip_that_says("ok", 0), what="x", timeout=60).returncode == 0
