"""``pmstore demo``: pmstore's main job, from socket to database, as a report.

**Stage 1, live (the main job).** Starts a Polymarket simulator
(``pmstore.simulator``) in rate mode and runs the live recorder
(``pmstore.recorder``) against it: Gamma discovery, sharded sockets, every
frame archived, rows derived and committed exactly once. Price and
order-book snapshots are cut every ``snapshot_every`` seconds (60, as in
production: minute boundaries). A third of the way in, one fault is
injected on one socket: a silent freeze (data stops, PONG still answered;
the recorder's silence deadline, ``SILENCE_TIMEOUT`` here, rebuilds the
socket) or an abrupt drop; a feed gap opens for its tokens and closes once
fresh books arrive. Two thirds in, one market resolves (``market_resolved``
on the socket). The run ends once ``seconds`` have passed, the gap has
closed and a price and a book snapshot boundary have passed since (so every
table has rows of after the fault). Then the report is read back from the
database: the run's rows per table, its feed gaps and the price-snapshot
coverage (``Reader.coverage``, with the feed gaps, from the first boundary
after every token had its first book), beside the recorder's
own figures (frames archived, reconnects, silences, receipt-to-commit
latency).

**Stage 2, history (short).** ``minutes`` of synthetic data for ``tokens``
tokens (``pmstore.synthetic``) through the Writer, ending at the start of the
current hour (or ``end``), then the hourly continuous aggregates refreshed and
the price chunks compressed where the edition has them: the hourly candles
and the compression ratio need hours of data and many rows, which a
recording of a minute or two cannot give (a candle of one or two price
points per token, kilobytes to compress). Its writes run before the live
stage, so that a database that refuses writes fails at once, within the
Writer's retry budget (the recorder would record to disk and keep retrying);
the refresh, the compression (of the live rows too) and the candles come
after it. Its batches are in the ingest log, so a second run in the same
hour writes nothing again.

``run_demo`` returns a ``DemoReport``; ``pmstore demo`` prints it
(``pmstore.cli.demo``). On a server given by DSN the demo refuses a database
that already holds price snapshots unless forced: it writes simulated and
synthetic rows and compresses chunks.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import psycopg

from pmstore import migrations
from pmstore._read.coverage import Coverage
from pmstore._read.queries import Candle
from pmstore._utc import HOUR, aware_utc, floor_hour
from pmstore._write.retry import DEFAULT_RETRY_FOR
from pmstore.edition import Feature, ServerInfo, features, server_info
from pmstore.errors import ConfigurationError, WaitTimeoutError
from pmstore.reader import Reader
from pmstore.recorder.health import FeedGap, feed_gaps
from pmstore.refresh import REFRESH_SQL
from pmstore.status import Status, collect
from pmstore.synthetic import MarketSimulator, token_ids
from pmstore.writer import Writer

if TYPE_CHECKING:  # imported when the live stage runs (aiohttp is not cheap to load)
    from pmstore.recorder import Recorder, RecorderStats
    from pmstore.simulator import Simulator

__all__ = [
    "DEFAULT_FAULT",
    "DEFAULT_MARKETS",
    "DEFAULT_MINUTES",
    "DEFAULT_RATE",
    "DEFAULT_SECONDS",
    "DEFAULT_SEED",
    "DEFAULT_SNAPSHOT_EVERY",
    "DEFAULT_TOKENS",
    "FAULTS",
    "SILENCE_TIMEOUT",
    "SOCKETS",
    "DemoReport",
    "DemoWrites",
    "Fault",
    "HistoryReport",
    "Latency",
    "LiveReport",
    "run_demo",
]

DEFAULT_SECONDS: Final = 90
"""The live stage's least duration: crosses at least one minute boundary, usually two."""
DEFAULT_MARKETS: Final = 100
"""Simulated markets (two tokens each) the recorder discovers and records."""
DEFAULT_RATE: Final = 50.0
"""The simulator's random events per second over all its markets."""
DEFAULT_SNAPSHOT_EVERY: Final = 60.0
"""Seconds between price and order-book snapshots (the production default)."""
DEFAULT_FAULT: Final = "freeze"
FAULTS: Final = ("freeze", "drop", "none")
"""The fault injected a third of the way in: a silent freeze of one socket, an abrupt drop,
or none."""
SILENCE_TIMEOUT: Final = 5.0
"""The demo recorder's silence deadline (production: 60 s), so a freeze shows in seconds."""
SOCKETS: Final = 4
"""The tokens are spread over this many sockets (the shard size follows)."""
DEFAULT_MINUTES: Final = 180
DEFAULT_TOKENS: Final = 2000
DEFAULT_SEED: Final = 7
BOOK_SHARE: Final = 0.05
"""Share of the history's tokens whose order book is snapshotted each minute."""
TRADES_PER_MINUTE_PER_1K_TOKENS: Final = 50
RESOLUTIONS: Final = 4
"""Resolutions the history writes (the synthetic data makes one of them a 50/50)."""
WAIT_CAP: Final = 120.0
"""Seconds the live stage waits at most for any one fact (books, recovery, a boundary)."""

