"""The benchmark suite: every figure is a ratio against a baseline measured in the same run.

The machine is shared and noisy, so absolute numbers mean little; each measurement runs
several rounds, alternating the measured code and its baseline, and reports medians.

    .venv/bin/python -m benchmarks.run            # everything (scripts/bench does the setup)
    .venv/bin/python -m benchmarks.run verify     # one part: verify, certs, import, memory,
                                                  # http, budget, stores, observers,
                                                  # realistic, sizes, profile, wal, serve,
                                                  # scaleout, instructions (callgrind; or run
                                                  # python -m benchmarks.instructions)

Not part of the test suite, and it asserts nothing about time: it prints what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import padding

from snsmiddleware import SnsVerifier
from snsmiddleware.dedupe import MemoryDedupeStore
from snsmiddleware.signing import decode_signature, hash_for, string_to_sign
from snsmiddleware.testing import MessageSigner, TestCA
from tests._net import wait_for_port
from tests._redis_helpers import start_redis

HERE = Path(__file__).resolve().parent
TOPIC = "arn:aws:sns:us-east-1:123456789012:budget-alerts"
RESULTS: dict[str, Any] = {}


def median_of(rounds: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(rounds))


def report(name: str, **values: Any) -> None:
    RESULTS[name] = values
    shown = ", ".join(
        f"{key}={value:.3f}" if isinstance(value, float) else f"{key}={value}"
        for key, value in values.items()
    )
    print(f"{name}: {shown}", flush=True)


# --- 1. verify core vs the RSA floor ----------------------------------------------------------


def bench_verify(rounds: int = 7, count: int = 2000) -> None:
    ca = TestCA()
    for version in ("1", "2"):
        _verify_version(ca, version, rounds, count)


def _verify_version(ca: TestCA, version: str, rounds: int, count: int) -> None:
    signer = MessageSigner(ca, topic_arn=TOPIC, signature_version=version)
    messages = [signer.notification(f"alert {i}", Subject="AWS Budgets: x") for i in range(count)]
    bodies = [(m.body, {k.lower(): v for k, v in m.headers.items()}) for m in messages]
    verifier = SnsVerifier(topics=[TOPIC], fetch_certificate=signer.fetch_certificate)
    verifier.verify(*bodies[0])  # certificate cached from here on
    key = ca.certificate.public_key()
    prepared = [
        (decode_signature(m.fields["Signature"]), string_to_sign(dict(m.fields))) for m in messages
    ]
    pad, algorithm = padding.PKCS1v15(), hash_for(version)

    def floor() -> float:
        started = time.perf_counter()
        for signature, data in prepared:
            key.verify(signature, data, pad, algorithm)  # type: ignore[union-attr]
        return time.perf_counter() - started

    def full() -> float:
        started = time.perf_counter()
        for body, headers in bodies:
            verifier.verify(body, headers)
        return time.perf_counter() - started

    floors, fulls = [], []
    for _ in range(rounds):  # alternating, so both see the same noise
        floors.append(floor())
        fulls.append(full())
    f, g = statistics.median(floors), statistics.median(fulls)
    report(
        f"verify_v{version}",
        floor_us=f / count * 1e6,
        verify_us=g / count * 1e6,
        ratio=f / g,
        target=0.65,
    )


# --- 3. certificate downloads under concurrency -------------------------------------------------


def bench_certificates(concurrency: int = 64) -> None:
    signer = MessageSigner(topic_arn=TOPIC)
    downloads = []

    def slow_fetch(url: str) -> bytes:
        downloads.append(url)
        time.sleep(0.2)  # a slow certificate host: everyone arrives while it downloads
        return signer.fetch_certificate(url)

    verifier = SnsVerifier(topics=[TOPIC], fetch_certificate=slow_fetch)
    messages = [signer.notification(f"m{i}") for i in range(concurrency)]
    barrier = threading.Barrier(concurrency)

    def first_request(index: int) -> None:
        message = messages[index]
        barrier.wait()
        verifier.verify(message.body, {k.lower(): v for k, v in message.headers.items()})

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(first_request, range(concurrency)))
    report("certificate_downloads", concurrent_first_requests=concurrency, downloads=len(downloads))


# --- 4. import cost and bounded memory ----------------------------------------------------------


def bench_import(rounds: int = 9) -> None:
    code = (
        "import time; t=time.perf_counter(); import snsmiddleware; "
        "import sys; print(time.perf_counter()-t, 'boto3' in sys.modules)"
    )
    baseline_code = "import time; t=time.perf_counter(); import json; print(time.perf_counter()-t)"

    def run(source: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", source], capture_output=True, text=True, check=True
        )
        return done.stdout.split()

    times, boto = [], set()
    for _ in range(rounds):
        seconds, loaded = run(code)
        times.append(float(seconds))
        boto.add(loaded)
    report(
        "import_snsmiddleware",
        median_ms=statistics.median(times) * 1e3,
        boto3_imported=",".join(sorted(boto)),
        interpreter_start_ms=median_of(rounds, lambda: _startup_ms(baseline_code)),
    )


def _startup_ms(source: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", source], capture_output=True, check=True)
    return (time.perf_counter() - started) * 1e3


def bench_memory(ids: int = 1_000_000) -> None:
    tracemalloc.start()
    store = MemoryDedupeStore()
    before = tracemalloc.get_traced_memory()[0]
    for index in range(ids):
        store.commit(store.claim(f"{index:08x}-0000-4000-8000-000000000000"))
    bounded = tracemalloc.get_traced_memory()[0] - before
    entries = len(store)
    del store
    unbounded_store: dict[str, float] = {}
    before = tracemalloc.get_traced_memory()[0]
    for index in range(ids):
        unbounded_store[f"{index:08x}-0000-4000-8000-000000000000"] = 0.0
    unbounded = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    report(
        "memory_store_1M_ids",
        entries_kept=entries,
        store_mb=bounded / 2**20,
        unbounded_dict_mb=unbounded / 2**20,
    )


# --- 2 and 5. over HTTP with wrk ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_bodies(path: Path, messages: Iterable[Any]) -> int:
    count = 0
    with path.open("w") as out:
        for signed in messages:
            body = json.dumps(dict(signed.fields))  # compact: one line per message
            out.write(f"{signed.fields['MessageId']}\t{signed.fields['TopicArn']}\t{body}\n")
            count += 1
    return count


class ServerProcess:
    """``benchmarks.server`` in a process of its own, on a free port."""

    def __init__(self, kind: str, ca_dir: Path, outbox: Path, threads: int) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.server",
                kind,
                str(self.port),
                str(ca_dir),
                str(outbox),
            ],
            cwd=HERE.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "BENCH_THREADS": str(threads)},
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"benchmark server {kind} did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def run_wrk(port: int, bodies: Path, seconds: int, connections: int) -> dict[str, float]:
    done = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(HERE / "sns.lua"),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
        env={**os.environ, "SNS_BODIES": str(bodies)},
    )
    result: dict[str, float] = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(parts[1])
        elif parts[:1] and parts[0] in {"50%", "90%", "99%"}:
            result[f"p{parts[0][:-1]}_ms"] = _ms(parts[1])
        elif "Non-2xx" in line:
            result["non_2xx"] = float(parts[-1])
        elif "requests in" in line:
            result["requests"] = float(parts[0])
    return result


def _ms(text: str) -> float:
    for unit, factor in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def bench_http(
    kind: str = "http",
    rounds: int = 3,
    seconds: int = 4,
    connections: int = 8,
    threads: int = 4,
) -> None:
    """wrk against waitress with and without the middleware (or with the budget app)."""
    if shutil.which("wrk") is None:
        print(f"{kind}: skipped, wrk is not installed (scripts/bench installs it)")
        return
    work = Path(tempfile.mkdtemp(prefix="snsbench-"))
    ca = TestCA()
    ca.save(work / "ca")
    signer = MessageSigner(ca, topic_arn=TOPIC)
    # Every server process starts with an empty store, so one set of distinct bodies, larger
    # than any run sends, serves every round without a duplicate.
    count = (25_000 if kind == "http" else 6_000) * seconds // 4
    if kind == "http":
        messages: Iterable[Any] = (signer.notification(f"m{i}") for i in range(count))
    else:
        from snsmiddleware.devmode import sample_budget_alert

        subject, text = sample_budget_alert()
        messages = (signer.notification(text, Subject=subject) for _ in range(count))
    bodies = work / "bodies.tsv"
    write_bodies(bodies, messages)
    measured = "sns" if kind == "http" else "budget"
    results: dict[str, list[dict[str, float]]] = {"bare": [], measured: []}
    for round_index in range(rounds):
        for label in results:
            server = ServerProcess(label, work / "ca", work / f"outbox-{round_index}", threads)
            try:
                result = run_wrk(server.port, bodies, seconds, connections)
            finally:
                server.stop()
            results[label].append(result)
            print(
                f"  {kind} threads={threads} round {round_index + 1} {label}: {result}", flush=True
            )
    bare_rps = statistics.median(r["rps"] for r in results["bare"])
    sns_rps = statistics.median(r["rps"] for r in results[measured])
    sent = statistics.median(r.get("requests", 0.0) for r in results[measured])
    report(
        f"{'http' if kind == 'http' else 'budget_alert'}_end_to_end_threads{threads}",
        bare_rps=bare_rps,
        measured_rps=sns_rps,
        ratio=sns_rps / bare_rps,
        all_distinct=sent <= count,
        **{
            f"measured_{k}": statistics.median(r.get(k, 0.0) for r in results[measured])
            for k in ("p50_ms", "p90_ms", "p99_ms", "non_2xx")
        },
        **{
            f"bare_{k}": statistics.median(r.get(k, 0.0) for r in results["bare"])
            for k in ("p50_ms", "p90_ms", "p99_ms")
        },
        target=0.85 if kind == "http" else "report",
    )
    shutil.rmtree(work, ignore_errors=True)


# --- 6. de-duplication stores: claims per second, latency added per delivery ---------------


def _start_and_wait(command: list[str], port: int, name: str, env: dict[str, str]) -> Any:
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **env}
    )
    try:
        wait_for_port(port, process)
    except RuntimeError:
        process.kill()
        raise RuntimeError(f"{name} did not start") from None
    return process


def _store_factories(
    work: Path, servers: contextlib.ExitStack
) -> tuple[dict[str, Callable[[], Any]], list[Any]]:
    """name -> a function building a fresh store; and the server processes to stop (servers
    started through a context manager are stopped by `servers` instead)."""
    from snsmiddleware.dedupe_sqlite import SQLiteDedupeStore

    processes: list[Any] = []
    factories: dict[str, Callable[[], Any]] = {
        "memory": MemoryDedupeStore,
        "sqlite": lambda: SQLiteDedupeStore(work / f"d-{time.monotonic_ns()}.sqlite3"),
    }
    if shutil.which("redis-server"):
        from snsmiddleware.dedupe_redis import RedisDedupeStore

        # The suite's own redis-server (no persistence, 127.0.0.1), kept running until the end.
        url = servers.enter_context(contextlib.contextmanager(start_redis)(work))
        factories["redis"] = lambda: RedisDedupeStore(url, key_prefix=f"{time.monotonic_ns()}:")
    else:
        print("stores: redis skipped, redis-server is not installed")
    try:
        import moto.server  # noqa: F401  (the emulator is only in the test extra)
    except ImportError:
        print("stores: dynamodb skipped, moto is not installed (pip install -e .[test])")
        return factories, processes
    from snsmiddleware.dedupe_dynamodb import DynamoDBDedupeStore

    port = free_port()
    fake = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    os.environ.update(fake)  # moto accepts anything; nothing here may reach AWS
    processes.append(
        _start_and_wait(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            port,
            "moto_server",
            fake,
        )
    )
    endpoint = f"http://127.0.0.1:{port}"
    DynamoDBDedupeStore.create_table("bench-dedupe", region="us-east-1", endpoint_url=endpoint)

    def dynamodb() -> Any:
        return DynamoDBDedupeStore(
            "bench-dedupe",
            region="us-east-1",
            endpoint_url=endpoint,
            key_prefix=f"{time.monotonic_ns()}:",
        )

    factories["dynamodb"] = dynamodb
    return factories, processes


def _claims_per_second(store: Any, count: int, threads: int) -> float:
    """claim + commit (one delivery's store work) of ``count`` distinct ids, per second."""
    ids = [f"{index:08x}-0000-4000-8000-{time.monotonic_ns():012x}" for index in range(count)]

    def work(chunk: list[str]) -> None:
        for key in chunk:
            store.commit(store.claim(key))

    chunks = [ids[index::threads] for index in range(threads)]
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, chunks))
    return count / (time.perf_counter() - started)


