"""Real ``snsmiddleware serve --dev`` processes for the crash and shutdown tests: started with
``SNSMIDDLEWARE_*`` settings, signalled, restarted; alerts signed by their development CA."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import subprocess
import sys
from collections import Counter
from email.message import EmailMessage
from pathlib import Path

from snsmiddleware.devmode import load_or_create_dev_ca, sample_budget_alert
from snsmiddleware.server import DEFAULT_PATH, DEFAULT_TOPIC
from snsmiddleware.testing import MessageSigner, SignedMessage

from ._net import free_port, wait_for_port


class ServeProcess:
    """``snsmiddleware serve --dev`` in ``cwd`` on a fixed port, with ``env`` settings."""

    def __init__(
        self, cwd: Path, env: dict[str, str], port: int | None = None, pythonpath: str = ""
    ) -> None:
        self.pythonpath = pythonpath  # another checkout of the package (a baseline)
        self.cwd = cwd
        self.env = env
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}{DEFAULT_PATH}"
        self.log = cwd / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServeProcess:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SNSMIDDLEWARE_")}
        environ.update({f"SNSMIDDLEWARE_{k.upper()}": v for k, v in self.env.items()})
        if self.pythonpath:
            environ["PYTHONPATH"] = self.pythonpath
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "snsmiddleware", "serve", "--dev", "--port", str(self.port)],
                cwd=self.cwd,
                stdout=log,
                stderr=log,
                env=environ,
            )
        try:
            wait_for_port(self.port, self.process)
        except RuntimeError as exc:
            raise AssertionError(f"server did not start ({exc}):\n{self.log.read_text()}") from None
        return self

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


def dev_signer(cwd: Path) -> MessageSigner:
    """A signer with the development CA the servers in ``cwd`` trust (created if missing)."""
    return MessageSigner(load_or_create_dev_ca(cwd / "var" / "dev-ca"), topic_arn=DEFAULT_TOPIC)


def budget_alert(signer: MessageSigner, index: int) -> SignedMessage:
    subject, text = sample_budget_alert(f"Budget {index}", actual=f"{100 + index}.25")
    return signer.notification(text, Subject=subject)


def read_emails(directory: Path) -> list[EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for path in sorted(directory.glob("*.eml"))
    ]


def message_ids(emails: list[EmailMessage]) -> Counter[str]:
    return Counter(str(mail["X-SNS-Message-Id"]) for mail in emails)