Fault = Literal["freeze", "drop", "none"]
Progress = Callable[[str, int, int], object]
"""``progress(stage, done, total)``: stage ``"recording"`` counts seconds, ``"history"``
minutes."""


@dataclass(frozen=True, slots=True)
class Latency:
    """Receipt-to-commit latency of the frames committed live (seconds)."""

    frames: int
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        if not seconds:
            return cls(0, 0.0, 0.0, 0.0)
        values = np.asarray(seconds)
        return cls(
            len(seconds),
            float(np.percentile(values, 50)),
            float(np.percentile(values, 99)),
            float(values.max()),
        )


@dataclass(frozen=True, slots=True)
class LiveReport:
    """Stage 1: the recorder against the simulator. ``rows``, ``feed_gaps`` and
    ``coverage`` are read from the database after the run; the rest is the
    recorder's and the simulator's own account."""

    started: datetime
    stopped: datetime
    books_at: datetime
    """When every token had its first book (the coverage starts at the boundary after)."""
    markets: int
    tokens: list[str]
    rate: float
    snapshot_every: float
    silence_timeout: float
    sockets: int
    shard_size: int
    archive: str | None
    """The archive directory, kept; None: a temporary one, removed after the run."""
    run: str
    """The recorder's run id (its archive files are ``pmrec-*-<run>-*``)."""
    frames: int
    """Frames received, every one archived verbatim."""
    records: int
    archive_bytes: int
    archive_files: int
    """Archive files this run closed."""
    reconnects: int
    silences: int
    connect_failures: int
    reseed_books: int
    db_lag: int
    """Archive records not committed when the recorder stopped (0: everything is in)."""
    latency: Latency
    fault: Fault
    fault_at: datetime | None
    fault_tokens: tuple[str, ...]
    """The tokens of the socket the fault hit."""
    recovered: bool
    """Whether every token of that socket had a fresh book again before the end."""
    resolved_market: str | None
    """The condition id of the market resolved mid-run."""
    rows: dict[str, int]
    """Rows of this run in the database, per table: the simulator's tokens within
    [started, stopped] (prices, books, trades), its markets and resolutions."""
    feed_gaps: list[FeedGap]
    """``feed_gaps`` rows of the simulator's tokens overlapping [started, stopped]."""
    coverage: Coverage | None
    """Price snapshots of the simulator's tokens, in ``snapshot_every`` steps from the first
    snapshot boundary after ``books_at`` to the run's last (None without any)."""

    @property
    def seconds(self) -> float:
        return (self.stopped - self.started).total_seconds()

    @property
    def fault_gaps(self) -> list[FeedGap]:
        """The gaps the fault opened (``silence`` or ``disconnect`` of its tokens)."""
        reason = {"freeze": "silence", "drop": "disconnect"}.get(self.fault)
        tokens = set(self.fault_tokens)
        return [g for g in self.feed_gaps if g.reason == reason and g.token_id in tokens]


