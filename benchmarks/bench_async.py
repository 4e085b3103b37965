"""AsyncWriter on an event loop: how late does a 1 ms ticker run while a big batch is written?

    python benchmarks/bench_async.py [--rows N] [--smoke] [--repeat N] [--fsync] [--out DIR]
    python benchmarks/run.py --async [--rows N] [--smoke] [--repeat N] [--fsync] [--out DIR]

The batch is ``--rows`` price snapshots (default 1,000,000) of 8,000 tokens,
as a collector gets them from JSON: columns of Python lists whose token ids
are distinct 74-78-digit ``str`` objects and whose numbers are JSON floats
(``None`` for a missing volume). Each run writes it into empty tables:

- ``Writer``: the sync Writer, no event loop (the rows/s baseline);
- ``AsyncWriter``: while a task on the same loop sleeps 1 ms at a time and
  records how late it wakes (its lateness: the time the loop was busy);
- ``AsyncWriter, 10k-row chunks``: the same with ``chunk_rows=10_000``
  (the default is 50,000): a chunk's encoding holds the GIL for less;
- ``AsyncWriter, CPU inline``: the same with ``offload`` replaced by a
  direct call, i.e. what the worker threads save the loop;
- ``idle loop``: the ticker alone for a second, the timer's own lateness;
- ``GIL-free thread + server``: the ticker beside C work that never holds
  the GIL and a query keeping the server busy, both cores busy for 3 s:
  what the machine alone costs a loop (scheduling), pmstore's floor here;
- ``pure-Python thread``: beside a thread running bytecode for 3 s: the
  interpreter's switch interval (5 ms), what any GIL-holding thread costs.

Reports, per method, the best of ``--repeat`` runs for rows/s and the worst
for lateness (max, p99, ticks later than 5 ms) and for the garbage
collector's longest pass during the run (``gc max``: a pause of whichever
thread ran it; each run starts after a full collection), with the Python,
numpy, psycopg versions, the CPU and the server. Server: ``PMSTORE_DSN``, else a throwaway embedded
TimescaleDB (fsync off unless ``--fsync``), as ``run.py`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import sys
import threading
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np
import psycopg
from bench_data import PriceData
from bench_server import BenchDB, open_server

import pmstore.writer_async as writer_module
from pmstore import AsyncWriter, Writer, migrate

INLINE = "AsyncWriter, CPU inline"
FLOOR = "GIL-free thread + server"
PYTHON = "pure-Python thread"
FLOOR_S = 3.0
SMALL_CHUNKS = "AsyncWriter, 10k-row chunks"
TICK_S = 0.001
IDLE_S = 1.0


@dataclass(frozen=True, slots=True)
class Run:
    method: str
    seconds: float
    rows: int
    ticks: int = 0
    max_late_ms: float = math.nan
    p99_late_ms: float = math.nan
    median_late_ms: float = math.nan
    over_5ms: int = 0
    gc_passes: int = 0
    gc_max_ms: float = math.nan

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.rows else 0.0


def json_columns(data: PriceData) -> dict[str, Any]:
    """The batch as a collector has it after ``json.loads``: lists, distinct str ids, floats."""
    c = data.columns
    volume = [None if math.isnan(v) else v for v in c["volume_24h"].tolist()]
    text = json.dumps(
        {"token_id": c["token_id"].tolist(), "price": c["price"].tolist(), "volume_24h": volume}
    )
    parsed: dict[str, Any] = json.loads(text)
    parsed["ts"] = c["ts"]  # timestamps: parsed by the collector into datetime64
    return parsed


async def ticker(stop: asyncio.Event, lateness: list[float]) -> None:
    """Sleep ``TICK_S`` at a time until ``stop``; record how late each wake-up is."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + TICK_S
        await asyncio.sleep(TICK_S)
        lateness.append(loop.time() - due)


class GcPauses:
    """The garbage collector's passes while active: how many, and the longest (wall time)."""

    def __init__(self) -> None:
        self.count = 0
        self.longest = 0.0
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.count += 1
            self.longest = max(self.longest, time.perf_counter() - self._began)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


