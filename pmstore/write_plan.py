"""What a write is before it reaches the server: the checked batch, its id, its SQL.

The CPU half of ``AsyncWriter`` (``pmstore.writer_async``) and ``Writer``
(``pmstore.writer``, generated from it): building and validating a batch,
its content digest, sorting, and the statements each call runs. These are
plain functions of their arguments, with no I/O, so the AsyncWriter can run
them in a worker thread and the Writer inline; the result types are shared
by both (an ``AsyncWriter`` and a ``Writer`` return the same ``WriteResult``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from pmstore.batches import ColumnBatch, OrderbookBatch, PriceBatch, TradeBatch, as_batch
from pmstore.copy_encoding import encode_orderbooks, encode_prices, encode_trades
from pmstore.errors import BatchValidationError, ConfigurationError, RowProblem
from pmstore.models import MarketRecord, ResolutionRecord

__all__ = [
    "KEEP_ORDER_FROM_ROWS",
    "CopyPlan",
    "Encoder",
    "OnInvalid",
    "Progress",
    "WriteResult",
    "market_rows",
    "plan_orderbooks",
    "plan_prices",
    "plan_trades",
    "resolution_rows",
]

KEEP_ORDER_FROM_ROWS: Final = 50_000
"""Price batches at least this large are encoded keeping their sorted order.

Measured (benchmarks/, 2 cores): a million sorted rows load ~16% faster as
one sorted run than as the encoder's per-layout runs, while an 8,000-row
minute batch is ~15% slower (encoding cost, no index gain)."""

OnInvalid = Literal["raise", "skip"]
"""What to do with invalid rows: raise BatchValidationError (write nothing), or skip them."""

Encoder = Callable[..., Iterator[bytes]]
"""``encode(batch, chunk_rows=...)``: the batch's binary COPY stream, a chunk at a time."""

Progress = Callable[[str, int, int], object]
"""``progress(table, rows_sent, rows_total)``, called after each COPY chunk is sent."""

