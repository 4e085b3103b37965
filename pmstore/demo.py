"""``pmstore demo``: pmstore's main job on synthetic data, end to end, as a report.

Applies the migrations, generates ``minutes`` of realistic Polymarket data
(``tokens`` price snapshots every minute, order books of realistic depth for
a share of the tokens, trades with ~5% duplicates, the markets, a few
resolutions including a 50/50), writes it minute by minute through the
Writer, refreshes the continuous aggregates and compresses the data where the
edition allows, then reads back what a summary needs: rows per table, ingest
speed and batch latency, table and index sizes, hourly candles of one token
and the compression ratio. ``run_demo`` returns all of it as a ``DemoReport``;
``pmstore demo`` prints it (``pmstore.cli.demo``).

The simulated period ends at the start of the current hour (or ``end``),
so running the demo twice within the same hour writes nothing the second time
(every batch is already in the ingest log). On a server given by DSN the demo
refuses a database that already holds price snapshots unless forced: it
writes synthetic rows and compresses chunks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import psycopg

from pmstore import migrations
from pmstore._read.queries import Candle
from pmstore._utc import HOUR, aware_utc, floor_hour
from pmstore._write.retry import DEFAULT_RETRY_FOR
from pmstore.edition import Feature, ServerInfo, features, server_info
from pmstore.errors import ConfigurationError
from pmstore.reader import Reader
from pmstore.refresh import REFRESH_SQL
from pmstore.status import Status, collect
from pmstore.synthetic import MarketSimulator, token_ids
from pmstore.writer import Writer

__all__ = [
    "DEFAULT_MINUTES",
    "DEFAULT_SEED",
    "DEFAULT_TOKENS",
    "DemoReport",
    "DemoWrites",
    "run_demo",
]

DEFAULT_MINUTES: Final = 60
DEFAULT_TOKENS: Final = 8000
DEFAULT_SEED: Final = 7
BOOK_SHARE: Final = 0.05
"""Share of the tokens whose order book is snapshotted each minute."""
TRADES_PER_MINUTE_PER_1K_TOKENS: Final = 50
RESOLUTIONS: Final = 4
"""Resolutions the demo writes (the simulator makes one of them a 50/50)."""


@dataclass(slots=True)
class DemoWrites:
    """What the demo's Writer calls wrote."""

    prices: int = 0
    orderbooks: int = 0
    trades: int = 0
    duplicates: int = 0
    """Trades already stored, skipped."""
    price_batches_already_written: int = 0
    price_seconds: list[float] = field(default_factory=list)
    """Each price batch's ``WriteResult.seconds`` (one batch a minute)."""

    def price_latency(self, percentile: float) -> float:
        """The price batches' latency at ``percentile`` (0-100), in seconds; 0 without any."""
        if not self.price_seconds:
            return 0.0
        return float(np.percentile(np.asarray(self.price_seconds), percentile))

    @property
    def price_rows_per_second(self) -> float:
        """Price rows written per second of ``copy_prices`` (0 when nothing was written)."""
        seconds = sum(self.price_seconds)
        return self.prices / seconds if seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class DemoReport:
    """What ``run_demo`` did and found: ``pmstore demo`` prints it."""

    where: str
    server: ServerInfo
    start: datetime
    minutes: int
    tokens: int
    writes: DemoWrites
    seconds: float
    """Wall time of the writes, data generation included."""
    status: Status
    """The database after the demo (tables, sizes, compression)."""
    token: str
    """The token whose candles are shown."""
    candles: list[Candle]
    aggregated: bool
    """Whether the candles come from the continuous aggregate (else computed live)."""
    compression: Feature | None
    warnings: tuple[str, ...] = ()
    """The migrations' server warnings (features this edition lacks)."""

    @property
    def real_time_factor(self) -> float:
        """Simulated time per wall-clock time of the writes."""
        return self.minutes * 60 / self.seconds if self.seconds > 0 else 0.0


