"""A crash soak: real ``snsmiddleware serve --dev`` processes, driven the way SNS drives an
HTTP endpoint, signalled (SIGKILL, SIGTERM) and restarted at once while alerts are in flight.

SNS's default HTTP delivery policy is modelled with its time compressed by ``--scale``
(default 10): an attempt waits at most 15 s for the answer, and is retried 3 times about
20 s apart. So with the default scale an attempt times out after 1.5 s and the retries come
2 s apart; the server's lease (19 s), shutdown timeout (15 s) and dead-letter span (50 s)
are scaled by the same factor, so that their ratios to the retry interval stay those of
production. What cannot be scaled is the restart itself (a server starts in 1-2 s on a
loaded 2-core machine, which is 10-20 s of SNS time at scale 10): that makes the soak
harsher than production, where a restart takes a small part of SNS's 60 s retry span.

An alert counts as **lost** when no email for it exists after the run (every SNS attempt
failed), as **duplicated** when more than one does. Emails are counted where they arrive:
``.eml`` files in the outbox (by ``X-SNS-Message-Id``) or what an aiosmtpd server received.

    python -m tests._crash_soak --alerts 2000 --signals 8 --store sqlite --mailer file
    scripts/crash-soak          # the full-size runs reported in SECURITY.md
"""

from __future__ import annotations

import argparse
import queue
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from snsmiddleware.dedupe import DEFAULT_LEASE
from snsmiddleware.testing import MessageSigner, SignedMessage

from ._crash_helpers import ServeProcess, budget_alert, dev_signer, message_ids, read_emails

#: SNS's default HTTP delivery policy and the server settings it is matched with, in seconds.
SNS_ANSWER_DEADLINE = 15.0
SNS_RETRY_INTERVAL = 20.0
SNS_RETRIES = 3
SERVER_LEASE = DEFAULT_LEASE.total_seconds()  # 19 s
SERVER_SHUTDOWN_TIMEOUT = 15.0
SERVER_DEAD_LETTER_AFTER = 50.0


@dataclass
class SoakPlan:
    alerts: int = 300
    duplicate_rate: float = 0.1
    senders: int = 8
    signals: tuple[str, ...] = ("KILL", "TERM", "KILL", "TERM")
    store: str = "sqlite"  # or "redis" (then ``redis_url``)
    mailer: str = "file"  # or "smtp"
    processes: int = 1  # 2: a pair behind a "load balancer"; only the first is signalled
    scale: float = 10.0
    seed: int = 18
    redis_url: str = ""
    #: a checkout of an older version to run instead (its own defaults: no new settings)
    baseline: str = ""

    def seconds(self, sns_seconds: float) -> float:
        return sns_seconds / self.scale


@dataclass
class SoakResult:
    plan: SoakPlan
    emails: Counter[str]
    alerts: list[str]
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    signals_sent: list[str] = field(default_factory=list)
    dead_letters: int = 0
    elapsed: float = 0.0
    downtimes: list[float] = field(default_factory=list)
    history: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    signal_times: list[float] = field(default_factory=list)

    @property
    def lost(self) -> list[str]:
        return [alert for alert in self.alerts if self.emails[alert] == 0]

    @property
    def duplicated(self) -> list[str]:
        return [alert for alert in self.alerts if self.emails[alert] > 1]

    def summary(self) -> str:
        plan = self.plan
        kills = self.signals_sent.count("KILL")
        terms = self.signals_sent.count("TERM")
        return (
            f"{plan.store}/{plan.mailer}, {plan.processes} process(es), {plan.alerts} alerts "
            f"(+{int(plan.alerts * plan.duplicate_rate)} duplicate deliveries), "
            f"SIGKILL x{kills}, SIGTERM x{terms}: lost {len(self.lost)}, "
            f"duplicated {len(self.duplicated)} ({100 * len(self.duplicated) / plan.alerts:.2f}%), "
            f"dead letters {self.dead_letters}, deliveries {dict(self.outcomes)}, "
            f"answers {dict(self.reasons)}, longest downtime "
            f"{max(self.downtimes, default=0.0):.1f} s, {self.elapsed:.1f} s"
            + "".join(f"\n  lost {alert}: {self.history.get(alert)}" for alert in self.lost[:5])
            + "".join(
                f"\n  duplicated {alert}: {self.history.get(alert)}"
                for alert in self.duplicated[:5]
            )
            + f"\n  signals at {self.signal_times} s, downtimes {self.downtimes}"
        )