def _delivery_latencies_ms(store: Any, signer: MessageSigner, count: int) -> list[float]:
    """One in-process delivery each (verify, claim, trivial app, commit), in ms."""
    import io

    from snsmiddleware import SnsMiddleware

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    middleware = SnsMiddleware(
        app,
        paths=["/sns"],
        topics=[TOPIC],
        dedupe=store,
        fetch_certificate=signer.fetch_certificate,
        confirm="url",
    )
    timings = []
    statuses: list[str] = []

    def start_response(status: str, headers: Any, *exc_info: Any) -> None:
        statuses.append(status)

    for index in range(count):
        message = signer.notification(f"m{index}")
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/sns",
            "SCRIPT_NAME": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(message.body),
            "CONTENT_LENGTH": str(len(message.body)),
            "CONTENT_TYPE": "text/plain; charset=UTF-8",
            **{
                f"HTTP_{k.upper().replace('-', '_')}": v
                for k, v in message.headers.items()
                if k.lower() != "content-type"
            },
        }
        started = time.perf_counter()
        b"".join(middleware(environ, start_response))
        timings.append((time.perf_counter() - started) * 1e3)
        assert statuses[-1].startswith("200"), statuses[-1]
    return timings


def bench_stores(rounds: int = 3, count: int = 1000, deliveries: int = 500) -> None:
    """Each store against the in-memory one: store work per second (1 and 8 threads) and
    the latency it adds to one delivery through the middleware."""
    work = Path(tempfile.mkdtemp(prefix="snsbench-stores-"))
    signer = MessageSigner(TestCA(), topic_arn=TOPIC)
    servers = contextlib.ExitStack()
    factories, processes = _store_factories(work, servers)
    try:
        results: dict[str, dict[str, list[float]]] = {name: {} for name in factories}
        for _ in range(rounds):  # alternating stores, so each sees the same noise
            for name, make in factories.items():
                sample = results[name]
                sample.setdefault("claims_per_s", []).append(_claims_per_second(make(), count, 1))
                sample.setdefault("claims_per_s_8_threads", []).append(
                    _claims_per_second(make(), count, 8)
                )
                latencies = sorted(_delivery_latencies_ms(make(), signer, deliveries))
                sample.setdefault("p50_ms", []).append(latencies[len(latencies) // 2])
                sample.setdefault("p99_ms", []).append(latencies[int(len(latencies) * 0.99)])
        base_p50 = statistics.median(results["memory"]["p50_ms"])
        for name, sample in results.items():
            medians = {key: statistics.median(values) for key, values in sample.items()}
            report(
                f"dedupe_store_{name}",
                **medians,
                added_p50_ms=medians["p50_ms"] - base_p50,
                emulator=name == "dynamodb",
            )
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        servers.close()
        shutil.rmtree(work, ignore_errors=True)


def _for_threads(kind: str, thread_counts: Iterable[int]) -> None:
    for threads in thread_counts:
        bench_http(kind, threads=threads)


def _product(name: str) -> Callable[[], None]:
    def run() -> None:
        from benchmarks import product

        getattr(product, f"bench_{name}")(report)

    return run


def bench_instructions(count: int = 100) -> None:
    """Instruction counts per message under callgrind (repeatable on a busy machine)."""
    from benchmarks import instructions

    if shutil.which("valgrind") is None:
        print("instructions: skipped, valgrind is not installed (scripts/bench installs it)")
        return
    corpus = Path(tempfile.mkdtemp(prefix="snsbench-corpus-"))
    instructions.prepare(corpus, count)
    per_message = instructions.measure(list(instructions.MODES), count, None, corpus)
    shutil.rmtree(corpus, ignore_errors=True)
    for mode, value in per_message.items():
        report(
            f"instructions_{mode}",
            per_message=value,
            ratio_to_rsa=per_message["rsa"] / value,
        )


# --- 8. the observer hook and the Prometheus metrics on the request path ---------------------


def bench_observers(rounds: int = 25, refusals: int = 5000, duplicates: int = 500) -> None:
    """µs of CPU per request through SnsMiddleware: no observer (the baseline), a no-op
    observer, and SnsMetrics; a 405 (no crypto: the hook's share is largest) and a verified
    duplicate (signature check, certificate cache hit, de-dup claim). Rounds interleave the
    variants; the minimum of each is reported (CPU time: the machine is shared)."""
    import io

    from snsmiddleware import SnsMiddleware

    signer = MessageSigner(TestCA(), topic_arn=TOPIC)
    message = signer.notification("benchmark")

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    def environ(method: str) -> dict[str, Any]:
        headers = {
            "HTTP_" + name.upper().replace("-", "_"): value
            for name, value in message.headers.items()
            if name != "Content-Type"
        }
        return {
            "REQUEST_METHOD": method,
            "PATH_INFO": "/sns",
            "CONTENT_TYPE": message.headers["Content-Type"],
            "CONTENT_LENGTH": str(len(message.body)),
            "wsgi.input": io.BytesIO(message.body),
            **headers,
        }

    def start_response(status: str, headers: Any, *exc_info: Any) -> None:
        pass

    def build(kind: str) -> SnsMiddleware:
        middleware = SnsMiddleware(
            app,
            paths=["/sns"],
            topics=[TOPIC],
            fetch_certificate=signer.fetch_certificate,
            confirm="url",
        )
        if kind == "noop":
            middleware.observer = lambda decision: None
        elif kind == "metrics":
            from snsmiddleware.metrics import SnsMetrics

            SnsMetrics().instrument(middleware)
        middleware(environ("POST"), start_response)  # the first delivery; then duplicates
        return middleware

    def per_request(middleware: SnsMiddleware, method: str, count: int) -> float:
        environs = [environ(method) for _ in range(count)]
        started = time.process_time()
        for one in environs:
            middleware(one, start_response)
        return (time.process_time() - started) / count * 1e6

    import logging

    logging.getLogger("snsmiddleware").addHandler(logging.NullHandler())
    logging.getLogger("snsmiddleware").propagate = False  # records are made, not printed
    variants = {kind: build(kind) for kind in ("none", "noop", "metrics")}
    times: dict[str, dict[str, list[float]]] = {k: {"405": [], "dup": []} for k in variants}
    for _ in range(rounds):
        for kind, middleware in variants.items():
            times[kind]["405"].append(per_request(middleware, "GET", refusals))
            times[kind]["dup"].append(per_request(middleware, "POST", duplicates))
    base = {path: min(times["none"][path]) for path in ("405", "dup")}
    for kind in variants:
        refusal, duplicate = min(times[kind]["405"]), min(times[kind]["dup"])
        report(
            f"observer_{kind}",
            refusal_us=refusal,
            refusal_ratio=refusal / base["405"],
            duplicate_us=duplicate,
            duplicate_ratio=duplicate / base["dup"],
        )


PARTS: dict[str, Callable[[], None]] = {
    "verify": bench_verify,
    "certs": bench_certificates,
    "import": bench_import,
    "memory": bench_memory,
    "http": lambda: _for_threads("http", (4, 1)),
    "budget": lambda: bench_http("budget", threads=4),
    "stores": bench_stores,
    "observers": bench_observers,
    # issue 17: the product around the verify core (benchmarks/product.py)
    "realistic": _product("realistic"),
    "sizes": _product("sizes"),
    "profile": _product("profile"),
    "wal": _product("wal"),
    "checkpoint": _product("checkpoint"),
    "instructions": bench_instructions,
    "serve": _product("serve"),
    "scaleout": _product("scaleout"),
    "scaleout_inprocess": _product("scaleout_inprocess"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("parts", nargs="*", help=f"any of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores", flush=True)
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s): {', '.join(unknown)}")
    for part in args.parts or PARTS:
        PARTS[part]()
    if args.json:
        Path(args.json).write_text(json.dumps(RESULTS, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
