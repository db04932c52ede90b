"""The project's wsgi.py: wrap Django's WSGI handler once, at the outermost layer.

Serve it with any WSGI server, e.g.  waitress-serve examples.django_project.wsgi:application
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from snsmiddleware import SnsMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_project.settings")


def create_application(**sns_options: Any) -> SnsMiddleware:
    django_app = get_wsgi_application()
    return SnsMiddleware(
        django_app, paths=["/sns/budgets"], topics=settings.SNS_TOPICS, **sns_options
    )


application = create_application()
