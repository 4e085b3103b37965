"""pmstore ingest benchmarks: pmstore's Writer against the server's own COPY and the Python peers.

    python benchmarks/run.py [--rows N] [--day] [--smoke] [--out DIR]
                             [--scenarios 1,2,...] [--repeat N] [--fsync]
                             [--refresh [--refresh-minutes N]]
    python benchmarks/run.py --reads [--smoke] [--rounds N] [--no-8k] [--out DIR]
    python benchmarks/run.py --async [--rows N] [--smoke] [--repeat N] [--fsync] [--out DIR]

``--reads`` runs only ``bench_reads.py`` (its own options, see its ``--help``):
panels, the research loop, export and coverage against the server's own COPY TO
file, ADBC and connectorx.

``--async`` runs only ``bench_async.py``: AsyncWriter's event-loop lateness
while it writes a 1M-row batch, and AsyncWriter vs Writer rows/s.

Server: ``PMSTORE_DSN`` (a database whose data tables are empty: the
benchmarks TRUNCATE them), else a throwaway embedded TimescaleDB with
pmstore's durable settings and fsync off (``--fsync`` turns it on). The
schema is migrated with ``pmstore.migrations.apply``.

Scenarios (``--scenarios``, default all):

1. encode only, no database
2. price snapshots into the full schema: every method on the same rows
3. the same into a hypertable without indexes
4. order-book snapshots (1-160 levels a side, string prices/sizes)
5. trades with 5% repeated fills (copy_trades)
6. the planned day: 8,000 tokens a minute, 60 minute batches (``--day``: 1,440)
7. peak RSS of a fresh writer process over 1M rows in 10k-row batches

``--refresh`` adds (alone: instead of the scenarios) the planned day with
and without the aggregates' refresh recording (``bench_refresh.py``; needs
the Community edition, e.g. ``PMSTORE_PG_BINDIR``).

The one-off investigation of index, collation, sorting, batch-size, connection
and WAL choices was dropped; its findings are in benchmarks/README.md. Prints a
table; writes
``bench-<time>.json`` (every figure, machine, server, settings) and
``bench-<time>.png`` into ``bench-results/`` or ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench_async
import bench_frames
import bench_refresh
import bench_report
import bench_scenarios as scen
import numpy as np
import psycopg
from bench_data import (
    BOOK_COLUMNS,
    PRICE_COLUMNS,
    BookData,
    PriceData,
    book_files,
    price_files,
    summarize_prices,
)
from bench_methods import ServerCopy, book_methods, price_methods
from bench_server import BenchDB, open_server

from pmstore import __version__, migrate
from pmstore.errors import PmstoreError

ALL_SCENARIOS = (1, 2, 3, 4, 5, 6, 7)


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much data each scenario uses."""

    rows: int  # scenarios 2/3
    books: int
    trades: int
    trade_batch: int
    day_minutes: int
    day_tokens: int
    rss_batches: int
    rss_batch_rows: int

    @classmethod
    def of(cls, args: argparse.Namespace) -> Sizes:
        if args.smoke:
            rows = args.rows or 5_000
            return cls(rows, 200, 1_000, 250, 1_440 if args.day else 3, 500, 5, 1_000)
        rows = args.rows or 1_000_000
        return cls(
            rows=rows,
            books=max(rows // 20, 100),
            trades=max(rows // 10, 1_000),
            trade_batch=10_000,
            day_minutes=1_440 if args.day else 60,
            day_tokens=8_000,
            rss_batches=100,
            rss_batch_rows=10_000,
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="pmstore ingest benchmarks",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument(
        "--rows", type=int, default=None, help="rows for scenarios 2/3 (default 1,000,000)"
    )
    parser.add_argument(
        "--day", action="store_true", help="scenario 6 over all 1,440 minutes (default 60)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: checks that everything runs"
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="output folder")
    parser.add_argument("--scenarios", default=None, help="comma-separated numbers, e.g. 2,3,6")
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs of each method in scenarios 2-4, the best counts (default 2; --smoke 1)",
    )
    parser.add_argument("--fsync", action="store_true", help="embedded server with fsync on")
    parser.add_argument(
        "--async",
        dest="async_writer",
        action="store_true",
        help="only the AsyncWriter event-loop benchmark (bench_async.py)",
    )
    parser.add_argument(
        "--frames",
        action="store_true",
        help="only the data-out benchmarks (bench_frames.py: reads, export, coverage)",
    )
    parser.add_argument(
        "--reads",
        action="store_true",
        help="only the reads benchmark (bench_reads.py: panels, loop, export, coverage)",
    )
    parser.add_argument(
        "--refresh", action="store_true", help="the day with/without refresh recording"
    )
    parser.add_argument(
        "--refresh-minutes", type=int, default=1_440, help="minutes of each --refresh day"
    )
    parser.add_argument(
        "--ingest",
        action="store_true",
        help="run the recorded-archive scenario instead (bench_ingest.py; --rows = messages)",
    )
    args = parser.parse_args(argv)
    if args.scenarios is None:
        args.selected = () if args.refresh else ALL_SCENARIOS
    else:
        try:
            args.selected = tuple(sorted({int(x) for x in args.scenarios.split(",") if x.strip()}))
        except ValueError:
            parser.error(f"--scenarios takes numbers like 1,2,6, not {args.scenarios!r}")
        if not set(args.selected) <= set(ALL_SCENARIOS):
            parser.error(f"scenarios are numbered {ALL_SCENARIOS[0]}..{ALL_SCENARIOS[-1]}")
    if args.rows is not None and args.rows < 1:
        parser.error("--rows must be positive")
    if args.repeat is None:
        args.repeat = 1 if args.smoke else 2
    if args.repeat < 1:
        parser.error("--repeat must be positive")
    return args


def checkout() -> str | None:
    """The pmstore commit measured (``+dirty`` when pmstore/ has uncommitted changes)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "pmstore", "migrations"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    info: dict[str, Any] = {
        "cpu_model": model,
        "logical_cores": os.cpu_count(),
        "memory_gib": memory / 2**30,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "psycopg": psycopg.__version__,
        "pmstore": __version__,
        "pmstore_commit": checkout(),
        "loadavg_start": list(os.getloadavg()),
    }
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
    except ImportError:
        info["physical_cores"] = None
    return info


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    if "--frames" in given:  # its own options: see bench_frames.py --help
        return bench_frames.main([a for a in given if a != "--frames"])
    if "--reads" in given:  # its own options: see bench_reads.py --help
        import bench_reads

        return bench_reads.main([a for a in given if a != "--reads"])
    args = parse_args(argv)
    if args.async_writer:
        return bench_async.main(sys.argv[1:] if argv is None else argv)
    if args.ingest:
        import bench_ingest

        messages = args.rows or (2_000 if args.smoke else 200_000)
        return bench_ingest.main(["--messages", str(messages)] + ["--fsync"] * args.fsync)
    sizes = Sizes.of(args)
    started = time.perf_counter()
    stamp = datetime.now(UTC)
    results: dict[str, Any] = {
        "schema": "pmstore-bench/1",
        "started_at": stamp.isoformat(timespec="seconds"),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "sizes": asdict(sizes),
        "machine": machine(),
        "scenarios": {},
    }
    if results["machine"]["loadavg_start"][0] > 0.5 * (os.cpu_count() or 1):
        scen.log(
            f"warning: load average {results['machine']['loadavg_start'][0]:.2f} at start: "
            "figures may be low"
        )
    files_dir = Path(tempfile.mkdtemp(prefix="pmstore-bench-files-"))
    files_dir.chmod(0o755)  # the server's OS user reads the files
    try:
        with open_server(fsync=args.fsync) as server:
            scen.log(f"server: {server.source}")
            migrate(server.dsn)
            db = BenchDB(server.dsn)
            busy = db.non_empty_tables()
            if busy:
                db.close()
                scen.log(
                    f"refusing to run: {', '.join(busy)} already hold rows and the benchmarks "
                    "TRUNCATE them; point PMSTORE_DSN at a scratch database"
                )
                return 2
            try:
                reads, why = db.server_reads_files(files_dir)
                info = db.info()
                results["server"] = {
                    "source": server.source,
                    "description": str(info),
                    "postgres_version": info.postgres_version,
                    "timescaledb_version": info.timescaledb_version,
                    "edition": info.edition,
                    "license": info.license,
                    "settings": db.settings(),
                    "note": server.note,
                    "superuser": db.superuser,
                    "server_reads_files": reads,
                    "server_reads_files_note": why
                    if reads
                    else f"no ({why}): file bytes are streamed FROM STDIN",
                }
                run_all(args, sizes, db, files_dir, reads, results)
            finally:  # leave the database as found: empty tables, no bench_* schemas
                db.drop_bench_schemas()
                db.reset(
                    db.public("price_snapshots", ""),
                    db.public("orderbook_snapshots", ""),
                    db.public("trades", ""),
                )
                db.close()
    except (PmstoreError, psycopg.Error) as exc:
        scen.log(f"benchmark failed: {exc}")
        return 1
    finally:
        shutil.rmtree(files_dir, ignore_errors=True)

    results["machine"]["loadavg_end"] = list(os.getloadavg())
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
    results["duration_s"] = time.perf_counter() - started
    results["targets"] = bench_report.targets(results) if args.selected else []
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"bench-{stamp:%Y%m%d-%H%M%S}" + ("-smoke" if args.smoke else "")
    json_path, png_path = args.out / f"{name}.json", args.out / f"{name}.png"
    results["files"] = {"json": str(json_path), "chart": str(png_path)}
    charted = bench_report.write_chart(results, png_path)
    if not charted:
        results["files"]["chart"] = None
    bench_report.write_json(results, json_path)
    print(bench_report.render(results))
    if "refresh" in results["scenarios"]:
        print(bench_refresh.render(results["scenarios"]["refresh"]))
    print(
        f"\nJSON: {json_path}"
        + (
            f"\nchart: {png_path}"
            if charted
            else "\nchart: none (no matplotlib, or nothing to plot)"
        )
    )
    print(f"total {results['duration_s']:.0f} s")
    return 0


def run_all(
    args: argparse.Namespace,
    sizes: Sizes,
    db: BenchDB,
    files_dir: Path,
    server_reads: bool,
    results: dict[str, Any],
) -> None:
    """Generate the data sets the selected scenarios need, then run them in order."""
    selected = set(args.selected)
    out = results["scenarios"]
    prices = books = None
    if selected & {1, 2, 3}:
        scen.log(f"generating {sizes.rows:,} price snapshots ...")
        prices = PriceData.generate(sizes.rows)
    if selected & {1, 4}:
        scen.log(f"generating {sizes.books:,} order books ...")
        books = BookData.generate(sizes.books)
    if 1 in selected:
        assert prices is not None and books is not None
        out["encode"] = scen.encode(prices, books)
    if selected & {2, 3}:
        assert prices is not None
        scen.log("preparing the price rows in every input form (CSV, binary, records, tuples) ...")
        files = price_files(db, prices, files_dir, "prices")
        _ = prices.rows, prices.records
        binary = ServerCopy(files.binary, "binary", PRICE_COLUMNS, prices.n, server_reads)
        csv = ServerCopy(files.csv, "csv", PRICE_COLUMNS, prices.n, server_reads)
        methods = price_methods(binary, csv)
        if 2 in selected:  # target (a) is against the same rows pre-sorted by (token_id, ts)
            sorted_files = price_files(db, prices.sorted(), files_dir, "prices-sorted")
            sorted_copy = ServerCopy(
                sorted_files.binary, "binary", PRICE_COLUMNS, prices.n, server_reads
            )
            sorted_files.csv.unlink()
            target = db.public("price_snapshots", "price_snapshots")
            out["prices_full"] = scen.prices(
                db,
                target,
                price_methods(binary, csv, sorted_binary=sorted_copy),
                prices,
                "2. Price snapshots -> full schema "
                '(price_snapshots: hypertable, (token_id COLLATE "C", ts DESC) index)',
                lambda: summarize_prices(db, target.qualified),
                args.repeat,
            )
            bench_report.add_ratios(out["prices_full"])
            sorted_files.binary.unlink()
        if 3 in selected:
            bare = db.price_table("bench_noindex", "no index", collation="C", indexes=[])
            out["prices_noindex"] = scen.prices(
                db,
                bare,
                methods,
                prices,
                "3. Price snapshots -> the same hypertable without any index "
                "(bench_noindex.price_snapshots)",
                lambda: summarize_prices(db, bare.qualified),
                args.repeat,
            )
            bench_report.add_ratios(out["prices_noindex"])
        files.csv.unlink()
        files.binary.unlink()
    if 4 in selected:
        assert books is not None
        scen.log("preparing the order books in every input form ...")
        bfiles = book_files(db, books, files_dir)
        tfiles = book_files(db, books, files_dir, texts=True)
        _ = books.rows, books.json_rows, books.text_batch
        out["orderbooks"] = scen.orderbooks(
            db,
            book_methods(
                ServerCopy(bfiles.binary, "binary", BOOK_COLUMNS, books.n, server_reads),
                ServerCopy(bfiles.csv, "csv", BOOK_COLUMNS, books.n, server_reads),
                ServerCopy(tfiles.binary, "binary", BOOK_COLUMNS, books.n, server_reads),
            ),
            books,
            args.repeat,
        )
    if 5 in selected:
        out["trades"] = scen.trades(db, sizes.trades, sizes.trade_batch)
    if 6 in selected:
        out["day"] = scen.day(db, sizes.day_minutes, sizes.day_tokens)
    if 7 in selected:
        out["rss"] = scen.rss(db, sizes.rss_batches, sizes.rss_batch_rows)
    if args.refresh:
        minutes = min(args.refresh_minutes, 9) if args.smoke else args.refresh_minutes
        out["refresh"] = bench_refresh.run(db, minutes, sizes.day_tokens)


if __name__ == "__main__":
    sys.exit(main())
