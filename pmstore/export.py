"""``pmstore export``: a hypertable's rows as Parquet files, one per UTC day.

    export_table(conn, "price_snapshots", start, end, Path("out"))
    # out/price_snapshots/date=2026-11-20/part.parquet, date=2026-11-21/..., hive style
    export_table(conn, "price_snapshots", start, end, "s3://bucket/prefix")
    # the same layout under s3://bucket/prefix/price_snapshots/ (pmstore._export_target)

Each day of [start, end) is one binary ``COPY (SELECT ... ORDER BY ...) TO STDOUT``
(``EXPORT_SQL``), read in bulk and decoded ``batch_rows`` rows at a time beside
the reading by ``pmstore._read.bulk`` (the Reader's ``as_=`` path) and written as
one Parquet row group per batch (zstd) through ``pyarrow.parquet.ParquetWriter`` in
a thread of its own, while the next batch is read (one write at a time, in order):
memory holds up to five batches, whatever the day's size. The server sorts each
day by every column (ts first), so a day's file has one content whatever the heap order, and a
re-run writes the same bytes to the same names (idempotent). A day's file is
written to a hidden temporary name beside it (``.part.parquet.tmp``) and renamed
over the old one (atomic on POSIX; on S3 and other object stores one server-side
copy, see ``pmstore._export_target``): a reader sees the old file or the new one,
never half of one; an interrupted run leaves at most the hidden temporary, which
the next run replaces. A day without rows has no file (a previous file for it is
removed). The first and last day hold only the rows
inside [start, end).

Columns and types are the table's, but bids/asks: Parquet strings holding the jsonb's own
text (``[[0.48, 1234.5], [0.47, 10]]``, best-first, each number with the digits stored, so
``"0.001"`` stays 0.001: a float column would round them; parse with any JSON reader, or
DuckDB's ``bids::JSON``); timestamps
are ``timestamp[us, UTC]`` (Parquet TIMESTAMP(MICROS, adjusted to UTC)); the
``date`` column comes from the folder names (hive partitioning) for readers
that ask for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import psycopg

from pmstore._export_target import open_target
from pmstore._optional import require
from pmstore._read.bulk import checked, copy_batches
from pmstore._utc import aware_utc, day_windows
from pmstore.errors import ConfigurationError
from pmstore.frames.outbound import query_schema

__all__ = [
    "EXPORT_SQL",
    "EXPORT_TABLES",
    "DayExport",
    "ExportProgress",
    "ExportResult",
    "export_table",
]

ExportProgress = Callable[[int, int, int, date], object]
"""``progress(rows, day_number, days, day)``: called after each batch a day's file takes."""

EXPORT_SQL: Final = {
    "price_snapshots": """
        SELECT ts, token_id, price, volume_24h
        FROM price_snapshots
        WHERE ts >= %(start)s AND ts < %(end)s
        ORDER BY ts, token_id, price, volume_24h
    """,
    "trades": """
        SELECT ts, token_id, side, price, size, trade_id
        FROM trades
        WHERE ts >= %(start)s AND ts < %(end)s
        ORDER BY ts, trade_id
    """,
    "orderbook_snapshots": """
        SELECT ts, token_id, bids::text AS bids, asks::text AS asks, spread, midpoint
        FROM orderbook_snapshots
        WHERE ts >= %(start)s AND ts < %(end)s
        ORDER BY ts, token_id, bids, asks, spread, midpoint
    """,
}
"""One day's rows of each exportable table, in a total order (trades: (trade_id, ts) is unique)."""

EXPORT_TABLES: Final = tuple(EXPORT_SQL)
"""The tables ``export_table`` writes."""

DEFAULT_BATCH_ROWS: Final = 250_000
"""Rows per Parquet row group (and per decoded batch): ~30 MB of prices in memory."""


