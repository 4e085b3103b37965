"""What the readers run and return: result models, argument checks, SQL statements.

Shared by ``AsyncReader`` (``pmstore.reader_async``) and ``Reader``
(``pmstore.reader``, generated from it), so that both return the same
models for the same queries. Each ``*_SQL`` constant is run by the one
Reader method that names it in its docstring; ``pmstore.reader`` re-exports
them, so a plan can be inspected (``EXPLAIN``) as run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from pmstore._utc import aware_utc
from pmstore.errors import ConfigurationError
from pmstore.models import UtcDatetime

__all__ = [
    "AGGREGATE_GROUP_BY",
    "CANDLES_AGGREGATE_SQL",
    "CANDLES_LIVE_SQL",
    "EARLIEST",
    "LATEST_PRICES_ALL_SETTINGS",
    "LATEST_PRICES_ALL_SQL",
    "LATEST_PRICES_OF_TOKENS_SQL",
    "MARKETS_SQL",
    "MARKET_SQL",
    "ORDERBOOK_AT_SQL",
    "PRICE_CANDLES_1H_SELECT",
    "PRICE_CHUNKS_SPAN_SQL",
    "PRICE_HISTORY_BUCKETED_SQL",
    "PRICE_HISTORY_RAW_BULK_SQL",
    "PRICE_HISTORY_RAW_SQL",
    "RESOLUTION_SQL",
    "TRADE_VOLUME_1H_SELECT",
    "TRADE_VOLUME_AGGREGATE_SQL",
    "TRADE_VOLUME_LIVE_SQL",
    "Candle",
    "PricePoint",
    "TradeVolume",
    "at_or_now",
    "checked_condition",
    "checked_positive",
    "checked_range",
    "checked_token",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")

EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
"""The lower time bound used when a query has none (timestamptz goes further back)."""


# -- result models -------------------------------------------------------------


class PricePoint(BaseModel):
    """A token's price at ``ts``: one raw snapshot, or one time bucket's closing values.

    For a bucket, ``ts`` is the bucket's start, ``price`` and ``volume_24h``
    are those of the bucket's last snapshot, and ``samples`` counts its
    snapshots; for a raw snapshot ``samples`` is 1.
    """

    model_config = _FROZEN

    ts: UtcDatetime
    token_id: str
    price: float
    volume_24h: float | None = None
    samples: int = Field(default=1, ge=1)


class Candle(BaseModel):
    """An hourly candle of a token's price snapshots (a row of ``price_candles_1h``).

    ``open``/``close`` are the prices of the hour's first/last snapshot,
    ``high``/``low`` its extremes, ``avg_volume`` the mean of its non-NULL
    ``volume_24h`` values (None when all are NULL).
    """

    model_config = _FROZEN

    bucket: UtcDatetime
    token_id: str
    open: float
    high: float
    low: float
    close: float
    avg_volume: float | None = None


class TradeVolume(BaseModel):
    """A token's trades in one hour (a row of ``trade_volume_1h``).

    ``total_value`` is the sum of price × size, ``avg_price`` the unweighted
    mean price; both skip trades without a price (None when none has one).
    """

    model_config = _FROZEN

    bucket: UtcDatetime
    token_id: str
    trade_count: int = Field(ge=1)
    total_size: float
    total_value: float | None = None
    avg_price: float | None = None


# -- argument checks -----------------------------------------------------------


def at_or_now(value: datetime | None) -> datetime:
    """``value`` in UTC, or now; ConfigurationError for a naive datetime."""
    return datetime.now(UTC) if value is None else aware_utc("at", value)


def checked_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """(start, end) in UTC; ConfigurationError for naive datetimes or start >= end."""
    lo, hi = aware_utc("start", start), aware_utc("end", end)
    if lo >= hi:
        raise ConfigurationError(
            f"empty time range: start ({lo.isoformat()}) must be before end ({hi.isoformat()})"
        )
    return lo, hi


def checked_token(value: object) -> str:
    """``value`` if a non-empty str, else ConfigurationError."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"token_id must be a non-empty str, not {value!r}")
    return value


def checked_positive(name: str, value: timedelta) -> timedelta:
    """``value`` if a positive timedelta, else ConfigurationError naming ``name``."""
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise ConfigurationError(f"{name} must be a positive timedelta, not {value!r}")
    return value