BatchT = TypeVar("BatchT", bound=ColumnBatch)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one Writer (or AsyncWriter) call did.

    ``rows_written`` counts rows inserted or updated; ``duplicates_skipped``
    rows already present (trades); ``rejected`` the invalid rows skipped with
    ``on_invalid="skip"``; ``already_written`` is True when the batch id was
    found in the ingest log, so nothing was written; ``attempts`` counts
    tries (more than 1 after a reconnect).
    """

    table: str
    batch_id: str | None
    rows_written: int
    duplicates_skipped: int = 0
    rejected: tuple[RowProblem, ...] = ()
    already_written: bool = False
    seconds: float = 0.0
    attempts: int = 1

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

TRADES_STAGING_SQL: Final = """
    CREATE TEMP TABLE IF NOT EXISTS pmstore_trades_staging
        (LIKE trades INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
"""

TRADES_MERGE_SQL: Final = """
    INSERT INTO trades (ts, token_id, side, price, size, trade_id)
    SELECT ts, token_id, side, price, size, trade_id FROM pmstore_trades_staging
    ON CONFLICT (trade_id, ts) DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class CopyPlan:
    """A checked batch ready to COPY: what the Writer's transaction runs.

    The transaction logs ``batch_id`` (``LOG_BATCH_SQL``; a batch id already
    logged writes nothing), streams ``encode(batch, chunk_rows=...)`` into
    ``copy_sql`` and, with ``staging`` = (create staging table, merge), merges
    the staging table: the merge's row count is what was written.
    """

    batch: ColumnBatch
    batch_id: str
    rejected: tuple[RowProblem, ...]
    encode: Encoder
    staging: tuple[str, str] | None = None

    @property
    def table(self) -> str:
        return self.batch.TABLE

    @property
    def copy_sql(self) -> str:
        target = f"pmstore_{self.table}_staging" if self.staging else self.table
        return f"COPY {target} ({', '.join(self.batch.COLUMNS)}) FROM STDIN (FORMAT binary)"

    def chunks(self, chunk_rows: int) -> Iterator[bytes]:
        """The batch's binary COPY stream, ``chunk_rows`` rows a chunk (encoded on demand)."""
        return self.encode(self.batch, chunk_rows=chunk_rows)


def _checked(
    batch_type: type[BatchT],
    data: BatchT | Mapping[str, Any] | Sequence[Any],
    batch_id: str | None,
    on_invalid: OnInvalid,
) -> tuple[BatchT, str, tuple[RowProblem, ...]]:
    if on_invalid not in ("raise", "skip"):
        raise ConfigurationError(f"on_invalid must be 'raise' or 'skip', not {on_invalid!r}")
    batch = as_batch(batch_type, data)
    if batch_id is None:
        batch_id = f"{batch.TABLE}:{batch.content_digest()}"
    elif not batch_id:
        raise ConfigurationError("batch_id must not be empty")
    if on_invalid == "raise":
        return batch.validated(), batch_id, ()
    problems, bad = batch.problems(limit=max(len(batch), 1))
    if bad.any():
        batch = batch.select(~bad)
    return batch, batch_id, tuple(problems)


def plan_prices(
    data: PriceBatch | Mapping[str, Any] | Sequence[Any],
    batch_id: str | None,
    on_invalid: OnInvalid,
    *,
    index_order: bool,
) -> CopyPlan:
    """Build, check and (with ``index_order``) sort a price batch; see ``Writer.copy_prices``.

    Raises BatchValidationError / ConfigurationError. Costs the batch's
    conversion, validation and digest (about 0.5 s a million rows), plus
    ~0.3 s a million for the sort.
    """
    batch, bid, rejected = _checked(PriceBatch, data, batch_id, on_invalid)
    encode: Encoder = encode_prices
    if index_order:
        batch = batch.in_index_order()
        if len(batch) >= KEEP_ORDER_FROM_ROWS:
            # Large batches: send one sorted run (slower encoding, which
            # the server's faster index maintenance more than repays).
            encode = functools.partial(encode_prices, keep_order=True)
    return CopyPlan(batch, bid, rejected, encode)


def plan_orderbooks(
    data: OrderbookBatch | Mapping[str, Any] | Sequence[Any],
    batch_id: str | None,
    on_invalid: OnInvalid,
) -> CopyPlan:
    """Build and check an order-book batch; see ``Writer.copy_orderbooks``."""
    batch, bid, rejected = _checked(OrderbookBatch, data, batch_id, on_invalid)
    return CopyPlan(batch, bid, rejected, encode_orderbooks)


def plan_trades(
    data: TradeBatch | Mapping[str, Any] | Sequence[Any],
    batch_id: str | None,
    on_invalid: OnInvalid,
) -> CopyPlan:
    """Build and check a trade batch (COPY through a staging table); see ``Writer.copy_trades``."""
    batch, bid, rejected = _checked(TradeBatch, data, batch_id, on_invalid)
    return CopyPlan(
        batch, bid, rejected, encode_trades, staging=(TRADES_STAGING_SQL, TRADES_MERGE_SQL)
    )


# -- upserted tables ----------------------------------------------------------------

# created_at is kept from the first insert; updated_at is set when a value changes
# (an unchanged market is not rewritten, so re-ingesting the same data writes nothing).
UPSERT_MARKETS_SQL: Final = """
    INSERT INTO markets (condition_id, question, slug, market_type, outcomes, clob_token_ids,
                         active, closed, end_date_iso, created_at, updated_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()), now())
    ON CONFLICT (condition_id) DO UPDATE SET
        question = EXCLUDED.question,
        slug = EXCLUDED.slug,
        market_type = EXCLUDED.market_type,
        outcomes = EXCLUDED.outcomes,
        clob_token_ids = EXCLUDED.clob_token_ids,
        active = EXCLUDED.active,
        closed = EXCLUDED.closed,
        end_date_iso = EXCLUDED.end_date_iso,
        updated_at = now()
    WHERE (markets.question, markets.slug, markets.market_type, markets.outcomes,
           markets.clob_token_ids, markets.active, markets.closed, markets.end_date_iso)
          IS DISTINCT FROM
          (EXCLUDED.question, EXCLUDED.slug, EXCLUDED.market_type, EXCLUDED.outcomes,
           EXCLUDED.clob_token_ids, EXCLUDED.active, EXCLUDED.closed, EXCLUDED.end_date_iso)
"""

# A resolution moves proposed -> disputed -> resolved; a stale message must not
# turn a final 'resolved' row back into 'proposed' or 'disputed'.
UPSERT_RESOLUTIONS_SQL: Final = """
    INSERT INTO resolutions (condition_id, outcome, winner_token_id, resolved_at, payout_price,
                             detection_method, status, created_at, updated_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()), now())
    ON CONFLICT (condition_id) DO UPDATE SET
        outcome = EXCLUDED.outcome,
        winner_token_id = EXCLUDED.winner_token_id,
        resolved_at = EXCLUDED.resolved_at,
        payout_price = EXCLUDED.payout_price,
        detection_method = EXCLUDED.detection_method,
        status = EXCLUDED.status,
        updated_at = now()
    WHERE (resolutions.status IS DISTINCT FROM 'resolved'
           OR EXCLUDED.status IS NOT DISTINCT FROM 'resolved')
      AND (resolutions.outcome, resolutions.winner_token_id, resolutions.resolved_at,
           resolutions.payout_price, resolutions.detection_method, resolutions.status)
          IS DISTINCT FROM
          (EXCLUDED.outcome, EXCLUDED.winner_token_id, EXCLUDED.resolved_at,
           EXCLUDED.payout_price, EXCLUDED.detection_method, EXCLUDED.status)
"""


def market_rows(
    records: Sequence[MarketRecord | Mapping[str, Any] | tuple[Any, ...]],
) -> list[tuple[Any, ...]]:
    """Validated markets as ``UPSERT_MARKETS_SQL`` parameters; BatchValidationError."""
    return [
        (
            m.condition_id,
            m.question,
            m.slug,
            m.market_type,
            m.outcomes,
            m.clob_token_ids,
            m.active,
            m.closed,
            m.end_date_iso,
            m.created_at,
        )
        for m in _validate_records("markets", MarketRecord, records)
    ]


def resolution_rows(
    records: Sequence[ResolutionRecord | Mapping[str, Any] | tuple[Any, ...]],
) -> list[tuple[Any, ...]]:
    """Validated resolutions as ``UPSERT_RESOLUTIONS_SQL`` parameters; BatchValidationError."""
    return [
        (
            r.condition_id,
            r.outcome,
            r.winner_token_id,
            r.resolved_at,
            r.payout_price,
            r.detection_method,
            r.status,
            r.created_at,
        )
        for r in _validate_records("resolutions", ResolutionRecord, records)
    ]


ModelT = TypeVar("ModelT", bound=BaseModel)


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
