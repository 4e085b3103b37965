"""``pmstore ingest`` on a realistic recorded WebSocket archive: rate, per-stage profile, jobs, RSS.

    python benchmarks/bench_ingest.py [--messages 200000] [--rss-gb 0] [--jobs 2] [--keep DIR]
    python benchmarks/run.py --ingest [...]   (the same, from the benchmark runner)

The file is generated here (never committed) into a temporary folder: JSON
lines of 80% ``price_change`` messages in the current shape (1-5 entries,
each with ``best_bid``/``best_ask``; string prices and sizes), 15% ``book``
snapshots of ~60 levels (worst-first, as Polymarket sends them), 5%
``last_trade_price``; distinct 74-78-digit token ids (two per market),
``0x`` + 64-hex condition ids, millisecond timestamps as strings.

Stages, each a pass over the same file in this process (same run, same data):
``read`` (sources' line reader, lines as bytes), ``+decode+adapt``
(``columnar.convert_line``: the hot kinds decoded by msgspec into typed
structs, then appended to column lists) and ``batch`` (column lists into
validated, sorted batches), the last two timed apart within one pass;
``read + orjson parse`` is the general path's
reading for comparison, and the whole ``pmstore.ingest.ingest_file`` into an emptied
database (``write`` = the rest): once as ``pmstore ingest`` does it
(``reader_process=None``: a file of this size is read by reader
processes, two by default on 2 cores or more), once with one reader
process (``readers=1``, the baseline of the two), once with
``reader_process=False`` (the library's default) (read here, written by a
writer thread). Baselines: orjson parse-only and
``json.loads`` of the same lines (and msgspec's typed decode alone); the old per-record adapters
(``pmstore.polymarket.convert``) on the first 20,000 messages.
Then ``pmstore ingest`` itself runs on the file in a fresh process (what a
user runs: a small process, whose reader process forks cheaply, where this
one has grown large running the stages), with the rate it reports for the
file and the whole command's wall time, start-up included. Last, the
targets' ratio in ``--rounds`` rounds: orjson's parse-only pass right
before each ingest (``ingest_file`` here, then ``pmstore ingest``), whose
medians are robust to this VM's speed drifting between the stages.
Each whole ingest also reports its CPU seconds split between this process,
the reader process and the postgres processes (the write stage's server side),
and how much of the cores they kept busy. The first whole ingest into the
freshly migrated database is a warm-up, reported apart; the table's runs
come after it.
``--jobs N`` splits the file into N parts and ingests them with
``ingest_parallel`` against one process on the same parts. ``--rss-gb G``
generates a G GB (decompressed) gzip archive and measures ``pmstore ingest``'s
peak RSS on it with ``/usr/bin/time -v`` (the largest single process), and
the proportional set size (Pss) summed over the process tree (the ingest and
its reader process) sampled from /proc every 0.1 s, with and without the
reader process, then the targets on it in ``--rounds`` rounds of orjson's
parse-only pass over that gzip file (ISA-L decompression included, as
``pmstore ingest`` reads it) right before ``pmstore ingest`` (then deletes it).

Server: ``PMSTORE_DSN``, else a throwaway embedded server (fsync off).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import orjson
import psycopg
from bench_server import open_server
from psycopg import sql
from ws_archive import Archive

from pmstore import migrate
from pmstore.ingest import FlushPolicy, ingest_file
from pmstore.ingest._parallel import ingest_parallel
from pmstore.ingest._sources import GzipReader, open_source
from pmstore.polymarket import convert
from pmstore.polymarket._columnar import Columns, convert_line
from pmstore.polymarket._hot_events import decode_line
from pmstore.writer import Writer

ROOT = Path(__file__).resolve().parent.parent
CLI_RATE = re.compile(r"\(([\d,]+) payloads/s\)")
"""The rate in ``pmstore ingest``'s summary line of a file."""
TABLES = ("price_snapshots", "orderbook_snapshots", "trades", "markets", "resolutions")
TS_VERSION = "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
TS_VERSION = "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
RESET = (
    "TRUNCATE price_snapshots, orderbook_snapshots, trades, markets, resolutions, "
    "pmstore_ingest_log, pmstore_ingest_cursors, pmstore_ingest_files"
)


# -- stages ------------------------------------------------------------------------------


def _lines(path: Path, *, raw: bool) -> Any:
    with open_source(path) as source:
        yield from source.items(raw_lines=raw)


