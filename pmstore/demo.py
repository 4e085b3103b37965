"""``pmstore demo``: pmstore's main job on synthetic data, end to end, with a summary.

Applies the migrations, generates ``minutes`` of realistic Polymarket data
(``tokens`` price snapshots every minute, order books of realistic depth for
a share of the tokens, trades with ~5% duplicates, the markets, a few
resolutions including a 50/50), ingests it minute by minute through the
Writer with a progress bar, refreshes the continuous aggregates and
compresses the data where the edition allows, then prints rows per table,
ingest speed and batch latency, table and index sizes, hourly candles of one
token and the compression ratio.

The simulated period ends at the start of the current hour (or ``--end``),
so running the demo twice within the same hour writes nothing the second time
(every batch is already in the ingest log). On a server given by DSN the demo
refuses a database that already holds price snapshots unless forced: it
writes synthetic rows and compresses chunks.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from tqdm import tqdm

from pmstore import migrations
from pmstore.edition import features, server_info
from pmstore.errors import ConfigurationError
from pmstore.reader import Reader
from pmstore.status import collect
from pmstore.synthetic import MarketSimulator, token_ids
from pmstore.writer import Writer

__all__ = ["run_demo"]

BOOK_SHARE = 0.05
"""Share of the tokens whose order book is snapshotted each minute."""
TRADES_PER_MINUTE_PER_1K_TOKENS = 50


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else 0.0


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.1f} MB"


def run_demo(
    dsn: str,
    where: str,
    *,
    minutes: int = 60,
    tokens: int = 8000,
    seed: int = 7,
    progress: bool = True,
    end: datetime | None = None,
    require_empty: bool = False,
    out: Any = None,
) -> int:
    """Run the demo against ``dsn`` and print its summary to ``out`` (stdout). Returns 0.

    The simulated period ends at ``end`` (default: the start of the current
    hour, UTC). With ``require_empty`` the demo refuses a database whose
    ``price_snapshots`` already holds rows (it writes synthetic data and
    compresses chunks: keep it away from real data). Raises
    ConfigurationError for bad arguments or a non-empty database, other
    PmstoreError subclasses (migration, write, connection) on failure.
    Costs about 10-20 seconds for the default hour of 8,000 tokens on 2 cores.
    """
    out = out or sys.stdout
    if minutes < 1 or tokens < 2:
        raise ConfigurationError("the demo needs --minutes >= 1 and --tokens >= 2")

    def say(text: str = "") -> None:
        print(text, file=out)

    applied = migrations.apply(dsn)
    for warning in dict.fromkeys(applied.warnings):
        print(f"warning: {warning}", file=sys.stderr)

    if require_empty:
        with psycopg.connect(dsn) as conn:
            if conn.execute("SELECT EXISTS (SELECT 1 FROM price_snapshots)").fetchone() == (True,):
                raise ConfigurationError(
                    "this database already holds price snapshots and the demo writes synthetic "
                    "data into it: use an empty database or the embedded server, or pass --force"
                )
    if end is None:
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    elif end.tzinfo is None:
        raise ConfigurationError("the demo's end time must be timezone-aware (e.g. ...Z)")
    start = end - timedelta(minutes=minutes)
    ids = token_ids(tokens, seed=seed)
    sim = MarketSimulator(ids, seed=seed)
    books_per_minute = max(1, int(tokens * BOOK_SHARE))
    trades_per_minute = max(1, tokens * TRADES_PER_MINUTE_PER_1K_TOKENS // 1000)

    price_latency: list[float] = []
    written = {"prices": 0, "orderbooks": 0, "trades": 0, "duplicates": 0, "skipped_batches": 0}
    started = time.perf_counter()
    with Writer(dsn) as writer:
        writer.upsert_markets(sim.markets())
        writer.upsert_resolutions(sim.resolutions(4))
        for minute_index in tqdm(
            range(minutes), desc="demo", unit=" min", disable=not progress, file=sys.stderr
        ):
            minute = start + timedelta(minutes=minute_index)
            result = writer.copy_prices(sim.prices(minute))
            price_latency.append(result.seconds)
            written["prices"] += result.rows_written
            written["skipped_batches"] += int(result.already_written)
            result = writer.copy_orderbooks(sim.orderbooks(minute, books_per_minute))
            written["orderbooks"] += result.rows_written
            result = writer.copy_trades(sim.trades(minute, trades_per_minute))
            written["trades"] += result.rows_written
            written["duplicates"] += result.duplicates_skipped
    elapsed = time.perf_counter() - started

    with psycopg.connect(dsn, autocommit=True) as conn:
        info = server_info(conn)
        have = features(conn)
        aggregates = have.get("continuous_aggregates")
        if aggregates and aggregates.available:
            for view in ("price_candles_1h", "trade_volume_1h"):
                conn.execute(
                    f"CALL refresh_continuous_aggregate('{view}', "
                    "%s::timestamptz, %s::timestamptz)",
                    (start - timedelta(hours=1), end + timedelta(hours=1)),
                )
        compression = have.get("compression")
        if compression and compression.available:
            conn.execute(
                "SELECT compress_chunk(c, if_not_compressed => true) "
                "FROM show_chunks('price_snapshots') c"
            )
        state = collect(conn, dsn)
        token = str(ids[0])
        candles = Reader(conn).candles(token, start - timedelta(hours=1), end + timedelta(hours=1))

    say(f"pmstore demo on {where}")
    say(f"  {info}")
    say(
        f"  simulated {minutes} minute(s) from {start:%Y-%m-%d %H:%M} UTC, "
        f"{tokens:,} tokens a minute"
    )
    say("")
    price_seconds = sum(price_latency)
    rows_per_s = written["prices"] / price_seconds if price_seconds > 0 else 0.0
    say("ingest (this run)")
    say(f"  price snapshots   {written['prices']:>12,} rows")
    say(f"  order books       {written['orderbooks']:>12,} rows")
    say(
        f"  trades            {written['trades']:>12,} rows "
        f"({written['duplicates']:,} duplicates skipped)"
    )
    if written["skipped_batches"]:
        say(
            f"  {written['skipped_batches']} price batch(es) were already written by an earlier run"
        )
    say(
        f"  wall time         {elapsed:>12.1f} s for all tables (data generation included), "
        f"{minutes * 60 / elapsed if elapsed > 0 else 0:,.0f}x real time"
    )
    say(
        f"  price batches     {rows_per_s:,.0f} rows/s in copy_prices, "
        f"p50 {_percentile(price_latency, 50) * 1000:,.1f} ms, "
        f"p99 {_percentile(price_latency, 99) * 1000:,.1f} ms a batch"
    )
    say("")
    say("tables (rows in the database)")
    for h in state.hypertables:
        say(
            f"  {h.name:<20} {h.rows:>12,} rows  {h.chunks:>3} chunk(s)  "
            f"total {_mb(h.total_bytes):>10}  indexes {_mb(h.index_bytes):>10}"
        )
    for name, rows in state.table_rows.items():
        say(f"  {name:<20} {rows:>12,} rows")
    say("")
    source = "continuous aggregate" if aggregates and aggregates.available else "computed live"
    say(f"hourly candles of token {token[:12]}...{token[-6:]} ({source})")
    say(f"  {'bucket (UTC)':<17} {'open':>7} {'high':>7} {'low':>7} {'close':>7}")
    for c in candles:
        say(
            f"  {c.bucket:%Y-%m-%d %H:%M} {c.open:>7.4f} {c.high:>7.4f} "
            f"{c.low:>7.4f} {c.close:>7.4f}"
        )
    say("")
    prices = next((h for h in state.hypertables if h.name == "price_snapshots"), None)
    if prices and prices.before_compression_bytes and prices.after_compression_bytes:
        ratio = prices.before_compression_bytes / prices.after_compression_bytes
        say(
            f"compression of price_snapshots: {_mb(prices.before_compression_bytes)} -> "
            f"{_mb(prices.after_compression_bytes)} ({ratio:.1f}x)"
        )
    else:
        detail = compression.detail if compression else "not recorded"
        say(f"compression: not available here ({detail})")
    return 0
