"""Issue 17's figures: the product around the verify core, on the realistic corpus.

Parts of ``benchmarks.run`` (``scripts/bench`` runs them all): ``realistic`` (verify,
whole middleware with the memory and the SQLite store, the peer, against RSA verify),
``sizes`` (1 KB / 64 KB / 256 KB), ``profile`` (per stage), ``wal`` and ``checkpoint``
(the SQLite store's writes and checkpoints), ``serve`` (``snsmiddleware serve`` on its
defaults over HTTP against bare waitress), ``scaleout`` (two server processes against one,
SQLite and Redis) and ``scaleout_inprocess`` (the same without HTTP). Ratios are to
baselines of the same run, in alternating rounds, medians.
"""

from __future__ import annotations

import contextlib
import cProfile
import logging
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from benchmarks.corpus import PATH, TOPIC, Delivery, certificate_fetcher, realistic, rsa_verifier
from snsmiddleware import SnsMiddleware, SnsVerifier
from snsmiddleware.testing import MessageSigner, TestCA
from tests._net import wait_for_port
from tests._redis_helpers import start_redis

Report = Callable[..., None]


def _app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\n"]


def _ok(status: str, headers: Any, exc_info: Any = None) -> None:
    assert status.startswith("200"), status


def serve_like_logging() -> None:
    """INFO to a stream, formatted as ``snsmiddleware serve`` does (its default logging)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 (process-long)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _middleware(ca: TestCA, dedupe: Any = None) -> SnsMiddleware:
    verifier = SnsVerifier(topics=[TOPIC], fetch_certificate=certificate_fetcher(ca))
    return SnsMiddleware(_app, paths=[PATH], verifier=verifier, dedupe=dedupe, confirm="url")


def _timed(run: Callable[[], int]) -> float:
    started = time.perf_counter()
    count = run()
    return (time.perf_counter() - started) / count * 1e6


def _contenders(
    ca: TestCA, deliveries: list[Delivery], work: Path
) -> dict[str, Callable[[], Callable[[], int]]]:
    """name -> a set-up (untimed) returning the timed run (which returns its count)."""
    rsa = rsa_verifier(ca)
    verifier = SnsVerifier(topics=[TOPIC], fetch_certificate=certificate_fetcher(ca))
    verifier.verify(deliveries[0].body, deliveries[0].headers)

    def rsa_setup() -> Callable[[], int]:
        return lambda: [rsa(d) for d in deliveries] and len(deliveries)

    def verify_setup() -> Callable[[], int]:
        return lambda: [verifier.verify(d.body, d.headers) for d in deliveries] and len(deliveries)

    def middleware_setup(store: str) -> Callable[[], Callable[[], int]]:
        def setup() -> Callable[[], int]:
            dedupe: Any = None
            if store == "sqlite":
                from snsmiddleware.dedupe_sqlite import SQLiteDedupeStore

                dedupe = SQLiteDedupeStore(work / f"{time.monotonic_ns()}.sqlite3")
            middleware = _middleware(ca, dedupe)
            environs = [d.environ() for d in deliveries]

            def run() -> int:
                for environ in environs:
                    b"".join(middleware(environ, _ok))
                return len(environs)

            return run

        return setup

    contenders = {
        "rsa": rsa_setup,
        "verify": verify_setup,
        "middleware_memory": middleware_setup("memory"),
        "middleware_sqlite": middleware_setup("sqlite"),
    }
    peer = _peer(ca, deliveries)
    if peer is not None:
        contenders["peer_aws_sns_verifier"] = peer
    return contenders


def _peer(ca: TestCA, deliveries: list[Delivery]) -> Callable[[], Callable[[], int]] | None:
    """aws-sns-verifier (PyPI), on the messages it accepts (it refuses those without
    Subject); its certificate step is given our key (it insists on an Amazon issuer)."""
    try:
        from aws_sns_verifier import validator
    except ImportError:
        print("realistic: aws-sns-verifier not installed (pip install -e .[bench])")
        return None
    key = ca.certificate.public_key()
    validator._validate_certificate = lambda url: key  # type: ignore[attr-defined]
    with_subject = [d.body for d in deliveries if b'"Subject"' in d.body]

    def setup() -> Callable[[], int]:
        def run() -> int:
            for body in with_subject:
                validator.validate_sns_signature(body, TOPIC, auto_confirm_subscription=False)
            return len(with_subject)

        return run

    return setup


def _alternate(
    contenders: dict[str, Callable[[], Callable[[], int]]], rounds: int
) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, setup in contenders.items():
            samples[name].append(_timed(setup()))
    return {name: statistics.median(values) for name, values in samples.items()}


def bench_realistic(report: Report, rounds: int = 7, count: int = 1000) -> None:
    """Issue 17's table: µs per message and the ratio to RSA verify, same corpus."""
    serve_like_logging()
    work = Path(tempfile.mkdtemp(prefix="snsbench-realistic-"))
    ca = TestCA()
    deliveries = realistic(count, ca)
    try:
        medians = _alternate(_contenders(ca, deliveries, work), rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    targets = {"verify": 0.65, "middleware_memory": 0.55, "middleware_sqlite": 0.30}
    for name, us in medians.items():
        report(
            f"realistic_{name}",
            us_per_msg=us,
            ratio_to_rsa=medians["rsa"] / us,
            target=targets.get(name, "report"),
        )


def bench_sizes(report: Report, rounds: int = 5) -> None:
    """Cost against message size, and what dominates at 256 KB."""
    serve_like_logging()
    ca = TestCA()
    for size, count in ((1024, 500), (64 * 1024, 100), (256 * 1024, 40)):
        deliveries = realistic(count, ca, body_bytes=size)
        contenders = _contenders(ca, deliveries, Path(tempfile.gettempdir()))
        contenders.pop("middleware_sqlite")
        contenders.pop("peer_aws_sns_verifier", None)
        medians = _alternate(contenders, rounds)
        report(
            f"size_{size // 1024}kb",
            body_bytes=len(deliveries[0].body),
            **{f"{name}_us": us for name, us in medians.items()},
            middleware_ratio_to_rsa=medians["rsa"] / medians["middleware_memory"],
        )
        if size == 256 * 1024:
            report("size_256kb_dominated_by", **_top_functions(ca, deliveries))


def _top_functions(ca: TestCA, deliveries: list[Delivery], top: int = 5) -> dict[str, str]:
    middleware = _middleware(ca)
    environs = [d.environ() for d in deliveries]
    profile = cProfile.Profile()
    profile.enable()
    for environ in environs:
        b"".join(middleware(environ, _ok))
    profile.disable()
    stats = pstats.Stats(profile)
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    ranked = sorted(stats.stats.items(), key=lambda item: -item[1][2])  # type: ignore[attr-defined]
    return {
        f"{index + 1}": f"{func[2]} ({Path(func[0]).name}) {row[2] / total:.0%}"
        for index, (func, row) in enumerate(ranked[:top])
    }


#: stage -> (module file, function) whose cumulative time it is; RSA is cryptography's
_STAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "read, path and headers": (
        ("wsgibody.py", "read_body"),
        ("middleware.py", "_request_path"),
        ("middleware.py", "_sns_headers"),
    ),
    "parse (JSON, fields, timestamp)": (("message.py", "parse_message"),),
    "signature check (string to sign, base64, RSA)": (("signing.py", "verify_signature"),),
    "RSA verify alone": (),
    "verify total (+ headers, policy, certificate)": (("verifier.py", "verify"),),
    "dedupe claim": (("dedupe.py", "claim"),),
    "dedupe commit": (("dedupe.py", "finish"),),
    "app call": (("middleware.py", "_call_app"),),
    "decision log line (when its level is on) and summary line": (
        ("middleware.py", "_log"),
        ("middleware.py", "_summary_line"),
    ),
    "whole middleware": (("middleware.py", "__call__"),),
}


