"""The sdist and wheel are what PyPI and a user's ``pip install`` get: build and check them.

``python -m build`` makes both (the wheel from the unpacked sdist, so a file missing from
the sdist breaks the wheel), ``twine check --strict`` checks them as PyPI would, and the
wheel is installed into a fresh virtualenv (no editable install, no test extras, not the
source tree on ``sys.path``) to prove that ``install_requires`` alone runs the console
script and imports the test kit, and a second one with the ``paste`` extra serves an INI
file. The package itself is installed from the built file;
only its dependencies come from the index (a skip if it cannot be reached, a failure
under CI: ``tests/_pip.py``).
"""

from __future__ import annotations

import email.parser
import email.policy
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest

import snsmiddleware

from ._net import free_port, wait_for_port
from ._pip import run_with_index
from ._project import ROOT, repository_url

pytestmark = pytest.mark.packaging

BUILD_TIMEOUT = 600
INSTALL_TIMEOUT = 600

# Tracked files that are repository plumbing, not source: the sdist may leave them out.
NOT_IN_SDIST = {".gitignore", ".ci/run"}

CLASSIFIERS = {
    "Development Status :: 4 - Beta",
    "Framework :: Django",
    "Framework :: Flask",
    "Framework :: Paste",
    "Framework :: Pyramid",
    "Intended Audience :: Developers",
    "License :: OSI Approved :: MIT License",
    "Operating System :: OS Independent",
    "Programming Language :: Python :: 3.11",
    "Programming Language :: Python :: 3.12",
    "Programming Language :: Python :: 3.13",
    "Typing :: Typed",
}


@dataclass(frozen=True)
class Dist:
    sdist: Path
    wheel: Path


def _only(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {directory}, found {found}"
    return found[0]


def project_files() -> list[str] | None:
    """The files of this checkout a clean clone would have (tracked, or new and not ignored).

    None outside a git checkout (an unpacked sdist).
    """
    try:
        done = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            timeout=60,
            check=False,
        )
    except OSError:
        return None
    if done.returncode != 0:
        return None
    names = {name for name in done.stdout.decode().split("\0") if name}
    return sorted(name for name in names if (ROOT / name).is_file())


def clean_copy(destination: Path) -> Path:
    """The project as a fresh clone has it, without this tree's build leftovers.

    setuptools adds every file named in an existing ``*.egg-info/SOURCES.txt`` to the
    sdist, so building in a used tree hides a MANIFEST.in that misses files.
    """
    files = project_files()
    if files is None:
        return ROOT
    for name in files:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return destination


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    source = clean_copy(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("dist")
    run_with_index(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        what="building the sdist and wheel (python -m build)",
        timeout=BUILD_TIMEOUT,
    )
    return Dist(sdist=_only(out, "*.tar.gz"), wheel=_only(out, "*.whl"))


def wheel_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode("utf-8")
    return email.parser.Parser(policy=email.policy.compat32).parsestr(text)


# --- the wheel -------------------------------------------------------------------------------


def test_wheel_metadata(dist: Dist) -> None:
    metadata = wheel_metadata(dist.wheel)
    assert metadata["Name"] == "snsmiddleware"
    assert metadata["Version"] == snsmiddleware.__version__
    assert metadata["License"] == "MIT" or metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata["Requires-Python"] == ">=3.11"
    missing = CLASSIFIERS - set(metadata.get_all("Classifier") or [])
    assert not missing, f"classifiers missing from the wheel: {sorted(missing)}"
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    assert urls["Source"] == repository_url()
    assert {"Documentation", "Issues", "Security policy"} <= set(urls)
    assert "sns" in (metadata["Keywords"] or "").split(",")
    requires = metadata.get_all("Requires-Dist") or []
    assert 'pastedeploy>=3; extra == "paste"' in requires
    assert 'prometheus_client>=0.20; extra == "prometheus"' in requires
    assert not any(r.startswith("prometheus") and "extra" not in r for r in requires)
    # The PyPI page is the README, rendered as Markdown (test_long_description.py checks
    # that its links work there).
    assert metadata["Description-Content-Type"] == "text/markdown"
    body = metadata.get_payload()
    assert isinstance(body, str)
    assert body.strip() == (ROOT / "README.md").read_text(encoding="utf-8").strip()


def test_wheel_contents(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as archive:
        names = archive.namelist()
        license_name = next(n for n in names if ".dist-info/" in n and n.endswith("LICENSE"))
        assert archive.read(license_name) == (ROOT / "LICENSE").read_bytes()
    assert "snsmiddleware/py.typed" in names
    assert "snsmiddleware/_version.py" in names
    top_level = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top_level == {"snsmiddleware"}, "only the package: no tests, examples or fuzz"


def test_classifiers_are_pypis_own(dist: Dist) -> None:
    """Each classifier is on PyPI's list (an unknown one makes the upload fail)."""
    from trove_classifiers import classifiers, deprecated_classifiers

    declared = wheel_metadata(dist.wheel).get_all("Classifier") or []
    unknown = sorted(set(declared) - set(classifiers))
    assert not unknown, f"classifiers PyPI does not know: {unknown}"
    assert not set(declared) & set(deprecated_classifiers)


def test_license_is_mit() -> None:
    """The LICENSE file says what the metadata declares."""
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c)" in text and "the snsmiddleware authors" in text
    assert "Permission is hereby granted, free of charge" in text


# --- the sdist -------------------------------------------------------------------------------


def test_sdist_carries_the_tests_and_docs(dist: Dist) -> None:
    """Built from the sdist alone, the tests and the README's files must all be there."""
    with tarfile.open(dist.sdist) as archive:
        prefix = f"snsmiddleware-{snsmiddleware.__version__}/"
        names = {m.name.removeprefix(prefix) for m in archive.getmembers() if m.isfile()}
    for needed in ("LICENSE", "README.md", "SECURITY.md", "snsmiddleware/py.typed"):
        assert needed in names
    assert not any("__pycache__" in name for name in names)
    tracked = project_files()
    if tracked is None:
        return  # not a git checkout (an unpacked sdist): the list above must do
    missing = sorted(set(tracked) - NOT_IN_SDIST - names)
    assert not missing, f"tracked files missing from the sdist (add them to MANIFEST.in): {missing}"


def test_twine_check_strict(dist: Dist) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dist.sdist), str(dist.wheel)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2, done.stdout