def run_demo(
    dsn: str,
    where: str,
    *,
    minutes: int = DEFAULT_MINUTES,
    tokens: int = DEFAULT_TOKENS,
    seed: int = DEFAULT_SEED,
    end: datetime | None = None,
    require_empty: bool = False,
    progress: Callable[[int, int], object] | None = None,
    retry_for: float | None = DEFAULT_RETRY_FOR,
) -> DemoReport:
    """Run the demo against ``dsn`` (described as ``where``); return its report.

    The simulated period ends at ``end`` (default: the start of the current
    hour, UTC). With ``require_empty`` the demo refuses a database whose
    ``price_snapshots`` already holds rows (it writes synthetic data and
    compresses chunks: keep it away from real data). ``progress(done,
    minutes)`` is called after each simulated minute. ``retry_for`` is the
    Writer's retry budget in seconds (see ``pmstore.writer.Writer``). Raises
    ConfigurationError for bad arguments or a non-empty database, other
    PmstoreError subclasses (migration, write, connection) on failure. Costs
    one Writer call per table and minute (see benchmarks/README.md).
    """
    if minutes < 1 or tokens < 2:
        raise ConfigurationError("the demo needs --minutes >= 1 and --tokens >= 2")
    end = floor_hour(datetime.now(UTC)) if end is None else aware_utc("end", end)
    applied = migrations.apply(dsn)
    if require_empty:
        _require_empty(dsn)
    start = end - timedelta(minutes=minutes)
    ids = token_ids(tokens, seed=seed)
    sim = MarketSimulator(ids, seed=seed)
    started = time.perf_counter()
    writes = _write(dsn, sim, start, minutes, tokens, progress, retry_for)
    seconds = time.perf_counter() - started
    with psycopg.connect(dsn, autocommit=True) as conn:
        have = features(conn)
        aggregates = have.get("continuous_aggregates")
        aggregated = bool(aggregates and aggregates.available)
        compression = have.get("compression")
        _finish(conn, start, end, aggregated, bool(compression and compression.available))
        token = str(ids[0])
        return DemoReport(
            where=where,
            server=server_info(conn),
            start=start,
            minutes=minutes,
            tokens=tokens,
            writes=writes,
            seconds=seconds,
            status=collect(conn, dsn),
            token=token,
            candles=Reader(conn).candles(token, start - HOUR, end + HOUR),
            aggregated=aggregated,
            compression=compression,
            warnings=tuple(dict.fromkeys(applied.warnings)),
        )


def _require_empty(dsn: str) -> None:
    """ConfigurationError when ``price_snapshots`` already holds rows."""
    with psycopg.connect(dsn) as conn:
        if conn.execute("SELECT EXISTS (SELECT 1 FROM price_snapshots)").fetchone() == (True,):
            raise ConfigurationError(
                "this database already holds price snapshots and the demo writes synthetic "
                "data into it: use an empty database or the embedded server, or pass --force"
            )


def _write(
    dsn: str,
    sim: MarketSimulator,
    start: datetime,
    minutes: int,
    tokens: int,
    progress: Callable[[int, int], object] | None,
    retry_for: float | None,
) -> DemoWrites:
    """The markets, a few resolutions, then every minute's prices, books and trades."""
    books_per_minute = max(1, int(tokens * BOOK_SHARE))
    trades_per_minute = max(1, tokens * TRADES_PER_MINUTE_PER_1K_TOKENS // 1000)
    writes = DemoWrites()
    with Writer(dsn, retry_for=retry_for) as writer:
        writer.upsert_markets(sim.markets())
        writer.upsert_resolutions(sim.resolutions(RESOLUTIONS))
        for k in range(minutes):
            minute = start + timedelta(minutes=k)
            result = writer.copy_prices(sim.prices(minute))
            writes.price_seconds.append(result.seconds)
            writes.prices += result.rows_written
            writes.price_batches_already_written += int(result.already_written)
            result = writer.copy_orderbooks(sim.orderbooks(minute, books_per_minute))
            writes.orderbooks += result.rows_written
            result = writer.copy_trades(sim.trades(minute, trades_per_minute))
            writes.trades += result.rows_written
            writes.duplicates += result.duplicates_skipped
            if progress is not None:
                progress(k + 1, minutes)
    return writes


def _finish(
    conn: psycopg.Connection[tuple[object, ...]],
    start: datetime,
    end: datetime,
    aggregated: bool,
    compressed: bool,
) -> None:
    """Refresh the aggregates over the period and compress the price chunks, where the
    edition has them (an autocommit connection)."""
    if aggregated:
        for view in ("price_candles_1h", "trade_volume_1h"):
            conn.execute(REFRESH_SQL, {"view": view, "start": start - HOUR, "end": end + HOUR})
    if compressed:
        conn.execute(
            "SELECT compress_chunk(c, if_not_compressed => true) "
            "FROM show_chunks('price_snapshots') c"
        )
