"""README.md is also the PyPI page: its links must work there, and name files that exist.

PyPI renders the long description with ``readme_renderer``; a relative link such as
``examples/flask_app.py`` resolves against pypi.org there and is dead, so links to files
are absolute URLs into the repository named in setup.cfg. Paths the README mentions in
prose or commands must be in the repository, not only on one developer's machine.
"""

from __future__ import annotations

import re

import pytest
import readme_renderer.markdown

from snsmiddleware.budgets import parse_budget_alert
from snsmiddleware.message import Notification, parse_message
from snsmiddleware.testing import MessageSigner

from ._project import ROOT, repository_url

README = (ROOT / "README.md").read_text(encoding="utf-8")

# Directories of the repository whose files the README may name.
SOURCE_DIRS = (
    "examples",
    "tests",
    "scripts",
    "fuzz",
    "benchmarks",
    "snsmiddleware",
    ".ci",
    "docs",
)
_PATH = re.compile(r"(?<![\w./-])((?:" + "|".join(map(re.escape, SOURCE_DIRS)) + r")/[\w./-]*)")


@pytest.fixture(scope="module")
def rendered() -> str:
    html = readme_renderer.markdown.render(README)
    assert html, "readme_renderer could not render README.md as Markdown"
    return html


def links(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="([^"]*)"', html)


def test_every_link_works_outside_the_repository(rendered: str) -> None:
    ids = set(re.findall(r'id="([^"]*)"', rendered))
    relative = []
    for target in links(rendered):
        if target.startswith("#"):
            assert target[1:] in ids, f"README links to a section that does not exist: {target}"
        elif not target.startswith(("https://", "http://", "mailto:")):
            relative.append(target)
    assert not relative, (
        f"relative links are dead on PyPI; link to {repository_url()}/blob/main/PATH: {relative}"
    )


def test_links_into_the_repository_name_files_that_exist(rendered: str) -> None:
    prefix = repository_url().rstrip("/") + "/"
    into_repository = [t for t in links(rendered) if t.startswith(prefix)]
    assert into_repository, "the README links no file of the repository (checked here)"
    for target in into_repository:
        rest = target.removeprefix(prefix)
        kind, _, path = rest.partition("/main/")
        assert kind in {"blob", "tree"} and path, f"not a link to a file on main: {target}"
        path = path.split("#")[0]
        assert (ROOT / path).exists(), f"README links to {path}, which is not in the repository"


def test_pictures_come_from_the_repository_and_exist(rendered: str) -> None:
    """Images (the email screenshots) are raw files of main, which PyPI and GitHub show."""
    owner_name = repository_url().rstrip("/").removeprefix("https://github.com/")
    raw = f"https://raw.githubusercontent.com/{owner_name}/main/"
    pictures = re.findall(r'<img[^>]*\bsrc="([^"]*)"', rendered)
    assert pictures, "the README shows no picture (checked here)"
    for source in pictures:
        assert source.startswith(raw), f"not a raw file of the repository's main: {source}"
        path = source.removeprefix(raw)
        assert (ROOT / path).is_file(), f"README shows {path}, which is not in the repository"


def test_paths_mentioned_exist() -> None:
    """``examples/...``, ``tests/...``, ``file://...`` and ``X.md`` in prose and commands."""
    mentioned = {match.rstrip(".") for match in _PATH.findall(README)}
    mentioned |= set(re.findall(r"file://([\w./-]+)", README))
    assert "examples/paste.ini" in mentioned  # the scan sees paths at all
    missing = sorted(path for path in mentioned if not (ROOT / path).exists())
    assert not missing, f"README mentions files that are not in the repository: {missing}"
    documents = set(re.findall(r"\b([\w-]+\.md)\b", README))
    present = {path.name for path in ROOT.rglob("*.md") if ".venv" not in path.parts}
    assert not documents - present, f"README names documents not in the repository: {documents}"


def test_example_alert_text_is_a_budgets_alert() -> None:
    """The file the LocalStack walkthrough publishes parses as the alert it claims to be."""
    text = (ROOT / "examples" / "budget-alert.txt").read_text(encoding="utf-8")
    assert "file://examples/budget-alert.txt" in README
    signed = MessageSigner().notification(
        text, Subject="AWS Budgets: Test Budget has exceeded your alert threshold"
    )
    notification = parse_message(signed.body)
    assert isinstance(notification, Notification)
    alert = parse_budget_alert(notification)
    assert alert.budget_name == "Test Budget"
    assert alert.unparsed == ()
