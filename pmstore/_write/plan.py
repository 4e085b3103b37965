"""What a write is before it reaches the server: the checked batch, its id, its SQL.

The CPU half of ``AsyncWriter`` (``pmstore.writer_async``) and ``Writer``
(``pmstore.writer``, generated from it): building and validating a batch,
its content digest, the row order, and the statements each call runs. These are
plain functions of their arguments, with no I/O, so the AsyncWriter can run
them in a worker thread and the Writer inline; the result types are shared
by both (an ``AsyncWriter`` and a ``Writer`` return the same ``WriteResult``).
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray
from psycopg.sql import SQL, Identifier
from pydantic import ValidationError

from pmstore._write.encoding import Rows, orderbook_chunk, price_chunk, trade_chunk
from pmstore._write.pipeline import DEFAULT_FIRST_CHUNK_BYTES, CopyStream, index_order
from pmstore._write.precedence import precedence_sql
from pmstore._write.retention import BeyondRetention, RetentionOutcome, TablePolicy, apply_retention
from pmstore._write.touched import touched_ranges
from pmstore.batches import ColumnBatch, OrderbookBatch, PriceBatch, TradeBatch, as_batch
from pmstore.batches._column_batch import BatchT
from pmstore.batches._from_frame import FrameLike
from pmstore.errors import BatchValidationError, ConfigurationError, RowProblem
from pmstore.models import MarketRecord, ModelT, ResolutionRecord

__all__ = [
    "CopyPlan",
    "CopyProgress",
    "Encoder",
    "OnInvalid",
    "Statements",
    "WriteResult",
    "market_rows",
    "plan_orderbooks",
    "plan_prices",
    "plan_trades",
    "resolution_rows",
    "send_order",
    "touched",
    "with_retention",
]

OnInvalid = Literal["raise", "skip"]
"""What to do with invalid rows: raise BatchValidationError (write nothing), or skip them."""

Encoder = Callable[[Any, Rows, bytes, bool], bytes]
"""``encode(batch, rows, prefix, keep_order)``: those rows' binary COPY data after ``prefix``."""

Statements = Sequence[tuple[str, Sequence[Any]]]
"""``extra_statements``: (SQL, parameters) pairs run inside a call's transaction."""

CopyProgress = Callable[[str, int, int], object]
"""``progress(table, rows_sent, rows_total)``, called after each COPY chunk is sent."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one Writer (or AsyncWriter) call did.

    ``rows_written`` counts rows inserted or updated; ``duplicates_skipped``
    rows already present (trades); ``rejected`` the invalid rows skipped with
    ``on_invalid="skip"``; ``already_written`` is True when the batch id was
    found in the ingest log, so nothing was written; ``attempts`` counts
    tries (more than 1 after a reconnect). ``retention_horizon`` is the
    table's retention horizon when it has a policy; rows older than it were
    written (``beyond_retention_written``) or skipped
    (``beyond_retention_skipped``) as ``beyond_retention`` asked.
    ``refresh_ranges`` counts the hour ranges queued for the continuous
    aggregates' refresh (see pmstore.refresh).
    """

    table: str
    batch_id: str | None
    rows_written: int
    duplicates_skipped: int = 0
    rejected: tuple[RowProblem, ...] = ()
    already_written: bool = False
    seconds: float = 0.0
    attempts: int = 1
    retention_horizon: datetime | None = None
    beyond_retention_written: int = 0
    beyond_retention_skipped: int = 0
    refresh_ranges: int = 0

    @property
    def rows_per_second(self) -> float:
        """Rows written per second of the call (0 when nothing was written)."""
        return self.rows_written / self.seconds if self.seconds > 0 else 0.0


# -- the statements of a COPY-written batch ---------------------------------------

LOG_BATCH_SQL: Final = """
    INSERT INTO pmstore_ingest_log (batch_id, table_name, rows_written)
    VALUES (%s, %s, %s)
    ON CONFLICT (batch_id) DO NOTHING
    RETURNING batch_id
"""