async def with_ticker(
    work: Callable[[], Awaitable[int]],
) -> tuple[int, float, list[float], GcPauses]:
    """Run ``work()`` beside the ticker: (rows, seconds, lateness of each tick, GC passes).

    A full collection first: the caller's freshly built columns (three
    lists of a million items) would otherwise be traversed by the first
    young-generation passes during the run (~25 ms each, in whichever thread
    allocates next), which is the caller's cost, not the writer's. A
    long-running collector's data is old by the time it is written."""
    gc.collect()
    stop, lateness = asyncio.Event(), list[float]()
    ticking = asyncio.create_task(ticker(stop, lateness))
    await asyncio.sleep(0)
    started = time.perf_counter()
    with GcPauses() as pauses:
        try:
            rows = await work()
        finally:
            seconds = time.perf_counter() - started
            stop.set()
            await ticking
    return rows, seconds, lateness, pauses


def summarize(
    method: str, rows: int, seconds: float, lateness: list[float], pauses: GcPauses
) -> Run:
    late = np.array(lateness) * 1e3
    return Run(
        method,
        seconds,
        rows,
        ticks=len(late),
        max_late_ms=float(late.max()) if late.size else math.nan,
        p99_late_ms=float(np.percentile(late, 99)) if late.size else math.nan,
        median_late_ms=float(np.median(late)) if late.size else math.nan,
        over_5ms=int((late > 5.0).sum()),
        gc_passes=pauses.count,
        gc_max_ms=pauses.longest * 1e3,
    )


