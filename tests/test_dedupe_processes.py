"""Exactly once across processes: two waitress servers sharing a real redis-server, or one
DynamoDB table (moto's server)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import webtest

from snsmiddleware.dedupe_redis import RedisDedupeStore
from snsmiddleware.testing import MessageSigner, SignedMessage, TestCA, post_sns

from ._dynamodb_helpers import MotoDynamoDB
from ._net import free_port, wait_for_port
from .conftest import PATH, EchoApp

ROOT = Path(__file__).resolve().parent.parent
TOPIC = "arn:aws:sns:us-east-1:123456789012:budget-alerts"


@pytest.fixture(params=["redis", "dynamodb"])
def store_url(request: pytest.FixtureRequest) -> str:
    """The shared store of both server processes: a redis:// or a dynamodb:// URL."""
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    server: MotoDynamoDB = request.getfixturevalue("dynamodb")
    return server.spec(server.new_table())


class ServerProcess:
    def __init__(self, ca_dir: Path, store_url: str, record: Path, lease_ms: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/sns"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests._dedupe_server",
                str(self.port),
                str(ca_dir),
                store_url,
                str(record),
                str(lease_ms),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def servers(tmp_path: Path, store_url: str) -> Iterator[Callable[[int], list[ServerProcess]]]:
    started: list[ServerProcess] = []

    def start(lease_ms: int) -> list[ServerProcess]:
        pair = [
            ServerProcess(tmp_path / "ca", store_url, tmp_path / "record.txt", lease_ms)
            for _ in range(2)
        ]
        started.extend(pair)
        return pair

    TestCA().save(tmp_path / "ca")
    yield start
    for server in started:
        server.stop()


def recorded(tmp_path: Path) -> Counter[str]:
    path = tmp_path / "record.txt"
    return Counter(path.read_text().split()) if path.exists() else Counter()


def test_duplicates_across_two_processes_reach_the_app_once(
    servers: Callable[[int], list[ServerProcess]], tmp_path: Path
) -> None:
    first, second = servers(120_000)
    signer = MessageSigner(TestCA.load(tmp_path / "ca"), topic_arn=TOPIC)
    messages = [signer.notification(f"alert {index}") for index in range(40)]
    # Each message four times, alternating servers, all at once: SNS's worst case.
    jobs = [(server, message) for message in messages for server in (first, second) * 2]

    def post(job: tuple[ServerProcess, object]) -> int:
        server, message = job
        response = requests.post(
            server.url,
            data=message.body,
            headers=message.headers,  # type: ignore[attr-defined]
            timeout=30,
        )
        return response.status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(post, jobs))
    assert set(statuses) <= {200, 503}
    # SNS retries the 503s (held while another process worked); retry until all are done.
    for message in messages:
        for _ in range(50):
            status = requests.post(
                second.url, data=message.body, headers=message.headers, timeout=30
            ).status_code
            if status == 200:
                break
            time.sleep(0.05)
    counts = recorded(tmp_path)
    assert set(counts) == {m.fields["MessageId"] for m in messages}
    assert set(counts.values()) == {1}


def test_process_killed_between_claim_and_commit_does_not_lose_the_alert(
    servers: Callable[[int], list[ServerProcess]], tmp_path: Path
) -> None:
    lease_ms = 1500
    victim, survivor = servers(lease_ms)
    signer = MessageSigner(TestCA.load(tmp_path / "ca"), topic_arn=TOPIC)
    message = signer.notification("over budget")
    (tmp_path / "hold").touch()  # the app will wait inside the request
    hung = threading.Thread(target=_post_quietly, args=(victim.url, message), daemon=True)
    hung.start()
    time.sleep(0.5)  # the victim has claimed and is inside the app
    assert (
        requests.post(survivor.url, data=message.body, headers=message.headers, timeout=10).headers[
            "X-SNS-Reason"
        ]
        == "in_progress"
    )
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(timeout=10)
    (tmp_path / "hold").unlink()
    time.sleep(lease_ms / 1000 + 0.3)  # the dead claim's lease lapses
    # SNS redelivers the very same bytes.
    response = requests.post(survivor.url, data=message.body, headers=message.headers, timeout=10)
    assert response.status_code == 200
    again = requests.post(survivor.url, data=message.body, headers=message.headers, timeout=10)
    assert again.headers["X-SNS-Reason"] == "duplicate"
    assert recorded(tmp_path) == Counter({message.fields["MessageId"]: 1})


def _post_quietly(url: str, message: SignedMessage) -> None:
    with contextlib.suppress(requests.RequestException):  # killed mid-request
        requests.post(url, data=message.body, headers=message.headers, timeout=30)


def test_unreachable_redis_fails_closed_with_503_or_open_when_chosen(
    make_middleware: Callable[..., object], signer: MessageSigner, echo_app: EchoApp
) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    closed = webtest.TestApp(make_middleware(dedupe=RedisDedupeStore(down)))
    response = post_sns(closed, PATH, signer.notification("x"))
    assert (response.status_int, response.headers["X-SNS-Reason"]) == (503, "dedupe_unavailable")
    assert echo_app.calls == []
    opened = webtest.TestApp(make_middleware(dedupe=RedisDedupeStore(down, fail_open=True)))
    assert post_sns(opened, PATH, signer.notification("y")).status_int == 200
    assert len(echo_app.calls) == 1