LOGGED_ROWS_SQL: Final = "UPDATE pmstore_ingest_log SET rows_written = %s WHERE batch_id = %s"

LOGGED_BATCHES_SQL: Final = (
    "SELECT batch_id FROM pmstore_ingest_log WHERE batch_id = ANY(%s::text[])"
)
"""Which of the given batch ids are logged (``Writer.logged``): one probe of the primary key
per id."""

TRADES_STAGING_SQL: Final = """
    CREATE TEMP TABLE IF NOT EXISTS pmstore_trades_staging
        (LIKE trades INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
"""

TRADES_MERGE_SQL: Final = (
    SQL(
        "INSERT INTO trades ({columns}) SELECT {columns} FROM pmstore_trades_staging"
        " ON CONFLICT (trade_id, ts) DO NOTHING"
    )
    .format(columns=SQL(", ").join(map(Identifier, TradeBatch.COLUMNS)))
    .as_string()
)


TOKEN_INDEX_SQL: Final = """
    SELECT EXISTS (
        SELECT 1 FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = to_regclass(%s) AND a.attname = 'token_id'
    )
"""
"""Whether a table has an index whose first column is token_id: then rows sent in
(token_id, ts) order make its maintenance sequential (see benchmarks/README.md)."""


_NO_RETENTION: Final = RetentionOutcome(None)
"""No retention policy applied (yet): every row kept."""


@dataclass(frozen=True, slots=True)
class CopyPlan:
    """A batch ready to COPY: what the Writer's transaction runs.

    A given ``batch_id`` is logged first (``LOG_BATCH_SQL``; one already
    logged writes nothing). Without one (``None``) the id is the content
    digest, computed by the stream's worker while the rows go out and logged
    at the end of the same transaction. The rows stream through
    ``stream(...)`` (a ``pmstore._write.pipeline.CopyStream``, validating them
    when ``validate``) into ``copy_sql``; ``sortable`` batches are sent in
    (token_id, ts) order when the table has an index led by token_id. With
    ``staging`` = (create staging table, merge), the staging table is merged:
    the merge's row count is what was written. With ``aggregated``, the
    hours the batch touched are queued in the same transaction
    (``RECORD_TOUCHED_SQL``, see ``touched``).
    """

    batch: ColumnBatch
    batch_id: str | None
    validate: bool
    rejected: tuple[RowProblem, ...]
    encode: Encoder
    sortable: bool = False
    staging: tuple[str, str] | None = None
    kept_rows: NDArray[np.intp] | None = None
    """The caller's row numbers of the batch's rows, when invalid ones were skipped."""
    retention: RetentionOutcome = _NO_RETENTION
    """What ``with_retention`` decided for rows older than the table's retention horizon."""
    aggregated: bool = False
    """Whether the table feeds continuous aggregates: the hours touched are queued."""

    @property
    def table(self) -> str:
        return self.batch.TABLE

    @property
    def copy_sql(self) -> str:
        target = f"pmstore_{self.table}_staging" if self.staging else self.table
        return f"COPY {target} ({', '.join(self.batch.COLUMNS)}) FROM STDIN (FORMAT binary)"

    def empty_batch_id(self) -> str:
        """The id reported for an empty batch (nothing is sent): the given one or the digest."""
        return self.batch_id or f"{self.table}:{self.batch.content_digest()}"

    def stream(
        self, order: NDArray[np.intp] | None, *, chunk_bytes: int, chunk_rows: int
    ) -> CopyStream:
        """The batch's COPY stream in ``order``: chunks of about ``chunk_bytes`` (at most
        ``chunk_rows`` rows) encoded by a worker thread ahead of the sender; order books'
        first chunk smaller (``DEFAULT_FIRST_CHUNK_BYTES``: their levels cost the most to
        encode or parse, and the server waits for the first chunk alone)."""
        keep_order = order is not None
        encode = self.encode

        def chunk(batch: Any, rows: Rows, prefix: bytes) -> bytes:
            return encode(batch, rows, prefix, keep_order)

        return CopyStream(
            self.batch,
            chunk,
            order=order,
            validate=self.validate,
            digest=self.batch_id is None,
            chunk_bytes=chunk_bytes,
            max_chunk_rows=chunk_rows,
            first_chunk_bytes=(
                DEFAULT_FIRST_CHUNK_BYTES if isinstance(self.batch, OrderbookBatch) else None
            ),
        )


