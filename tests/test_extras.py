"""An optional feature used without its extra says which ``pip install`` fixes it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from snsmiddleware.errors import ConfigurationError
from snsmiddleware.server import load_ini_application

ROOT = Path(__file__).resolve().parent.parent


def test_ini_without_pastedeploy_names_the_paste_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "paste.deploy", None)  # as if not installed
    with pytest.raises(ConfigurationError, match=r"pip install snsmiddleware\[paste\]"):
        load_ini_application(ROOT / "examples" / "paste.ini", {})
