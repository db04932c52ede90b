"""Commands that download from the package index (pip, ``python -m build``), for the tests.

Bounded in time and quiet. The only failure that becomes a skip is a package index that
cannot be reached (DNS, refused, proxy, TLS, time-outs), and even that fails under CI
(``CI`` set), where the tests it guards must run. Any other failure is a test failure.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from typing import NoReturn

import pytest

# What pip says when it cannot reach the package index at all.
UNREACHABLE = (
    "Could not fetch URL",
    "Failed to establish a new connection",
    "NewConnectionError",
    "ConnectTimeoutError",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "Connection refused",
    "ProxyError",
    "SSLError",
    "Read timed out",
)


def index_unavailable(what: str, reason: str) -> NoReturn:
    """The package index cannot be reached: skip (with the reason), or fail under CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} must run in CI: {reason}")
    pytest.skip(reason)


def run_with_index(
    command: Sequence[str],
    *,
    what: str,
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    """Run ``command``; skip if it failed only because the index is unreachable, else fail.

    ``what`` says what was being done ("installing LocalStack"), for the skip or failure.
    """
    try:
        done = subprocess.run(
            list(command),
            timeout=timeout,
            capture_output=True,
            text=True,
            check=False,
        )
    except subprocess.TimeoutExpired:
        index_unavailable(
            what, f"{what} did not finish within {timeout:g} s (package index unreachable or slow)"
        )
    if done.returncode == 0:
        return done
    lines = (done.stdout + done.stderr).strip().splitlines()
    why = next((line for line in lines if any(s in line for s in UNREACHABLE)), None)
    if why is not None:
        index_unavailable(what, f"{what} failed, the package index is unreachable: {why}")
    tail = "\n".join(lines[-15:])
    pytest.fail(f"{what} failed (exit {done.returncode}):\n{tail}")