def stage_read(path: Path, *, parse: bool) -> float:
    started = time.perf_counter()
    for _ in _lines(path, raw=not parse):
        pass
    return time.perf_counter() - started


def stage_adapt(path: Path) -> tuple[float, float]:
    """Lines into column lists as ``pmstore ingest`` reads them (``convert_line``: hot
    kinds decoded by msgspec into typed structs), then into batches: (seconds in all,
    seconds of those in building batches)."""
    started = time.perf_counter()
    batching = 0.0
    columns = Columns()
    for item in _lines(path, raw=True):
        convert_line(item.payload, columns)
        if columns.record_count() >= 50_000:
            batching += _batches(columns)
            columns = Columns()
    batching += _batches(columns)
    return time.perf_counter() - started, batching


def _batches(columns: Columns) -> float:
    started = time.perf_counter()
    columns.price_batch().validated().in_index_order()
    columns.orderbook_batch().validated()
    columns.trade_batch().validated()
    return time.perf_counter() - started


def raw_parse(path: Path, loads: Any) -> float:
    started = time.perf_counter()
    with path.open("rb") as f:
        for line in f:
            loads(line)
    return time.perf_counter() - started


def raw_parse_archive(path: Path, loads: Any) -> tuple[float, int]:
    """(seconds, lines) of ``loads`` over every line of a gzip or plain file, read as fast as
    Python reads it: ISA-L's gzip reader (the one ``pmstore ingest`` uses) in 1 MB chunks,
    each split at newlines."""
    started = time.perf_counter()
    n = 0
    with path.open("rb") as raw:
        stream = GzipReader(fileobj=raw, mode="rb") if raw.peek(2)[:2] == b"\x1f\x8b" else raw  # type: ignore[no-untyped-call]
        tail = b""
        while chunk := stream.read(1 << 20):
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            for line in lines:
                loads(line)
            n += len(lines)
        if tail.strip():
            loads(tail)
            n += 1
    return time.perf_counter() - started, n


def archive_rounds(dsn: str, path: Path, rounds: int) -> None:
    """The targets on a multi-GB archive: ``rounds`` rounds of orjson's parse-only pass over
    the archive (decompression included: ``raw_parse_archive``) right before
    ``pmstore ingest`` of it in a fresh process (its default: two reader processes), then
    ``pmstore ingest --readers 1`` (the baseline of the two); prints each round and the
    medians."""
    ratios: list[float] = []
    rates: list[float] = []
    gains: list[float] = []
    print("multi-GB archive rounds (orjson parse-only of the same gzip file right before each "
          "pmstore ingest; targets >= 60,000 msgs/s and >= 0.27x):")  # fmt: skip
    for k in range(max(rounds, 1)):
        secs, n = raw_parse_archive(path, orjson.loads)
        rate, wall, client, server = cli_ingest(dsn, path)
        one, _, _, _ = cli_ingest(dsn, path, "--readers", "1")
        rates.append(rate)
        ratios.append(rate / (n / secs))
        gains.append(rate / one)
        print(f"  round {k + 1}: orjson {n / secs:,.0f} msgs/s; pmstore ingest {rate:,.0f} msgs/s "
              f"= {ratios[-1]:.2f}x (wall {wall:.1f} s with start-up; CPU s: the command and "
              f"its reader processes {client:.1f}, server {server:.1f}); --readers 1: "
              f"{one:,.0f} msgs/s")  # fmt: skip
    print(f"  median: {statistics.median(rates):,.0f} msgs/s, {statistics.median(ratios):.2f}x; "
          f"two reader processes {statistics.median(gains):.2f}x one")  # fmt: skip


def old_adapters(path: Path, limit: int) -> float:
    started = time.perf_counter()
    with path.open("rb") as f:
        for n, line in enumerate(f):
            if n >= limit:
                break
            convert(json.loads(line))
    return time.perf_counter() - started


