"""``scripts/bootstrap`` (run by ``scripts/serve`` and ``scripts/test``) says what it installs
on a first run, one line per step on stderr, and nothing once ``.venv`` is up to date.

Hermetic: the script runs in a copy of the project where ``python3`` is a stand-in that
"creates" a virtualenv whose ``python`` runs the real interpreter for ``-c`` and records
``-m pip`` calls instead of downloading anything.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ._project import ROOT

# The stand-in venv python: pip calls are recorded, everything else is the real Python.
VENV_PYTHON = f"""#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
  echo "$*" >> "$(dirname "$0")/../pip-calls"
  exit 0
fi
exec {sys.executable} "$@"
"""

# The stand-in python3 on PATH: `python3 -m venv DIR` makes DIR/bin/python (the above).
SYSTEM_PYTHON = f"""#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"
  cat > "$3/bin/python" <<'EOF'
{VENV_PYTHON}EOF
  chmod +x "$3/bin/python"
  exit 0
fi
exec {sys.executable} "$@"
"""


def executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    (copy / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "bootstrap", copy / "scripts" / "bootstrap")
    for name in ("setup.cfg", "pyproject.toml"):
        shutil.copy2(ROOT / name, copy / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable(bin_dir / "python3", SYSTEM_PYTHON)
    return copy


def bootstrap(project: Path, *extras: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{project.parent / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", str(project / "scripts" / "bootstrap"), *extras],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def pip_calls(project: Path) -> list[str]:
    log = project / ".venv" / "pip-calls"
    return log.read_text().splitlines() if log.exists() else []


def test_first_run_says_each_step_then_later_runs_are_silent(project: Path) -> None:
    first = bootstrap(project)
    assert first.returncode == 0, first.stderr
    lines = first.stderr.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("scripts/bootstrap: creating .venv with Python 3.")
    assert lines[1].startswith("scripts/bootstrap: installing snsmiddleware and its dependencies")
    assert lines[2].startswith("scripts/bootstrap: done in ")
    assert first.stdout == ""  # stdout stays the server's
    assert len(pip_calls(project)) == 1 and pip_calls(project)[0].endswith("-e .")

    again = bootstrap(project)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert len(pip_calls(project)) == 1, "an up-to-date .venv installs nothing"


def test_extras_install_once_and_cover_the_plain_install(project: Path) -> None:
    assert bootstrap(project, "test").returncode == 0
    assert pip_calls(project)[-1].endswith("-e .[test]")
    assert bootstrap(project, "test").stderr == ""
    assert bootstrap(project).stderr == "", "the test install has the package too"
    assert len(pip_calls(project)) == 1


def test_a_changed_setup_cfg_installs_again(project: Path) -> None:
    assert bootstrap(project).returncode == 0
    with (project / "setup.cfg").open("a") as setup_cfg:
        setup_cfg.write("\n# a new dependency\n")
    again = bootstrap(project)
    assert "scripts/bootstrap: installing snsmiddleware" in again.stderr
    assert "creating .venv" not in again.stderr
    assert len(pip_calls(project)) == 2


def test_too_old_a_python_is_named(project: Path) -> None:
    executable(
        project.parent / "bin" / "python3",
        '#!/bin/sh\n[ "$1" = "--version" ] && echo "Python 3.9.2" && exit 0\nexit 1\n',
    )
    done = bootstrap(project)
    assert done.returncode == 1
    assert "needs Python 3.11 or later; python3 is Python 3.9.2" in done.stderr
    assert not (project / ".venv").exists()
