"""Write ``docs/email-<kind>.png``: each kind of budget-alert email as headless Chromium
draws it on a 375 px phone (run by ``scripts/email-screenshots``; the README shows them)."""

from __future__ import annotations

import sys
from pathlib import Path

from ._browser import PHONE_WIDTH, chromium, require_browser
from ._email_kinds import EMAIL_KINDS, build_email, html_part
from ._project import ROOT

#: The kind also shown as a dark-mode client that inverts emails draws it.
DARK_KIND = EMAIL_KINDS[0]


def write_screenshots(directory: Path) -> list[Path]:
    require_browser()
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    with chromium() as browser:
        for kind in EMAIL_KINDS:
            page = browser.open(html_part(build_email(kind)), width=PHONE_WIDTH)
            path = directory / f"email-{kind.id}.png"
            path.write_bytes(page.screenshot_png())
            written.append(path)
    with chromium(force_dark=True) as browser:
        page = browser.open(html_part(build_email(DARK_KIND)), width=PHONE_WIDTH, dark=True)
        path = directory / f"email-{DARK_KIND.id}-dark.png"
        path.write_bytes(page.screenshot_png())
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"
    for path in write_screenshots(target):
        print(f"{path} ({path.stat().st_size} bytes)")
