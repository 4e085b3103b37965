"""Derived rows into the database, exactly once, with a cursor per archive file and table.

A ``Batch`` is the rows the deriver made from records ``[start, end)`` of
one archive file. Writing it runs one AsyncWriter transaction per table
that has rows, each moving that table's cursor for the file
(``pmstore_ingest_cursors``, migration 0012: the position is a record
index) from where it was to ``end`` in the same transaction; the tables
without rows ride along with the first. COPY batches carry the id
``rec:<file id>:<table>:<from>-<end>``. So whatever the point a run stops
at (kill -9 included), the rows committed and the cursors agree, and a
retry, a restart or a later ``pmstore ingest`` of the same file never
writes a row twice: it derives the file again and keeps, per table, only
the rows of records at or after that table's cursor.

``catch_up`` derives closed files from disk (in a worker thread, so the
event loop keeps serving the sockets) and writes them from their cursors.

Costs: per batch, one transaction per table with rows (at least one); per
file caught up, a read and derivation of the whole file.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import psycopg

from pmstore.dsn import describe, redact, redact_error
from pmstore.errors import ConnectionLostError, WriteError
from pmstore.ingest._cursor import ADVANCE_CURSORS_SQL, REGISTER_FILE_SQL
from pmstore.models import MarketRecord, ResolutionRecord
from pmstore.recorder.archive import read_archive
from pmstore.recorder.derive import TABLES, DeriveParams, Deriver, Rows
from pmstore.writer_async import AsyncWriter, BeyondRetention

__all__ = [
    "CURSORS_SQL",
    "GAPS_UPSERT_SQL",
    "Batch",
    "CommitInfo",
    "FileRef",
    "Sink",
    "derive_file",
    "load_cursors",
]

logger = logging.getLogger("pmstore.recorder")

CURSORS_SQL: Final = """
    SELECT file_id, table_name, position FROM pmstore_ingest_cursors
    WHERE file_id = ANY(%s) AND table_name = ANY(%s)
"""

GAPS_UPSERT_SQL: Final = """
    INSERT INTO feed_gaps (token_id, started_at, ended_at, reason)
    SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[], %s::text[])
    ON CONFLICT (token_id, started_at)
        DO UPDATE SET ended_at = coalesce(feed_gaps.ended_at, EXCLUDED.ended_at)
"""
"""Open or close gaps: a closed gap is never reopened, nor its end moved."""

CUT_RECORDS: Final = 20_000
CUT_ROWS: Final = 50_000
"""A file caught up from disk is written in batches of at most this many records or rows."""

Statement = tuple[str, Sequence[Any]]


@dataclass(frozen=True, slots=True)
class FileRef:
    """An archive file as the cursors know it: id, header line length, path."""

    file_id: str
    identity_bytes: int
    path: str


@dataclass(slots=True)
class Batch:
    """Rows derived from records ``[start, end)`` of one file, and those frames' receive times."""

    file: FileRef
    start: int
    end: int
    rows: Rows
    frame_times: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """A batch committed: its file, record range, frames' receive times and commit time (ns)."""

    file_id: str
    start: int
    end: int
    frame_times: Sequence[int]
    committed_ns: int
    from_disk: bool


