"""Reader: typed queries over pmstore's tables, returning pydantic models.

    with psycopg.connect(dsn, autocommit=True) as conn:
        reader = Reader(conn)
        reader.latest_prices(token_ids=[yes_token, no_token])
        reader.candles(yes_token, start, end)

A Reader runs its queries on the connection it is given, inside whatever
transaction the caller has open (it never commits); psycopg errors
propagate unchanged. Every datetime argument must be timezone-aware (naive
ones raise ConfigurationError); results are in UTC.

Each query is a module constant (``*_SQL``), run by the one method that
names it in its docstring, so its plan can be inspected (``EXPLAIN``) as
run. Single-token queries all go through the ``(token_id, ts DESC)`` index
of their hypertable, and through chunk exclusion on ``ts``.

Hourly candles and trade volume come from the continuous aggregates
``price_candles_1h`` / ``trade_volume_1h`` where the database has them (the
TimescaleDB Community edition), and are otherwise computed from the raw rows
with the aggregates' own SELECT (the Apache-2 edition): same rows, same
values. The aggregates use real-time aggregation (``materialized_only =
false``): hours after the last materialized one are computed from the raw
rows at query time. But rows written into hours up to the last materialized
one (late or backfilled data) show only after a refresh covering them, and
the hourly policy refreshes only the last 3 hours: after a backfill, run
``CALL refresh_continuous_aggregate(...)`` over its range, or read with
``Reader(conn, aggregates=False)``, which always computes from the raw rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from pmstore.edition import features, require_feature
from pmstore.errors import ConfigurationError
from pmstore.models import (
    MarketRecord,
    OrderbookSnapshot,
    PriceSnapshot,
    ResolutionRecord,
    UtcDatetime,
    record_to_model,
)

__all__ = ["Candle", "PricePoint", "Reader", "TradeVolume"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")

_HOUR = timedelta(hours=1)
_EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
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


def _aware(name: str, value: object) -> datetime:
    if not isinstance(value, datetime):
        raise ConfigurationError(
            f"{name} must be a timezone-aware datetime, not {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConfigurationError(
            f"{name} is a naive datetime ({value.isoformat()}): pass a timezone-aware one, "
            "e.g. datetime(..., tzinfo=datetime.UTC)"
        )
    return value.astimezone(UTC)


def _at(value: datetime | None) -> datetime:
    return datetime.now(UTC) if value is None else _aware("at", value)


def _range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    lo, hi = _aware("start", start), _aware("end", end)
    if lo >= hi:
        raise ConfigurationError(
            f"empty time range: start ({lo.isoformat()}) must be before end ({hi.isoformat()})"
        )
    return lo, hi


def _token(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"token_id must be a non-empty str, not {value!r}")
    return value


def _positive(name: str, value: timedelta) -> timedelta:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise ConfigurationError(f"{name} must be a positive timedelta, not {value!r}")
    return value


def _ceil_hour(value: datetime) -> datetime:
    """The first whole UTC hour at or after ``value`` (``time_bucket('1 hour')``'s grid)."""
    floor = value.replace(minute=0, second=0, microsecond=0)
    if floor == value:
        return floor
    try:
        return floor + _HOUR
    except OverflowError:
        raise ConfigurationError(f"{value.isoformat()} is out of range") from None


ModelT = TypeVar("ModelT", bound=BaseModel)


# -- the reader ----------------------------------------------------------------

Conn = psycopg.Connection[Any]


LATEST_PRICES_OF_TOKENS_SQL: Final = """
    SELECT p.ts, p.token_id, p.price, p.volume_24h
    FROM unnest(%(token_ids)s::text[]) AS t(token_id)
    CROSS JOIN LATERAL (
        SELECT s.ts, s.token_id, s.price, s.volume_24h
        FROM price_snapshots s
        WHERE s.token_id = t.token_id AND s.ts <= %(at)s AND s.ts > %(since)s
        ORDER BY s.ts DESC
        LIMIT 1
    ) AS p
    ORDER BY p.token_id
"""

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
LATEST_PRICES_ALL_SQL: Final = """
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
    )
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

# For LATEST_PRICES_ALL_SQL, transaction-local: TimescaleDB under-costs sorting a
# compressed chunk (Community edition, chunks older than 7 days), so each skip
# step could sort a whole compressed chunk instead of reading the first entry
# of its (token_id, ...) index. enable_sort off leaves it the index; jit off
# because disabled paths carry huge costs that would trigger JIT compilation.
LATEST_PRICES_ALL_SETTINGS_SQL: Final = """
    SELECT current_setting('enable_sort') AS enable_sort, current_setting('jit') AS jit,
           set_config('enable_sort', 'off', true), set_config('jit', 'off', true)
"""

RESTORE_SETTINGS_SQL: Final = """
    SELECT set_config('enable_sort', %(enable_sort)s, true), set_config('jit', %(jit)s, true)
"""

PRICE_HISTORY_RAW_SQL: Final = """
    SELECT ts, token_id, price, volume_24h
    FROM price_snapshots
    WHERE token_id = %(token_id)s AND ts >= %(start)s AND ts < %(end)s
    ORDER BY ts
"""

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


class Reader:
    """Typed reads of pmstore's tables on one psycopg connection.

    ``conn`` is used as is: queries run in the caller's transaction (use an
    autocommit connection, or commit/roll back yourself) and the Reader
    never closes it. ``aggregates`` chooses where hourly candles and trade
    volume come from: ``None`` (default) uses the continuous aggregates when
    ``pmstore_features`` records them (looked up once, on first use),
    ``False`` always computes them from the raw rows, ``True`` requires the
    aggregates (FeatureUnavailableError on first use where they are missing).

    Not thread-safe, like the connection.
    """

    def __init__(self, conn: Conn, *, aggregates: bool | None = None) -> None:
        if not isinstance(conn, psycopg.Connection):
            raise ConfigurationError(
                f"Reader needs a psycopg connection, not {type(conn).__name__}"
            )
        if aggregates is not None and not isinstance(aggregates, bool):
            raise ConfigurationError(f"aggregates must be None, True or False, not {aggregates!r}")
        self.conn: Conn = conn
        self._aggregates = aggregates
        self._uses_aggregates: bool | None = None

    def __repr__(self) -> str:
        return f"Reader(aggregates={self._aggregates!r})"

    @property
    def uses_aggregates(self) -> bool:
        """Whether candles and trade volume are read from the continuous aggregates.

        Resolved on first use: one query of ``pmstore_features`` when
        ``aggregates`` was None; FeatureUnavailableError when it was True and
        the database lacks them.
        """
        if self._uses_aggregates is None:
            if self._aggregates is None:
                found = features(self.conn).get("continuous_aggregates")
                self._uses_aggregates = found is not None and found.available
            elif self._aggregates:
                require_feature(self.conn, "continuous_aggregates")
                self._uses_aggregates = True
            else:
                self._uses_aggregates = False
        return self._uses_aggregates

    def _fetch(
        self,
        sql: str,
        params: Mapping[str, Any],
        model: type[ModelT],
        *,
        prepare: bool | None = None,
    ) -> list[ModelT]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, params, prepare=prepare)
            return [record_to_model(row, model) for row in cur.fetchall()]

    def _fetch_one(self, sql: str, params: Mapping[str, Any], model: type[ModelT]) -> ModelT | None:
        rows = self._fetch(sql, params, model)
        return rows[0] if rows else None

    # -- prices ----------------------------------------------------------------

    def latest_prices(
        self,
        at: datetime | None = None,
        token_ids: Sequence[str] | None = None,
        *,
        lookback: timedelta | None = None,
    ) -> list[PriceSnapshot]:
        """Return the latest snapshot at or before ``at`` of every token, or of ``token_ids``.

        ``at`` defaults to now (this machine's clock). ``lookback`` limits
        the search to snapshots after ``at - lookback`` (tokens with none are
        left out); by default there is no limit. Sorted by token id; tokens
        without a snapshot are left out; duplicate ids are read once.

        Given tokens (``LATEST_PRICES_OF_TOKENS_SQL``): for each one, a
        ``LIMIT 1`` probe of the ``(token_id, ts DESC)`` index, newest chunk
        first; the probe stops at the first chunk holding a row.

        Every token (``LATEST_PRICES_ALL_SQL``): a recursive loose index scan
        ("skip scan") of the same index finds the token ids, one ``ORDER BY
        token_id LIMIT 1`` step per token (one index descent per chunk,
        merged), then each token gets the probe above. The skip scan reads
        only the chunks overlapping (at - lookback, at], found first in
        ``timescaledb_information.chunks`` (``PRICE_CHUNKS_SPAN_SQL``); its
        bounds are whole chunks, so that no index entry is ever filtered out
        inside a chunk (a bound inside one would be re-read at every step).
        Cost: about tokens × chunks index descents, whatever the number of
        rows; no sequential scan. Chosen over the alternatives: ``DISTINCT
        ON`` over a time window reads every row of the window (millions a
        day); ``markets.clob_token_ids`` misses tokens whose market row is
        not (yet) stored; TimescaleDB's SkipScan is not in the Apache-2
        edition. Without ``lookback`` every chunk up to ``at`` is probed:
        with months of chunks, pass e.g. ``lookback=timedelta(days=1)``.
        Runs in a transaction of its own (a savepoint inside the caller's),
        with planner settings local to it: ``enable_sort`` and ``jit`` off,
        so that compressed chunks are read through their index too; and
        never as a generic plan (``prepare=False``). Four small queries more.

        Raises ConfigurationError for a naive ``at``, a non-positive
        ``lookback`` or a ``token_ids`` that is a single str.
        """
        at_utc = _at(at)
        since = _EARLIEST
        if lookback is not None:
            try:
                since = at_utc - _positive("lookback", lookback)
            except OverflowError:
                since = _EARLIEST
        params: dict[str, Any] = {"at": at_utc, "since": since}
        if token_ids is None:
            return self._latest_prices_of_all(params)
        if isinstance(token_ids, str | bytes):
            raise ConfigurationError("token_ids must be a sequence of token ids, not one str")
        wanted = list(dict.fromkeys(_token(t) for t in token_ids))
        if not wanted:
            return []
        params["token_ids"] = wanted
        return self._fetch(LATEST_PRICES_OF_TOKENS_SQL, params, PriceSnapshot)

    def _latest_prices_of_all(self, params: dict[str, Any]) -> list[PriceSnapshot]:
        # A transaction (or a savepoint in the caller's) scopes the settings.
        with self.conn.transaction(), self.conn.cursor(row_factory=dict_row) as cur:
            span = cur.execute(PRICE_CHUNKS_SPAN_SQL, params).fetchone()
            if span is None or span["chunks_from"] is None:
                return []  # no chunk holds rows of (since, at]
            params.update(span)
            saved = cur.execute(LATEST_PRICES_ALL_SETTINGS_SQL).fetchone()
            # Never a generic plan (psycopg prepares a statement run 5 times; the
            # server may then plan it once for any parameters): the chunks outside
            # the span must be excluded at plan time, see LATEST_PRICES_ALL_SQL.
            cur.execute(LATEST_PRICES_ALL_SQL, params, prepare=False)
            rows = [record_to_model(row, PriceSnapshot) for row in cur.fetchall()]
            cur.execute(RESTORE_SETTINGS_SQL, saved)  # for the rest of the caller's transaction
        return sorted(rows, key=lambda p: p.token_id.encode())  # byte order, as COLLATE "C"

    def price_history(
        self,
        token_id: str,
        start: datetime,
        end: datetime,
        bucket: timedelta | None = None,
    ) -> list[PricePoint]:
        """Return a token's snapshots with ``start <= ts < end``, oldest first.

        Without ``bucket``: every snapshot (``PRICE_HISTORY_RAW_SQL``).
        With ``bucket``: one point per non-empty ``time_bucket(bucket, ts)``
        (``PRICE_HISTORY_BUCKETED_SQL``), i.e. buckets on TimescaleDB's
        default grid (whole minutes/hours/days in UTC, weeks from Monday
        2000-01-03): ``ts`` is the bucket's start, ``price`` and
        ``volume_24h`` are ``last(…, ts)``, the values of the bucket's latest
        snapshot (a closing price, not an average), ``samples`` counts its
        snapshots. Only snapshots in [start, end) count, so the first and
        last bucket may be partial.

        Cost: one range scan of the ``(token_id, ts DESC)`` index on the
        chunks overlapping the range. Raises ConfigurationError for naive
        datetimes, ``start >= end`` or a non-positive ``bucket``.
        """
        params: dict[str, Any] = {"token_id": _token(token_id)}
        params["start"], params["end"] = _range(start, end)
        if bucket is None:
            return self._fetch(PRICE_HISTORY_RAW_SQL, params, PricePoint)
        params["bucket"] = _positive("bucket", bucket)
        return self._fetch(PRICE_HISTORY_BUCKETED_SQL, params, PricePoint)

    def candles(self, token_id: str, start: datetime, end: datetime) -> list[Candle]:
        """Return a token's hourly candles whose hour starts in [start, end), oldest first.

        An hour is included when its start lies in [start, end), and its
        candle covers the whole hour: with ``start`` at 01:30 the first
        candle is 02:00's; with ``end`` at 08:15 the last is 08:00's, with
        its snapshots up to 08:59:59.999999. Hours without snapshots have
        no candle.

        From ``price_candles_1h`` (``CANDLES_AGGREGATE_SQL``; its
        ``(token_id, bucket)`` index, plus the raw rows after its last
        refresh) when the database has continuous aggregates, otherwise
        computed with the aggregate's own SELECT (``CANDLES_LIVE_SQL``: one
        range scan of the ``(token_id, ts DESC)`` index over the whole
        hours). Both give the same candles; ``avg_volume`` may differ in the
        last bits (floating-point sums in another order), and rows written
        into hours already materialized (late data, backfills) show in the
        aggregate only after a refresh covering them (see the module notes).

        Raises ConfigurationError for naive datetimes or ``start >= end``;
        FeatureUnavailableError with ``aggregates=True`` on a database
        without them.
        """
        lo, hi = _range(start, end)
        # Hour buckets starting in [lo, hi) hold exactly the rows of [ceil(lo), ceil(hi)).
        params = {"token_id": _token(token_id), "start": _ceil_hour(lo), "end": _ceil_hour(hi)}
        if params["start"] == params["end"]:
            return []
        sql = CANDLES_AGGREGATE_SQL if self.uses_aggregates else CANDLES_LIVE_SQL
        return self._fetch(sql, params, Candle)

    # -- trades ----------------------------------------------------------------

    def trade_volume(self, token_id: str, start: datetime, end: datetime) -> list[TradeVolume]:
        """Return a token's hourly trade volume for hours starting in [start, end), oldest first.

        Hours without trades have no row. From ``trade_volume_1h``
        (``TRADE_VOLUME_AGGREGATE_SQL``) when the database has continuous
        aggregates, otherwise computed with its own SELECT from ``trades``
        (``TRADE_VOLUME_LIVE_SQL``, a range scan of the ``(token_id, ts
        DESC)`` index): same rows and counts, sums equal but for the last
        bits. Same bucket rules, caveats and errors as ``candles``.
        """
        lo, hi = _range(start, end)
        params = {"token_id": _token(token_id), "start": _ceil_hour(lo), "end": _ceil_hour(hi)}
        if params["start"] == params["end"]:
            return []
        sql = TRADE_VOLUME_AGGREGATE_SQL if self.uses_aggregates else TRADE_VOLUME_LIVE_SQL
        return self._fetch(sql, params, TradeVolume)

    # -- order books -----------------------------------------------------------

    def orderbook_at(self, token_id: str, at: datetime | None = None) -> OrderbookSnapshot | None:
        """Return a token's latest order book at or before ``at`` (default now), or None.

        Levels are best-first (bids descending, asks ascending). Cost: one
        ``LIMIT 1`` probe of the ``(token_id, ts DESC)`` index, newest chunk
        first (``ORDERBOOK_AT_SQL``). Raises ConfigurationError for a naive
        ``at``.
        """
        params = {"token_id": _token(token_id), "at": _at(at)}
        return self._fetch_one(ORDERBOOK_AT_SQL, params, OrderbookSnapshot)

    # -- markets and resolutions -----------------------------------------------

    def markets(
        self,
        active: bool | None = None,
        closed: bool | None = None,
        limit: int | None = None,
    ) -> list[MarketRecord]:
        """Return markets, filtered by ``active``/``closed`` when given, by condition_id.

        ``limit`` caps the number returned (None: all). Cost: a scan of
        ``markets`` in primary-key order (stopped after ``limit`` rows), or
        of its partial ``active`` index (``MARKETS_SQL``). Raises
        ConfigurationError for a negative limit or non-bool filters.
        """
        for name, value in (("active", active), ("closed", closed)):
            if value is not None and not isinstance(value, bool):
                raise ConfigurationError(f"{name} must be None, True or False, not {value!r}")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise ConfigurationError(f"limit must be None or an int >= 0, not {limit!r}")
        params = {"active": active, "closed": closed, "limit": limit}
        return self._fetch(MARKETS_SQL, params, MarketRecord)

    def market(self, condition_id: str) -> MarketRecord | None:
        """Return the market ``condition_id``, or None. One primary-key lookup (``MARKET_SQL``)."""
        params = {"condition_id": _condition(condition_id)}
        return self._fetch_one(MARKET_SQL, params, MarketRecord)

    def resolution(self, condition_id: str) -> ResolutionRecord | None:
        """Return the resolution of market ``condition_id``, or None (not resolving yet).

        One primary-key lookup (``RESOLUTION_SQL``).
        """
        params = {"condition_id": _condition(condition_id)}
        return self._fetch_one(RESOLUTION_SQL, params, ResolutionRecord)


def _condition(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"condition_id must be a non-empty str, not {value!r}")
    return value