# -- the queries ----------------------------------------------------------------

# Each token's latest snapshot in (since, at]: a LIMIT 1 probe of its (token_id, ts DESC)
# index, joined to the tokens ``t``.
_LATEST_OF_EACH_TOKEN: Final = """
    SELECT p.ts, p.token_id, p.price, p.volume_24h
    FROM tokens t
    CROSS JOIN LATERAL (
        SELECT s.ts, s.token_id, s.price, s.volume_24h
        FROM price_snapshots s
        WHERE s.token_id = t.token_id AND s.ts <= %(at)s AND s.ts > %(since)s
        ORDER BY s.ts DESC
        LIMIT 1
    ) AS p
"""

_GIVEN_TOKENS: Final = "WITH tokens(token_id) AS (SELECT unnest(%(token_ids)s::text[]))"
_BY_TOKEN: Final = "    ORDER BY p.token_id\n"
LATEST_PRICES_OF_TOKENS_SQL: Final = _GIVEN_TOKENS + _LATEST_OF_EACH_TOKEN + _BY_TOKEN

# The time span of the chunks of price_snapshots holding (since, at]: whole chunks.
PRICE_CHUNKS_SPAN_SQL: Final = """
    SELECT min(range_start) AS chunks_from, max(range_end) AS chunks_to
    FROM timescaledb_information.chunks
    WHERE format('%%I.%%I', hypertable_schema, hypertable_name)::regclass
          = 'price_snapshots'::regclass
      AND range_start <= %(at)s AND range_end > %(since)s
"""

# A loose index scan ("skip scan") for the token ids, then a LIMIT 1 probe per
# token. The skip step's time bounds are whole chunks (PRICE_CHUNKS_SPAN_SQL):
# they exclude the other chunks at plan time and never filter entries inside a
# chunk. (A bound inside a chunk, e.g. ts <= at, would make each step read past
# every entry of that chunk failing it, over and over: rows x tokens.) Rows come
# out in token order; the Reader sorts them anyway (no Sort node, see below).
TOKENS_BY_SKIP_SCAN: Final = """
    WITH RECURSIVE tokens(token_id) AS (
        (SELECT s.token_id
         FROM price_snapshots s
         WHERE s.ts >= %(chunks_from)s AND s.ts < %(chunks_to)s
         ORDER BY s.token_id
         LIMIT 1)
        UNION ALL
        SELECT (SELECT s.token_id
                FROM price_snapshots s
                WHERE s.token_id > t.token_id
                  AND s.ts >= %(chunks_from)s AND s.ts < %(chunks_to)s
                ORDER BY s.token_id
                LIMIT 1)
        FROM tokens t
        WHERE t.token_id IS NOT NULL
    )"""
LATEST_PRICES_ALL_SQL: Final = TOKENS_BY_SKIP_SCAN + _LATEST_OF_EACH_TOKEN

# For LATEST_PRICES_ALL_SQL, transaction-local: TimescaleDB under-costs sorting a
# compressed chunk (Community edition, chunks older than 7 days), so each skip
# step could sort a whole compressed chunk instead of reading the first entry
# of its (token_id, ...) index. enable_sort off leaves it the index; jit off
# because disabled paths carry huge costs that would trigger JIT compilation.
LATEST_PRICES_ALL_SETTINGS: Final = {"enable_sort": "off", "jit": "off"}

_ONE_TOKEN_SNAPSHOTS: Final = """
    FROM price_snapshots
    WHERE token_id = %(token_id)s AND ts >= %(start)s AND ts < %(end)s
"""

PRICE_HISTORY_RAW_SQL: Final = (
    """
    SELECT ts, token_id, price, volume_24h"""
    + _ONE_TOKEN_SNAPSHOTS
    + """    ORDER BY ts
"""
)

# The same rows for a bulk read (pmstore._read.panel): no token id (the client has
# it), in the order the cheapest scan finds them (never a sort before the first row
# travels); the client puts them in ts order (panel.in_time_order).
PRICE_HISTORY_RAW_BULK_SQL: Final = (
    """
    SELECT ts, price, volume_24h"""
    + _ONE_TOKEN_SNAPSHOTS
)

