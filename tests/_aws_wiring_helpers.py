"""moto's server on 127.0.0.1 for ``doctor`` and ``connect``: SNS, STS and Budgets over real
HTTP, plus the two Budgets calls moto 5 lacks, and a record of every API call.

moto implements CreateBudget, DescribeBudget(s), CreateNotification and
DescribeNotificationsForBudget, but not ``CreateSubscriber`` or
``DescribeSubscribersForNotification`` (it answers 500 "not implemented"). Both are added
here on moto's own budget records (a notification keeps its subscribers in moto's model), so
``connect`` runs against one emulator exactly as it would against AWS. :attr:`MotoAws.calls`
lists the API actions that arrived (``sns:Subscribe``, ``budgets:CreateSubscriber``...), so a
test can check the IAM policy examples cover every call the commands make.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs

import pytest

from ._net import MotoWsgiServer

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
CLEARED_AWS_ENV = ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE")
_BUDGETS = "AWSBudgetServiceGateway."


def _same_notification(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    keys = ("NotificationType", "ComparisonOperator", "ThresholdType")
    return all(stored.get(k) == wanted.get(k) for k in keys) and float(
        stored.get("Threshold", 0)
    ) == float(wanted.get("Threshold", 0))


class _WithBudgetSubscribers:
    """moto's WSGI app, plus CreateSubscriber and DescribeSubscribersForNotification."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: list[str] = []
        self.refused: set[str] = set()
        self.lock = threading.Lock()

    def _answer(self, start_response: Any, status: str, document: dict[str, Any]) -> list[bytes]:
        body = json.dumps(document).encode()
        start_response(
            status,
            [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def _notification(self, request: dict[str, Any]) -> Any:
        from moto.budgets.models import budgets_backends

        budgets = budgets_backends[ACCOUNT]["aws"].budgets[request["AccountId"]]
        budget = budgets.get(request["BudgetName"])
        if budget is None:
            return None
        for notification in budget.notifications:
            if _same_notification(notification.details, request["Notification"]):
                return notification
        return None

    def _budgets_extra(self, action: str, request: dict[str, Any], start_response: Any) -> Any:
        notification = self._notification(request)
        if notification is None:
            return self._answer(
                start_response,
                "400 Bad Request",
                {"__type": "NotFoundException", "Message": "no such budget or notification"},
            )
        if action == "CreateSubscriber":
            notification.subscribers.append(request["Subscriber"])
            return self._answer(start_response, "200 OK", {})
        return self._answer(start_response, "200 OK", {"Subscribers": notification.subscribers})

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        if target.startswith(_BUDGETS):
            action = target[len(_BUDGETS) :]
            with self.lock:
                self.calls.append(f"budgets:{action}")
            if action in self.refused:
                return self._answer(
                    start_response,
                    "400 Bad Request",
                    {"__type": "AccessDeniedException", "Message": f"not allowed: {action}"},
                )
            if action in {"CreateSubscriber", "DescribeSubscribersForNotification"}:
                return self._budgets_extra(action, json.loads(body), start_response)
        else:
            form = parse_qs(body.decode("utf-8", "replace"))
            service = "sts" if "sts" in environ.get("HTTP_AUTHORIZATION", "") else "sns"
            if form.get("Action"):
                with self.lock:
                    self.calls.append(f"{service}:{form['Action'][0]}")
        environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)


def _report_signature_version() -> Any:
    """moto stores a topic's SignatureVersion but leaves it out of GetTopicAttributes (AWS
    reports it once set): add it, so that what ``connect`` set, ``doctor`` reads back.
    Returns a function that undoes the patch."""
    from moto.sns.responses import SNSResponse

    original = SNSResponse.get_topic_attributes

    def get_topic_attributes(self: Any) -> Any:
        answer = original(self)
        topic = self.backend.get_topic(self._get_param("TopicArn"))
        version = getattr(topic, "signature_version", None)
        if version:
            answer.result["Attributes"]["SignatureVersion"] = str(version)
        return answer

    SNSResponse.get_topic_attributes = get_topic_attributes  # type: ignore[method-assign]

    def undo() -> None:
        SNSResponse.get_topic_attributes = original  # type: ignore[method-assign]

    return undo


class MotoAws(MotoWsgiServer):
    """moto's server mode on a free port of 127.0.0.1, with the additions above."""

    _app: _WithBudgetSubscribers

    def __init__(self) -> None:
        super().__init__(_WithBudgetSubscribers)

    @property
    def calls(self) -> list[str]:
        return self._app.calls

    def refuse(self, budgets_action: str) -> None:
        """Answer AccessDeniedException to every ``budgets_action`` call from now on."""
        with self._app.lock:
            self._app.refused.add(budgets_action)

    def start(self) -> None:
        self._undo = _report_signature_version()
        super().start()

    def stop(self) -> None:
        super().stop()
        self._undo()

    def client(self, service: str) -> Any:
        import boto3

        return boto3.session.Session().client(service, region_name=REGION, endpoint_url=self.url)

    def reset(self) -> None:
        import requests

        requests.post(f"{self.url}/moto-api/reset", timeout=5).raise_for_status()
        with self._app.lock:
            self._app.calls.clear()
            self._app.refused.clear()

    def create_budget(self, name: str, notifications: list[dict[str, Any]] | None = None) -> None:
        self.client("budgets").create_budget(
            AccountId=ACCOUNT,
            Budget={
                "BudgetName": name,
                "BudgetLimit": {"Amount": "100", "Unit": "USD"},
                "TimeUnit": "MONTHLY",
                "BudgetType": "COST",
            },
            NotificationsWithSubscribers=notifications or [],
        )

    def subscription_attributes(self, arn: str) -> dict[str, Any]:
        """moto's own record of a subscription's attributes (to set a state AWS can be in
        but moto never reaches, such as PendingConfirmation)."""
        from moto.sns.models import sns_backends

        attributes: dict[str, Any] = sns_backends[ACCOUNT][REGION].subscriptions[arn].attributes
        return attributes


def fresh_moto(server: MotoAws, monkeypatch: pytest.MonkeyPatch) -> MotoAws:
    """``server`` emptied, with boto3 pointed at fake credentials only (``monkeypatch``:
    pytest's fixture, so the environment is restored afterwards)."""
    for name in CLEARED_AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    server.reset()
    return server


@contextmanager
def running_moto_aws() -> Iterator[MotoAws]:
    """moto on 127.0.0.1, with fake credentials in the environment, while the block runs."""
    with pytest.MonkeyPatch.context() as patch:
        for name in CLEARED_AWS_ENV:
            patch.delenv(name, raising=False)
        for name, value in FAKE_AWS_ENV.items():
            patch.setenv(name, value)
        server = MotoAws()
        server.start()
        try:
            yield server
        finally:
            server.stop()
