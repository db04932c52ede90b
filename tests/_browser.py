"""Headless Chromium for rendering emails as a reader sees them (Debian's ``chromium`` and
``chromium-driver``, driven by selenium; ``scripts/test`` installs both where it can).

The browser is started with the flags this machine needs (no sandbox as root, no GPU, no
background networking: nothing here reaches the internet) and a fresh profile directory,
and pages are loaded from ``file://``: nothing is served, nothing is fetched.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--hide-scrollbars",
)
PHONE_WIDTH = 375


def unavailable_reason() -> str | None:
    """Why the browser tests cannot run here, or ``None`` when they can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e .[test])"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            return f"{path} is missing: apt-get install {package} (scripts/test does as root)"
    return None


class Page:
    """A loaded email in the browser, with the measurements the tests need."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def cdp(self, command: str, params: dict[str, Any]) -> Any:
        return self.driver.execute_cdp_cmd(command, params)

    def screenshot_png(self) -> bytes:
        """The whole page as PNG (the viewport grown to the page's height)."""
        height = int(self.js("return document.documentElement.scrollHeight"))
        width = int(self.js("return window.innerWidth"))
        shot = self.cdp(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            },
        )
        return base64.b64decode(shot["data"])


class Browser:
    """One Chromium for a test session; :meth:`open` loads an HTML document."""

    def __init__(self, driver: Any, directory: Path) -> None:
        self.driver = driver
        self.directory = directory
        self._count = 0

    def open(self, html: str, *, width: int = PHONE_WIDTH, dark: bool = False) -> Page:
        """Load ``html`` at ``width`` CSS pixels (a phone: 375), light or dark scheme."""
        self._count += 1
        path = self.directory / f"email-{self._count}.html"
        path.write_text(html, encoding="utf-8")
        driver = self.driver
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        scheme = "dark" if dark else "light"
        driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
        )
        driver.get(path.as_uri())
        return Page(driver)


@contextmanager
def chromium(*, force_dark: bool = False) -> Iterator[Browser]:
    """Start headless Chromium with a fresh profile; quit it and remove the profile after.

    ``force_dark``: Chromium's own algorithmic dark mode, which inverts light pages the way
    the Gmail and Outlook apps do to emails in dark mode."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Both paths are given, so Selenium Manager (which would download a driver) never runs.
    profile = Path(tempfile.mkdtemp(prefix="snsmiddleware-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile / 'profile'}")
    if force_dark:
        options.add_argument("--enable-features=WebContentsForceDark")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield Browser(driver, profile)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def require_browser() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"no headless Chromium: {reason}")