PRICE_HISTORY_BUCKETED_SQL: Final = """
    SELECT b.bucket AS ts, b.token_id, b.price, b.volume_24h, b.samples
    FROM (
        SELECT time_bucket(%(bucket)s::interval, ts) AS bucket,
               token_id,
               last(price, ts)      AS price,
               last(volume_24h, ts) AS volume_24h,
               count(*)             AS samples
        FROM price_snapshots
        WHERE token_id = %(token_id)s AND ts >= %(start)s AND ts < %(end)s
        GROUP BY bucket, token_id
    ) AS b
    ORDER BY b.bucket
"""

CANDLES_AGGREGATE_SQL: Final = """
    SELECT bucket, token_id, open, high, low, close, avg_volume
    FROM price_candles_1h
    WHERE token_id = %(token_id)s AND bucket >= %(start)s AND bucket < %(end)s
    ORDER BY bucket
"""

# The definitions of migration 0007's continuous aggregates: their SELECT, then
# AGGREGATE_GROUP_BY. 0007 holds the same text and can never change (installed
# databases), so tests/test_live_aggregate_sql.py checks the two against each other
# (and against the views on a Community server). The *_LIVE_SQL queries run these
# SELECTs on the raw rows of whole hours: what the aggregates hold, without them.
PRICE_CANDLES_1H_SELECT: Final = """
    SELECT time_bucket(INTERVAL '1 hour', ts) AS bucket,
           token_id,
           first(price, ts) AS open,
           max(price)       AS high,
           min(price)       AS low,
           last(price, ts)  AS close,
           avg(volume_24h)  AS avg_volume
    FROM price_snapshots
"""
TRADE_VOLUME_1H_SELECT: Final = """
    SELECT time_bucket(INTERVAL '1 hour', ts) AS bucket,
           token_id,
           count(*)          AS trade_count,
           sum(size)         AS total_size,
           sum(price * size) AS total_value,
           avg(price)        AS avg_price
    FROM trades
"""
AGGREGATE_GROUP_BY: Final = "GROUP BY bucket, token_id"
_LIVE_HOURS: Final = "WHERE token_id = %(token_id)s AND ts >= %(start)s AND ts < %(end)s"


def _live_sql(aggregate_select: str) -> str:
    """An aggregate's SELECT on the raw rows of the hours [start, end) of one token."""
    parts = (aggregate_select.rstrip(), _LIVE_HOURS, AGGREGATE_GROUP_BY, "ORDER BY bucket")
    return "\n    ".join(parts) + "\n"


CANDLES_LIVE_SQL: Final = _live_sql(PRICE_CANDLES_1H_SELECT)

TRADE_VOLUME_AGGREGATE_SQL: Final = """
    SELECT bucket, token_id, trade_count, total_size, total_value, avg_price
    FROM trade_volume_1h
    WHERE token_id = %(token_id)s AND bucket >= %(start)s AND bucket < %(end)s
    ORDER BY bucket
"""

TRADE_VOLUME_LIVE_SQL: Final = _live_sql(TRADE_VOLUME_1H_SELECT)

ORDERBOOK_AT_SQL: Final = """
    SELECT ts, token_id, bids, asks, spread, midpoint
    FROM orderbook_snapshots
    WHERE token_id = %(token_id)s AND ts <= %(at)s
    ORDER BY ts DESC
    LIMIT 1
"""

MARKETS_SQL: Final = """
    SELECT condition_id, question, slug, market_type, outcomes, clob_token_ids,
           active, closed, end_date_iso, created_at, updated_at
    FROM markets
    WHERE (%(active)s::boolean IS NULL OR active = %(active)s::boolean)
      AND (%(closed)s::boolean IS NULL OR closed = %(closed)s::boolean)
    ORDER BY condition_id
    LIMIT %(limit)s::bigint
"""

MARKET_SQL: Final = """
    SELECT condition_id, question, slug, market_type, outcomes, clob_token_ids,
           active, closed, end_date_iso, created_at, updated_at
    FROM markets
    WHERE condition_id = %(condition_id)s
"""

RESOLUTION_SQL: Final = """
    SELECT condition_id, outcome, winner_token_id, resolved_at, payout_price,
           detection_method, status, created_at, updated_at
    FROM resolutions
    WHERE condition_id = %(condition_id)s
"""


def checked_condition(value: object) -> str:
    """``value`` if a non-empty str (a condition id), else ConfigurationError."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"condition_id must be a non-empty str, not {value!r}")
    return value
