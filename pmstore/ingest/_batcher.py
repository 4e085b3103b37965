"""Segments of a file and how they are written: flushed by size or time, cursor in step.

A segment is the records of consecutive payloads of one file, from a start
position to an end position. Flushing it writes each table's batch in its
own Writer transaction, and each of those transactions also moves that
table's cursor to the segment's end (the first one moves the cursors of
the tables with nothing to write, and of ``rejects``, too). Rejects go to
the rejects file just before that first transaction commits: a kill between
the two repeats those reject lines on the next run (at least once, never
lost); rows are written exactly once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

from pmstore._write.precedence import precedence
from pmstore.batches import OrderbookBatch, PriceBatch, TradeBatch
from pmstore.ingest._cursor import TRACKED, FileCursor, commit_moves, statements_for
from pmstore.ingest._rejects import RejectsFile
from pmstore.models import MarketRecord, ResolutionRecord
from pmstore.polymarket._columnar import Columns
from pmstore.writer import Writer, WriteResult

__all__ = ["Batches", "FlushPolicy", "Segment", "flush_segment"]

WRITE_ORDER: Final = ("price_snapshots", "orderbook_snapshots", "trades", "markets", "resolutions")

RAMP_SEGMENTS: Final = 3
"""A run's first segments that are smaller than ``batch_rows`` (halving back from it)."""


@dataclass(frozen=True, slots=True)
class FlushPolicy:
    """When a segment is written: at ``batch_rows`` records, or ``flush_seconds`` after it began.

    A run's first segments are smaller (``rows_for``): 1/8, 1/4 and 1/2 of
    ``batch_rows``, so that writing starts soon after reading does and the
    reader and the writer overlap from the start.
    """

    batch_rows: int = 50_000
    flush_seconds: float = 5.0

    def rows_for(self, index: int) -> int:
        """The record count at which segment ``index`` (0: the run's first) is cut."""
        return max(1, self.batch_rows >> max(0, RAMP_SEGMENTS - index))

    def due(self, segment: Segment, rows: int | None = None) -> bool:
        """True when ``segment`` should be written now (at ``rows`` records, or ``batch_rows``)."""
        return (
            segment.columns.record_count() >= (self.batch_rows if rows is None else rows)
            or time.monotonic() - segment.started >= self.flush_seconds
        )


@dataclass(frozen=True, slots=True)
class Batches:
    """A segment's three COPY batches, built ahead (by a reader process)."""

    prices: PriceBatch
    orderbooks: OrderbookBatch
    trades: TradeBatch


@dataclass(slots=True)
class Segment:
    """Records of the payloads between two positions of a file, with their rejects' places.

    With ``batches`` (built by a reader process) the COPY tables' rows are
    there and ``columns`` holds only markets, resolutions and rejects.
    """

    start: int
    end: int
    end_line: int
    columns: Columns = field(default_factory=Columns)
    reject_places: list[str] = field(default_factory=list)
    payloads: int = 0
    started: float = field(default_factory=time.monotonic)
    batches: Batches | None = None

    def counts(self) -> dict[str, int]:
        """Records per table (and rejects)."""
        counts = self.columns.counts()
        if self.batches is not None:
            counts["price_snapshots"] = len(self.batches.prices)
            counts["orderbook_snapshots"] = len(self.batches.orderbooks)
            counts["trades"] = len(self.batches.trades)
        return counts


@dataclass(slots=True)
class Written:
    """What flushing did, per table (rows written, duplicates skipped), and batches found done."""

    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WRITE_ORDER, 0))
    duplicates: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WRITE_ORDER, 0))
    already_written: int = 0
    commits: int = 0
    seconds: float = 0.0

    def add(self, table: str, result: WriteResult) -> None:
        self.rows[table] += result.rows_written
        self.duplicates[table] += result.duplicates_skipped
        self.already_written += int(result.already_written)


def _latest_markets(markets: list[MarketRecord]) -> list[MarketRecord]:
    """One market per condition id: the last one given wins."""
    return list({m.condition_id: m for m in markets}.values())


def _latest_resolutions(resolutions: list[ResolutionRecord]) -> list[ResolutionRecord]:
    """One resolution per condition id, with the upsert's precedence: a later record
    wins unless it is less far along (``pmstore._write.precedence``)."""
    kept: dict[str, ResolutionRecord] = {}
    for res in resolutions:
        old = kept.get(res.condition_id)
        if old is None or precedence(res) >= precedence(old):
            kept[res.condition_id] = res
    return list(kept.values())


def _write(writer: Writer, table: str, segment: Segment, batch_id: str, extra: Any) -> WriteResult:
    columns, built = segment.columns, segment.batches
    if table == "price_snapshots":
        prices = columns.price_batch() if built is None else built.prices
        return writer.copy_prices(prices, batch_id=batch_id, extra_statements=extra)
    if table == "orderbook_snapshots":
        books = columns.orderbook_batch() if built is None else built.orderbooks
        return writer.copy_orderbooks(books, batch_id=batch_id, extra_statements=extra)
    if table == "trades":
        trades = columns.trade_batch() if built is None else built.trades
        return writer.copy_trades(trades, batch_id=batch_id, extra_statements=extra)
    if table == "markets":
        return writer.upsert_markets(_latest_markets(columns.markets), extra_statements=extra)
    return writer.upsert_resolutions(
        _latest_resolutions(columns.resolutions), extra_statements=extra
    )


def flush_segment(
    writer: Writer,
    cursor: FileCursor,
    segment: Segment,
    rejects: RejectsFile | None,
    written: Written,
) -> None:
    """Write ``segment`` and move ``cursor``'s rows to its end (see the module docstring).

    Raises what the Writer raises; what was committed before stays committed,
    with its cursors (``written.commits`` counts the transactions, ``written.seconds``
    the time spent).
    """
    started = time.perf_counter()
    try:
        counts = segment.counts()
        moves = {
            t: (segment.end, segment.end_line, counts[t])
            for t in TRACKED
            if cursor.positions[t] < segment.end
        }
        if not moves:
            return
        tables = [t for t in WRITE_ORDER if counts[t] and t in moves]
        riding = {t: m for t, m in moves.items() if t not in tables}
        if rejects is not None and "rejects" in moves and segment.columns.rejects:
            rejects.write(str(cursor.path), segment.reject_places, segment.columns.rejects)
        register = not cursor.known
        if not tables:
            writer.execute_statements(statements_for(cursor, riding, register=register))
            commit_moves(cursor, riding)
            written.commits += 1
            return
        for index, table in enumerate(tables):
            these: dict[str, tuple[int, int, int]] = {table: moves[table]}
            if index == 0:
                these.update(riding)
            extra = statements_for(cursor, these, register=register and index == 0)
            batch_id = f"ingest:{cursor.file_id}:{table}:{cursor.positions[table]}-{segment.end}"
            written.add(table, _write(writer, table, segment, batch_id, extra))
            commit_moves(cursor, these)
            written.commits += 1
    finally:
        written.seconds += time.perf_counter() - started