def with_retention(
    plan: CopyPlan, policy: TablePolicy, mode: BeyondRetention, now: float
) -> CopyPlan:
    """``plan`` under its table's retention ``policy`` (read at monotonic ``now``'s clock).

    Rows older than the horizon raise BatchValidationError (``mode`` "raise";
    an invalid row of the batch is reported first), are written ("write",
    counted) or dropped ("skip"). Costs one vectorized comparison (plus the
    batch's validation when rows are dropped or refused).
    """
    batch = plan.batch
    if len(batch) == 0:
        return plan
    horizon = policy.horizon_at(now)
    try:
        retention = apply_retention(
            batch.TABLE, batch.ts, horizon, mode, rows=plan.kept_rows, drop_after=policy.drop_after
        )
    except BatchValidationError:
        if plan.validate:
            batch.validated()  # an invalid row is the first problem to report
        raise
    validate = plan.validate
    if retention.keep is not None:
        if validate:  # row numbers as given: check before dropping rows
            batch = batch.validated()
            validate = False
        batch = batch.select(retention.keep)
    return dataclasses.replace(
        plan, batch=batch, validate=validate, retention=retention, aggregated=policy.aggregated
    )


def touched(plan: CopyPlan) -> tuple[list[datetime], list[datetime]]:
    """``RECORD_TOUCHED_SQL``'s hour ranges of the plan's batch (once its rows are checked)."""
    return touched_ranges(plan.batch.ts)


def send_order(batch: ColumnBatch) -> NDArray[np.intp] | None:
    """``copy_pipeline.index_order``, or None when already in order; when the tokens cannot
    be sorted, the batch's validation error (naming the bad row), else the TypeError."""
    try:
        return index_order(batch)
    except TypeError:
        batch.validated()
        raise


def _checked_batch(
    batch_type: type[BatchT],
    data: BatchT | Mapping[str, Any] | Sequence[Any] | FrameLike,
    batch_id: str | None,
    on_invalid: OnInvalid,
) -> tuple[BatchT, bool, tuple[RowProblem, ...], NDArray[np.intp] | None]:
    """The batch, whether the stream must still validate it, the rows skipped, and the
    caller's row numbers of the rows kept (None: all, in order)."""
    _check_options(batch_id, on_invalid)
    batch = as_batch(batch_type, data)
    if on_invalid == "raise":
        return batch, True, (), None  # validated chunk by chunk while streaming
    problems, bad = batch.problems(limit=max(len(batch), 1))
    kept = None
    if bad.any():
        kept = np.flatnonzero(~bad)  # the caller's row numbers of the rows kept
        batch = batch.select(~bad)
    return batch, False, tuple(problems), kept


def _check_options(batch_id: str | None, on_invalid: OnInvalid) -> None:
    if on_invalid not in ("raise", "skip"):
        raise ConfigurationError(f"on_invalid must be 'raise' or 'skip', not {on_invalid!r}")
    if batch_id is not None and not batch_id:
        raise ConfigurationError("batch_id must not be empty")


def _price_chunk(batch: Any, rows: Rows, prefix: bytes, keep_order: bool) -> bytes:
    return price_chunk(batch, rows, prefix=prefix, keep_order=keep_order)