@dataclass(slots=True)
class DemoWrites:
    """What the history stage's Writer calls wrote."""

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
class HistoryReport:
    """Stage 2: synthetic history through the Writer, its candles."""

    start: datetime
    minutes: int
    tokens: int
    writes: DemoWrites
    seconds: float
    """Wall time of the writes, data generation included."""
    markets: int
    resolutions: int
    token: str
    """The token whose candles are shown."""
    candles: list[Candle]
    aggregated: bool
    """Whether the candles come from the continuous aggregate (else computed live)."""

    @property
    def real_time_factor(self) -> float:
        """Simulated time per wall-clock time of the writes."""
        return self.minutes * 60 / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class DemoReport:
    """What ``run_demo`` did and found: ``pmstore demo`` prints it."""

    where: str
    server: ServerInfo
    live: LiveReport
    history: HistoryReport | None
    """None when ``minutes`` is 0."""
    status: Status
    """The database after the demo (tables, sizes, compression, the recorder)."""
    compression: Feature | None
    warnings: tuple[str, ...] = ()
    """The migrations' server warnings (features this edition lacks)."""


def run_demo(
    dsn: str,
    where: str,
    *,
    seconds: float = DEFAULT_SECONDS,
    markets: int = DEFAULT_MARKETS,
    rate: float = DEFAULT_RATE,
    fault: Fault = DEFAULT_FAULT,
    snapshot_every: float = DEFAULT_SNAPSHOT_EVERY,
    archive: Path | None = None,
    minutes: int = DEFAULT_MINUTES,
    tokens: int = DEFAULT_TOKENS,
    seed: int = DEFAULT_SEED,
    end: datetime | None = None,
    require_empty: bool = False,
    progress: Progress | None = None,
    retry_for: float | None = DEFAULT_RETRY_FOR,
) -> DemoReport:
    """Run both stages against ``dsn`` (described as ``where``); return the report.

    Live: ``markets`` simulated markets at ``rate`` events/s, recorded for at
    least ``seconds`` (see the module notes) with ``fault``, snapshots every
    ``snapshot_every`` seconds, the archive in ``archive`` (kept; a later run
    on the same directory carries on from it and closes this run's shutdown
    gaps) or a temporary directory. History: ``minutes`` (0: no history
    stage) of ``tokens`` synthetic tokens ending at ``end`` (default: the
    start of the current hour, UTC), written with the Writer's retry budget
    ``retry_for``. ``require_empty``: refuse a database whose
    ``price_snapshots`` holds rows. ``progress(stage, done, total)`` is
    called every second of recording and after each history minute.

    Raises ConfigurationError for bad arguments or a non-empty database,
    WaitTimeoutError when the recorder gets no books from the simulator
    within ``WAIT_CAP`` seconds, RecorderError when the archive cannot be
    written, other PmstoreError subclasses (migration, write, connection).
    Costs ``seconds`` (plus up to one ``snapshot_every``) of wall time and a
    few percent of a core for the live stage; the history as in
    benchmarks/README.md.
    """
    if seconds <= 0 or markets < 1 or rate <= 0 or snapshot_every <= 0:
        raise ConfigurationError(
            "the demo needs --seconds > 0, --markets >= 1, --rate > 0 and --snapshot-every > 0"
        )
    if fault not in FAULTS:
        raise ConfigurationError(f"--fault must be one of {', '.join(FAULTS)}, not {fault!r}")
    if minutes < 0 or (minutes and tokens < 2):
        raise ConfigurationError("the demo needs --minutes >= 0 and --tokens >= 2")
    end = floor_hour(datetime.now(UTC)) if end is None else aware_utc("end", end)
    applied = migrations.apply(dsn)
    if require_empty:
        _require_empty(dsn)
    # The history's writes first: a database that refuses writes fails here, within the
    # Writer's retry budget (the recorder would keep recording to disk and retrying).
    written = _write_history(dsn, minutes, tokens, seed, end, progress, retry_for)
    options = _LiveOptions(seconds, markets, rate, fault, snapshot_every, seed)
    with _archive_dir(archive) as directory:
        recorded = asyncio.run(_record(dsn, directory, options, progress))
    live = _live_report(dsn, recorded, options, str(archive) if archive is not None else None)
    with psycopg.connect(dsn, autocommit=True) as conn:
        history = _history_report(conn, written) if written is not None else None
        return DemoReport(
            where=where,
            server=server_info(conn),
            live=live,
            history=history,
            status=collect(conn, dsn),
            compression=features(conn).get("compression"),
            warnings=tuple(dict.fromkeys(applied.warnings)),
        )


