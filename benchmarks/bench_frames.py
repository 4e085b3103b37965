"""Data out: bulk reads into arrow/polars/pandas, Parquet export, coverage, vs the server.

    python benchmarks/bench_frames.py [--rows N] [--coverage-tokens N] [--coverage-minutes N]
    python benchmarks/run.py --frames [same options]

1. Bulk read of ``--rows`` price snapshots (8,000 tokens a minute, from
   ``pmstore.synthetic``): the same SELECT fetched every way, best of
   ``--repeat``. Baseline: the server's own ``COPY (SELECT ...) TO 'file'
   (FORMAT binary)``; also psycopg reading the COPY bytes without decoding
   them, psycopg's row-by-row ``fetchall`` (binary), and ADBC's
   ``adbc-driver-postgresql`` (Arrow-native, C++) when installed.
2. ``export_table`` of the same rows into Parquet, against the server's COPY TO
   file of the export's own (sorted) query.
3. ``coverage`` of ``--coverage-tokens`` tokens over ``--coverage-minutes``
   minutes (default a day: 11.5M rows) with outages cut out, against the
   server's ``count(*)`` of the same rows.

Runs on ``PMSTORE_DSN`` (a scratch database: its tables are emptied) or a
throwaway embedded server (fsync off). Prints a table and writes JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from bench_data import DAY_START, PriceData, minute
from bench_server import BenchDB, open_server

from pmstore import Writer, __version__, migrate
from pmstore._read.coverage import coverage
from pmstore.export import EXPORT_SQL, export_table
from pmstore.frames.copy_decoding import decode_copy
from pmstore.frames.outbound import copy_statement, fetch_frame, fetch_table, query_schema
from pmstore.synthetic import MarketSimulator

Conn = psycopg.Connection[tuple[Any, ...]]

READ_SQL = """
    SELECT ts, token_id, price, volume_24h
    FROM price_snapshots
    WHERE ts >= %(start)s AND ts < %(end)s
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def best_of(repeat: int, run: Callable[[], int]) -> tuple[float, int]:
    """The fastest of ``repeat`` runs (seconds) and the rows the last run returned."""
    times, rows = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        rows = run()
        times.append(time.perf_counter() - started)
    return min(times), rows


def server_copy_to_file(conn: Conn, sql: str, params: dict[str, Any], folder: Path) -> int:
    path = folder / "out.bin"
    with psycopg.ClientCursor(conn) as cur:  # COPY takes no server-side parameters
        cur.execute(f"COPY ({sql}) TO %(path)s (FORMAT binary)", {**params, "path": str(path)})
        rows = cur.rowcount
    path.unlink(missing_ok=True)
    return rows


def raw_copy_bytes(conn: Conn, sql: str, params: dict[str, Any]) -> int:
    rows = -1  # header and trailer ride in messages of their own or with the first row
    with conn.cursor() as cur, cur.copy(copy_statement(sql), params) as copy:
        for _ in copy:
            rows += 1
    return rows


def psycopg_fetchall(conn: Conn, sql: str, params: dict[str, Any]) -> int:
    with conn.cursor(binary=True) as cur:
        return len(cur.execute(sql, params).fetchall())


def adbc_read(dsn: str, sql: str, params: dict[str, Any]) -> Callable[[], int] | None:
    try:
        import adbc_driver_postgresql.dbapi as adbc
    except ImportError:
        return None
    with psycopg.connect(dsn) as conn, psycopg.ClientCursor(conn) as cur:
        literal = cur.mogrify(sql, params)
    uri = dsn if dsn.startswith("postgres") else None
    if uri is None:
        return None

    def run() -> int:
        with adbc.connect(uri) as c, c.cursor() as cur:
            cur.execute(literal)
            return int(cur.fetch_arrow_table().num_rows)

    return run


