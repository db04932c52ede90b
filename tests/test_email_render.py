"""Budget-alert emails as a reader sees them: each kind rendered in headless Chromium and
measured from the laid-out page (issue 14, section 2).

Skipped, with the reason, only where Chromium, its driver or selenium cannot be had
(``scripts/test`` installs Debian's ``chromium`` and ``chromium-driver`` as root).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from ._browser import PHONE_WIDTH, Browser, Page, chromium, require_browser
from ._email_kinds import (
    EMAIL_KINDS,
    EmailKind,
    build_email,
    html_part,
    synthetic_alert,
)
from ._project import ROOT

kinds = [pytest.param(kind, id=kind.id) for kind in EMAIL_KINDS]

# How close the drawn bar must be to spent ÷ budgeted (a share of the bar's width): the
# threshold mark's 3 px border and whole-pixel layout cost about 1%.
TOLERANCE = 0.03

_MEASURE_BAR = """
const bar = document.querySelector('table.bar');
const box = bar.getBoundingClientRect();
const left = box.left + bar.clientLeft, inner = bar.clientWidth;
let filled = 0, mark = null;
for (const cell of bar.querySelectorAll('td')) {
  const r = cell.getBoundingClientRect(), style = getComputedStyle(cell);
  if (cell.classList.contains('bar-fill')) filled += r.width;
  if (parseFloat(style.borderLeftWidth) >= 2) mark = r.left - left;
  if (parseFloat(style.borderRightWidth) >= 2) mark = r.right - left;
}
return {filled: filled / inner, mark: mark === null ? null : mark / inner, width: inner};
"""

# Every visible element with text of its own: its colour, and the colour actually behind it
# (the nearest ancestor with a background), as WCAG contrast.
_CONTRASTS = """
function rgba(text) {
  const m = text.match(/rgba?\\(([^)]+)\\)/); if (!m) return [0, 0, 0, 0];
  const p = m[1].split(',').map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
}
function luminance([r, g, b]) {
  const c = [r, g, b].map(v => {
    v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}
function background(el) {
  for (let node = el; node; node = node.parentElement) {
    const c = rgba(getComputedStyle(node).backgroundColor);
    if (c[3] > 0) return c;
  }
  return rgba(getComputedStyle(document.documentElement).backgroundColor);
}
const found = [];
for (const el of document.body.querySelectorAll('*')) {
  const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
  if (!own || el.getClientRects().length === 0) continue;
  const fg = luminance(rgba(getComputedStyle(el).color)), bg = luminance(background(el));
  const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  found.push([el.textContent.trim().slice(0, 40), ratio]);
}
return found;
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_browser()
    with chromium() as started:
        yield started


def _open(browser: Browser, kind: EmailKind, **options: Any) -> Page:
    return browser.open(html_part(build_email(kind)), **options)


@pytest.mark.parametrize("kind", kinds)
def test_the_bar_shows_spent_against_budgeted_and_marks_the_threshold(
    browser: Browser, kind: EmailKind
) -> None:
    page = _open(browser, kind)
    bar = page.js(_MEASURE_BAR)
    assert bar["width"] > 250, "the bar spans the card at 375 px"
    assert abs(Decimal(str(bar["filled"])) - kind.filled) <= Decimal(TOLERANCE), bar
    assert bar["mark"] is not None, "the threshold is marked"
    assert abs(Decimal(str(bar["mark"])) - kind.marked) <= Decimal(TOLERANCE), bar


@pytest.mark.parametrize("kind", kinds)
@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_nothing_overflows_a_phone_and_the_key_figures_are_visible_text(
    browser: Browser, kind: EmailKind, dark: bool
) -> None:
    page = _open(browser, kind, dark=dark)
    assert page.js("return matchMedia('(prefers-color-scheme: dark)').matches") is dark
    assert page.js("return document.documentElement.scrollWidth") <= PHONE_WIDTH
    assert page.js("return window.innerWidth") == PHONE_WIDTH
    shown = page.js("return document.body.innerText")
    for figure in kind.figures:
        assert figure in shown
    headline = page.js(
        "const h = document.querySelector('.headline'), r = h.getBoundingClientRect();"
        "return {left: r.left, right: r.right, size: parseFloat(getComputedStyle(h).fontSize),"
        " text: h.innerText}"
    )
    assert headline["left"] >= 0 and headline["right"] <= PHONE_WIDTH
    assert headline["size"] >= 24, "the lead number is the largest text"
    assert headline["text"] == kind.figures[0]


@pytest.mark.parametrize("kind", kinds)
@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_every_text_is_legible_in_light_and_dark_mode(
    browser: Browser, kind: EmailKind, dark: bool
) -> None:
    """WCAG AA (4.5:1) between each visible text and what is behind it, in both schemes."""
    page = _open(browser, kind, dark=dark)
    contrasts = page.js(_CONTRASTS)
    assert len(contrasts) > 20, "the page's texts were found"
    poor = [(text, round(ratio, 2)) for text, ratio in contrasts if ratio < 4.5]
    assert not poor, f"texts below 4.5:1 contrast: {poor}"


def test_the_raw_message_is_collapsed_below_the_summary_and_opens(browser: Browser) -> None:
    page = _open(browser, EMAIL_KINDS[0])
    assert "Dear AWS Customer" not in page.js("return document.body.innerText")
    order = page.js(
        "const d = document.querySelector('details'), f = document.querySelector('.facts');"
        "return f.compareDocumentPosition(d) & Node.DOCUMENT_POSITION_FOLLOWING"
    )
    assert order, "the raw text comes after the summary and the facts"
    page.js("document.querySelector('details summary').click()")
    assert "Dear AWS Customer" in page.js("return document.body.innerText")
    assert page.js("return document.documentElement.scrollWidth") <= PHONE_WIDTH


def test_a_hostile_long_name_neither_runs_nor_widens_the_email(browser: Browser) -> None:
    name = 'x<img src=x onerror="window.pwned=1">' + "W" * 60 + "<script>window.pwned=2</script>"
    kind = EmailKind(
        id="hostile",
        message=synthetic_alert(
            name=name, kind="ACTUAL", budgeted="100.00", threshold="80.00", amount="250.00"
        ),
        subject=f"AWS Budgets: {name} has exceeded your alert threshold",
        topic_arn="arn:aws:sns:us-east-1:123456789012:budget-alerts",
        filled=Decimal(1),
        marked=Decimal("0.8"),
        figures=("250% of budget used",),
    )
    page = _open(browser, kind)
    page.js("document.querySelector('details').open = true")
    assert page.js("return window.pwned === undefined")
    assert page.js("return document.images.length + document.scripts.length") == 0
    assert page.js("return document.documentElement.scrollWidth") <= PHONE_WIDTH
    assert name in page.js("return document.body.innerText")


def test_every_kind_has_a_screenshot_in_docs_shown_in_the_readme() -> None:
    """``scripts/email-screenshots`` writes them; the README shows each one."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for kind in EMAIL_KINDS:
        path = ROOT / "docs" / f"email-{kind.id}.png"
        assert path.is_file(), f"run scripts/email-screenshots: {path} is missing"
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert path.stat().st_size < 200_000, f"{path.name} is not small"
        assert f"/docs/email-{kind.id}.png" in readme