def ns_to_datetime(ns: int) -> datetime:
    """A Unix-nanosecond time as an aware datetime (to the microsecond, truncated)."""
    return datetime.fromtimestamp(ns // 1000 / 1_000_000, tz=UTC)


def _ts(values: list[int]) -> np.ndarray[Any, np.dtype[np.datetime64]]:
    return (np.asarray(values, dtype=np.int64) // 1000).astype("datetime64[us]")


def _latest_markets(markets: list[MarketRecord]) -> list[MarketRecord]:
    return list({m.condition_id: m for m in markets}.values())


def _latest_resolutions(resolutions: list[ResolutionRecord]) -> list[ResolutionRecord]:
    """One per condition id; a final ``resolved`` is not replaced by another status."""
    kept: dict[str, ResolutionRecord] = {}
    for res in resolutions:
        old = kept.get(res.condition_id)
        if old is None or old.status != "resolved" or res.status == "resolved":
            kept[res.condition_id] = res
    return list(kept.values())


def gap_statement(gaps: list[tuple[str, int, int | None, str]]) -> Statement:
    """The upsert of ``gaps`` (in order; the last state of each gap wins) as one statement."""
    last: dict[tuple[str, int], tuple[int | None, str]] = {}
    for token, start, end, reason in gaps:
        old = last.get((token, start))
        if old is not None and old[0] is not None:
            continue  # closed already: a later open of the same gap changes nothing
        last[(token, start)] = (end, reason)
    tokens = [k[0] for k in last]
    starts = [ns_to_datetime(k[1]) for k in last]
    ends = [ns_to_datetime(v[0]) if v[0] is not None else None for v in last.values()]
    reasons = [v[1] for v in last.values()]
    return GAPS_UPSERT_SQL, (tokens, starts, ends, reasons)


async def load_cursors(dsn: str, file_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """The cursors of ``file_ids``: file id -> table -> position (0 when none yet).

    Opens a short connection. Raises ConnectionLostError when the server
    cannot be reached, WriteError for another failure.
    """
    out = {f: dict.fromkeys(TABLES, 0) for f in file_ids}
    if not file_ids:
        return out
    try:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            cur = await conn.execute(CURSORS_SQL, (list(file_ids), list(TABLES)))
            for file_id, table, position in await cur.fetchall():
                out[file_id][table] = int(position)
    except psycopg.OperationalError as exc:
        raise ConnectionLostError(
            f"cannot read the archive cursors from {describe(dsn)}: {redact(str(exc)).strip()}"
        ) from redact_error(exc)
    except psycopg.Error as exc:
        raise WriteError(
            f"cannot read the archive cursors: {redact(str(exc)).strip()}",
            sqlstate=exc.sqlstate,
        ) from redact_error(exc)
    return out


def derive_file(
    path: Path,
    cursors: Mapping[str, int],
    *,
    cut_records: int = CUT_RECORDS,
    cut_rows: int = CUT_ROWS,
) -> Iterator[Batch]:
    """The batches of archive file ``path`` from its ``cursors`` on (see the module docstring).

    Derives the whole file (its own line 1 gives the state it starts from),
    keeping per table only the rows of records at or after its cursor; a
    batch ends every ``cut_records`` records or once it holds ``cut_rows``
    rows. Raises PayloadError for a file that is not an archive.
    """
    header, records = read_archive(path)
    ref = FileRef(header.file_id, len(header.line()), str(path))
    deriver = Deriver(DeriveParams.from_json(header.params))
    done = min(cursors.get(t, 0) for t in TABLES)
    keep = {t: cursors.get(t, 0) for t in TABLES}
    rows = Rows(keep)
    times: list[int] = []
    start = 0
    end = 1
    for index, record in enumerate(records, start=1):
        deriver.feed(record, index, rows)
        if record.get("k") == "frame" and index >= done:
            times.append(int(record["t"]))
        end = index + 1
        if end - start >= cut_records or len(rows) >= cut_rows:
            if end > done:
                yield Batch(ref, start, end, rows, times)
            rows, times, start = Rows(keep), [], end
    if end > start and end > done:
        yield Batch(ref, start, end, rows, times)


class Sink:
    """Writes batches through one AsyncWriter, keeping each file's cursors in memory.

    ``on_commit`` is called after each batch is committed. Raises what the
    AsyncWriter raises (WriteError, ConnectionLostError); what was
    committed stays committed with its cursors, and the batch can be given
    again.
    """

    def __init__(
        self,
        dsn: str,
        *,
        on_commit: Callable[[CommitInfo], None] | None = None,
        beyond_retention: BeyondRetention = "raise",
        retries: int = 2,
        backoff: float = 0.25,
    ) -> None:
        self.dsn = dsn
        self.writer = AsyncWriter(
            dsn, retries=retries, backoff=backoff, beyond_retention=beyond_retention
        )
        self.on_commit = on_commit
        self.cursors: dict[str, dict[str, int]] = {}
        self._registered: set[str] = set()
        self.rows_written: dict[str, int] = dict.fromkeys(TABLES, 0)
        self.commits = 0
        self.records_committed = 0

    async def aclose(self) -> None:
        await self.writer.aclose()

    async def refresh_cursors(self, file_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """Read the cursors of ``file_ids`` from the database (they are the truth)."""
        found = await load_cursors(self.dsn, file_ids)
        self.cursors.update(found)
        return found

    def committed(self, file_id: str) -> int:
        """Records of ``file_id`` committed in every table (the least cursor)."""
        cursors = self.cursors.get(file_id)
        return min(cursors.values()) if cursors else 0

    async def write(self, batch: Batch, *, from_disk: bool = False) -> None:
        """Write ``batch`` from the file's cursors on (see the module docstring)."""
        file_id = batch.file.file_id
        cursors = self.cursors.setdefault(file_id, dict.fromkeys(TABLES, 0))
        before = min(cursors.values())
        moves: dict[str, int] = {t: batch.end for t in TABLES if cursors[t] < batch.end}
        if not moves:
            return
        counts = batch.rows.counts()
        tables: list[str] = [t for t in TABLES if counts[t] and t in moves]
        riding: list[str] = [t for t in moves if t not in tables]
        register: list[Statement] = []
        if file_id not in self._registered:
            ref = batch.file
            register = [(REGISTER_FILE_SQL, (file_id, ref.identity_bytes, "lines", ref.path))]
        if not tables:
            await self.writer.execute_statements(
                [*register, self._advance(file_id, cursors, riding, batch.end, counts)]
            )
            self._moved(file_id, cursors, riding, batch.end)
        for i, table in enumerate(tables):
            these: list[str] = [table, *riding] if i == 0 else [table]
            extra = [*(register if i == 0 else []),
                     self._advance(file_id, cursors, these, batch.end, counts)]  # fmt: skip
            batch_id = f"rec:{file_id}:{table}:{cursors[table]}-{batch.end}"
            written = await self._write_table(table, batch.rows, batch_id, extra)
            self.rows_written[table] += written
            self._moved(file_id, cursors, these, batch.end)
        self.commits += 1
        after = min(cursors.values())
        self.records_committed += max(0, after - before)
        if self.on_commit is not None:
            info = CommitInfo(
                file_id, batch.start, batch.end, batch.frame_times, time.time_ns(), from_disk
            )
            self.on_commit(info)

    def _advance(
        self,
        file_id: str,
        cursors: dict[str, int],
        tables: list[str],
        end: int,
        counts: Mapping[str, int],
    ) -> Statement:
        return (
            ADVANCE_CURSORS_SQL,
            (
                file_id,
                tables,
                [cursors[t] for t in tables],
                [end] * len(tables),
                [end] * len(tables),
                [counts.get(t, 0) for t in tables],
            ),
        )

    def _moved(self, file_id: str, cursors: dict[str, int], tables: list[str], end: int) -> None:
        self._registered.add(file_id)
        for t in tables:
            cursors[t] = end

    async def _write_table(
        self, table: str, rows: Rows, batch_id: str, extra: list[Statement]
    ) -> int:
        w = self.writer
        if table == "price_snapshots":
            prices = {
                "ts": _ts(rows.price_ts),
                "token_id": rows.price_token,
                "price": np.asarray(rows.price_value, dtype=np.float64),
            }
            result = await w.copy_prices(prices, batch_id=batch_id, extra_statements=extra)
        elif table == "orderbook_snapshots":
            books = {
                "ts": _ts(rows.book_ts),
                "token_id": rows.book_token,
                "bids": rows.book_bids,
                "asks": rows.book_asks,
            }
            result = await w.copy_orderbooks(books, batch_id=batch_id, extra_statements=extra)
        elif table == "trades":
            result = await w.copy_trades(rows.trades, batch_id=batch_id, extra_statements=extra)
        elif table == "markets":
            result = await w.upsert_markets(_latest_markets(rows.markets), extra_statements=extra)
        elif table == "resolutions":
            result = await w.upsert_resolutions(
                _latest_resolutions(rows.resolutions), extra_statements=extra
            )
        else:
            await w.execute_statements([*extra, gap_statement(rows.gaps)])
            return len(rows.gaps)
        return result.rows_written

    async def catch_up(self, path: Path, file_id: str, records: int) -> int:
        """Write closed file ``path`` from its cursors to its end; the records committed.

        The derivation runs in a worker thread, one batch ahead of the
        writes. Raises PayloadError (not an archive), WriteError /
        ConnectionLostError.
        """
        found = await self.refresh_cursors([file_id])
        cursors = found[file_id]
        if min(cursors.values()) >= records:
            return 0
        before = min(cursors.values())
        batches = derive_file(path, dict(cursors))
        while (batch := await asyncio.to_thread(next, batches, None)) is not None:
            await self.write(batch, from_disk=True)
        done = self.committed(file_id)
        logger.info("caught up %s: records %d to %d", path.name, before, done)
        return done - before