def reset(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(RESET)
        conn.execute("CHECKPOINT")


def counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        query = "SELECT count(*) FROM {}"
        return {
            t: conn.execute(sql.SQL(query).format(sql.Identifier(t))).fetchone()[0]  # type: ignore[index]
            for t in TABLES
        }


@dataclass(frozen=True)
class CpuSplit:
    """CPU seconds of one run: this process, its reaped children (the reader process),
    and the postgres processes on this machine (0 when the server is elsewhere)."""

    main: float
    reader: float
    server: float

    def line(self, wall: float) -> str:
        total = self.main + self.reader + self.server
        return (f"CPU s: main {self.main:.2f}, reader process {self.reader:.2f}, server "
                f"{self.server:.2f}; {total:.2f} in all = {total / wall:.2f} of the "
                f"{os.cpu_count()} cores over {wall:.2f} s")  # fmt: skip


def _postgres_cpu() -> float:
    """CPU seconds of every live postgres process, their reaped children included."""
    ticks = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if not Path(f"/proc/{pid}/comm").read_text().startswith("postgres"):
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _cpu_now() -> tuple[float, float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime, _postgres_cpu()


def full_ingest(
    dsn: str,
    path: Path,
    policy: FlushPolicy,
    reader_process: bool | None = None,
    readers: int | None = None,
) -> tuple[float, dict[str, int], float, CpuSplit]:
    """(seconds, rows per table, seconds spent writing, CPU split); ``reader_process`` and
    ``readers`` as ``ingest_file``'s."""
    reset(dsn)
    before = _cpu_now()
    started = time.perf_counter()
    with Writer(dsn) as writer:
        summary = ingest_file(
            writer, path, policy=policy, reader_process=reader_process, readers=readers
        )
        took = time.perf_counter() - started
        after = _cpu_now()  # the writer's backend still lives: its CPU is in its own stat
    cpu = CpuSplit(*(a - b for a, b in zip(after, before, strict=True)))
    return took, counts(dsn), summary.write_seconds, cpu


def cli_ingest(dsn: str, path: Path, *flags: str) -> tuple[float, float, float, float]:
    """``pmstore ingest [flags]`` in a fresh process, as a user runs it: (payloads/s it
    reports for the file, wall seconds of the whole command with its start-up, CPU seconds
    of the command and its reader processes together, CPU seconds of the postgres
    processes)."""
    reset(dsn)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = _cpu_now()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pmstore", "ingest", "--no-progress", "--dsn", dsn, *flags,
         str(path)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"pmstore ingest failed: {done.stderr}")
    after = _cpu_now()
    rate = float(CLI_RATE.findall(done.stdout)[-1].replace(",", ""))
    return rate, wall, after[1] - before[1], after[2] - before[2]


def ratio_rounds(dsn: str, path: Path, policy: FlushPolicy, n: int, rounds: int) -> None:
    """The targets' ratio, robust to this VM's drifting speed: ``rounds`` rounds of orjson's
    parse-only pass immediately followed by ``ingest_file`` (reader processes: the default
    two, then one, the baseline of the two), then orjson again and ``pmstore ingest`` in its
    own process, each rate divided by the orjson rate just before it; prints every round
    and the medians."""
    if rounds < 1:
        return
    mine: list[float] = []
    cli: list[float] = []
    gain: list[float] = []
    print("\nratio rounds (orjson parse-only right before each ingest; target >= 0.27x):")
    for k in range(rounds):
        base = n / raw_parse(path, orjson.loads)
        took, _, _, _ = full_ingest(dsn, path, policy, reader_process=True)
        one, _, _, _ = full_ingest(dsn, path, policy, reader_process=True, readers=1)
        base_cli = n / raw_parse(path, orjson.loads)
        cli_rate, _, _, _ = cli_ingest(dsn, path)
        mine.append(n / took / base)
        cli.append(cli_rate / base_cli)
        gain.append(one / took)
        print(f"  round {k + 1}: orjson {base:,.0f}/s, ingest_file {n / took:,.0f}/s = "
              f"{mine[-1]:.2f}x (one reader process: {n / one:,.0f}/s, two {gain[-1]:.2f}x "
              f"that); orjson {base_cli:,.0f}/s, pmstore ingest {cli_rate:,.0f}/s = "
              f"{cli[-1]:.2f}x")  # fmt: skip
    print(f"  median: ingest_file {statistics.median(mine):.2f}x, "
          f"pmstore ingest {statistics.median(cli):.2f}x; two reader processes "
          f"{statistics.median(gain):.2f}x one")  # fmt: skip


def split(path: Path, parts: int) -> list[Path]:
    outs = [path.with_name(f"{path.stem}.part{i}.jsonl") for i in range(parts)]
    handles = [p.open("wb") for p in outs]
    with path.open("rb") as f:
        for n, line in enumerate(f):
            handles[n % parts].write(line)
    for h in handles:
        h.close()
    return outs


def _rss_kb(pid: int) -> int:
    """Proportional resident kB (Pss: shared pages divided among their processes, so the
    sum is the tree's real memory) of ``pid`` and its live descendants (0 when gone)."""
    total = 0
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        total = next((int(x.split()[1]) for x in rollup.splitlines() if x.startswith("Pss:")), 0)
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(_rss_kb(int(c)) for c in children)


def peak_rss(dsn: str, path: Path, *flags: str) -> tuple[float, int, int, str]:
    """(seconds, peak RSS in kB of the process (/usr/bin/time: the largest of it and the
    children it waited for), peak of the sum over the process tree sampled every 0.1 s,
    first stdout line) of ``pmstore ingest`` on ``path``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    proc = subprocess.Popen(
        ["/usr/bin/time", "-v", sys.executable, "-m", "pmstore", "ingest", "--no-progress",
         "--dsn", dsn, *flags, str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    tree = 0
    while proc.poll() is None:  # /usr/bin/time's tree: pmstore ingest and its reader process
        tree = max(tree, _rss_kb(proc.pid))
        time.sleep(0.1)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"pmstore ingest failed: {err}")
    seconds = time.perf_counter() - started
    rss = next(int(line.split(":")[1]) for line in err.splitlines() if "Maximum resident" in line)
    return seconds, rss, tree, out.strip().splitlines()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--jobs", type=int, default=2, help="processes for the --jobs figure")
    parser.add_argument("--rss-gb", type=float, default=0.0, help="also measure RSS on G GB")
    parser.add_argument("--batch-rows", type=int, default=50_000)
    parser.add_argument("--fsync", action="store_true")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved (orjson, ingest) rounds for the ratio"
    )
    args = parser.parse_args(argv)
    policy = FlushPolicy(batch_rows=args.batch_rows)
    cpu = platform.processor() or platform.machine()
    py = platform.python_version()
    print(f"machine: {platform.node()} {cpu}, {os.cpu_count()} cpus, Python {py}, "
          f"orjson {orjson.__version__}, msgspec {msgspec.__version__}, "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="pmstore-bench-ingest-") as tmp:
        path = Path(tmp) / "archive.jsonl"
        started = time.perf_counter()
        with path.open("wb") as out:
            Archive().write(out, messages=args.messages)
        size = path.stat().st_size
        n = args.messages
        took = time.perf_counter() - started
        print(f"generated {n:,} messages, {size / 1e6:.0f} MB in {took:.1f} s")
        t_orjson = raw_parse(path, orjson.loads)
        t_json = raw_parse(path, json.loads)
        t_typed = raw_parse(path, decode_line)
        t_read = stage_read(path, parse=False)
        t_parse = stage_read(path, parse=True)
        t_batch_pass, t_batch = stage_adapt(path)
        limit = min(n, 20_000)
        t_old = old_adapters(path, limit)
        with open_server(fsync=args.fsync) as server:
            migrate(server.dsn)
            with psycopg.connect(server.dsn) as conn:
                version = conn.execute("SELECT version()").fetchone()[0]  # type: ignore[index]
                ts = conn.execute(TS_VERSION).fetchone()[0]  # type: ignore[index]
            print(f"server: {server.source}; {version.split(',')[0]}; TimescaleDB {ts}")
            print(f"settings: {server.note}")
            t_first, _, _, cpu_first = full_ingest(server.dsn, path, policy)  # fresh database
            t_full, rows, t_write, cpu_auto = full_ingest(server.dsn, path, policy)  # as the CLI
            t_one, rows_one, _, cpu_one = full_ingest(
                server.dsn, path, policy, reader_process=True, readers=1
            )
            t_thread, rows_thread, t_write_thread, cpu_thread = full_ingest(
                server.dsn, path, policy, reader_process=False
            )
            assert rows_thread == rows == rows_one, (rows_thread, rows, rows_one)
            cli_rate, cli_wall, cli_client, cli_server = cli_ingest(server.dsn, path)
            assert counts(server.dsn) == rows
            print(f"rows: {rows}")
            rate = {k: n / v for k, v in [("orjson", t_orjson), ("json", t_json), ("full", t_full)]}
            print(f"\n{'stage':<34}{'s':>8}{'msgs/s':>12}{'s per 1M msgs':>16}")
            for label, secs in [
                ("json.loads parse-only (baseline)", t_json),
                ("orjson parse-only (baseline)", t_orjson),
                ("msgspec typed decode-only (hot kinds)", t_typed),
                ("read + orjson parse (sources)", t_parse),
                ("read (sources: chunks, lines)", t_read),
                ("decode + adapt (convert_line)", t_batch_pass - t_batch - t_read),
                ("batch (arrays, checks, sort)", t_batch),
                ("write (main process, overlapped)", t_write),
                ("not overlapped: end - read..batch", t_full - t_batch_pass),
                ("end to end (auto, as pmstore ingest)", t_full),
                ("end to end, one reader process", t_one),
                ("thread path: write (writer thread)", t_write_thread),
                ("thread path: end to end", t_thread),
            ]:
                print(f"{label:<34}{secs:>8.2f}{n / secs:>12,.0f}{secs / n * 1e6:>16.1f}")
            print(
                f"old adapters (convert, pydantic): {limit / t_old:,.0f} msgs/s on {limit:,} msgs"
            )
            print(f"first ingest into the fresh database (not in the table): {n / t_first:,.0f} "
                  f"msgs/s; {cpu_first.line(t_first)}")  # fmt: skip
            print(f"end to end (auto): {cpu_auto.line(t_full)}")
            print(f"one reader process: {cpu_one.line(t_one)}; two: {t_one / t_full:.2f}x "
                  "the rate of one")  # fmt: skip
            print(f"thread path:       {cpu_thread.line(t_thread)}")
            print(f"pmstore ingest (its own process, as a user runs it): {cli_rate:,.0f} msgs/s "
                  f"as it reports for the file = {cli_rate / rate['orjson']:.2f}x orjson; "
                  f"the command in all {cli_wall:.2f} s with its start-up ({n / cli_wall:,.0f} "
                  f"msgs/s); CPU s: the command and its reader process {cli_client:.2f}, "
                  f"server {cli_server:.2f}")  # fmt: skip
            ratio = rate["full"] / rate["orjson"]
            print(f"\nend to end {rate['full']:,.0f} msgs/s = {ratio:.2f}x orjson parse-only "
                  f"({rate['orjson']:,.0f}/s); target >= 60,000 and >= 0.27x; "
                  f"thread path {n / t_thread:,.0f} msgs/s: {t_thread / t_full:.2f}x")  # fmt: skip
            ratio_rounds(server.dsn, path, policy, n, args.rounds)
            if args.jobs > 1:
                parts = split(path, args.jobs)
                reset(server.dsn)
                started = time.perf_counter()
                with Writer(server.dsn) as writer:
                    for part in parts:
                        ingest_file(writer, part, policy=policy)
                one = time.perf_counter() - started
                reset(server.dsn)
                started = time.perf_counter()
                ingest_parallel(server.dsn, parts, args.jobs, policy=policy)
                many = time.perf_counter() - started
                print(f"--jobs {args.jobs} on {args.jobs} parts: {n / many:,.0f} msgs/s against "
                      f"{n / one:,.0f} in one process: {one / many:.2f}x")  # fmt: skip
                for part in parts:
                    part.unlink()
            path.unlink()
            if args.rss_gb > 0:
                big = Path(tmp) / "big.jsonl.gz"
                with gzip.open(big, "wb", compresslevel=1) as out:
                    msgs = Archive(seed=7).write(out, max_bytes=int(args.rss_gb * 1e9))  # type: ignore[arg-type]
                print(f"\nRSS file: {msgs:,} messages, {args.rss_gb:g} GB decompressed, "
                      f"{big.stat().st_size / 1e6:.0f} MB gzip")  # fmt: skip
                for flag in ("--reader-process", "--no-reader-process"):
                    reset(server.dsn)
                    secs, rss, tree, line = peak_rss(server.dsn, big, flag)
                    print(f"pmstore ingest {flag}: {secs:.0f} s ({msgs / secs:,.0f} msgs/s), "
                          f"peak RSS {rss / 1024:.0f} MB (/usr/bin/time: max of the process and "
                          f"its reader), {tree / 1024:.0f} MB Pss of both together (sampled); "
                          f"target <= 300 MB; {line}")  # fmt: skip
                archive_rounds(server.dsn, big, args.rounds)
                big.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
