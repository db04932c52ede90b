"""Facts about the project itself that several tests check against."""

from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def repository_url() -> str:
    """The repository URL declared in setup.cfg: where the README's file links must point."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    return config["metadata"]["url"]
