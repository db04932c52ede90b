"""``snsmiddleware.__version__`` and ``snsmiddleware --version`` come from one place.

The built wheel's metadata and its installed console script are checked against the same
value in tests/test_packaging.py.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest
from packaging.version import Version

import snsmiddleware
from snsmiddleware.cli import main


def test_version_is_public_and_pep440() -> None:
    assert "__version__" in snsmiddleware.__all__
    assert str(Version(snsmiddleware.__version__)) == snsmiddleware.__version__


def test_installed_metadata_agrees() -> None:
    """setup.cfg reads the version from the package (``attr:``), so the two cannot drift."""
    assert importlib.metadata.version("snsmiddleware") == snsmiddleware.__version__


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"snsmiddleware {snsmiddleware.__version__}\n"


def test_version_flag_through_python_dash_m() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "snsmiddleware", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, f"snsmiddleware {snsmiddleware.__version__}\n")
