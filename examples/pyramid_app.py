"""Wrapping a Pyramid app: the verified message is on ``request.environ``.

Run:  python examples/pyramid_app.py
"""

from __future__ import annotations

import os
from typing import Any

from pyramid.config import Configurator
from pyramid.request import Request

from snsmiddleware import SnsMiddleware, get_message

SNS_PATH = "/sns/budgets"
TOPICS = os.environ.get("SNS_TOPICS", "arn:aws:sns:us-east-1:123456789012:budget-alerts").split()


def budget_alert(request: Request) -> dict[str, Any]:
    message = get_message(request.environ)
    return {
        "received": message.message_id,
        "subject": message.subject,
        "body_bytes": len(request.body),
    }


def create_app(**sns_options: Any) -> SnsMiddleware:
    """Build the Pyramid WSGI app wrapped in SnsMiddleware."""
    with Configurator() as config:
        config.add_route("budget_alert", SNS_PATH, request_method="POST")
        config.add_view(budget_alert, route_name="budget_alert", renderer="json")
        pyramid_app = config.make_wsgi_app()
    return SnsMiddleware(pyramid_app, paths=[SNS_PATH], topics=TOPICS, **sns_options)


if __name__ == "__main__":
    import waitress

    waitress.serve(create_app(), host="127.0.0.1", port=8080)