@dataclass(frozen=True, slots=True)
class DayExport:
    """One day's partition: its date, rows written and file (None when it had no rows):
    a Path for a local folder, else ``scheme://path`` (no credentials)."""

    day: date
    rows: int
    path: Path | str | None


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What ``export_table`` wrote: per-day partitions, total rows, wall time; ``root`` is
    the table's folder (a Path, or ``scheme://path`` off this machine)."""

    table: str
    root: Path | str
    days: list[DayExport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        """Rows written over every day."""
        return sum(d.rows for d in self.days)


def written_rows(
    in_flight: tuple[Future[None], int],
    progress: ExportProgress | None,
    day_number: int,
    days: int,
    day: date,
) -> int:
    """Wait for a batch's write (raising its error), report it, and return its rows."""
    future, rows = in_flight
    future.result()
    if progress is not None:
        progress(rows, day_number, days, day)
    return rows


def export_table(
    conn: psycopg.Connection[Any],
    table: str,
    start: datetime,
    end: datetime,
    out: Path | str,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: ExportProgress | None = None,
    filesystem: Any = None,
) -> ExportResult:
    """Write ``table``'s rows with ``start <= ts < end`` under ``out/table/date=YYYY-MM-DD/``.

    ``out`` is a local folder or a URI (``s3://bucket/prefix``, any scheme pyarrow.fs
    or fsspec knows; credentials from the environment), or a path inside
    ``filesystem`` (a ``pyarrow.fs.FileSystem``) when that is given. See the module
    notes for the layout, ordering, atomic replacement and idempotence.
    ``progress(rows, day_number, days, day)``, when given, is called after each
    batch written (``rows``: that batch's). Raises ConfigurationError for an
    unknown table, naive or empty bounds, a bad ``batch_rows``, pyarrow (or, for
    its scheme, fsspec) missing or a URI that cannot be opened; psycopg errors and
    OSError unchanged (the day being written keeps its previous file). Costs one
    COPY per day: a sequential scan of that day's chunk and a server-side sort by
    ts (on disk for big days), then ~``batch_rows`` rows in memory (plus one
    upload part off this machine); off this machine also a server-side copy per day.
    """
    if table not in EXPORT_SQL:
        raise ConfigurationError(f"cannot export {table!r}: choose one of {EXPORT_TABLES}")
    lo, hi = aware_utc("start", start), aware_utc("end", end)
    if lo >= hi:
        raise ConfigurationError(
            f"empty time range: start {lo.isoformat()} >= end {hi.isoformat()}"
        )
    checked(batch_rows)
    require("pyarrow.parquet")
    started = time.perf_counter()
    target = open_target(out, filesystem)
    sql = EXPORT_SQL[table]
    windows = list(day_windows(lo, hi))
    days: list[DayExport] = []
    with conn.cursor() as cur:
        schema = query_schema(cur, sql, {"start": lo, "end": lo})
        for n, (day, day_start, day_end) in enumerate(windows, 1):
            rows = 0
            day_file = None
            written: Path | str | None = None
            try:
                params = {"start": day_start, "end": day_end}
                # closed at once on any failure: the COPY is cancelled, its thread ends;
                # the writing thread's batch is finished first (the executor exits first)
                read = copy_batches(conn, sql, params, schema, batch_rows=batch_rows)
                with (
                    closing(read) as batches,
                    ThreadPoolExecutor(1, thread_name_prefix="pmstore-export-write") as writing,
                ):
                    in_flight: tuple[Future[None], int] | None = None
                    for batch in batches:
                        if day_file is None:
                            day_file = target.open_day(table, day, schema)
                        if in_flight is not None:
                            rows += written_rows(in_flight, progress, n, len(windows), day)
                        write = writing.submit(day_file.write, batch, batch_rows)
                        in_flight = write, batch.num_rows
                    if in_flight is not None:
                        rows += written_rows(in_flight, progress, n, len(windows), day)
                if day_file is not None:
                    written = day_file.commit()
                    day_file = None
                else:
                    target.remove_day(table, day)  # the day has no rows (any more)
            finally:
                if day_file is not None:  # failed mid-day: the old file stays
                    day_file.abort()
            days.append(DayExport(day, rows, written))
    return ExportResult(table, target.table_root(table), days, time.perf_counter() - started)