def write_minutes(conn: Conn, tokens: int, minutes: int, *, outages: bool) -> int:
    """``minutes`` minute batches of ``tokens`` prices from DAY_START; with ``outages``
    1% of the tokens miss 30 minutes at noon and 0.1% of all rows are dropped."""
    sim = MarketSimulator(tokens, seed=11)
    rng = np.random.default_rng(3)
    written = 0
    with Writer(conn) as writer:
        for k in range(minutes):
            batch = sim.prices(minute(k))
            if outages:
                keep = rng.random(len(batch)) >= 0.001
                if 720 <= k < 750:
                    keep[: tokens // 100] = False
                batch = batch.select(keep)
            written += writer.copy_prices(batch).rows_written
            if k % 120 == 119:
                log(f"  ... {k + 1} minutes, {written:,} rows")
    return written


def rate(rows: int, seconds: float) -> float:
    return rows / seconds if seconds else float("nan")


def bench_reads(
    conn: Conn, dsn: str, rows: int, repeat: int, folder: Path, can_write: bool
) -> dict[str, Any]:
    log(f"bulk reads: writing {rows:,} rows")
    data = PriceData.generate(rows)
    with Writer(conn) as writer:
        for part in data.split(100_000):
            writer.copy_prices(part.columns)
    conn.execute("VACUUM ANALYZE price_snapshots")
    params = {"start": DAY_START, "end": DAY_START + timedelta(days=1)}
    methods: list[tuple[str, Callable[[], int] | None]] = [
        (
            "server COPY TO file, binary (baseline)",
            (lambda: server_copy_to_file(conn, READ_SQL, params, folder)) if can_write else None,
        ),
        ("psycopg COPY TO STDOUT, bytes only", lambda: raw_copy_bytes(conn, READ_SQL, params)),
        (
            "pmstore fetch_table -> pyarrow.Table",
            lambda: fetch_table(conn, READ_SQL, params).num_rows,
        ),
        (
            "pmstore -> polars.DataFrame",
            lambda: fetch_frame(conn, READ_SQL, params, "polars").height,
        ),
        ("pmstore -> pandas.DataFrame", lambda: len(fetch_frame(conn, READ_SQL, params, "pandas"))),
        ("psycopg fetchall (binary, row by row)", lambda: psycopg_fetchall(conn, READ_SQL, params)),
        ("ADBC adbc-driver-postgresql fetch_arrow_table", adbc_read(dsn, READ_SQL, params)),
    ]
    with conn.cursor() as cur:
        schema = query_schema(cur, READ_SQL, params)
        with cur.copy(copy_statement(READ_SQL), params) as copy:
            messages = [bytes(m) for m in copy]
    decode_s, decoded = best_of(repeat, lambda: decode_copy(messages, schema).num_rows)
    out: dict[str, Any] = {"rows": rows, "methods": {}}
    for name, run in methods:
        if run is None:
            out["methods"][name] = None
            log(f"  {name}: skipped")
            continue
        seconds, got = best_of(repeat, run)
        assert got == rows, (name, got, rows)
        out["methods"][name] = {"seconds": seconds, "rows_per_s": rate(rows, seconds)}
        log(f"  {name}: {seconds:.3f} s, {rate(rows, seconds):,.0f} rows/s")
    out["decode_only"] = {
        "seconds": decode_s,
        "rows_per_s": rate(decoded, decode_s),
        "bytes": sum(map(len, messages)),
    }
    log(f"  decode_copy alone: {decode_s:.3f} s, {rate(decoded, decode_s):,.0f} rows/s")

    log("export: Parquet of the same rows")
    export_params = {"start": DAY_START, "end": DAY_START + timedelta(days=1)}
    target = folder / "export"
    exp_s, exp_rows = best_of(
        repeat,
        lambda: (
            export_table(
                conn, "price_snapshots", DAY_START, DAY_START + timedelta(days=1), target
            ).rows
        ),
    )
    size = sum(p.stat().st_size for p in target.rglob("*.parquet"))
    out["export"] = {"seconds": exp_s, "rows_per_s": rate(exp_rows, exp_s), "parquet_bytes": size}
    if can_write:
        base_s, _ = best_of(
            repeat,
            lambda: server_copy_to_file(conn, EXPORT_SQL["price_snapshots"], export_params, folder),
        )
        out["export"]["baseline_seconds"] = base_s
        out["export"]["baseline"] = "server COPY (export query, ORDER BY) TO file, binary"
    log(
        f"  export_table: {exp_s:.3f} s, {rate(exp_rows, exp_s):,.0f} rows/s, "
        f"{size / 1e6:.1f} MB Parquet"
    )
    shutil.rmtree(target, ignore_errors=True)
    return out


def bench_coverage(conn: Conn, tokens: int, minutes: int) -> dict[str, Any]:
    conn.execute("TRUNCATE price_snapshots, pmstore_ingest_log")
    log(f"coverage: writing {tokens:,} tokens x {minutes:,} minutes (with outages)")
    started = time.perf_counter()
    rows = write_minutes(conn, tokens, minutes, outages=True)
    write_s = time.perf_counter() - started
    started = time.perf_counter()
    conn.execute("VACUUM ANALYZE price_snapshots")
    vacuum_s = time.perf_counter() - started
    ids = MarketSimulator(tokens, seed=11).tokens.tolist()
    start, end = DAY_START, DAY_START + timedelta(minutes=minutes)
    count_sql = "SELECT count(*) FROM price_snapshots WHERE ts >= %s AND ts < %s"

    def count() -> int:
        row = conn.execute(count_sql, (start, end)).fetchone()
        return int(row[0]) if row else 0

    count_s, counted = best_of(2, count)
    assert counted == rows
    report = None

    def run() -> int:
        nonlocal report
        report = coverage(conn, ids, start, end)
        return len(report.gaps)

    cov_s, gaps = best_of(2, run)
    assert report is not None
    log(f"  {rows:,} rows written in {write_s:.0f} s, VACUUM {vacuum_s:.0f} s")
    log(
        f"  count(*) baseline {count_s:.2f} s; coverage {cov_s:.2f} s: {gaps:,} gaps, "
        f"ratio {report.ratio:.4f}"
    )
    return {
        "tokens": tokens,
        "minutes": minutes,
        "rows": rows,
        "write_seconds": write_s,
        "vacuum_seconds": vacuum_s,
        "count_seconds": count_s,
        "coverage_seconds": cov_s,
        "rows_per_s": rate(rows, cov_s),
        "gaps": gaps,
        "missing_steps": report.missing_steps,
        "ratio": report.ratio,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="rows of the bulk read (default 1M)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each read, the best counts")
    parser.add_argument("--coverage-tokens", type=int, default=8_000)
    parser.add_argument("--coverage-minutes", type=int, default=1_440)
    parser.add_argument("--no-coverage", action="store_true", help="skip the coverage part")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args, _ = parser.parse_known_args(argv)
    if args.smoke:
        args.rows, args.repeat, args.coverage_tokens, args.coverage_minutes = 20_000, 1, 200, 60
    stamp = datetime.now(UTC)
    results: dict[str, Any] = {
        "schema": "pmstore-bench-frames/1",
        "started_at": stamp.isoformat(timespec="seconds"),
        "pmstore": __version__,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_start": list(os.getloadavg()),
        },
    }
    for lib in ("numpy", "pyarrow", "polars", "pandas", "psycopg", "adbc_driver_postgresql"):
        try:
            results["machine"][lib] = __import__(lib).__version__
        except (ImportError, AttributeError):
            results["machine"][lib] = None
    folder = Path(tempfile.mkdtemp(prefix="pmstore-bench-frames-"))
    folder.chmod(0o777)  # the server's OS user writes the COPY TO files here
    try:
        with open_server(fsync=False) as server:
            migrate(server.dsn)
            db = BenchDB(server.dsn)
            busy = db.non_empty_tables()
            results["server"] = {
                "source": server.source,
                "description": str(db.info()),
                "note": server.note,
            }
            db.close()
            if busy:
                log(f"refusing to run: {', '.join(busy)} hold rows; use a scratch database")
                return 2
            with psycopg.connect(server.dsn, autocommit=True) as conn:
                try:
                    can_write = True
                    try:
                        server_copy_to_file(conn, "SELECT 1", {}, folder)
                    except psycopg.Error as exc:
                        can_write = False
                        results["server"]["copy_to_file"] = str(exc).splitlines()[0]
                    results["reads"] = bench_reads(
                        conn, server.dsn, args.rows, args.repeat, folder, can_write
                    )
                    if not args.no_coverage:
                        results["coverage"] = bench_coverage(
                            conn, args.coverage_tokens, args.coverage_minutes
                        )
                finally:
                    conn.execute("TRUNCATE price_snapshots, pmstore_ingest_log")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    results["machine"]["loadavg_end"] = list(os.getloadavg())
    print(render(results))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"frames-{stamp:%Y%m%d-%H%M%S}{'-smoke' if args.smoke else ''}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nJSON: {path}")
    return 0


