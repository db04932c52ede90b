"""A real DynamoDB API on 127.0.0.1 for the tests: moto's server, with two additions.

* Requests are served one at a time. DynamoDB makes each conditional write atomic; moto's
  threaded server checks the condition and writes without a lock, so two concurrent claims
  could both win *in the emulator*. Serialising requests gives the guarantee the real service
  gives, and nothing more (the store still sees concurrent clients, retries and races).
* Faults: :meth:`MotoDynamoDB.fail_next` answers the next requests with a DynamoDB error
  (``ProvisionedThroughputExceededException``, ``ThrottlingException``...), over real HTTP,
  so botocore's own retry logic runs; :attr:`MotoDynamoDB.requests` counts what arrived.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ._net import MotoWsgiServer

REGION = "us-east-1"
#: Credentials that only moto accepts: nothing here can reach AWS.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
#: Variables that could point boto3 elsewhere (a profile, a real endpoint).
CLEARED_AWS_ENV = ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB")


class _SerialisedApp:
    """moto's WSGI app, one request at a time, with injectable error answers."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.failures: list[tuple[int, str]] = []
        self.lost_answers = 0
        self.requests: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with self.lock:
            self.requests.append(environ.get("HTTP_X_AMZ_TARGET", ""))
            dynamodb = environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB")
            if dynamodb and self.lost_answers:  # done, but the answer never arrives
                self.lost_answers -= 1
                list(self.app(environ, lambda *args: None))
                self.failures.insert(0, (500, "InternalServerError"))
            if dynamodb and self.failures:
                status, code = self.failures.pop(0)
                body = json.dumps(
                    {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "injected"}
                ).encode()
                start_response(
                    f"{status} Injected",
                    [
                        ("Content-Type", "application/x-amz-json-1.0"),
                        ("Content-Length", str(len(body))),
                    ],
                )
                return [body]
            return list(self.app(environ, start_response))


class MotoDynamoDB(MotoWsgiServer):
    """moto's server mode on a free port of 127.0.0.1, DynamoDB over real HTTP."""

    _app: _SerialisedApp

    def __init__(self) -> None:
        super().__init__(_SerialisedApp)

    @property
    def requests(self) -> list[str]:
        """The X-Amz-Target of every request so far (``DynamoDB_20120810.PutItem``...)."""
        return self._app.requests

    def fail_next(self, code: str, count: int = 1, status: int = 400) -> None:
        """Answer the next ``count`` DynamoDB requests with error ``code``."""
        with self._app.lock:
            self._app.failures.extend([(status, code)] * count)

    def lose_next_answer(self) -> None:
        """Carry out the next DynamoDB request, then answer it with a 500 (as when the
        answer is lost on the way back): botocore retries a request that took effect."""
        with self._app.lock:
            self._app.lost_answers += 1

    def clear_failures(self) -> None:
        with self._app.lock:
            self._app.failures.clear()

    def new_table(self) -> str:
        """A fresh, empty table made by the store's own helper."""
        from snsmiddleware.dedupe_dynamodb import DynamoDBDedupeStore

        name = f"dedupe-{uuid.uuid4().hex[:12]}"
        DynamoDBDedupeStore.create_table(name, region=REGION, endpoint_url=self.url)
        return name

    def spec(self, table: str) -> str:
        """The ``dedupe =`` setting that names ``table`` here."""
        return f"dynamodb://{table}?region={REGION}&endpoint_url={self.url}"


@contextmanager
def running_moto_dynamodb() -> Iterator[MotoDynamoDB]:
    """moto's DynamoDB on 127.0.0.1, with fake credentials in the environment, for as long
    as the block runs."""
    import pytest

    with pytest.MonkeyPatch.context() as patch:
        for name in CLEARED_AWS_ENV:
            patch.delenv(name, raising=False)
        for name, value in FAKE_AWS_ENV.items():
            patch.setenv(name, value)
        server = MotoDynamoDB()
        server.start()
        try:
            yield server
        finally:
            server.stop()
