from __future__ import annotations

from django.urls import path

from .views import budget_alert

urlpatterns = [path("sns/budgets", budget_alert)]
