"""Running ``snsmiddleware serve`` in tests: as a real process, or stopped before it serves."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._net import wait_for_port

#: The path the embedded defaults serve the budget app on.
SNS_PATH = "/sns/budgets"


class Server:
    """A server process started with a command line, stopped at teardown.

    ``env``: variables added to the test's environment (from which every ``SNSMIDDLEWARE_*``
    variable is removed first); ``log``: the file its output goes to (``cwd/server.log``).
    """

    def __init__(
        self,
        argv: list[str],
        cwd: Path,
        port: int,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
    ) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}{SNS_PATH}"
        self.log = log if log is not None else cwd / "server.log"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SNSMIDDLEWARE_")},
            **(env or {}),
        }
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=log, env=env)
        try:
            wait_for_port(port, self.process)
        except RuntimeError as exc:
            self.stop()
            raise AssertionError(f"server did not start ({exc}):\n{self.log.read_text()}") from None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def serve_argv(*flags: str) -> list[str]:
    """The command line of ``snsmiddleware serve`` with ``flags``, run by this Python."""
    return [sys.executable, "-m", "snsmiddleware", "serve", *flags]


def refuse_to_serve(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("a bad configuration must stop the start before serving")