def _require_empty(dsn: str) -> None:
    """ConfigurationError when ``price_snapshots`` already holds rows."""
    with psycopg.connect(dsn) as conn:
        if conn.execute("SELECT EXISTS (SELECT 1 FROM price_snapshots)").fetchone() == (True,):
            raise ConfigurationError(
                "this database already holds price snapshots and the demo writes simulated "
                "data into it: use an empty database or the embedded server, or pass --force"
            )


@contextmanager
def _archive_dir(archive: Path | None) -> Iterator[Path]:
    if archive is not None:
        yield archive
        return
    with tempfile.TemporaryDirectory(prefix="pmstore-demo-archive-") as tmp:
        yield Path(tmp)


# -- stage 1: the recorder against the simulator -------------------------------------------


@dataclass(frozen=True, slots=True)
class _LiveOptions:
    seconds: float
    markets: int
    rate: float
    fault: Fault
    snapshot_every: float
    seed: int


@dataclass(slots=True)
class _Recorded:
    """What the live stage knows when the recorder has stopped."""

    started: datetime
    stopped: datetime
    books_at: datetime
    tokens: list[str]
    condition_ids: list[str]
    shard_size: int
    stats: RecorderStats
    archive_files: int
    latencies: list[float]
    fault_at: datetime | None
    fault_tokens: tuple[str, ...]
    recovered: bool
    resolved_market: str | None


async def _record(
    dsn: str, directory: Path, options: _LiveOptions, progress: Progress | None
) -> _Recorded:
    """Run the simulator and the recorder; inject the fault; stop cleanly."""
    from pmstore.recorder import CommitInfo, Recorder, RecorderConfig
    from pmstore.recorder.archive import closed_files
    from pmstore.simulator import Simulator, SimulatorConfig

    latencies: list[float] = []

    def on_commit(info: CommitInfo) -> None:
        if not info.from_disk:
            latencies.extend((info.committed_ns - t) / 1e9 for t in info.frame_times)

    loop = asyncio.get_running_loop()
    started = datetime.now(UTC)
    t0 = loop.time()
    ticker = asyncio.create_task(_tick(progress, t0, options.seconds))
    sim = Simulator(
        SimulatorConfig(markets=options.markets, seed=options.seed, record_frames=False)
    )
    try:
        async with sim:
            tokens = sim.token_ids()
            shard_size = max(1, math.ceil(len(tokens) / SOCKETS))
            config = RecorderConfig(
                archive_dir=directory,
                dsn=dsn,
                gamma_url=sim.gamma_url,
                clob_url=sim.clob_url,
                ws_url=sim.ws_url,
                shard_size=shard_size,
                snapshot_every=options.snapshot_every,
                price_every=options.snapshot_every,
                silence_timeout=SILENCE_TIMEOUT,
            )
            async with Recorder(config, on_commit=on_commit) as rec:
                await _within(rec.ready.wait(), "the recorder's first subscriptions")
                await _within(
                    rec.until(lambda: rec.stats.valid_books >= len(tokens)),
                    "a book of every token from the simulator",
                )
                books_at = datetime.now(UTC)
                sim.start_rate(options.rate)
                await _sleep_until(t0 + options.seconds / 3)
                fault_at, victims, recovered = await _inject(sim, rec, options.fault)
                d = rec.deriver
                price, book = d.next_price, d.next_snapshot  # the boundaries after recovery
                await _sleep_until(t0 + 2 * options.seconds / 3)
                resolved = sim.markets()[-1].condition_id
                await sim.resolve_market(resolved, winner=0)
                await _sleep_until(t0 + options.seconds)
                # Rows of after the fault in every table: a boundary of each kind since.
                await _within(
                    rec.until(lambda: d.next_price > price and d.next_snapshot > book),
                    "a snapshot boundary",
                    options.snapshot_every + WAIT_CAP,
                )
                await sim.stop_rate()
            stats = rec.stats
            condition_ids = [m.condition_id for m in sim.markets()]
    finally:
        ticker.cancel()
    files = sum(1 for f in closed_files(directory) if f.run == stats.run)
    if progress is not None:
        elapsed = round(loop.time() - t0)
        progress("recording", elapsed, max(elapsed, round(options.seconds)))
    return _Recorded(
        started=started,
        stopped=datetime.now(UTC),
        books_at=books_at,
        tokens=tokens,
        condition_ids=condition_ids,
        shard_size=shard_size,
        stats=stats,
        archive_files=files,
        latencies=latencies,
        fault_at=fault_at,
        fault_tokens=victims,
        recovered=recovered,
        resolved_market=resolved,
    )


