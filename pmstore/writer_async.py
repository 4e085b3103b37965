"""AsyncWriter: batches into pmstore's tables over binary COPY, all or nothing, never twice.

Every call is one transaction. COPY-written batches (prices, order books,
trades) carry a batch id (the caller's, or a digest of the batch's content)
that goes into ``pmstore_ingest_log`` in the same transaction (a given id
first, a digest at the end of the COPY: it is computed while the rows
stream), so a batch already committed is not written again: retrying after a
connection drop whose commit outcome is unknown cannot duplicate rows. Two
writers given the same batch at once serialise on that row; the second
writes nothing.

The client's work (validation, digest, encoding) runs in a worker thread a
chunk ahead of the sender (``pmstore._write.pipeline``), so it overlaps the
server's.

One AsyncWriter serves one caller at a time. For concurrency, give each
thread, task or process its own AsyncWriter: separate connections write
concurrently without losing or duplicating rows.

Given a DSN, the AsyncWriter owns its connection: when it drops (or the
server is read-only: a standby), the AsyncWriter reconnects and retries the
whole batch while its retry budget lasts (``retry_for`` seconds, 60 by
default, enough to ride out a failover; see ``pmstore._write.retry``), then
raises ConnectionLostError. Given a connection it cannot replace it, and
raises ConnectionLostError at once. ``logged`` says which batches a server
holds: after a failover under asynchronous replication, those to write again.

CPU work (building a batch, sorting it, and waiting for each COPY chunk
from the pipeline's worker) runs through ``offload`` (see
``pmstore._twins``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pmstore._twins import AsyncConn, offload
from pmstore._write.connection_async import AsyncWriteConnection
from pmstore._write.connection_base import AlreadyLoggedError
from pmstore._write.encoding import DEFAULT_CHUNK_ROWS
from pmstore._write.pipeline import DEFAULT_CHUNK_BYTES, CopyStream
from pmstore._write.plan import (
    LOG_BATCH_SQL,
    LOGGED_BATCHES_SQL,
    LOGGED_ROWS_SQL,
    TOKEN_INDEX_SQL,
    UPSERT_MARKETS_SQL,
    UPSERT_RESOLUTIONS_SQL,
    CopyPlan,
    CopyProgress,
    OnInvalid,
    Statements,
    WriteResult,
    market_rows,
    plan_orderbooks,
    plan_prices,
    plan_trades,
    resolution_rows,
    send_order,
    touched,
    with_retention,
)
from pmstore._write.retention import TABLE_POLICY_SQL, BeyondRetention, TablePolicy, check_mode
from pmstore._write.retry import (
    DEFAULT_BACKOFF,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_RETRY_FOR,
    RetryBudget,
)
from pmstore._write.touched import RECORD_TOUCHED_SQL
from pmstore.batches import OrderbookBatch, PriceBatch, TradeBatch
from pmstore.batches._from_frame import FrameLike
from pmstore.errors import ConfigurationError
from pmstore.models import MarketRecord, ResolutionRecord

__all__ = ["AsyncWriter", "BeyondRetention", "OnInvalid", "WriteResult"]


class AsyncWriter(AsyncWriteConnection):
    """Writes batches into pmstore's tables; one transaction per call.

    ``target`` is a DSN (the AsyncWriter connects, and reconnects after a
    drop) or an open psycopg AsyncConnection (used as is; it must not be
    inside a transaction, and each call commits on it). A DSN may list
    several servers with ``target_session_attrs=read-write``: each new
    connection goes to the one that is the primary. The retry budget
    (``pmstore._write.retry.RetryBudget``): after a call's first connection
    loss, or a read-only server, the AsyncWriter reconnects and retries the
    whole transaction for up to ``retry_for`` seconds (None: no time limit)
    and at most ``retries`` times (None, the default: no count limit),
    whichever ends first, waiting ``backoff`` seconds before the first retry,
    doubled each time up to ``max_backoff``, each wait jittered between half
    and all of that. ConfigurationError for a negative setting. COPY
    data is encoded in chunks of about ``chunk_bytes`` (and at most
    ``chunk_rows`` rows) by a worker thread while the previous chunk is
    being sent (``pmstore._write.pipeline``). ``index_order`` sends price rows
    sorted by (token_id, ts): ``None`` (the default) when the table has an
    index led by token_id (read from the catalog once per connection), which
    the server then maintains ~1.8x faster (see benchmarks/README.md; the
    sort costs ~0.1 s of client time per million rows); ``True`` always;
    ``False`` never. ``beyond_retention`` is the default for rows older
    than the table's retention horizon (see pmstore._write.retention): "raise"
    (BatchValidationError), "write" or "skip". ``progress``, when given,
    is called as ``progress(table, rows_sent, rows_total)`` after each COPY
    chunk is sent (from 0 again after a retry).

    Not safe to share between concurrent callers: one AsyncWriter each.
    """

    def __init__(
        self,
        target: str | AsyncConn,
        *,
        retry_for: float | None = DEFAULT_RETRY_FOR,
        retries: int | None = None,
        backoff: float = DEFAULT_BACKOFF,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        index_order: bool | None = None,
        progress: CopyProgress | None = None,
        beyond_retention: BeyondRetention = "raise",
    ) -> None:
        if chunk_rows < 1 or chunk_bytes < 1:
            raise ConfigurationError("chunk_rows and chunk_bytes must be >= 1")
        budget = RetryBudget(
            retry_for=retry_for, retries=retries, backoff=backoff, max_backoff=max_backoff
        )
        self.beyond_retention = check_mode(beyond_retention)
        self._policies: dict[str, TablePolicy] = {}  # per table, read at most once a minute
        super().__init__(target, retry_budget=budget)
        self.chunk_rows = chunk_rows
        self.chunk_bytes = chunk_bytes
        self.index_order = index_order
        self.progress = progress
        self._token_indexed: dict[str, bool] = {}  # per table, for the connection below
        self._catalog_of: AsyncConn | None = None

    # -- COPY-written tables -------------------------------------------------

    async def _sorts(self, conn: AsyncConn, plan: CopyPlan) -> bool:
        """Whether to send the plan's rows in (token_id, ts) order (see ``index_order``)."""
        if not plan.sortable:
            return False
        if self.index_order is not None:
            return self.index_order
        if self._catalog_of is not conn:
            self._token_indexed, self._catalog_of = {}, conn
        if plan.table not in self._token_indexed:
            found = await conn.execute(TOKEN_INDEX_SQL, (plan.table,))
            row = await found.fetchone()
            self._token_indexed[plan.table] = bool(row and row[0])
        return self._token_indexed[plan.table]

    async def _policy(self, table: str) -> TablePolicy:
        """The table's retention horizon and aggregates (``TABLE_POLICY_SQL``), cached a minute."""
        cached = self._policies.get(table)
        if cached is not None and cached.fresh(time.monotonic()):
            return cached

        async def read(conn: AsyncConn) -> TablePolicy:
            cur = await conn.execute(TABLE_POLICY_SQL, {"table": table})
            return TablePolicy.from_row(table, await cur.fetchone(), time.monotonic())

        policy, _ = await self._transaction(table, read)
        self._policies[table] = policy
        return policy

    def _mode(self, beyond_retention: BeyondRetention | None) -> BeyondRetention:
        """A call's ``beyond_retention``, else the writer's; ConfigurationError if invalid."""
        return self.beyond_retention if beyond_retention is None else check_mode(beyond_retention)

    async def _copy(
        self, plan: CopyPlan, mode: BeyondRetention, extra_statements: Statements = ()
    ) -> WriteResult:
        """COPY ``plan``'s batch into its table in one logged transaction (see CopyPlan).

        Rows beyond the table's retention horizon are handled as ``mode``
        says first. ``extra_statements`` run first in the transaction, also
        for an empty or already logged batch. A conflict on a digest logged
        at the end rolls the COPY back and reports ``already_written`` (the
        extra statements then run in a transaction of their own).
        """
        started = time.perf_counter()
        if len(plan.batch):
            policy = await self._policy(plan.table)
            plan = await offload(with_retention, plan, policy, mode, time.monotonic())
        table, batch, retention = plan.table, plan.batch, plan.retention
        if len(batch) == 0 and not extra_statements:  # nothing to write: no round trip
            empty_id = await offload(plan.empty_batch_id)
            return WriteResult(
                table,
                empty_id,
                0,
                rejected=plan.rejected,
                seconds=0.0,
                retention_horizon=retention.horizon,
                beyond_retention_skipped=retention.skipped,
            )
        orders: dict[bool, NDArray[np.intp] | None] = {}  # computed once, kept across retries

        async def body(conn: AsyncConn) -> _Copied:
            await _execute(conn, extra_statements)
            if len(batch) == 0:
                return _Copied(plan.batch_id)
            logged_first = plan.batch_id is not None
            if logged_first:
                logged = await conn.execute(LOG_BATCH_SQL, (plan.batch_id, table, len(batch)))
                if await logged.fetchone() is None:
                    return _Copied(plan.batch_id, already=True)
            sort = await self._sorts(conn, plan)
            if sort not in orders:
                orders[sort] = await offload(send_order, batch) if sort else None
            if plan.staging:
                await conn.execute(plan.staging[0])
            stream = await offload(  # sizes the chunks: a pass over the rows
                plan.stream, orders[sort], chunk_bytes=self.chunk_bytes, chunk_rows=self.chunk_rows
            )
            try:
                written = sent = await self._stream(conn, plan, stream)
            finally:
                await offload(stream.close)  # stops the worker (it may be mid-chunk)
            if plan.staging:
                merged = await conn.execute(plan.staging[1])
                written = merged.rowcount
            ranges = 0
            if plan.aggregated and written:
                # The hours to refresh, durable with the batch (pmstore._write.touched).
                starts, ends = await offload(touched, plan)
                params = {"table": table, "starts": starts, "ends": ends}
                await conn.execute(RECORD_TOUCHED_SQL, params)
                ranges = len(starts)
            if not logged_first:
                digest_id = f"{table}:{stream.digest}"
                logged = await conn.execute(LOG_BATCH_SQL, (digest_id, table, written))
                if await logged.fetchone() is None:
                    raise AlreadyLoggedError(digest_id)  # rolls the COPY back
                return _Copied(digest_id, written, sent - written, ranges)
            if written != len(batch):
                await conn.execute(LOGGED_ROWS_SQL, (written, plan.batch_id))
            return _Copied(plan.batch_id, written, sent - written, ranges)

        try:
            copied, attempts = await self._transaction(table, body)
        except AlreadyLoggedError as exc:  # a digest logged meanwhile: the COPY rolled back
            copied, attempts = _Copied(str(exc), already=True), exc.attempts
            if extra_statements:  # they were rolled back with the COPY
                await self.execute_statements(extra_statements)
        bid = copied.batch_id if len(batch) else await offload(plan.empty_batch_id)
        return WriteResult(
            table=table,
            batch_id=bid,
            rows_written=copied.written,
            duplicates_skipped=copied.skipped,
            rejected=plan.rejected,
            already_written=copied.already,
            seconds=time.perf_counter() - started,
            attempts=attempts,
            retention_horizon=retention.horizon,
            beyond_retention_written=retention.written if not copied.already else 0,
            beyond_retention_skipped=retention.skipped,
            refresh_ranges=copied.ranges,
        )

    async def _stream(self, conn: AsyncConn, plan: CopyPlan, stream: CopyStream) -> int:
        """COPY the stream's chunks, each awaited through ``offload``; the rows copied."""
        chunks: Iterator[bytes] = iter(stream)
        bounds, total = stream.bounds, len(plan.batch)
        async with conn.cursor() as cur:
            async with cur.copy(plan.copy_sql) as copy:
                k = 0
                while (chunk := await offload(next, chunks, None)) is not None:
                    await copy.write(chunk)
                    k += 1
                    if self.progress is not None and k < len(bounds):
                        self.progress(plan.table, bounds[k], total)
            return cur.rowcount

    async def copy_prices(
        self,
        batch: PriceBatch | Mapping[str, Any] | Sequence[Any] | FrameLike,
        *,
        batch_id: str | None = None,
        on_invalid: OnInvalid = "raise",
        beyond_retention: BeyondRetention | None = None,
        extra_statements: Statements = (),
    ) -> WriteResult:
        """Write price snapshots over binary COPY in one transaction.

        ``batch``: a PriceBatch, a mapping of columns (ts, token_id, price,
        optional volume_24h; numpy arrays or sequences), or a sequence of
        PriceSnapshot records or (ts, token_id, price[, volume_24h]) tuples,
        or a pandas/polars DataFrame or pyarrow Table of those columns
        (``pmstore.batches._from_frame``; float64 columns are not copied).
        Raises BatchValidationError (nothing written) on invalid rows unless
        ``on_invalid="skip"`` (rows are checked while they stream; an invalid
        one aborts the COPY, so nothing is written); WriteError /
        ConnectionLostError when the server refuses or the connection is lost
        for good. A batch id already in the ingest log writes nothing. Rows
        older than the table's retention horizon raise BatchValidationError
        too, unless ``beyond_retention`` (default: the writer's) is "write"
        or "skip". Where the continuous aggregates exist, the hours touched
        are queued for their refresh in the same transaction. Costs two round
        trips plus the COPY stream, encoded about ``chunk_bytes`` at a time
        ahead of the sender (see ``index_order`` for the sort), plus one
        statement queueing the touched hours (Community edition) and, once a
        minute per table, one reading the retention horizon.
        ``extra_statements`` ((SQL, params) pairs) run first inside the same
        transaction, also when the batch is empty or already logged: they
        commit with the rows or not at all (``pmstore ingest`` moves its file
        cursors this way).
        """
        mode = self._mode(beyond_retention)
        plan = await offload(plan_prices, batch, batch_id, on_invalid)
        return await self._copy(plan, mode, extra_statements)

    async def copy_orderbooks(
        self,
        batch: OrderbookBatch | Mapping[str, Any] | Sequence[Any] | FrameLike,
        *,
        batch_id: str | None = None,
        on_invalid: OnInvalid = "raise",
        beyond_retention: BeyondRetention | None = None,
        extra_statements: Statements = (),
    ) -> WriteResult:
        """Write order-book snapshots over binary COPY in one transaction.

        Levels are stored best-first (bids by descending price, asks by
        ascending price); spread and midpoint are computed from the best
        levels when not given (NULL for empty or one-sided books). Same
        input forms, errors, idempotence and ``extra_statements`` as
        ``copy_prices``.
        """
        mode = self._mode(beyond_retention)
        plan = await offload(plan_orderbooks, batch, batch_id, on_invalid)
        return await self._copy(plan, mode, extra_statements)

    async def copy_trades(
        self,
        batch: TradeBatch | Mapping[str, Any] | Sequence[Any] | FrameLike,
        *,
        batch_id: str | None = None,
        on_invalid: OnInvalid = "raise",
        beyond_retention: BeyondRetention | None = None,
        extra_statements: Statements = (),
    ) -> WriteResult:
        """Write trades, skipping and counting those already stored.

        COPY cannot skip conflicts, so rows are copied into a temporary
        staging table and merged with ``INSERT ... ON CONFLICT (trade_id, ts)
        DO NOTHING``. A trade without an id gets one derived from its content
        (see ``pmstore.batches.TradeBatch``). Same input forms, errors,
        idempotence and ``extra_statements`` as ``copy_prices``.
        """
        mode = self._mode(beyond_retention)
        plan = await offload(plan_trades, batch, batch_id, on_invalid)
        return await self._copy(plan, mode, extra_statements)

    # -- upserted tables -----------------------------------------------------

    async def upsert_markets(
        self,
        records: Sequence[MarketRecord | Mapping[str, Any] | tuple[Any, ...]],
        *,
        extra_statements: Statements = (),
    ) -> WriteResult:
        """Insert or update markets by condition_id, in one transaction.

        ``updated_at`` is set to now() when a value changes; ``created_at``
        is kept from the first insert (or taken from the record). A market
        whose values are unchanged is not rewritten (``rows_written`` counts
        inserted and changed rows only). Records may be MarketRecord,
        mappings or tuples in MarketRecord's field order. Raises
        BatchValidationError (nothing written) naming row and field.
        ``extra_statements`` as in ``copy_prices``.
        """
        rows = await offload(market_rows, records)
        return await self._upsert("markets", UPSERT_MARKETS_SQL, rows, extra_statements)

    async def upsert_resolutions(
        self,
        records: Sequence[ResolutionRecord | Mapping[str, Any] | tuple[Any, ...]],
        *,
        extra_statements: Statements = (),
    ) -> WriteResult:
        """Insert or update resolutions by condition_id, in one transaction.

        A resolution changes over time (pending, proposed, disputed, ...,
        resolved): the latest write wins unless it is less far along than the
        stored row (a stale message: ``pending`` after ``proposed``, anything
        but ``resolved`` after ``resolved``, a ``resolved`` without its winner
        after one with it; pmstore._write.precedence has the rule).
        Raises BatchValidationError (nothing written) naming row and field.
        ``extra_statements`` as in ``copy_prices``.
        """
        rows = await offload(resolution_rows, records)
        return await self._upsert("resolutions", UPSERT_RESOLUTIONS_SQL, rows, extra_statements)

    async def execute_statements(self, statements: Statements) -> None:
        """Run (SQL, params) pairs in one transaction, with the writer's retries.

        For bookkeeping that has no batch to ride with (``pmstore ingest``
        moving a cursor over lines that gave no records). Raises WriteError /
        ConnectionLostError like the other calls. Costs one round trip per
        statement.
        """

        async def body(conn: AsyncConn) -> None:
            await _execute(conn, statements)

        await self._transaction("statements", body)

    async def logged(self, batch_ids: Iterable[str]) -> set[str]:
        """The ids among ``batch_ids`` that are in the ingest log: the batches the server holds.

        After a failover under asynchronous replication, batches committed
        on the old primary but not yet replicated are missing on the new one:
        the ids given but not returned are those to write again, with the
        same ids (a batch is still stored once: the log sees to it). Give
        the ids you chose (``batch_id=``) or the results' ``batch_id``
        (content digests). One query, retried like a write, none for no
        ids. Raises ConfigurationError for ids that are not strings (a lone
        string too: give a collection), WriteError / ConnectionLostError like
        the other calls.
        """
        if isinstance(batch_ids, str):
            raise ConfigurationError("logged() takes a collection of batch ids, not one string")
        ids = list(batch_ids)
        strange = [i for i in ids if not isinstance(i, str)]
        if strange:
            raise ConfigurationError(f"batch ids are strings, not {type(strange[0]).__name__}")
        if not ids:
            return set()

        async def body(conn: AsyncConn) -> set[str]:
            found = await conn.execute(LOGGED_BATCHES_SQL, (list(dict.fromkeys(ids)),))
            return {str(row[0]) for row in await found.fetchall()}

        logged, _ = await self._transaction("pmstore_ingest_log", body)
        return logged

    async def _upsert(
        self, table: str, sql: str, rows: list[tuple[Any, ...]], extra_statements: Statements = ()
    ) -> WriteResult:
        """``executemany`` (pipelined by psycopg) of one upsert per row, in one transaction.

        Slower than COPY into a staging table plus one merge (benchmarks/README.md,
        "Upserts"), but market and resolution batches are small (a full Gamma
        refresh is ~10k rows), so the simpler statement won; switch to staging
        if they grow by orders of magnitude.
        """
        started = time.perf_counter()

        async def body(conn: AsyncConn) -> int:
            await _execute(conn, extra_statements)
            if not rows:
                return 0
            async with conn.cursor() as cur:
                await cur.executemany(sql, rows)
                return max(cur.rowcount, 0)

        written, attempts = await self._transaction(table, body)
        return WriteResult(
            table=table,
            batch_id=None,
            rows_written=written,
            seconds=time.perf_counter() - started,
            attempts=attempts,
        )


@dataclass(frozen=True, slots=True)
class _Copied:
    """What one ``_copy`` transaction did: the batch id logged and the rows written."""

    batch_id: str | None
    written: int = 0
    skipped: int = 0
    ranges: int = 0
    already: bool = False


async def _execute(conn: AsyncConn, statements: Statements) -> None:
    """Run ``extra_statements`` on ``conn`` (inside the caller's transaction)."""
    for sql, params in statements:
        await conn.execute(sql, params)
