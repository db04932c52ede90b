"""Wrapping a Flask app: only verified SNS notifications reach the /sns/budgets view.

Run:  SNS_TOPICS=arn:aws:sns:us-east-1:123456789012:budget-alerts flask --app examples.flask_app run
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, request

from snsmiddleware import SnsMiddleware, get_message

SNS_PATH = "/sns/budgets"
TOPICS = os.environ.get("SNS_TOPICS", "arn:aws:sns:us-east-1:123456789012:budget-alerts").split()


def create_app(**sns_options: Any) -> Flask:
    """Build the Flask app; ``sns_options`` go to SnsMiddleware (tests pass the kit's)."""
    app = Flask(__name__)

    @app.post(SNS_PATH)
    def budget_alert() -> dict[str, Any]:
        message = get_message(request.environ)  # verified and de-duplicated
        body = request.get_json(force=True)  # the original body is still readable
        return {
            "received": message.message_id,
            "subject": message.subject,
            "same_body": body["MessageId"] == message.message_id,
        }

    @app.get("/")
    def index() -> str:
        return "Flask app; SNS posts to /sns/budgets"

    # Wrap the WSGI app, not the Flask object, so Flask's own routing stays intact.
    app.wsgi_app = SnsMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, paths=[SNS_PATH], topics=TOPICS, **sns_options
    )
    return app


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=8080)