async def _inject(
    sim: Simulator, rec: Recorder, fault: Fault
) -> tuple[datetime | None, tuple[str, ...], bool]:
    """Freeze or drop the first subscribed socket; wait until the recorder noticed and every
    one of its tokens has a fresh book (at most ``WAIT_CAP``). (time, its tokens, recovered)."""
    if fault == "none":
        return None, (), True
    subscribed = [c for c in sim.open_connections if c.state == "subscribed"]
    if not subscribed:
        raise WaitTimeoutError("the demo found no subscribed socket to inject the fault on")
    victim = subscribed[0]
    tokens = tuple(sorted(victim.asset_ids))
    before = rec.stats
    at = datetime.now(UTC)
    if fault == "freeze":
        victim.freeze()  # data stops, PING still gets PONG

        def noticed() -> bool:
            return rec.stats.silences > before.silences
    else:
        await victim.drop()  # TCP closed without a close frame

        def noticed() -> bool:
            return rec.stats.reconnects > before.reconnects

    d = rec.deriver
    try:
        await asyncio.wait_for(
            rec.until(lambda: noticed() and all(d.is_valid(t) for t in tokens)), WAIT_CAP
        )
    except TimeoutError:
        return at, tokens, False
    return at, tokens, True


async def _within(waiting: Any, what: str, timeout: float = WAIT_CAP) -> None:
    try:
        await asyncio.wait_for(waiting, timeout)
    except TimeoutError:
        raise WaitTimeoutError(f"the demo waited {timeout:.0f} s for {what}") from None


async def _sleep_until(when: float) -> None:
    await asyncio.sleep(max(0.0, when - asyncio.get_running_loop().time()))


async def _tick(progress: Progress | None, t0: float, seconds: float) -> None:
    """``progress("recording", elapsed, total)`` every second."""
    if progress is None:
        return
    loop = asyncio.get_running_loop()
    while True:
        elapsed = round(loop.time() - t0)
        progress("recording", elapsed, max(elapsed, round(seconds)))
        await asyncio.sleep(1.0)


RUN_ROWS_SQL: Final = """
    SELECT
        (SELECT count(*) FROM price_snapshots
         WHERE token_id = ANY(%(tokens)s) AND ts BETWEEN %(start)s AND %(end)s),
        (SELECT count(*) FROM orderbook_snapshots
         WHERE token_id = ANY(%(tokens)s) AND ts BETWEEN %(start)s AND %(end)s),
        (SELECT count(*) FROM trades
         WHERE token_id = ANY(%(tokens)s) AND ts BETWEEN %(start)s AND %(end)s),
        (SELECT count(*) FROM markets WHERE condition_id = ANY(%(markets)s)),
        (SELECT count(*) FROM resolutions WHERE condition_id = ANY(%(markets)s)),
        (SELECT min(ts) FROM price_snapshots
         WHERE token_id = ANY(%(tokens)s) AND ts BETWEEN %(books)s AND %(end)s),
        (SELECT max(ts) FROM price_snapshots
         WHERE token_id = ANY(%(tokens)s) AND ts BETWEEN %(start)s AND %(end)s)
"""
"""A run's rows: the simulator's tokens within the run's window, its markets; the first
price boundary after every token had a book, and the last."""


