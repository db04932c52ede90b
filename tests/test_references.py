"""No dangling references: every repository file the documents and examples name exists.

Scanned: README.md, SECURITY.md, BENCHMARKS.md, the other Markdown files of the repository
(fuzz/README.md, tests/vectors/README.md...) and every file in examples/. A reference is a
path under one of the repository's directories (``examples/paste.ini``, ``tests/_net.py``),
a top-level file (``SECURITY.md``, ``setup.cfg``), a link into the repository on GitHub
(``.../blob/main/PATH``), a relative Markdown link, or a module (``snsmiddleware.testing``).
Paths outside the repository (``/etc/snsmiddleware/production.ini``, ``var/dedupe.sqlite3``
at run time) are not references to it and are not matched.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import pytest

import snsmiddleware

from ._project import ROOT, repository_url

DIRECTORIES = ("examples", "tests", "scripts", "fuzz", "benchmarks", "snsmiddleware", ".ci")
TOP_LEVEL = ("setup.cfg", "pyproject.toml", "MANIFEST.in", "LICENSE")
_IN_DIRECTORY = re.compile(
    r"(?<![\w./-])((?:" + "|".join(map(re.escape, DIRECTORIES)) + r")/[\w./*-]*[\w/*])"
)
_TOP_LEVEL = re.compile(r"(?<![\w./-])(" + "|".join(map(re.escape, TOP_LEVEL)) + r")(?![\w.-])")
_MARKDOWN_FILE = re.compile(r"(?<![\w./-])([\w-]+\.md)\b")
_RELATIVE_LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s]+)\)")
_MODULE = re.compile(r"(?<![\w./-])snsmiddleware\.([a-z_]\w*)")

#: Paths in *other* repositories that a document names on purpose (with the repository).
OTHER_REPOSITORIES = {
    # the provenance of test vectors: aws/aws-php-sns-message-validator's test file
    "tests/FunctionalValidationsTest.php",
}


@functools.cache
def markdown_files() -> tuple[Path, ...]:
    """The repository's Markdown files (virtualenvs, caches and build output left out)."""
    found = []
    for directory, subdirectories, files in os.walk(ROOT):
        subdirectories[:] = [
            name for name in subdirectories if not name.startswith(".") or name == ".ci"
        ]
        subdirectories[:] = [n for n in subdirectories if n not in {"build", "dist", "var"}]
        found += [Path(directory) / name for name in files if name.endswith(".md")]
    return tuple(sorted(found))


def documents() -> list[Path]:
    found = [ROOT / name for name in ("README.md", "SECURITY.md", "BENCHMARKS.md")]
    found += [path for path in markdown_files() if path not in found]
    found += sorted(
        path
        for path in (ROOT / "examples").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )
    return found


def references(path: Path) -> set[str]:
    """The repository paths ``path`` names, relative to the root."""
    text = path.read_text(encoding="utf-8")
    named = {match.rstrip(".") for match in _IN_DIRECTORY.findall(text)}
    named |= set(_TOP_LEVEL.findall(text))
    prefix = repository_url().rstrip("/") + "/"
    for link in re.findall(re.escape(prefix) + r"(?:blob|tree)/main/([^\s)\"'#>]+)", text):
        named.add(link)
    if path.suffix == ".md":
        for link in _RELATIVE_LINK.findall(text):
            named.add(str((path.parent / link.split("#")[0]).resolve().relative_to(ROOT)))
    return named


def markdown_names(path: Path) -> set[str]:
    return set(_MARKDOWN_FILE.findall(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_named_exists(document: Path) -> None:
    missing = sorted(
        name
        for name in references(document) - OTHER_REPOSITORIES
        if not (any(ROOT.glob(name)) if "*" in name else (ROOT / name).exists())
    )
    assert not missing, f"{document.relative_to(ROOT)} names files not in the repository: {missing}"


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_markdown_document_named_exists(document: Path) -> None:
    present = {path.name for path in markdown_files()}
    missing = sorted(markdown_names(document) - present)
    assert not missing, f"{document.relative_to(ROOT)} names documents that do not exist: {missing}"


def named_loggers() -> set[str]:
    """Loggers the package names itself (``snsmiddleware.serve``), which are not modules."""
    pattern = re.compile(r"""getLogger\(["']snsmiddleware\.(\w+)["']\)""")
    return {
        name
        for source in (ROOT / "snsmiddleware").glob("*.py")
        for name in pattern.findall(source.read_text(encoding="utf-8"))
    }


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_named_exists(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    loggers = named_loggers()
    missing = sorted(
        name
        for name in set(_MODULE.findall(text))
        if not (ROOT / "snsmiddleware" / f"{name}.py").exists()
        and not hasattr(snsmiddleware, name)
        and name not in loggers
    )
    assert not missing, (
        f"{document.relative_to(ROOT)} names snsmiddleware.X that do not exist: {missing}"
    )


def test_the_scan_finds_references() -> None:
    """The patterns see what they are meant to (a scan that finds nothing proves nothing)."""
    readme = references(ROOT / "README.md")
    assert {"examples/paste.ini", "tests/test_localstack.py", "setup.cfg"} <= readme
    assert "SECURITY.md" in markdown_names(ROOT / "README.md")
    containerfile = references(ROOT / "examples" / "Containerfile")
    assert {"examples/production.ini", "examples/iam-policy-*.json"} <= containerfile
    unit = references(ROOT / "examples" / "snsmiddleware.service")
    assert not any(name.startswith("etc/") for name in unit), "absolute paths are not ours"
    assert "testing" in _MODULE.findall((ROOT / "README.md").read_text(encoding="utf-8"))