async def inline(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``offload`` without the thread: the CPU work runs on the loop."""
    return function(*args, **kwargs)


def run_sync(dsn: str, columns: dict[str, Any]) -> Run:
    started = time.perf_counter()
    with Writer(dsn) as writer:
        result = writer.copy_prices(columns)
    return Run("Writer", time.perf_counter() - started, result.rows_written)


def run_async(
    method: str, dsn: str, columns: dict[str, Any], *, threads: bool, **options: Any
) -> Run:
    async def write() -> int:
        async with AsyncWriter(dsn, **options) as writer:
            return (await writer.copy_prices(columns)).rows_written

    # The inline variant swaps the AsyncWriter's thread hop for a direct call.
    swap = contextlib.nullcontext() if threads else patch.object(writer_module, "offload", inline)
    with swap:
        rows, seconds, lateness, pauses = asyncio.run(with_ticker(write))
    return summarize(method, rows, seconds, lateness, pauses)


def run_idle() -> Run:
    async def idle() -> int:
        await asyncio.sleep(IDLE_S)
        return 0

    rows, seconds, lateness, pauses = asyncio.run(with_ticker(idle))
    return summarize("idle loop", rows, seconds, lateness, pauses)


def _gil_free_work(stop: threading.Event) -> None:
    data = os.urandom(1 << 22)
    while not stop.is_set():
        zlib.compress(data, 6)  # C work that releases the GIL throughout


def _python_work(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))  # bytecode: the GIL is held but for switches


def _busy_server(dsn: str, stop: threading.Event) -> None:
    with psycopg.connect(dsn) as conn:
        while not stop.is_set():
            conn.execute("SELECT count(*) FROM generate_series(1, 3000000)").fetchone()


def run_reference(method: str, dsn: str, *, python: bool, seconds: float = FLOOR_S) -> Run:
    """The ticker beside a thread that is not pmstore's, for ``seconds``: with ``python``,
    pure-Python work (the GIL's own switch interval); else C work that never holds the
    GIL, with the server busy on the other core (what the machine alone costs a loop)."""
    stop = threading.Event()
    work = _python_work if python else _gil_free_work
    threads = [threading.Thread(target=work, args=(stop,))]
    if not python:
        threads.append(threading.Thread(target=_busy_server, args=(dsn, stop)))

    async def busy() -> int:
        for thread in threads:
            thread.start()
        await asyncio.sleep(seconds)
        stop.set()
        for thread in threads:
            await asyncio.to_thread(thread.join)
        return 0

    rows, seconds, lateness, pauses = asyncio.run(with_ticker(busy))
    return summarize(method, rows, seconds, lateness, pauses)


def best(runs: list[Run]) -> Run:
    """Fastest run's time, worst lateness over all runs of the method."""
    fastest = min(runs, key=lambda r: r.seconds)
    worst = max(runs, key=lambda r: r.max_late_ms if not math.isnan(r.max_late_ms) else -1)
    return Run(
        fastest.method,
        fastest.seconds,
        fastest.rows,
        ticks=worst.ticks,
        max_late_ms=worst.max_late_ms,
        p99_late_ms=max(r.p99_late_ms for r in runs),
        median_late_ms=max(r.median_late_ms for r in runs),
        over_5ms=max(r.over_5ms for r in runs),
        gc_passes=max(r.gc_passes for r in runs),
        gc_max_ms=max(r.gc_max_ms for r in runs),
    )


def render(results: dict[str, Any]) -> str:
    lines = [
        f"AsyncWriter event-loop lateness, {results['rows']:,} price rows from JSON "
        f"({results['tokens']:,} tokens), best of {results['repeat']} (lateness: worst)",
        f"machine: {results['machine']}",
        f"server: {results['server']}",
        "",
        f"{'method':<26}{'seconds':>9}{'rows/s':>12}{'vs Writer':>10}"
        f"{'ticks':>8}{'max ms':>9}{'p99 ms':>9}{'p50 ms':>9}{'>5 ms':>7}{'gc max':>8}",
    ]
    base = next(r for r in results["runs"] if r["method"] == "Writer")
    for r in results["runs"]:
        ratio = base["seconds"] / r["seconds"] if r["rows"] else math.nan
        rate = r["rows"] / r["seconds"] if r["rows"] else math.nan
        lines.append(
            f"{r['method']:<26}{r['seconds']:>9.2f}{rate:>12,.0f}{ratio:>10.2f}"
            f"{r['ticks']:>8}{r['max_late_ms']:>9.2f}{r['p99_late_ms']:>9.2f}"
            f"{r['median_late_ms']:>9.2f}{r['over_5ms']:>7}{r['gc_max_ms']:>8.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="rows (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=None, help="runs of each method (2)")
    parser.add_argument("--smoke", action="store_true", help="20,000 rows, once: it runs")
    parser.add_argument("--fsync", action="store_true", help="embedded server with fsync on")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    args, _ = parser.parse_known_args(argv)  # run.py passes its own flags too
    args.rows = args.rows or (20_000 if args.smoke else 1_000_000)
    args.repeat = args.repeat or (1 if args.smoke else 2)
    tokens = min(8_000, args.rows)
    print(f"generating {args.rows:,} rows...", file=sys.stderr)
    columns = json_columns(PriceData.generate(args.rows, tokens=tokens))
    with open_server(fsync=args.fsync) as server:
        migrate(server.dsn)
        db = BenchDB(server.dsn)
        try:
            if db.non_empty_tables():
                print("refusing to run: the data tables hold rows (they are TRUNCATEd)")
                return 2
            table = db.public("price_snapshots", "")
            methods: dict[str, Callable[[], Run]] = {
                "Writer": lambda: run_sync(server.dsn, columns),
                "AsyncWriter": lambda: run_async("AsyncWriter", server.dsn, columns, threads=True),
                SMALL_CHUNKS: lambda: run_async(
                    SMALL_CHUNKS, server.dsn, columns, threads=True, chunk_rows=10_000
                ),
                INLINE: lambda: run_async(INLINE, server.dsn, columns, threads=False),
            }
            runs: dict[str, list[Run]] = {name: [] for name in methods}
            for _ in range(args.repeat):
                for name, method in methods.items():
                    db.reset(table)
                    print(f"{name}...", file=sys.stderr)
                    run = method()
                    assert run.rows == args.rows, run
                    runs[name].append(run)
            idle = [run_idle() for _ in range(args.repeat)]
            span = 0.3 if args.smoke else FLOOR_S
            floor = [
                run_reference(FLOOR, server.dsn, python=False, seconds=span)
                for _ in range(args.repeat)
            ]
            python = [
                run_reference(PYTHON, server.dsn, python=True, seconds=span)
                for _ in range(args.repeat)
            ]
            db.reset(table)
            info = str(db.info())
        finally:
            db.close()
    results: dict[str, Any] = {
        "rows": args.rows,
        "tokens": tokens,
        "repeat": args.repeat,
        "machine": (
            f"{cpu_model()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, numpy {np.__version__}, "
            f"psycopg {psycopg.__version__}, switch interval {sys.getswitchinterval() * 1e3:g} ms"
        ),
        "server": f"{info} ({server.source}; fsync {'on' if args.fsync else 'off'})",
        "runs": [
            {**_asdict(best(r)), "rows_per_second": best(r).rows_per_second}
            for r in [*runs.values(), idle, floor, python]
        ],
    }
    print(render(results))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"bench-async-{time.strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps(results, indent=2))
        print(f"JSON: {path}")
    return 0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _asdict(run: Run) -> dict[str, Any]:
    return {name: getattr(run, name) for name in Run.__dataclass_fields__}


if __name__ == "__main__":
    sys.exit(main())