def render(results: dict[str, Any]) -> str:
    reads = results["reads"]
    methods = reads["methods"]
    baseline = methods.get("server COPY TO file, binary (baseline)")
    base = (
        baseline["rows_per_s"]
        if baseline
        else methods["psycopg COPY TO STDOUT, bytes only"]["rows_per_s"]
    )
    lines = [
        f"pmstore {results['pmstore']} frames benchmark, {results['started_at']}",
        f"server: {results['server']['description']} ({results['server']['source']})",
        f"machine: {results['machine']}",
        "",
        f"| {reads['rows']:,} price rows, one SELECT | rows/s | ratio |",
        "|---|---:|---:|",
    ]
    for name, figure in methods.items():
        if figure is None:
            lines.append(f"| {name} | skipped | |")
        else:
            lines.append(
                f"| {name} | {figure['rows_per_s']:,.0f} | {figure['rows_per_s'] / base:.2f}x |"
            )
    dec = reads["decode_only"]
    lines.append(
        f"| decode_copy alone (bytes in memory) | {dec['rows_per_s']:,.0f} "
        f"| {dec['rows_per_s'] / base:.2f}x |"
    )
    exp = reads["export"]
    line = (
        f"\nexport_table -> Parquet: {exp['rows_per_s']:,.0f} rows/s, "
        f"{exp['parquet_bytes'] / 1e6:.1f} MB"
    )
    if "baseline_seconds" in exp:
        line += f"; {exp['baseline_seconds'] / exp['seconds']:.2f}x of {exp['baseline']}"
    lines.append(line)
    cov = results.get("coverage")
    if cov:
        lines.append(
            f"coverage of {cov['tokens']:,} tokens x {cov['minutes']:,} minutes "
            f"({cov['rows']:,} rows): "
            f"{cov['coverage_seconds']:.2f} s ({cov['rows_per_s']:,.0f} rows/s), "
            f"{cov['gaps']:,} gaps; "
            f"server count(*) of the same rows {cov['count_seconds']:.2f} s "
            f"(coverage/count {cov['coverage_seconds'] / cov['count_seconds']:.1f}x)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
