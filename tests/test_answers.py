"""One path from error to response: each error class knows its status and headers, and one
helper (:class:`PlainTextAnswer`) writes every plain-text answer, byte for byte the same for
the middleware and the budget app."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import ClassVar

import pytest
import webtest

from snsmiddleware import SnsMiddleware, budgets, email_headers, errors, mail, middleware, policy
from snsmiddleware.answers import PlainTextAnswer
from snsmiddleware.basicauth import BasicAuth
from snsmiddleware.budget_app import BudgetApp
from snsmiddleware.errors import (
    BodyTooLargeError,
    BudgetAdjustmentError,
    CertificateError,
    CertificateFetchError,
    CertificateUnavailableError,
    ConfirmationRejectedError,
    LengthRequiredError,
    MailRejectedError,
    MailUnavailableError,
    MessageFormatError,
    MethodNotAllowedError,
    NotABudgetAlertError,
    NotAnAnomalyAlertError,
    NotYetValidError,
    PolicyError,
    SignatureError,
    SnsError,
    TransientError,
    UnauthorizedError,
)
from snsmiddleware.mail import FileOutbox
from snsmiddleware.reasons import Reason
from snsmiddleware.testing import MessageSigner

from ._budget_helpers import REAL_ALERTS, notification
from .conftest import PATH

CHALLENGE = 'Basic realm="alerts", charset="UTF-8"'


def standard_headers(body: bytes, reason: str) -> list[tuple[str, str]]:
    return [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Length", str(len(body))),
        ("X-SNS-Reason", reason),
    ]


# --- the helper -----------------------------------------------------------------------------


def test_the_answer_helper_writes_exact_bytes_and_headers() -> None:
    answer = PlainTextAnswer(200, Reason.SENT, "emailed to 2 recipient(s)")
    assert answer.status_line == "200 OK"
    assert answer.body == b"sent: emailed to 2 recipient(s)\n"
    assert answer.headers == standard_headers(answer.body, "sent")


def test_the_answer_is_a_wsgi_app_with_plain_str_headers() -> None:
    answer = PlainTextAnswer(503, Reason.SHUTTING_DOWN, "the server is shutting down", [("A", "b")])
    started: list[tuple[str, list[tuple[str, str]]]] = []
    body = answer({}, lambda status, headers, exc_info=None: started.append((status, headers)))
    assert body == [b"shutting_down: the server is shutting down\n"]
    [(status, headers)] = started
    assert status == "503 Service Unavailable"
    assert headers == [*standard_headers(body[0], "shutting_down"), ("A", "b")]
    # wsgiref (and PEP 3333) want exactly str, not a str subclass such as a Reason member.
    assert all(type(name) is str and type(value) is str for name, value in headers)


def test_non_ascii_details_are_counted_in_bytes() -> None:
    answer = PlainTextAnswer(422, Reason.NOT_A_BUDGET_ALERT, "not an alert: 'Budget é'")
    assert answer.body == "not_a_budget_alert: not an alert: 'Budget é'\n".encode()
    assert ("Content-Length", str(len(answer.body))) in answer.headers
    assert answer.status_line == "422 Unprocessable Entity"


def test_a_status_without_a_standard_phrase_keeps_its_number() -> None:
    assert PlainTextAnswer(599, "mine", "x").status_line == "599"


# --- each error renders itself --------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "reason", "headers"),
    [
        (SnsError("x"), 400, "bad_request", []),
        (UnauthorizedError("x", offered=False), 401, "unauthorized", []),
        (
            UnauthorizedError("x", offered=True, challenge=CHALLENGE),
            401,
            "unauthorized",
            [("WWW-Authenticate", CHALLENGE)],
        ),
        (MethodNotAllowedError("x"), 405, "method_not_allowed", [("Allow", "POST")]),
        (LengthRequiredError("x"), 411, "length_required", []),
        (BodyTooLargeError("x"), 413, "body_too_large", []),
        (MessageFormatError("x"), 400, "malformed_message", []),
        (PolicyError("x"), 403, "policy_violation", []),
        (CertificateError("x"), 403, "bad_certificate", []),
        (SignatureError("x"), 403, "bad_signature", []),
        (ConfirmationRejectedError("x"), 400, "confirmation_rejected", []),
        (TransientError("x"), 503, "temporarily_unavailable", []),
        (NotYetValidError("x"), 503, "not_yet_valid", []),
        (CertificateUnavailableError("x"), 503, "certificate_unavailable", []),
        (NotABudgetAlertError("x"), 422, "not_a_budget_alert", []),
        (NotAnAnomalyAlertError("x"), 422, "not_an_anomaly_alert", []),
        (BudgetAdjustmentError("x"), 422, "budget_auto_adjustment", []),
        (MailUnavailableError("x"), 503, "mail_unavailable", []),
        (MailRejectedError("x"), 422, "mail_rejected", []),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_each_error_class_knows_its_status_reason_and_headers(
    error: SnsError, status: int, reason: str, headers: list[tuple[str, str]]
) -> None:
    assert (error.status, error.reason, error.headers()) == (status, reason, headers)
    assert error.transient is (status >= 500)
    answer = error.answer()
    assert answer.status_line.startswith(f"{status} ")
    assert answer.body == f"{reason}: x\n".encode()
    assert answer.headers == [*standard_headers(answer.body, reason), *headers]


def test_every_error_class_is_covered_above() -> None:
    defined = {
        cls.__name__
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, SnsError) and cls.__module__ == errors.__name__
    }
    covered = {
        "SnsError", "UnauthorizedError", "MethodNotAllowedError", "LengthRequiredError",
        "BodyTooLargeError", "MessageFormatError", "PolicyError", "CertificateError",
        "SignatureError", "ConfirmationRejectedError", "TransientError", "NotYetValidError",
        "CertificateUnavailableError", "NotABudgetAlertError", "NotAnAnomalyAlertError",
        "BudgetAdjustmentError", "MailUnavailableError", "MailRejectedError",
    }  # fmt: skip
    assert defined == covered


def test_an_answer_can_keep_the_detail_in_the_log() -> None:
    error = MailUnavailableError("the outbox '/srv/secret' could not be written")
    answer = error.answer("the email could not be sent yet; SNS will retry")
    assert answer.body == b"mail_unavailable: the email could not be sent yet; SNS will retry\n"
    assert error.detail.endswith("could not be written")


def test_a_subclass_adds_headers_without_isinstance_checks_anywhere() -> None:
    class TeapotError(SnsError):
        status = 418
        default_reason = "teapot"
        response_headers = (("Retry-After", "120"),)

    assert TeapotError("short and stout").answer().headers[-1] == ("Retry-After", "120")


def test_basic_auth_puts_its_own_realm_in_the_error() -> None:
    auth = BasicAuth(("sns", "a long password"), realm="alerts")
    for header in (None, "Bearer x", "Basic !!!", "Basic c25zOndyb25n"):
        with pytest.raises(UnauthorizedError) as caught:
            auth.check(header)
        assert caught.value.headers() == [("WWW-Authenticate", CHALLENGE)]


def test_the_certificate_error_names_say_which_is_transient() -> None:
    assert CertificateFetchError is CertificateUnavailableError
    assert CertificateUnavailableError("x").transient
    assert not CertificateError("x").transient


def test_moved_names_stay_importable_from_their_old_modules() -> None:
    assert mail.MailUnavailableError is errors.MailUnavailableError
    assert mail.MailRejectedError is errors.MailRejectedError
    assert budgets.NotABudgetAlertError is errors.NotABudgetAlertError
    assert budgets.BudgetAdjustmentError is errors.BudgetAdjustmentError
    assert policy.InsecureConfigurationWarning is errors.InsecureConfigurationWarning
    assert email_headers.UnsafeHeaderError is errors.UnsafeHeaderError
    assert middleware.NOSNIFF == ("X-Content-Type-Options", "nosniff")


# --- the middleware and the budget app answer through it ------------------------------------


def test_the_middleware_answers_an_error_exactly_as_it_renders_itself(
    testapp: webtest.TestApp,
) -> None:
    response = testapp.get(PATH, status=405)
    expected = MethodNotAllowedError("SNS delivers with POST").answer()
    assert response.status == expected.status_line
    assert response.body == expected.body
    assert response.headerlist == expected.headers


def test_the_budget_app_answers_in_the_same_bytes_and_headers(tmp_path: Path) -> None:
    app = webtest.TestApp(BudgetApp(recipients={}, mailer=FileOutbox(tmp_path / "outbox")))
    response = app.post("/", b"{}", status=403)
    expected = PlainTextAnswer(
        403, Reason.NOT_VERIFIED, "this endpoint only accepts verified SNS messages"
    )
    assert response.status == expected.status_line
    assert response.body == expected.body
    assert response.headerlist == expected.headers


class _UnavailableMailer:
    """A mailer whose trouble is transient with a status of its own choosing."""

    def __init__(self, error: SnsError) -> None:
        self.error = error

    def send(self, message: EmailMessage) -> None:
        raise self.error


class _InsufficientStorageError(SnsError):
    status: ClassVar[int] = 507  # transient by its status alone: not a TransientError
    default_reason: ClassVar[str] = "mail_unavailable"


@pytest.mark.parametrize(
    "error",
    [MailUnavailableError("connection refused"), _InsufficientStorageError("full")],
    ids=["transient-error", "5xx-sns-error"],
)
def test_the_budget_app_answers_a_transient_failure_with_its_own_status(
    tmp_path: Path, error: SnsError
) -> None:
    app = BudgetApp(
        recipients={},
        default_recipients=["FinOps <finops@example.com>"],
        mailer=_UnavailableMailer(error),
        dead_letter=tmp_path / "dead",
        dead_letter_after=None,
    )
    real = REAL_ALERTS[0]
    response = app.handle(notification(real.message, subject=real.subject))
    assert response.status_int == error.status
    assert response.headers["X-SNS-Reason"] == error.reason
    assert response.body == (
        f"{error.reason}: the email could not be sent yet; SNS will retry\n".encode()
    )
    assert list((tmp_path / "dead").glob("*.eml")) == []  # retried, not dead-lettered


def test_the_budget_app_behind_the_middleware_keeps_one_wire_format(
    make_middleware: Callable[..., SnsMiddleware], tmp_path: Path, signer: MessageSigner
) -> None:
    app = BudgetApp(recipients={}, mailer=FileOutbox(tmp_path / "outbox"))
    testapp = webtest.TestApp(make_middleware(app=app))
    real = REAL_ALERTS[0]
    message = real.signed(signer, TopicArn=signer.topic_arn)
    response = testapp.post(PATH, message.body, headers=message.headers)
    assert response.status_int == 200
    assert response.headers["X-SNS-Reason"] == "dead_lettered"
    expected = PlainTextAnswer(
        200, Reason.DEAD_LETTERED, "not emailed (no_recipients); kept in the dead-letter outbox"
    )
    assert response.body == expected.body
    assert response.headerlist == expected.headers
