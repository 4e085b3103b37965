"""``pmstore record`` at production-like rates against the simulator: CPU, memory, latency.

    flock -x /tmp/pmstore-cpu.lock .venv/bin/python benchmarks/bench_record.py \\
        [--markets 4000] [--rate 300] [--seconds 120] [--shard-size 200]

The simulator (``pmstore simulate``, its own process) lists ``--markets``
binary markets (two tokens each: 8,000 tokens by default) and emits
``--rate`` random events per second over all of them (price changes
carrying both tokens, trades with their books, tick-size changes): the
"hundreds of price_change per second" of the issue. Each measurement runs in
a fresh child process, one after the other, on the same simulator:

1. **baseline**: a bare aiohttp client, the same shards (``--shard-size``
   tokens per socket, connects 100 ms apart), the same initial frames and
   text PINGs, that only counts the frames it receives: the floor cost of
   taking these frames off the sockets in Python.
2. **recorder**: ``pmstore.recorder.Recorder`` on every token
   (archive + deriver + database through the AsyncWriter, order-book and
   price snapshots every 60 s).

Both wait until every token's first book arrived, then measure
``--seconds``: process CPU seconds per 1,000 frames (user + system),
frames per second, and for the recorder the peak RSS of its process
(``ru_maxrss``, the whole run), receipt-to-commit latency (a frame's
receive time to the commit of the batch holding it; p50/p99 over the
frames of the window), rows written, archive bytes per hour, DB lag at
the end. Targets (issue 24, item 8): peak RSS at most 300 MB.

Server: ``PMSTORE_DSN``, else a throwaway embedded server (fsync off, as
in the other benchmarks). Name the machine with the figures: they are
measured with the simulator and PostgreSQL on the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_server import open_server

from pmstore import migrations


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--markets", type=int, default=4000, help="binary markets (2 tokens each)")
    p.add_argument("--rate", type=float, default=300.0, help="simulator events per second")
    p.add_argument("--seconds", type=float, default=120.0, help="measured window")
    p.add_argument("--shard-size", type=int, default=200)
    p.add_argument("--phase", choices=("baseline", "recorder"), help=argparse.SUPPRESS)
    p.add_argument("--urls", help=argparse.SUPPRESS)
    p.add_argument("--dsn", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[k]


# -- child: the baseline --------------------------------------------------------------


async def _tokens(gamma_url: str) -> list[str]:
    import aiohttp

    tokens: list[str] = []
    cursor: str | None = None
    async with aiohttp.ClientSession() as session:
        while True:
            params = {"limit": "100", "closed": "false"}
            if cursor:
                params["after_cursor"] = cursor
            async with session.get(f"{gamma_url}/markets/keyset", params=params) as resp:
                page = await resp.json()
            for m in page["markets"]:
                tokens.extend(json.loads(m["clobTokenIds"]))
            cursor = page.get("next_cursor")
            if not cursor:
                return tokens


async def baseline(args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    """Receive and count frames on plain aiohttp sockets (no archive, no parsing)."""
    import aiohttp

    tokens = await _tokens(urls["gamma"])
    shards = [tokens[k : k + args.shard_size] for k in range(0, len(tokens), args.shard_size)]
    frames = 0
    books_pending = len(tokens)
    first_books = asyncio.Event()
    session = aiohttp.ClientSession()

    async def serve(assets: list[str]) -> None:
        nonlocal frames, books_pending
        ws = await session.ws_connect(urls["ws"], heartbeat=None, max_msg_size=64 << 20)
        await ws.send_str(orjson.dumps({"assets_ids": assets, "type": "market",
                                        "initial_dump": True,
                                        "custom_feature_enabled": True}).decode())  # fmt: skip

        async def ping() -> None:
            while True:
                await asyncio.sleep(10)
                await ws.send_str("PING")

        pinger = asyncio.create_task(ping())
        try:
            async for msg in ws:
                frames += 1
                if books_pending > 0 and msg.type is aiohttp.WSMsgType.TEXT:
                    books_pending -= msg.data.count('"event_type":"book"')
                    if books_pending <= 0:
                        first_books.set()
        finally:
            pinger.cancel()

    tasks = []
    for assets in shards:
        tasks.append(asyncio.create_task(serve(assets)))
        await asyncio.sleep(0.1)
    await first_books.wait()
    f0, c0, t0 = frames, cpu_seconds(), time.monotonic()
    await asyncio.sleep(args.seconds)
    f1, c1, t1 = frames, cpu_seconds(), time.monotonic()
    for task in tasks:
        task.cancel()
    await session.close()
    return {
        "frames": f1 - f0,
        "seconds": t1 - t0,
        "cpu": c1 - c0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# -- child: the recorder ----------------------------------------------------------------


async def recorder(args: argparse.Namespace, urls: dict[str, str], dsn: str) -> dict[str, Any]:
    from pmstore.recorder import CommitInfo, Recorder, RecorderConfig

    window: list[int] = [0, 0]  # receive-time bounds (ns) of the measured frames
    latencies: list[float] = []

    def on_commit(info: CommitInfo) -> None:
        lo, hi = window
        if not lo:
            return
        for t in info.frame_times:
            if lo <= t <= (hi or t):
                latencies.append((info.committed_ns - t) / 1e9)

    with tempfile.TemporaryDirectory(prefix="pmstore-bench-archive-") as tmp:
        config = RecorderConfig(
            archive_dir=Path(tmp),
            dsn=dsn,
            gamma_url=urls["gamma"],
            clob_url=urls["clob"],
            ws_url=urls["ws"],
            shard_size=args.shard_size,
        )
        async with Recorder(config, on_commit=on_commit) as rec:
            await rec.ready.wait()
            # Every first book in (99%: at these rates some book is always waiting for a
            # reseed after a tick-size change).
            await rec.until(
                lambda: rec.stats.tokens > 0 and rec.stats.valid_books >= 0.99 * rec.stats.tokens
            )
            s0, c0, t0 = rec.stats, cpu_seconds(), time.monotonic()
            window[0] = time.time_ns()
            await asyncio.sleep(args.seconds)
            window[1] = time.time_ns()
            s1, c1, t1 = rec.stats, cpu_seconds(), time.monotonic()
            await rec.until(lambda: rec.stats.committed_records >= s1.records)  # the window's
    frames = s1.frames - s0.frames
    return {
        "tokens": s1.tokens,
        "sockets": s1.sockets,
        "frames": frames,
        "bytes": s1.bytes - s0.bytes,
        "seconds": t1 - t0,
        "cpu": c1 - c0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "latency_p50": percentile(latencies, 0.50),
        "latency_p99": percentile(latencies, 0.99),
        "latency_frames": len(latencies),
        "rows": {t: s1.rows_written[t] - s0.rows_written.get(t, 0) for t in s1.rows_written},
        "reconnects": s1.reconnects,
        "open_gaps": s1.open_gaps,
        "archive_bytes": s1.archive_bytes - s0.archive_bytes,
        "db_lag_end": s1.db_lag,
    }


# -- the parent ---------------------------------------------------------------------------


def child(phase: str, args: argparse.Namespace, urls: dict[str, str], dsn: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--phase", phase, "--urls", json.dumps(urls), "--dsn", dsn,
           "--seconds", str(args.seconds), "--shard-size", str(args.shard_size)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{phase} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.phase:
        urls = json.loads(args.urls)
        if args.phase == "baseline":
            out = asyncio.run(baseline(args, urls))
        else:
            out = asyncio.run(recorder(args, urls, args.dsn))
        print(json.dumps(out))
        return 0
    sim = subprocess.Popen(
        [sys.executable, "-m", "pmstore", "simulate", "--markets", str(args.markets),
         "--rate", str(args.rate), "--seed", "1", "--keepalive-timeout", "60"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert sim.stdout is not None
        sim.stdout.readline()
        line = sim.stdout.readline().split()
        urls = {"gamma": line[line.index("--gamma-url") + 1],
                "clob": line[line.index("--clob-url") + 1],
                "ws": line[line.index("--ws-url") + 1]}  # fmt: skip
        with open_server(fsync=False) as server:
            migrations.apply(server.dsn)
            machine = f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores"
            print(f"machine: {machine}, Python {platform.python_version()}")
            print(f"server: {server.source}; {server.note}")
            print(
                f"simulator: {args.markets} markets ({2 * args.markets} tokens), "
                f"{args.rate:g} events/s; window {args.seconds:g} s; shard size {args.shard_size}"
            )
            base = child("baseline", args, urls, server.dsn)
            rec = child("recorder", args, urls, server.dsn)
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    for name, r in (("baseline (aiohttp receive only)", base), ("recorder", rec)):
        ms_per_k = 1e6 * r["cpu"] / max(1, r["frames"])
        print(
            f"{name}: {r['frames']:,} frames in {r['seconds']:.1f} s "
            f"({r['frames'] / r['seconds']:.0f}/s), CPU {r['cpu']:.1f} s = "
            f"{ms_per_k:.0f} ms per 1,000 frames, peak RSS {r['peak_rss_mb']:.0f} MB"
        )
    print(
        f"recorder: {rec['tokens']} tokens on {rec['sockets']} sockets; receipt to commit "
        f"p50 {rec['latency_p50']:.2f} s, p99 {rec['latency_p99']:.2f} s over "
        f"{rec['latency_frames']:,} frames; reconnects {rec['reconnects']}"
    )
    hours = rec["seconds"] / 3600
    frames = max(1, rec["frames"])
    print(
        f"recorder: rows {rec['rows']}; archive {rec['archive_bytes'] / 1e6:.1f} MB in the "
        f"window ({rec['archive_bytes'] / frames:.0f} B per frame compressed, "
        f"{rec['bytes'] / frames:.0f} B raw; {rec['archive_bytes'] / 1e6 / hours:.0f} MB/h "
        f"at this rate); DB lag at the end {rec['db_lag_end']}"
    )
    ok = rec["peak_rss_mb"] <= 300
    print(f"target peak RSS <= 300 MB: {'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