class Sns:
    """Delivers like SNS's default HTTP policy, time compressed: one attempt, then up to 3
    retries about one (compressed) retry interval apart, each with the answer deadline; a
    2xx-4xx answer ends it, a 5xx, time-out or connection error is retried."""

    def __init__(self, plan: SoakPlan, urls: list[str]) -> None:
        self.plan = plan
        self.urls = urls
        self.local = threading.local()
        self.reasons: Counter[str] = Counter()
        self.lock = threading.Lock()
        #: MessageId -> (seconds since the start, answer) of every attempt
        self.history: dict[str, list[tuple[float, str]]] = {}
        self.started = time.monotonic()

    def deliver(self, message: SignedMessage, rng: random.Random) -> str:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        interval = self.plan.seconds(SNS_RETRY_INTERVAL)
        first = rng.randrange(len(self.urls))
        for attempt in range(1 + SNS_RETRIES):
            if attempt:
                time.sleep(interval * rng.uniform(0.9, 1.1))
            # A load balancer in front of several processes: each attempt goes to the next.
            url = self.urls[(first + attempt) % len(self.urls)]
            try:
                response = session.post(
                    url,
                    data=message.body,
                    headers=message.headers,
                    timeout=self.plan.seconds(SNS_ANSWER_DEADLINE),
                )
                reason = f"{response.status_code} {response.headers.get('X-SNS-Reason', '')}"
            except requests.RequestException as exc:
                response, reason = None, type(exc).__name__
                session.close()
                session = self.local.session = requests.Session()
            with self.lock:
                self.reasons[reason] += 1
                self.history.setdefault(message.fields["MessageId"], []).append(
                    (round(time.monotonic() - self.started, 2), reason)
                )
            if response is not None and response.status_code < 500:
                return "delivered" if response.status_code < 300 else f"refused {reason}"
        return "gave_up"


def _servers(plan: SoakPlan, directory: Path, smtp_port: int | None) -> list[ServeProcess]:
    env = {
        "dedupe_lease": f"{int(plan.seconds(SERVER_LEASE) * 1000)}ms",
        "shutdown_timeout": f"{int(plan.seconds(SERVER_SHUTDOWN_TIMEOUT) * 1000)}ms",
        "dead_letter_after": f"{int(plan.seconds(SERVER_DEAD_LETTER_AFTER) * 1000)}ms",
        "threads": "4",
    }
    if plan.baseline:
        env = {"threads": "4"}
    if plan.store == "redis":
        env["dedupe"] = plan.redis_url
    if plan.mailer == "smtp":
        env.update(
            mailer="smtp", smtp_host="127.0.0.1", smtp_port=str(smtp_port), smtp_security="none"
        )
    return [
        ServeProcess(directory, env, pythonpath=plan.baseline).start()
        for _ in range(plan.processes)
    ]


@contextmanager
def _smtp(plan: SoakPlan) -> Iterator[object | None]:
    if plan.mailer != "smtp":
        yield None
        return
    from ._mail_helpers import smtp_server

    with smtp_server("none") as server:
        yield server


def _deliveries(plan: SoakPlan, signer: MessageSigner) -> list[SignedMessage]:
    rng = random.Random(plan.seed)
    alerts = [budget_alert(signer, index) for index in range(plan.alerts)]
    deliveries = list(alerts)
    for _ in range(int(plan.alerts * plan.duplicate_rate)):  # SNS's own duplicates
        position = rng.randrange(len(deliveries))
        deliveries.insert(position + rng.randrange(0, 40), rng.choice(alerts))
    return deliveries


def run_soak(plan: SoakPlan, directory: Path | None = None) -> SoakResult:
    """Run one soak in ``directory`` (a temporary one by default) and count the emails."""
    with ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
        smtp = stack.enter_context(_smtp(plan))
        signer = dev_signer(directory)
        deliveries = _deliveries(plan, signer)
        servers = _servers(plan, directory, getattr(smtp, "port", None))
        stack.callback(lambda: [server.stop() for server in servers])
        sns = Sns(plan, [server.url for server in servers])
        work: queue.Queue[SignedMessage] = queue.Queue()
        for message in deliveries:
            work.put(message)
        outcomes: Counter[str] = Counter()
        done = threading.Semaphore(0)
        lock = threading.Lock()

        def sender(number: int) -> None:
            rng = random.Random(plan.seed * 1000 + number)
            while True:
                try:
                    message = work.get_nowait()
                except queue.Empty:
                    return
                outcome = sns.deliver(message, rng)
                with lock:
                    outcomes[outcome] += 1
                done.release()

        started = time.monotonic()
        threads = [
            threading.Thread(target=sender, args=(n,), daemon=True) for n in range(plan.senders)
        ]
        for thread in threads:
            thread.start()
        downtimes: list[float] = []
        signal_times: list[float] = []
        sent = _signal_while_running(
            plan, servers[0], done, len(deliveries), downtimes, signal_times
        )
        for thread in threads:
            thread.join(600)
        elapsed = time.monotonic() - started
        for server in servers:  # a last graceful stop, as in production
            server.signal(signal.SIGTERM)
        for server in servers:
            server.wait(60)
        if smtp is not None:
            emails = Counter(
                str(received.message["X-SNS-Message-Id"])
                for received in smtp.received  # type: ignore[attr-defined]
            )
        else:
            emails = message_ids(read_emails(directory / "outbox"))
        dead_letters = len(read_emails(directory / "outbox" / "dead-letter"))
        return SoakResult(
            plan=plan,
            emails=emails,
            alerts=sorted({m.fields["MessageId"] for m in deliveries}),
            outcomes=outcomes,
            reasons=sns.reasons,
            signals_sent=sent,
            dead_letters=dead_letters,
            elapsed=elapsed,
            downtimes=downtimes,
            history=sns.history,
            signal_times=[round(t - sns.started, 2) for t in signal_times],
        )
    raise AssertionError("unreachable")