def bench_profile(report: Report, count: int = 1000) -> None:
    """Where one delivery's time goes (cProfile, SQLite store, serve's logging)."""
    from snsmiddleware.dedupe_sqlite import SQLiteDedupeStore

    serve_like_logging()
    work = Path(tempfile.mkdtemp(prefix="snsbench-profile-"))
    ca = TestCA()
    deliveries = realistic(count + 1, ca)
    middleware = _middleware(ca, SQLiteDedupeStore(work / "profile.sqlite3"))
    environs = [d.environ() for d in deliveries]
    b"".join(middleware(environs[0], _ok))
    profile = cProfile.Profile()
    profile.enable()
    for environ in environs[1:]:
        b"".join(middleware(environ, _ok))
    profile.disable()
    shutil.rmtree(work, ignore_errors=True)
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    found: dict[str, float] = {}
    for stage, places in _STAGES.items():
        cumulative = 0.0
        for (filename, _, function), row in stats.items():
            if not places:  # the built-in method of cryptography's RSA public key
                if "RSAPublicKey" in function and "verify" in function:
                    cumulative += row[3]
            elif any(
                filename.endswith(f"snsmiddleware/{module}") and function == name
                for module, name in places
            ):
                cumulative += row[3]
        found[stage] = cumulative / count * 1e6
    whole = found["whole middleware"] or 1.0
    report(
        "profile_per_stage",
        **{stage: f"{us:.1f} us ({us / whole:.0%})" for stage, us in found.items()},
        note="cProfile inflates every figure; read the shares",
    )