def _orderbook_chunk(batch: Any, rows: Rows, prefix: bytes, _keep_order: bool) -> bytes:
    return orderbook_chunk(batch, rows, prefix=prefix)


def _trade_chunk(batch: Any, rows: Rows, prefix: bytes, _keep_order: bool) -> bytes:
    return trade_chunk(batch, rows, prefix=prefix)


def plan_prices(
    data: PriceBatch | Mapping[str, Any] | Sequence[Any] | FrameLike,
    batch_id: str | None,
    on_invalid: OnInvalid,
) -> CopyPlan:
    """Build a price batch (rows checked while streaming); see ``Writer.copy_prices``.

    Raises BatchValidationError (``on_invalid="skip"`` aside, structural
    problems only) / ConfigurationError. Costs the batch's conversion.
    """
    batch, validate, rejected, kept = _checked_batch(PriceBatch, data, batch_id, on_invalid)
    return CopyPlan(
        batch, batch_id, validate, rejected, _price_chunk, sortable=True, kept_rows=kept
    )


def plan_orderbooks(
    data: OrderbookBatch | Mapping[str, Any] | Sequence[Any] | FrameLike,
    batch_id: str | None,
    on_invalid: OnInvalid,
) -> CopyPlan:
    """Build an order-book batch; see ``Writer.copy_orderbooks``.

    A mapping of columns (``on_invalid="raise"``) becomes a deferred batch
    (``OrderbookBatch.from_columns_deferred``): its columns are converted and
    checked now, its levels parsed by the stream's worker, chunk by chunk,
    while the previous chunk is sent (the parse of Polymarket's string levels
    is most of the client's work).
    """
    _check_options(batch_id, on_invalid)
    if on_invalid == "raise" and isinstance(data, Mapping):
        batch = OrderbookBatch.from_columns_deferred(data)
        return CopyPlan(batch, batch_id, True, (), _orderbook_chunk)
    batch, validate, rejected, kept = _checked_batch(OrderbookBatch, data, batch_id, on_invalid)
    return CopyPlan(batch, batch_id, validate, rejected, _orderbook_chunk, kept_rows=kept)


def plan_trades(
    data: TradeBatch | Mapping[str, Any] | Sequence[Any] | FrameLike,
    batch_id: str | None,
    on_invalid: OnInvalid,
) -> CopyPlan:
    """Build a trade batch (COPY through a staging table); see ``Writer.copy_trades``."""
    batch, validate, rejected, kept = _checked_batch(TradeBatch, data, batch_id, on_invalid)
    return CopyPlan(
        batch,
        batch_id,
        validate,
        rejected,
        _trade_chunk,
        staging=(TRADES_STAGING_SQL, TRADES_MERGE_SQL),
        kept_rows=kept,
    )


# -- upserted tables ----------------------------------------------------------------

# The upserted tables' column lists are their models' fields (one source of truth):
# the key first, then the values, then created_at and updated_at.
_MARKET_COLUMNS = tuple(MarketRecord.model_fields)
_RESOLUTION_COLUMNS = tuple(ResolutionRecord.model_fields)
_STAMPS = ("created_at", "updated_at")


def _upsert_sql(table: str, columns: Sequence[str], guard: str | None = None) -> str:
    """INSERT ... ON CONFLICT (key) DO UPDATE of ``columns`` (the key first) into ``table``.

    created_at is kept from the first insert (or taken from the record);
    updated_at is set when a value changes: an unchanged row is not rewritten,
    so re-ingesting the same data writes nothing. ``guard`` is an extra
    condition on the update. Parameters: every column but updated_at, in order.
    """
    key, changing = columns[0], [c for c in columns[1:] if c not in _STAMPS]
    ident, joined = Identifier, SQL(", ").join
    values = {"created_at": SQL("coalesce(%s, now())"), "updated_at": SQL("now()")}
    statement = SQL(
        "INSERT INTO {table} ({columns}) VALUES ({values})"
        " ON CONFLICT ({key}) DO UPDATE SET {updates}, updated_at = now()"
        " WHERE {guard}({current}) IS DISTINCT FROM ({excluded})"
    ).format(
        table=ident(table),
        columns=joined(map(ident, columns)),
        values=joined(values.get(c, SQL("%s")) for c in columns),
        key=ident(key),
        updates=joined(SQL("{0} = EXCLUDED.{0}").format(ident(c)) for c in changing),
        guard=SQL(f"({guard}) AND " if guard else ""),
        current=joined(ident(table, c) for c in changing),
        excluded=joined(ident("excluded", c) for c in changing),
    )
    return statement.as_string()