def _signal_while_running(
    plan: SoakPlan,
    victim: ServeProcess,
    done: threading.Semaphore,
    total: int,
    downtimes: list[float],
    signal_times: list[float],
) -> list[str]:
    """Signal the victim after every ``total / (signals + 1)`` finished deliveries and
    restart it at once; returns the signals sent (and notes how long each restart took).

    A restarted server stays up for at least the longest (compressed) retry interval before
    the next signal, so every alert has an attempt that can reach it. Restarts are not
    compressed (1-3 s here, 10-30 s of SNS time): without this floor two signals in a row
    could leave the server down for every retry of an alert, which no production restart
    does (SNS's retries are 20 s apart; a restart takes seconds).
    """
    sent: list[str] = []
    step = total // (len(plan.signals) + 1)
    min_uptime = 1.2 * plan.seconds(SNS_RETRY_INTERVAL)  # the senders' jitter is +-10%
    restarted: float | None = None
    finished = 0
    for name in plan.signals:
        while finished < step * (len(sent) + 1):
            if not done.acquire(timeout=120):
                raise AssertionError("the senders stalled")
            finished += 1
        if restarted is not None:
            time.sleep(max(0.0, restarted + min_uptime - time.monotonic()))
        signalled = time.monotonic()
        signal_times.append(signalled)
        victim.signal(getattr(signal, f"SIG{name}"))
        victim.wait(60)
        victim.start()
        restarted = time.monotonic()
        downtimes.append(restarted - signalled)
        sent.append(name)
    return sent


def measure_send_window(samples: int = 500) -> str:
    """How long an email accepted by a (local) SMTP server stays unrecorded: from the moment
    the server accepted it (its DATA handler returned) to the moment the send record is in
    a SQLite store. A SIGKILL inside this window is what duplicates an SMTP email."""
    import statistics
    from email.message import EmailMessage
    from typing import Any

    from snsmiddleware.dedupe_sqlite import SQLiteDedupeStore
    from snsmiddleware.mail import SmtpMailer

    from ._mail_helpers import smtp_server

    with tempfile.TemporaryDirectory(prefix="window-") as directory, smtp_server("none") as smtp:
        store = SQLiteDedupeStore(Path(directory) / "dedupe.sqlite3")
        accepted: list[float] = []
        handle_data = smtp.handler.handle_DATA

        async def timed(*args: Any) -> str:
            reply = await handle_data(*args)
            accepted.append(time.monotonic())
            return reply

        smtp.handler.handle_DATA = timed  # type: ignore[method-assign]
        mailer = SmtpMailer("127.0.0.1", smtp.port, security="none")
        windows, sends = [], []
        for index in range(samples):
            email = EmailMessage()
            email["From"], email["To"], email["Subject"] = "a@example.com", "b@example.com", "s"
            email.set_content("x" * 4000)
            started = time.monotonic()
            mailer.send(email)
            store.record_effect(f"m{index}", "email")
            done = time.monotonic()
            windows.append(done - accepted[-1])
            sends.append(done - started)
        store.close()
    cuts = statistics.quantiles(windows, n=100)
    return (
        f"send-then-record window over {samples} SMTP sends: median "
        f"{statistics.median(windows) * 1000:.2f} ms, p99 {cuts[98] * 1000:.2f} ms, max "
        f"{max(windows) * 1000:.2f} ms (whole send + record: median "
        f"{statistics.median(sends) * 1000:.2f} ms)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--signals", type=int, default=8, help="alternating SIGKILL, SIGTERM")
    parser.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--mailer", choices=["file", "smtp"], default="file")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument(
        "--baseline", default="", metavar="DIR", help="run the package checked out in DIR"
    )
    parser.add_argument(
        "--measure-window", action="store_true", help="only measure the SMTP send window"
    )
    args = parser.parse_args(argv)
    if args.measure_window:
        print(measure_send_window())
        return 0
    plan = SoakPlan(
        alerts=args.alerts,
        signals=tuple("KILL" if n % 2 == 0 else "TERM" for n in range(args.signals)),
        store=args.store,
        mailer=args.mailer,
        processes=args.processes,
        scale=args.scale,
        seed=args.seed,
        baseline=args.baseline,
    )
    with ExitStack() as stack:
        if plan.store == "redis":
            from ._redis_helpers import start_redis

            redis_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="redis-")))
            redis = start_redis(redis_dir)
            plan.redis_url = next(redis)
            stack.callback(lambda: next(redis, None))
        result = run_soak(plan)
    print(result.summary())
    return 1 if result.lost else 0


if __name__ == "__main__":
    sys.exit(main())
