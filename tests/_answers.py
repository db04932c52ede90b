"""Reading the middleware's and the budget app's plain-text answers in tests."""

from __future__ import annotations

from typing import Any

import webtest


def reason(response: webtest.TestResponse | Any) -> str:
    """The reason code of an answer, which the body (``code: detail``) and the X-SNS-Reason
    header both carry; also checks that the answer cannot be sniffed as HTML."""
    code = str(response.headers["X-SNS-Reason"])
    assert response.text.split(":", 1)[0] == code, response.text[:300]
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    return code


def assert_answer(response: webtest.TestResponse | Any, status: int, code: str) -> None:
    """The exact status and reason code, in the header and the body, and nothing leaked."""
    status_code = getattr(response, "status_int", None) or response.status_code
    assert (status_code, response.headers.get("X-SNS-Reason")) == (status, code), response.text[
        :300
    ]
    assert reason(response) == code
    assert response.text.startswith(f"{code}: ")
    assert "Traceback" not in response.text