def _upsert_params(columns: Sequence[str]) -> Callable[[Any], tuple[Any, ...]]:
    """The parameters of :func:`_upsert_sql` from a record: its fields but updated_at."""
    getter = operator.attrgetter(*(c for c in columns if c != "updated_at"))
    return lambda record: tuple(getter(record))


UPSERT_MARKETS_SQL: Final = _upsert_sql("markets", _MARKET_COLUMNS)
_MARKET_PARAMS = _upsert_params(_MARKET_COLUMNS)

# A resolution moves pending -> proposed -> disputed -> resolved: a stale message
# never moves a row back (pmstore._write.precedence has the rule).
UPSERT_RESOLUTIONS_SQL: Final = _upsert_sql(
    "resolutions",
    _RESOLUTION_COLUMNS,
    guard=f"{precedence_sql('EXCLUDED')} >= {precedence_sql('resolutions')}",
)
_RESOLUTION_PARAMS = _upsert_params(_RESOLUTION_COLUMNS)


def market_rows(
    records: Sequence[MarketRecord | Mapping[str, Any] | tuple[Any, ...]],
) -> list[tuple[Any, ...]]:
    """Validated markets as ``UPSERT_MARKETS_SQL`` parameters; BatchValidationError."""
    return [_MARKET_PARAMS(m) for m in _validate_records("markets", MarketRecord, records)]


def resolution_rows(
    records: Sequence[ResolutionRecord | Mapping[str, Any] | tuple[Any, ...]],
) -> list[tuple[Any, ...]]:
    """Validated resolutions as ``UPSERT_RESOLUTIONS_SQL`` parameters; BatchValidationError."""
    return [
        _RESOLUTION_PARAMS(r) for r in _validate_records("resolutions", ResolutionRecord, records)
    ]


def _validate_records(
    table: str,
    model: type[ModelT],
    records: Sequence[ModelT | Mapping[str, Any] | tuple[Any, ...]],
) -> list[ModelT]:
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Sequence):
        raise BatchValidationError(
            table,
            [
                RowProblem(
                    None, "*", f"expected a sequence of records, not {type(records).__name__}"
                )
            ],
        )
    names = list(model.model_fields)
    out: list[ModelT] = []
    problems: list[RowProblem] = []
    for index, record in enumerate(records):
        try:
            if isinstance(record, model):
                out.append(record)
            elif isinstance(record, Mapping):
                out.append(model.model_validate(dict(record)))
            elif isinstance(record, tuple):
                if len(record) > len(names):
                    problems.append(
                        RowProblem(index, "*", f"{len(record)} values for {len(names)} columns")
                    )
                    continue
                out.append(model.model_validate(dict(zip(names, record, strict=False))))
            else:
                problems.append(
                    RowProblem(
                        index,
                        "*",
                        f"expected {model.__name__}, mapping or tuple, not {type(record).__name__}",
                    )
                )
        except ValidationError as exc:
            for err in exc.errors():
                column = str(err["loc"][0]) if err["loc"] else "*"
                problems.append(RowProblem(index, column, err["msg"]))
    if problems:
        raise BatchValidationError(table, problems[:20], total=len(problems))
    return out