def bench_wal(report: Report, count: int = 1000) -> None:
    """Bytes the SQLite store writes to its WAL per delivery (claim + commit): the kernel
    work callgrind does not count; repeatable (automatic checkpoints off)."""
    from snsmiddleware.dedupe_sqlite import SQLiteDedupeStore

    work = Path(tempfile.mkdtemp(prefix="snsbench-wal-"))
    try:
        store = SQLiteDedupeStore(work / "wal.sqlite3", checkpoint_interval=None)
        store._connection().execute("PRAGMA wal_autocheckpoint=0")
        for index in range(50):
            store.commit(store.claim(f"warm-{index}"))
        wal = work / "wal.sqlite3-wal"
        before = wal.stat().st_size
        for index in range(count):
            store.commit(store.claim(f"{index:08x}-0000-4000-8000-000000000000"))
        written = (wal.stat().st_size - before) / count
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report("sqlite_wal_per_delivery", bytes=written, pages=written / (4096 + 24))


def bench_checkpoint(report: Report, rounds: int = 4, count: int = 20_000) -> None:
    """SQLite claim + commit pairs with the store's checkpointing thread (the default)
    against SQLite's own checkpoints inside the requests (``checkpoint_interval=None``):
    mean and tail per pair, alternating rounds on fresh files, medians."""
    from snsmiddleware.dedupe_sqlite import SQLiteDedupeStore

    work = Path(tempfile.mkdtemp(prefix="snsbench-checkpoint-"))
    results: dict[str, list[tuple[float, float, float]]] = {"thread": [], "in_request": []}
    try:
        for index in range(rounds):
            for kind in results:
                path = work / f"{kind}-{index}.sqlite3"
                if kind == "thread":
                    store = SQLiteDedupeStore(path)
                else:
                    store = SQLiteDedupeStore(path, checkpoint_interval=None)
                for warm in range(2000):
                    store.commit(store.claim(f"warm-{warm}"))
                pairs = []
                started = time.perf_counter()
                for number in range(count):
                    began = time.perf_counter()
                    store.commit(store.claim(f"{number:08x}-0000-4000-8000-000000000000"))
                    pairs.append(time.perf_counter() - began)
                mean = (time.perf_counter() - started) / count
                store.close()
                pairs.sort()
                results[kind].append((mean, pairs[int(count * 0.99)], pairs[int(count * 0.999)]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {
        kind: [statistics.median(r[i] for r in runs) * 1e6 for i in range(3)]
        for kind, runs in results.items()
    }
    report(
        "sqlite_checkpoint_thread",
        pair_us=medians["thread"][0],
        p99_us=medians["thread"][1],
        p999_us=medians["thread"][2],
        in_request_pair_us=medians["in_request"][0],
        in_request_p99_us=medians["in_request"][1],
        in_request_p999_us=medians["in_request"][2],
        ratio=medians["in_request"][0] / medians["thread"][0],
    )


# --- over HTTP -------------------------------------------------------------------------


def _wrk_bodies(
    path: Path, signer: MessageSigner, count: int, budget: bool, corpus: bool = False
) -> None:
    from benchmarks.corpus import text_of
    from benchmarks.run import write_bodies
    from snsmiddleware.devmode import sample_budget_alert

    if corpus:  # the issue's: about 1.5 KB of non-ASCII text, half with a Subject
        messages = (
            signer.notification(text_of(536, i), **({"Subject": "Équipe 🚨"} if i % 2 else {}))
            for i in range(count)
        )
    elif budget:
        messages = (
            signer.notification(sample_budget_alert(f"Budget {i}")[1], Subject="AWS Budgets")
            for i in range(count)
        )
    else:
        messages = (signer.notification(f"m{i}") for i in range(count))
    write_bodies(path, messages)


def _serve_process(cwd: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "snsmiddleware", "serve", "--dev", "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNSMIDDLEWARE_")}
    process = subprocess.Popen(
        [*command, *extra],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    wait_for_port(port, process, timeout=60)
    time.sleep(1.0)  # the workers of --workers start after the supervisor binds
    return process


def bench_serve(report: Report, rounds: int = 3, seconds: int = 4) -> None:
    """``snsmiddleware serve --dev`` on its defaults (BudgetApp, SQLite, file outbox with
    fsync, INFO logging) against bare waitress, with two kinds of distinct bodies: budget
    alerts (each one an email, synced to disk) and the issue's corpus (1.5 KB non-ASCII
    notifications that are not alerts: BudgetApp answers 422 without writing anything, so
    the figure is the server and middleware alone)."""
    from benchmarks.run import ServerProcess, free_port, run_wrk
    from snsmiddleware.devmode import load_or_create_dev_ca

    if shutil.which("wrk") is None:
        print("serve: skipped, wrk is not installed (scripts/bench installs it)")
        return
    work = Path(tempfile.mkdtemp(prefix="snsbench-serve-"))
    ca = load_or_create_dev_ca(work / "template" / "var" / "dev-ca")
    ca.save(work / "ca")
    signer = MessageSigner(ca, topic_arn=TOPIC)
    kinds = {"alerts": work / "alerts.tsv", "issue_corpus": work / "corpus.tsv"}
    _wrk_bodies(kinds["alerts"], signer, 6000 * seconds // 4, budget=True)
    _wrk_bodies(kinds["issue_corpus"], signer, 25_000 * seconds // 4, budget=False, corpus=True)
    variants: dict[str, tuple[str, ...] | None] = {
        "bare": None,
        "serve_defaults": (),
        "serve_workers2": ("--workers", "2"),
    }
    for kind, bodies in kinds.items():
        results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        try:
            for index in range(rounds):
                for name, extra in variants.items():
                    if extra is None:
                        bare = ServerProcess("bare", work / "ca", work / "unused", 4)
                        try:
                            result = run_wrk(bare.port, bodies, seconds, 8)
                        finally:
                            bare.stop()
                    else:
                        cwd = work / f"{kind}-{name}-{index}"
                        shutil.copytree(work / "template", cwd)
                        port = free_port()
                        process = _serve_process(cwd, port, *extra)
                        try:
                            result = run_wrk(port, bodies, seconds, 8)
                        finally:
                            process.terminate()
                            process.wait(timeout=60)
                    results[name].append(result)
                    print(f"  serve {kind} round {index + 1} {name}: {result}", flush=True)
        finally:
            if kind == "issue_corpus":
                shutil.rmtree(work, ignore_errors=True)
        bare_rps = statistics.median(r["rps"] for r in results["bare"])
        for name in ("serve_defaults", "serve_workers2"):
            rps = statistics.median(r["rps"] for r in results[name])
            report(
                f"http_{name}_{kind}",
                bare_rps=bare_rps,
                measured_rps=rps,
                ratio=rps / bare_rps,
                p50_ms=statistics.median(r.get("p50_ms", 0.0) for r in results[name]),
                p99_ms=statistics.median(r.get("p99_ms", 0.0) for r in results[name]),
                non_2xx=statistics.median(r.get("non_2xx", 0.0) for r in results[name]),
                target=0.5,
            )


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a live process has used so far, from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_scaleout(report: Report, rounds: int = 3, seconds: int = 4) -> None:
    """Two middleware processes (trivial app, one port) against one, on a shared store; with
    the cores the servers and ``wrk`` used, since on two cores they compete for them."""
    from benchmarks.run import free_port, run_wrk

    if shutil.which("wrk") is None:
        print("scaleout: skipped, wrk is not installed")
        return
    work = Path(tempfile.mkdtemp(prefix="snsbench-scaleout-"))
    ca = TestCA()
    ca.save(work / "ca")
    bodies = work / "bodies.tsv"
    _wrk_bodies(bodies, MessageSigner(ca, topic_arn=TOPIC), 25_000 * seconds // 4, budget=False)
    servers_to_stop = contextlib.ExitStack()
    redis_port: int | None = None
    stores = {"sqlite": lambda run: f"sqlite:{work / f'{run}.sqlite3'}"}
    if shutil.which("redis-server"):  # the suite's own redis-server, stopped at the end
        redis_url = servers_to_stop.enter_context(contextlib.contextmanager(start_redis)(work))
        redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        stores["redis"] = lambda run: f"redis://127.0.0.1:{redis_port}/{int(run[-1]) % 16}"
    try:
        for store, url_for in stores.items():
            results: dict[int, list[float]] = {1: [], 2: []}
            cores: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
            for index in range(rounds):
                for processes in (1, 2):
                    if redis_port is not None and store == "redis":
                        subprocess.run(
                            ["redis-cli", "-p", str(redis_port), "flushall"],
                            capture_output=True,
                            check=False,
                        )
                    port = free_port()
                    env = {
                        **os.environ,
                        "BENCH_THREADS": "1",
                        "BENCH_REUSEPORT": "1",
                        "BENCH_DEDUPE": url_for(f"{processes}{index}"),
                    }
                    servers = [
                        subprocess.Popen(
                            [
                                sys.executable,
                                "-m",
                                "benchmarks.server",
                                "sns",
                                str(port),
                                str(work / "ca"),
                            ],
                            cwd=Path(__file__).resolve().parent.parent,
                            env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                        for _ in range(processes)
                    ]
                    try:
                        wait_for_port(port, servers, timeout=60)
                        time.sleep(0.5)  # every process listening, not only the first
                        servers_before = sum(_cpu_seconds(server.pid) for server in servers)
                        wrk_before = _children_cpu_seconds()
                        result = run_wrk(port, bodies, seconds, 8)
                        wrk_cores = (_children_cpu_seconds() - wrk_before) / seconds
                        servers_used = sum(_cpu_seconds(server.pid) for server in servers)
                        server_cores = (servers_used - servers_before) / seconds
                    finally:
                        for server in servers:
                            server.terminate()
                            server.wait(timeout=30)
                    results[processes].append(result["rps"])
                    cores[processes].append((server_cores, wrk_cores))
                    print(
                        f"  scaleout {store} round {index + 1} x{processes}: {result}, "
                        f"servers used {server_cores:.2f} cores, wrk {wrk_cores:.2f}",
                        flush=True,
                    )
            one, two = (statistics.median(results[n]) for n in (1, 2))
            used = {n: [statistics.median(c[i] for c in cores[n]) for i in (0, 1)] for n in (1, 2)}
            report(
                f"scaleout_{store}",
                one_process_rps=one,
                two_processes_rps=two,
                ratio=two / one,
                target=1.6,
                server_cores_one=used[1][0],
                server_cores_two=used[2][0],
                wrk_cores_two=used[2][1],
                per_server_core_ratio=(two / used[2][0]) / (one / used[1][0]),
            )
    finally:
        servers_to_stop.close()
        shutil.rmtree(work, ignore_errors=True)


def _drive(
    ca_dir: Path, deliveries: list[Delivery], dedupe_url: str, start: Any, done: Any
) -> None:
    """One worker process of ``scaleout_inprocess``: the whole middleware on its own slice
    of the corpus, through the shared store, from the moment every worker is ready."""
    from snsmiddleware.config import StoreSpec

    serve_like_logging()
    middleware = _middleware(TestCA.load(ca_dir), StoreSpec(dedupe_url))
    b"".join(middleware(deliveries[0].environ(), _ok))  # certificate cached, store open
    environs = [delivery.environ() for delivery in deliveries[1:]]
    start.wait()
    for environ in environs:
        b"".join(middleware(environ, _ok))
    done.put(len(environs))


def bench_scaleout_inprocess(report: Report, rounds: int = 5, per_process: int = 3000) -> None:
    """Two processes against one, each calling the whole middleware directly (no HTTP, no
    load generator competing for the two cores) on distinct messages through one shared
    durable store: whether the store lets a second process add a second core's worth."""
    import multiprocessing

    work = Path(tempfile.mkdtemp(prefix="snsbench-scaleout-inprocess-"))
    ca = TestCA()
    ca.save(work / "ca")
    slices = [realistic(per_process + 1, ca) for _ in range(2)]
    servers_to_stop = contextlib.ExitStack()
    stores = {"sqlite": lambda run: f"sqlite:{work / f'{run}.sqlite3'}"}
    if shutil.which("redis-server"):
        redis_url = servers_to_stop.enter_context(contextlib.contextmanager(start_redis)(work))
        base = redis_url.rsplit("/", 1)[0]
        stores["redis"] = lambda run: f"{base}/{int(run) % 16}"
    context = multiprocessing.get_context("fork")
    try:
        for store, url_for in stores.items():
            results: dict[int, list[float]] = {1: [], 2: []}
            for index in range(rounds):
                for processes in (1, 2):
                    url = url_for(f"{index}{processes}")
                    if store == "redis":
                        subprocess.run(
                            ["redis-cli", "-u", url, "flushdb"], capture_output=True, check=False
                        )
                    start, done = context.Event(), context.Queue()
                    workers = [
                        context.Process(
                            target=_drive, args=(work / "ca", slices[n], url, start, done)
                        )
                        for n in range(processes)
                    ]
                    for worker in workers:
                        worker.start()
                    time.sleep(2.0)  # every worker set up (imports, store, certificate)
                    began = time.perf_counter()
                    start.set()
                    handled = sum(done.get(timeout=300) for _ in workers)
                    elapsed = time.perf_counter() - began
                    for worker in workers:
                        worker.join(timeout=60)
                    results[processes].append(handled / elapsed)
                    print(
                        f"  scaleout_inprocess {store} round {index + 1} x{processes}: "
                        f"{handled / elapsed:,.0f} deliveries/s",
                        flush=True,
                    )
            one, two = (statistics.median(results[n]) for n in (1, 2))
            report(
                f"scaleout_inprocess_{store}",
                one_process_per_s=one,
                two_processes_per_s=two,
                ratio=two / one,
                target=1.6,
            )
    finally:
        servers_to_stop.close()
        shutil.rmtree(work, ignore_errors=True)
