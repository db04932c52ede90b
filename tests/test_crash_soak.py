"""Bounded crash soaks (issue 18): real ``snsmiddleware serve --dev`` processes, SIGKILLed and
SIGTERMed and restarted at once while SNS-like senders deliver a few hundred alerts with SNS's
default retry policy, time compressed 10x (see ``tests/_crash_soak.py``; lease, shutdown
timeout and dead-letter span scaled with it).

* file outbox, SQLite (one process) and Redis (two processes, one signalled): no alert lost,
  none duplicated;
* SMTP (aiosmtpd): no alert lost; the duplicates of the send-then-crash window are
  measured, and bounded by what the killed processes had in flight.

``python -m tests._crash_soak --alerts 2000 --signals 8`` runs the full-size version.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ._crash_soak import SoakPlan, run_soak

ALERTS = 240
SIGNALS = ("KILL", "TERM", "KILL", "TERM")
SERVER_THREADS = 4


@pytest.mark.soak
@pytest.mark.parametrize(
    ("store", "processes"), [("sqlite", 1), ("redis", 2)], ids=["sqlite", "redis-2-processes"]
)
def test_crash_soak_file_outbox_loses_and_duplicates_nothing(
    store: str, processes: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    plan = SoakPlan(alerts=ALERTS, signals=SIGNALS, store=store, processes=processes)
    if store == "redis":
        plan.redis_url = request.getfixturevalue("redis_url")
    result = run_soak(plan, tmp_path)
    print(result.summary())
    assert result.signals_sent == list(SIGNALS)
    assert result.lost == [], result.summary()
    assert result.duplicated == [], result.summary()
    assert result.dead_letters == 0, result.summary()
    # The signals hit deliveries in flight: some attempts failed and were retried.
    assert sum(n for reason, n in result.reasons.items() if not reason.startswith("2")) > 0


@pytest.mark.soak
def test_crash_soak_smtp_loses_nothing_and_measures_its_duplicates(tmp_path: Path) -> None:
    plan = SoakPlan(alerts=ALERTS, signals=SIGNALS, mailer="smtp")
    result = run_soak(plan, tmp_path)
    print(result.summary())
    assert result.lost == [], result.summary()
    # Only a send the SMTP server accepted just before SIGKILL, unrecorded, goes out twice:
    # at most the deliveries the killed process had in flight.
    kills = result.signals_sent.count("KILL")
    assert len(result.duplicated) <= kills * SERVER_THREADS, result.summary()
    assert max(result.emails.values()) <= 2, result.summary()