# --- the wheel in a clean virtualenv ---------------------------------------------------------


def pip_for(venv: Path) -> list[str]:
    """This environment's pip, acting on ``venv`` (``pip --python``, pip >= 22.3)."""
    return [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]


def venv_with(requirement: str, directory: Path, what: str) -> Path:
    """A fresh virtualenv with only ``requirement`` and its dependencies; returns its bin/.

    Created without pip (ours installs into it: faster, and the venv holds nothing else);
    bytecode is compiled on first import rather than at install.
    """
    venv = directory / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    run_with_index(
        [
            *pip_for(venv),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--only-binary=:all:",
            "--timeout",
            "30",
            "--retries",
            "2",
            requirement,
        ],
        what=what,
        timeout=INSTALL_TIMEOUT,
    )
    return venv / "bin"


@pytest.fixture(scope="module")
def clean_venv(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The wheel and its install_requires, nothing else."""
    yield venv_with(
        str(dist.wheel),
        tmp_path_factory.mktemp("clean"),
        "installing the wheel into a clean virtualenv",
    )


@pytest.fixture(scope="module")
def paste_venv(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The wheel with its ``paste`` extra, as ``pip install snsmiddleware[paste]`` makes it."""
    yield venv_with(
        f"snsmiddleware[paste] @ {dist.wheel.as_uri()}",
        tmp_path_factory.mktemp("paste"),
        "installing the wheel with the paste extra into a clean virtualenv",
    )


def run_installed(
    bin_dir: Path, tmp_path: Path, *argv: str, code: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command of the clean virtualenv outside the source tree."""
    command = [str(bin_dir / "python"), "-c", code] if code is not None else list(argv)
    if code is None:
        command[0] = str(bin_dir / command[0])
    return subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )


def test_installed_console_script_version(clean_venv: Path, tmp_path: Path) -> None:
    done = run_installed(clean_venv, tmp_path, "snsmiddleware", "--version")
    assert (done.returncode, done.stdout) == (0, f"snsmiddleware {snsmiddleware.__version__}\n")


def test_installed_serve_help(clean_venv: Path, tmp_path: Path) -> None:
    done = run_installed(clean_venv, tmp_path, "snsmiddleware", "serve", "--help")
    assert done.returncode == 0, done.stderr
    assert "--config FILE.ini" in done.stdout and "--basic-auth-file" in done.stdout


def test_installed_install_requires_are_consistent(clean_venv: Path) -> None:
    done = subprocess.run(
        [*pip_for(clean_venv.parent), "check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No broken requirements found" in done.stdout


def test_installed_test_kit_signs_and_verifies(clean_venv: Path, tmp_path: Path) -> None:
    """The kit imports and works with install_requires only: no WebTest, no PasteDeploy."""
    done = run_installed(
        clean_venv,
        tmp_path,
        code=(
            "import importlib.util, snsmiddleware, snsmiddleware.testing as kit\n"
            "assert importlib.util.find_spec('webtest') is None, 'webtest is installed'\n"
            "assert importlib.util.find_spec('paste') is None, 'PasteDeploy is installed'\n"
            "signer = kit.MessageSigner()\n"
            "verifier = snsmiddleware.SnsVerifier(\n"
            "    topics=[signer.topic_arn], fetch_certificate=signer.fetch_certificate)\n"
            "message = verifier.verify(signer.notification('hello').body)\n"
            "print(message.message, snsmiddleware.__file__)\n"
        ),
    )
    assert done.returncode == 0, done.stderr
    text, location = done.stdout.split()
    assert text == "hello"
    assert Path(location).is_relative_to(clean_venv.parent), "imported from the source tree"


def test_installed_serve_config_names_the_paste_extra(clean_venv: Path, tmp_path: Path) -> None:
    """Without the extra, an INI file is refused with the command that fixes it."""
    done = run_installed(
        clean_venv, tmp_path, "snsmiddleware", "serve", "--config", str(ROOT / "examples/paste.ini")
    )
    assert done.returncode == 2
    assert "PasteDeploy" in done.stderr and "pip install snsmiddleware[paste]" in done.stderr
    assert "Traceback" not in done.stderr


def test_installed_with_the_paste_extra_serves_an_ini_file(
    paste_venv: Path, tmp_path: Path
) -> None:
    """``serve --config`` from the wheel alone: PasteDeploy finds the package's entry points
    (``egg:snsmiddleware#sns``, ``#budget_app``) in the installed metadata, the server
    starts on the INI's application, and stops on SIGTERM with status 0."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNSMIDDLEWARE_")}
    env["SNSMIDDLEWARE_PORT"] = str(port)
    process = subprocess.Popen(
        [str(paste_venv / "snsmiddleware"), "serve", "--config", str(ROOT / "examples/paste.ini")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, process, timeout=60)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request("GET", "/sns/budgets")
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert response.getheader("X-SNS-Reason"), "the middleware of the INI answered"
    assert process.returncode == 0, err
    assert "Traceback" not in err
