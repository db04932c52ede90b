"""Instruction counts per message under ``valgrind --tool=callgrind``: repeatable on a busy
machine, where wall-clock figures are not.

    .venv/bin/python -m benchmarks.instructions [MODE ...] [--count N] [--pythonpath DIR]

The modes run in one process under callgrind, over N messages of one corpus built (and
signed) beforehand. Callgrind counts only inside each mode's loop (it runs inside
``functools.reduce``: ``--toggle-collect`` and ``--dump-after`` name that C function), after
a first message has warmed the caches, so a count divided by N is the cost of one message,
set-up and interpreter start excluded. ``--pythonpath`` measures
another checkout of the package (an older commit exported with ``git archive``) on the
same corpus. Ratios are to the ``rsa`` mode: RSA-2048 verify alone.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import logging
import os
import pickle
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

#: mode -> what it measures, per message
MODES = {
    "rsa": "RSA-2048 PKCS#1 v1.5 verify alone (the limit)",
    "verify": "SnsVerifier.verify(body, headers)",
    "middleware_memory": "SnsMiddleware, memory store, INFO logging to a stream",
    "middleware_memory_quiet": "SnsMiddleware, memory store, logging at WARNING",
    "middleware_sqlite": "SnsMiddleware, SQLite store, INFO logging to a stream",
    "sqlite_store": "SQLiteDedupeStore claim + commit of a distinct id",
    "memory_store": "MemoryDedupeStore claim + commit of a distinct id",
}


def _trivial_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\n"]


def _workload(mode: str, corpus: Path, work: Path) -> tuple[Callable[[Any], None], list[Any]]:
    """Set up ``mode`` over the whole corpus: one message's work, and the messages (the
    first already done once, so that caches are warm)."""
    from benchmarks.corpus import PATH, TOPIC, certificate_fetcher, rsa_verifier
    from snsmiddleware.testing import TestCA

    ca = TestCA.load(corpus / "ca")
    deliveries = pickle.loads((corpus / "deliveries.pickle").read_bytes())
    if mode == "rsa":
        verify = rsa_verifier(ca)
        verify(deliveries[0])
        return verify, deliveries[1:]
    if mode in {"sqlite_store", "memory_store"}:
        from snsmiddleware.dedupe import MemoryDedupeStore
        from snsmiddleware.dedupe_sqlite import SQLiteDedupeStore

        store: Any = MemoryDedupeStore()
        if mode == "sqlite_store":
            store = SQLiteDedupeStore(work / "store.sqlite3")
        keys = [f"{index:08x}-0000-4000-8000-000000000000" for index in range(len(deliveries))]

        def claim_and_commit(key: str) -> None:
            store.commit(store.claim(key))

        claim_and_commit(keys[0])
        return claim_and_commit, keys[1:]
    from snsmiddleware import SnsMiddleware, SnsVerifier

    verifier = SnsVerifier(topics=[TOPIC], fetch_certificate=certificate_fetcher(ca))
    if mode == "verify":
        pairs = [(d.body, d.headers) for d in deliveries]

        def verify_one(pair: tuple[bytes, dict[str, str]]) -> None:
            verifier.verify(*pair)

        verify_one(pairs[0])
        return verify_one, pairs[1:]
    dedupe: Any = None
    if mode == "middleware_sqlite":
        from snsmiddleware.dedupe_sqlite import SQLiteDedupeStore

        dedupe = SQLiteDedupeStore(work / "middleware.sqlite3")
    middleware = SnsMiddleware(
        _trivial_app, paths=[PATH], verifier=verifier, dedupe=dedupe, confirm="url"
    )
    environs = [d.environ() for d in deliveries]

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        assert status.startswith("200"), status

    def deliver(environ: dict[str, Any]) -> None:
        b"".join(middleware(environ, start_response))

    deliver(environs[0])
    return deliver, environs[1:]


def _child(modes: list[str], corpus: Path, count: int, work: Path) -> None:
    """Every mode in this one process, each loop inside ``functools.reduce``: callgrind
    counts only inside it (``--toggle-collect``) and writes one part per loop."""
    logging.basicConfig(
        level=logging.INFO,
        stream=io.StringIO(),  # formatted and written as serve's stderr handler does
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    loops = [_workload(mode, corpus, work) for mode in modes]
    for mode, (step, items) in zip(modes, loops, strict=True):
        # As configured for this mode, before its loop (setting it inside would count
        # the setting, and the refill of logging's level cache, on every message).
        logging.getLogger().setLevel(logging.WARNING if mode.endswith("_quiet") else logging.INFO)
        functools.reduce(lambda _, item: step(item), items[:count], None)


def prepare(corpus: Path, count: int) -> None:
    """Sign the corpus once (2 × count + 1 messages) for every mode and both checkouts."""
    from benchmarks.corpus import realistic
    from snsmiddleware.testing import TestCA

    ca = TestCA()
    ca.save(corpus / "ca")
    (corpus / "deliveries.pickle").write_bytes(pickle.dumps(realistic(2 * count + 1, ca)))


def measure(modes: list[str], count: int, pythonpath: str | None, corpus: Path) -> dict[str, float]:
    """Instructions per message of each mode (one callgrind run for them all)."""
    with tempfile.TemporaryDirectory(prefix="snsbench-callgrind-") as work:
        out = Path(work) / "callgrind.out"
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, str(HERE.parent)) if p)
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--collect-atstart=no",
                "--toggle-collect=functools_reduce",
                "--dump-after=functools_reduce",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "benchmarks.instructions",
                "--child",
                *modes,
                "--count",
                str(count),
                "--corpus",
                str(corpus),
                "--work",
                work,
            ],
            check=True,
            env=env,
            cwd=work,  # not this checkout: ``-m`` puts the working directory first on the path
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        totals = []
        parts = sorted(Path(work).glob("callgrind.out.*"), key=lambda p: int(p.suffix[1:]))
        for part in parts:
            match = re.search(r"^summary:\s*(\d+)", part.read_text(), re.MULTILINE)
            if match is not None and int(match[1]):
                totals.append(int(match[1]))
    if len(totals) != len(modes):
        raise RuntimeError(f"callgrind wrote {len(totals)} parts for {len(modes)} modes")
    per_message = {mode: total / count for mode, total in zip(modes, totals, strict=True)}
    for mode, value in per_message.items():
        print(f"  {mode}: {value:,.0f} instructions per message", flush=True)
    return per_message


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modes", nargs="*", help=f"any of {', '.join(MODES)} (default: all)")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--pythonpath", help="measure the package found here instead")
    parser.add_argument("--corpus", help="a corpus directory made by an earlier run")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.modes, Path(args.corpus), args.count, Path(args.work))
        return 0
    modes = args.modes or list(MODES)
    if "rsa" not in modes:
        modes.insert(0, "rsa")
    corpus = Path(args.corpus or tempfile.mkdtemp(prefix="snsbench-corpus-"))
    if not (corpus / "deliveries.pickle").exists():
        prepare(corpus, args.count)
    print(f"callgrind, {args.count} messages per run, corpus {corpus}", flush=True)
    results = measure(modes, args.count, args.pythonpath, corpus)
    for mode, value in results.items():
        print(f"{mode}: {value:,.0f} instr/msg, ratio to rsa {results['rsa'] / value:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