def _live_report(
    dsn: str, recorded: _Recorded, options: _LiveOptions, archive: str | None
) -> LiveReport:
    """Stage 1's report: the run's rows, gaps and coverage from the database."""
    r, s = recorded, recorded.stats
    params = {
        "tokens": r.tokens,
        "markets": r.condition_ids,
        "start": r.started,
        "books": r.books_at,
        "end": r.stopped,
    }
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(RUN_ROWS_SQL, params).fetchone()
        assert row is not None
        prices, books, trades, markets, resolutions, first, last = row
        gaps = feed_gaps(conn, r.started, r.stopped, r.tokens)
        step = timedelta(seconds=options.snapshot_every)
        coverage = (
            Reader(conn).coverage(r.tokens, first, last + step, step) if first is not None else None
        )
    return LiveReport(
        started=r.started,
        stopped=r.stopped,
        books_at=r.books_at,
        markets=options.markets,
        tokens=r.tokens,
        rate=options.rate,
        snapshot_every=options.snapshot_every,
        silence_timeout=SILENCE_TIMEOUT,
        sockets=s.sockets,
        shard_size=r.shard_size,
        archive=archive,
        run=s.run,
        frames=s.frames,
        records=s.records,
        archive_bytes=s.archive_bytes,
        archive_files=r.archive_files,
        reconnects=s.reconnects,
        silences=s.silences,
        connect_failures=s.connect_failures,
        reseed_books=s.reseed_books,
        db_lag=s.db_lag,
        latency=Latency.of(r.latencies),
        fault=options.fault,
        fault_at=r.fault_at,
        fault_tokens=r.fault_tokens,
        recovered=r.recovered,
        resolved_market=r.resolved_market,
        rows={
            "price_snapshots": int(prices),
            "orderbook_snapshots": int(books),
            "trades": int(trades),
            "markets": int(markets),
            "resolutions": int(resolutions),
            "feed_gaps": len(gaps),
        },
        feed_gaps=gaps,
        coverage=coverage,
    )


# -- stage 2: synthetic history through the Writer -----------------------------------------


@dataclass(frozen=True, slots=True)
class _Written:
    """The history's writes, before its aggregates, compression and candles."""

    start: datetime
    end: datetime
    minutes: int
    tokens: int
    token: str
    writes: DemoWrites
    markets: int
    seconds: float


def _write_history(
    dsn: str,
    minutes: int,
    tokens: int,
    seed: int,
    end: datetime,
    progress: Progress | None,
    retry_for: float | None,
) -> _Written | None:
    """Write ``minutes`` of synthetic history ending at ``end`` (None when 0 minutes)."""
    if not minutes:
        return None
    start = end - timedelta(minutes=minutes)
    ids = token_ids(tokens, seed=seed)
    sim = MarketSimulator(ids, seed=seed)
    started = time.perf_counter()
    writes, markets = _write(dsn, sim, start, minutes, tokens, progress, retry_for)
    seconds = time.perf_counter() - started
    return _Written(start, end, minutes, tokens, str(ids[0]), writes, markets, seconds)


def _history_report(conn: psycopg.Connection[tuple[object, ...]], w: _Written) -> HistoryReport:
    """Refresh the aggregates and compress where the edition can (after the live stage, so
    that its rows are compressed too); the report with one token's hourly candles."""
    have = features(conn)
    aggregates = have.get("continuous_aggregates")
    aggregated = bool(aggregates and aggregates.available)
    compression = have.get("compression")
    _finish(conn, w.start, w.end, aggregated, bool(compression and compression.available))
    return HistoryReport(
        start=w.start,
        minutes=w.minutes,
        tokens=w.tokens,
        writes=w.writes,
        seconds=w.seconds,
        markets=w.markets,
        resolutions=RESOLUTIONS,
        token=w.token,
        candles=Reader(conn).candles(w.token, w.start - HOUR, w.end + HOUR),
        aggregated=aggregated,
    )


def _write(
    dsn: str,
    sim: MarketSimulator,
    start: datetime,
    minutes: int,
    tokens: int,
    progress: Progress | None,
    retry_for: float | None,
) -> tuple[DemoWrites, int]:
    """The markets, a few resolutions, then every minute's prices, books and trades."""
    books_per_minute = max(1, int(tokens * BOOK_SHARE))
    trades_per_minute = max(1, tokens * TRADES_PER_MINUTE_PER_1K_TOKENS // 1000)
    writes = DemoWrites()
    with Writer(dsn, retry_for=retry_for) as writer:
        markets = sim.markets()
        writer.upsert_markets(markets)
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
                progress("history", k + 1, minutes)
    return writes, len(markets)


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
