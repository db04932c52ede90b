"""LocalStack in host mode (no Docker) for the emulator tests: installed, started, stopped.

LocalStack 4.13.1 runs on Python 3.11 in host mode with the pins in
``tests/localstack-constraints.txt``. It gets a virtualenv of its own (``.venv-localstack``,
created on first use, about 20 s) so that its dependencies never meet ours.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from snsmiddleware.testing import TestCA

from ._net import free_port
from ._pip import run_with_index

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-localstack"
CONSTRAINTS = Path(__file__).resolve().parent / "localstack-constraints.txt"
PACKAGES = [
    "localstack-core[base-runtime]==4.13.1",
    "moto-ext==5.1.54",
    "cbor2<6",
    "service_identity",
]


INSTALL_TIMEOUT = 600


def _install(python: Path) -> None:
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
    run_with_index(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--timeout",
            "30",
            "--retries",
            "2",
            "-c",
            str(CONSTRAINTS),
            *PACKAGES,
        ],
        what=f"installing LocalStack into {VENV}",
        timeout=INSTALL_TIMEOUT,
    )


def localstack_python() -> Path:
    """The interpreter of LocalStack's own virtualenv, installing it on first use.

    Quiet and bounded in time; one installer at a time (a lock file), so that two test runs
    in the same tree do not install into the same virtualenv at once.
    """
    python = VENV / "bin" / "python"
    marker = VENV / ".installed-4.13.1"
    if marker.exists():
        return python
    VENV.mkdir(exist_ok=True)
    with (VENV / ".install.lock").open("w") as lock:
        deadline = time.monotonic() + INSTALL_TIMEOUT + 180
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test run has been installing into {VENV} too long")
                time.sleep(1)
        if not marker.exists():
            _install(python)
            marker.touch()
    return python


def start_localstack(directory: Path) -> Iterator[str]:
    """Start LocalStack (SNS, SQS and SES) on a free 127.0.0.1 port; yield its base URL."""
    python = localstack_python()
    port = free_port()
    ca = TestCA(common_name="localhost.localstack.cloud")
    key = ca.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    certificate = directory / "server.test.pem"
    certificate.write_bytes(key + ca.certificate_pem)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "LOCALSTACK_HOST": f"127.0.0.1:{port}",
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "SERVICES": "sns,sqs,ses",
        "DNS_ADDRESS": "0",
        "DISABLE_EVENTS": "1",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "CUSTOM_SSL_CERT_PATH": str(certificate),
        "FILESYSTEM_ROOT": str(directory / "fs"),
        "LOCALSTACK_VOLUME_DIR": str(directory / "volume"),
        "PERSISTENCE": "0",
    }
    log = (directory / "localstack.log").open("wb")
    process = subprocess.Popen(
        [str(python), "-m", "localstack.runtime.main"],
        cwd=directory,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = requests.get(f"{base}/_localstack/health", timeout=2).json()
                if health.get("services", {}).get("sns") in {"available", "running"}:
                    break
            except (requests.RequestException, ValueError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "LocalStack did not start:\n" + (directory / "localstack.log").read_text()
                )
            time.sleep(0.25)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """Poll ``condition`` until it holds (LocalStack delivers asynchronously)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
