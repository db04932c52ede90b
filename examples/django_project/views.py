"""The view sees only verified SNS notifications (SnsMiddleware wraps the WSGI handler)."""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from snsmiddleware import get_message


@csrf_exempt  # SNS cannot send a CSRF token; the middleware verified the signature instead
@require_POST
def budget_alert(request: HttpRequest) -> JsonResponse:
    message = get_message(request.META)  # Django's META is the WSGI environ
    body = json.loads(request.body)  # the original body is readable again
    return JsonResponse(
        {
            "received": message.message_id,
            "subject": message.subject,
            "same_body": body["MessageId"] == message.message_id,
        }
    )
