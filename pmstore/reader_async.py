"""AsyncReader: typed queries over pmstore's tables, returning pydantic models.

Each AsyncReader runs its queries on the connection it is given, inside whatever
transaction the caller has open (it never commits); psycopg errors
propagate unchanged, except from the bulk reads with ``as_=`` (every one read
by ``pmstore._read.bulk``), which raise ``pmstore.errors.ReadError`` carrying
the server's ``sqlstate``. Every datetime argument must be timezone-aware
(naive ones raise ConfigurationError); results are in UTC.

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
from datetime import datetime, timedelta
from typing import Any, Final, overload

import psycopg
from psycopg.rows import dict_row

from pmstore._read.coverage import DEFAULT_STEP, Coverage, Gap, coverage_async
from pmstore._read.panel import (
    ALL_TOKENS,
    AllTokens,
    PanelQuery,
    TokenChoice,
    candles_query,
    checked_kind,
    fetch_panel_async,
    hour_params,
    params,
    price_history_query,
    tokens,
    trade_volume_query,
)
from pmstore._read.parallel import fetch_parallel_async
from pmstore._read.queries import (
    EARLIEST,
    LATEST_PRICES_ALL_SETTINGS,
    LATEST_PRICES_ALL_SQL,
    LATEST_PRICES_OF_TOKENS_SQL,
    MARKET_SQL,
    MARKETS_SQL,
    ORDERBOOK_AT_SQL,
    PRICE_CHUNKS_SPAN_SQL,
    RESOLUTION_SQL,
    Candle,
    PricePoint,
    TradeVolume,
    at_or_now,
    checked_condition,
    checked_positive,
    checked_token,
)
from pmstore._read.settings import local_settings_async
from pmstore._twins import AsyncConn, offload
from pmstore.edition import features_async, require_feature_async
from pmstore.errors import ConfigurationError
from pmstore.frames.outbound import FrameKind, fetch_frame_async
from pmstore.models import (
    MarketRecord,
    ModelT,
    OrderbookSnapshot,
    PriceSnapshot,
    ResolutionRecord,
    record_to_model,
)

__all__ = [
    "ALL_TOKENS",
    "AllTokens",
    "AsyncReader",
    "Candle",
    "Coverage",
    "Gap",
    "PricePoint",
    "TokenChoice",
    "TradeVolume",
]

FETCH_ROWS: Final = 10_000
"""Rows fetched and turned into models at a time (bounds the event loop's share of a read)."""


def _models_of(rows: Sequence[Mapping[str, Any]], model: type[ModelT]) -> list[ModelT]:
    return [record_to_model(row, model) for row in rows]


class AsyncReader:
    """Typed reads of pmstore's tables on one psycopg connection.

    ``conn`` is used as is: queries run in the caller's transaction (use an
    autocommit connection, or commit/roll back yourself) and the Reader
    never closes it. ``aggregates`` chooses where hourly candles and trade
    volume come from: ``None`` (default) uses the continuous aggregates when
    ``pmstore_features`` records them (looked up once, on first use),
    ``False`` always computes them from the raw rows, ``True`` requires the
    aggregates (FeatureUnavailableError on first use where they are missing).

    ``parallel``: more connections to the same database (idle; never closed
    here) that panel reads of several given tokens with ``as_=`` share: the
    ids cut into one run per connection, read at once in one snapshot exported
    from ``conn`` (``pmstore._read.parallel``: ``conn`` idle, or in a REPEATABLE
    READ or SERIALIZABLE transaction that has written nothing; ConfigurationError
    at the read otherwise, or when another connection is busy). Same rows as one
    connection's read; faster where the server bounds the read. Other reads use
    ``conn`` alone.

    Not safe to share between concurrent callers, like the connection.
    """

    def __init__(
        self,
        conn: AsyncConn,
        *,
        aggregates: bool | None = None,
        parallel: Sequence[AsyncConn] = (),
    ) -> None:
        if not isinstance(conn, psycopg.AsyncConnection):
            raise ConfigurationError(
                f"{type(self).__name__} needs a psycopg AsyncConnection, not {type(conn).__name__}"
            )
        if aggregates is not None and not isinstance(aggregates, bool):
            raise ConfigurationError(f"aggregates must be None, True or False, not {aggregates!r}")
        others = tuple(parallel)
        if not all(isinstance(c, psycopg.AsyncConnection) for c in others) or any(
            c is conn for c in others
        ):
            raise ConfigurationError(
                f"parallel must hold other connections of conn's kind ({type(conn).__name__}), "
                f"not {[type(c).__name__ for c in others]}"
            )
        if len({id(c) for c in others}) != len(others):
            raise ConfigurationError("parallel holds the same connection twice")
        self.conn: AsyncConn = conn
        self.parallel: tuple[AsyncConn, ...] = others
        self._aggregates = aggregates
        self._uses_aggregates: bool | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(aggregates={self._aggregates!r})"

    # sync: @property
    async def uses_aggregates(self) -> bool:
        """Whether candles and trade volume are read from the continuous aggregates.

        Resolved on first use: one query of ``pmstore_features`` when
        ``aggregates`` was None; FeatureUnavailableError when it was True and
        the database lacks them.
        """
        return await self._aggregates_in_use()

    async def _aggregates_in_use(self) -> bool:
        if self._uses_aggregates is None:
            if self._aggregates is None:
                recorded = await features_async(self.conn)
                found = recorded.get("continuous_aggregates")
                self._uses_aggregates = found is not None and found.available
            elif self._aggregates:
                await require_feature_async(self.conn, "continuous_aggregates")
                self._uses_aggregates = True
            else:
                self._uses_aggregates = False
        return self._uses_aggregates

    async def _fetch(
        self,
        sql: str,
        params: Mapping[str, Any],
        model: type[ModelT],
        *,
        prepare: bool | None = None,
    ) -> list[ModelT]:
        """The rows of ``sql`` as ``model`` instances, built through ``offload``."""
        models: list[ModelT] = []
        async with self.conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, params, prepare=prepare)
            while rows := await cur.fetchmany(FETCH_ROWS):
                models.extend(await offload(_models_of, rows, model))
        return models

    async def _fetch_as(
        self, sql: str, params: Mapping[str, Any], model: type[ModelT], as_: FrameKind | None
    ) -> list[ModelT] | Any:
        """Models, or with ``as_`` a Table/DataFrame fetched by binary COPY (pmstore.frames)."""
        if as_ is None:
            return await self._fetch(sql, params, model)
        return await fetch_frame_async(self.conn, sql, params, as_)

    async def _fetch_one(
        self, sql: str, params: Mapping[str, Any], model: type[ModelT]
    ) -> ModelT | None:
        rows = await self._fetch(sql, params, model)
        return rows[0] if rows else None

    async def _panel(
        self,
        query: PanelQuery,
        values: Mapping[str, Any],
        model: type[ModelT],
        as_: FrameKind | None,
    ) -> list[ModelT] | Any:
        """A panel read (``pmstore._read.panel``): models, or a Table/DataFrame; several
        given tokens in frames on ``parallel`` too (``pmstore._read.parallel``)."""
        kind = checked_kind(as_)
        if kind is not None and self.parallel and len(values.get("token_ids", ())) > 1:
            return await fetch_parallel_async(self.conn, self.parallel, query, values, kind)
        found = await fetch_panel_async(self.conn, query, values, as_)
        if as_ is not None:
            return found
        return await offload(_models_of, found, model)

    # -- prices ----------------------------------------------------------------

    @overload
    async def latest_prices(
        self,
        at: datetime | None = None,
        token_ids: Sequence[str] | None = None,
        *,
        lookback: timedelta | None = None,
        as_: None = None,
    ) -> list[PriceSnapshot]: ...
    @overload
    async def latest_prices(
        self,
        at: datetime | None = None,
        token_ids: Sequence[str] | None = None,
        *,
        lookback: timedelta | None = None,
        as_: FrameKind,
    ) -> Any: ...
    async def latest_prices(
        self,
        at: datetime | None = None,
        token_ids: Sequence[str] | None = None,
        *,
        lookback: timedelta | None = None,
        as_: FrameKind | None = None,
    ) -> list[PriceSnapshot] | Any:
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

        ``as_`` ("arrow", "polars", "pandas") returns the same rows as a
        pyarrow Table or a DataFrame, fetched by binary COPY (``pmstore.frames``).

        Raises ConfigurationError for a naive ``at``, a non-positive
        ``lookback`` or a ``token_ids`` that is a single str; with ``as_``,
        ReadError for a server error (without, psycopg's errors unchanged).
        """
        at_utc = at_or_now(at)
        since = EARLIEST
        if lookback is not None:
            try:
                since = at_utc - checked_positive("lookback", lookback)
            except OverflowError:
                since = EARLIEST
        params: dict[str, Any] = {"at": at_utc, "since": since}
        if token_ids is None:
            return await self._latest_prices_of_all(params, as_)
        if isinstance(token_ids, str | bytes):
            raise ConfigurationError("token_ids must be a sequence of token ids, not one str")
        wanted = list(dict.fromkeys(checked_token(t) for t in token_ids))
        params["token_ids"] = wanted
        if not wanted and as_ is None:
            return []
        return await self._fetch_as(LATEST_PRICES_OF_TOKENS_SQL, params, PriceSnapshot, as_)

    async def _latest_prices_of_all(
        self, params: dict[str, Any], as_: FrameKind | None = None
    ) -> list[PriceSnapshot] | Any:
        # A transaction (or a savepoint in the caller's) scopes the settings.
        async with self.conn.transaction(), self.conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(PRICE_CHUNKS_SPAN_SQL, params)
            span = await cur.fetchone()
            if span is None or span["chunks_from"] is None:
                if as_ is not None:  # no rows, of the right columns
                    params.update(token_ids=[])
                    return await fetch_frame_async(
                        self.conn, LATEST_PRICES_OF_TOKENS_SQL, params, as_
                    )
                return []  # no chunk holds rows of (since, at]
            params.update(span)
            # Restored for the rest of the caller's transaction on leaving the block.
            async with local_settings_async(cur, LATEST_PRICES_ALL_SETTINGS):
                # Never a generic plan (psycopg prepares a statement run 5 times; the
                # server may then plan it once for any parameters): the chunks outside
                # the span must be excluded at plan time, see LATEST_PRICES_ALL_SQL.
                if as_ is not None:  # COPY binds parameters on the client: a custom plan
                    return await fetch_frame_async(
                        self.conn, LATEST_PRICES_ALL_SQL, params, as_, sort_by="token_id"
                    )
                await cur.execute(LATEST_PRICES_ALL_SQL, params, prepare=False)
                rows = await offload(_models_of, await cur.fetchall(), PriceSnapshot)
        return sorted(rows, key=lambda p: p.token_id.encode())  # byte order, as COLLATE "C"

    @overload
    async def price_history(
        self,
        token_id: TokenChoice,
        start: datetime,
        end: datetime,
        bucket: timedelta | None = None,
        *,
        as_: None = None,
    ) -> list[PricePoint]: ...
    @overload
    async def price_history(
        self,
        token_id: TokenChoice,
        start: datetime,
        end: datetime,
        bucket: timedelta | None = None,
        *,
        as_: FrameKind,
    ) -> Any: ...
    async def price_history(
        self,
        token_id: TokenChoice,
        start: datetime,
        end: datetime,
        bucket: timedelta | None = None,
        *,
        as_: FrameKind | None = None,
    ) -> list[PricePoint] | Any:
        """Return the snapshots with ``start <= ts < end`` of one token, several or all.

        ``token_id``: one id (a str), a sequence of ids (duplicates read once;
        empty: no rows), or ``ALL_TOKENS`` (every token with rows in the
        chunks covering the range). Rows are sorted by (token_id, ts), token
        ids in byte order (``COLLATE "C"``); one token's come oldest first.

        Without ``bucket``: every snapshot (``PRICE_HISTORY_RAW_SQL`` for one
        token). With ``bucket``: one point per non-empty ``time_bucket(bucket,
        ts)`` (``PRICE_HISTORY_BUCKETED_SQL``), i.e. buckets on TimescaleDB's
        default grid (whole minutes/hours/days in UTC, weeks from Monday
        2000-01-03): ``ts`` is the bucket's start, ``price`` and
        ``volume_24h`` are ``last(…, ts)``, the values of the bucket's latest
        snapshot (a closing price, not an average), ``samples`` counts its
        snapshots. Only snapshots in [start, end) count, so the first and
        last bucket may be partial.

        Cost: one range scan of the ``(token_id, ts DESC)`` index per token
        on the chunks overlapping the range, in index order (no sort; several
        tokens: ``pmstore._read.panel``). ``as_`` ("arrow", "polars",
        "pandas") returns a pyarrow Table or DataFrame (raw: no ``samples``
        column) read by binary COPY in one round trip (``pmstore._read.bulk``;
        several tokens: four small statements more, the savepoint and the
        read's planner settings set and put back; ``ALL_TOKENS``: five). Raises
        ConfigurationError for naive datetimes, ``start >= end``, a
        non-positive ``bucket`` or a bad ``token_id``; with ``as_``,
        ReadError for a server error (without, psycopg's errors unchanged).
        """
        select = tokens(token_id)
        values = params(select, start, end)
        if bucket is not None:
            values["bucket"] = checked_positive("bucket", bucket)
        query = price_history_query(select, bucket)
        return await self._panel(query, values, PricePoint, as_)

    @overload
    async def candles(
        self, token_id: TokenChoice, start: datetime, end: datetime, *, as_: None = None
    ) -> list[Candle]: ...
    @overload
    async def candles(
        self, token_id: TokenChoice, start: datetime, end: datetime, *, as_: FrameKind
    ) -> Any: ...
    async def candles(
        self,
        token_id: TokenChoice,
        start: datetime,
        end: datetime,
        *,
        as_: FrameKind | None = None,
    ) -> list[Candle] | Any:
        """Return the hourly candles whose hour starts in [start, end) of one token, several
        or all (``token_id`` as in ``price_history``), sorted by (token_id, bucket).

        An hour is included when its start lies in [start, end), and its
        candle covers the whole hour: with ``start`` at 01:30 the first
        candle is 02:00's; with ``end`` at 08:15 the last is 08:00's, with
        its snapshots up to 08:59:59.999999. Hours without snapshots have
        no candle.

        From ``price_candles_1h`` (``CANDLES_AGGREGATE_SQL`` for one token;
        its ``(token_id, bucket)`` index, plus the raw rows after its last
        refresh) when the database has continuous aggregates, otherwise
        computed with the aggregate's own SELECT (``CANDLES_LIVE_SQL``: one
        range scan of the ``(token_id, ts DESC)`` index over the whole
        hours). Both give the same candles; ``avg_volume`` may differ in the
        last bits (floating-point sums in another order), and rows written
        into hours already materialized (late data, backfills) show in the
        aggregate only after a refresh covering them (see the module notes).

        ``as_`` returns a Table or DataFrame (see ``price_history``). Raises
        ConfigurationError for naive datetimes, ``start >= end`` or a bad
        ``token_id``; FeatureUnavailableError with ``aggregates=True`` on a
        database without them.
        """
        select = tokens(token_id)
        values = hour_params(select, start, end)
        query = candles_query(select, await self._aggregates_in_use())
        return await self._panel(query, values, Candle, as_)

    # -- trades ----------------------------------------------------------------

    @overload
    async def trade_volume(
        self, token_id: TokenChoice, start: datetime, end: datetime, *, as_: None = None
    ) -> list[TradeVolume]: ...
    @overload
    async def trade_volume(
        self, token_id: TokenChoice, start: datetime, end: datetime, *, as_: FrameKind
    ) -> Any: ...
    async def trade_volume(
        self,
        token_id: TokenChoice,
        start: datetime,
        end: datetime,
        *,
        as_: FrameKind | None = None,
    ) -> list[TradeVolume] | Any:
        """Return the hourly trade volume for hours starting in [start, end) of one token,
        several or all (``token_id`` as in ``price_history``), sorted by (token_id, bucket).

        Hours without trades have no row. From ``trade_volume_1h``
        (``TRADE_VOLUME_AGGREGATE_SQL`` for one token) when the database has
        continuous aggregates, otherwise computed with its own SELECT from
        ``trades`` (``TRADE_VOLUME_LIVE_SQL``, a range scan of the
        ``(token_id, ts DESC)`` index): same rows and counts, sums equal but
        for the last bits. Same bucket rules, caveats, errors and ``as_`` as
        ``candles``.
        """
        select = tokens(token_id)
        values = hour_params(select, start, end)
        query = trade_volume_query(select, await self._aggregates_in_use())
        return await self._panel(query, values, TradeVolume, as_)

    # -- coverage --------------------------------------------------------------

    async def coverage(
        self,
        token_ids: Sequence[str],
        start: datetime,
        end: datetime,
        step: timedelta = DEFAULT_STEP,
    ) -> Coverage:
        """Report the runs of ``step``-long steps without a snapshot, per token, and the
        tokens without any, over [start, end). See ``pmstore._read.coverage.coverage_async``."""
        return await coverage_async(self.conn, token_ids, start, end, step)

    # -- order books -----------------------------------------------------------

    async def orderbook_at(
        self, token_id: str, at: datetime | None = None
    ) -> OrderbookSnapshot | None:
        """Return a token's latest order book at or before ``at`` (default now), or None.

        Levels are best-first (bids descending, asks ascending). Cost: one
        ``LIMIT 1`` probe of the ``(token_id, ts DESC)`` index, newest chunk
        first (``ORDERBOOK_AT_SQL``). Raises ConfigurationError for a naive
        ``at``.
        """
        params = {"token_id": checked_token(token_id), "at": at_or_now(at)}
        return await self._fetch_one(ORDERBOOK_AT_SQL, params, OrderbookSnapshot)

    # -- markets and resolutions -----------------------------------------------

    async def markets(
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
        return await self._fetch(MARKETS_SQL, params, MarketRecord)

    async def market(self, condition_id: str) -> MarketRecord | None:
        """Return the market ``condition_id``, or None. One primary-key lookup (``MARKET_SQL``)."""
        params = {"condition_id": checked_condition(condition_id)}
        return await self._fetch_one(MARKET_SQL, params, MarketRecord)

    async def resolution(self, condition_id: str) -> ResolutionRecord | None:
        """Return the resolution of market ``condition_id``, or None (not resolving yet).

        One primary-key lookup (``RESOLUTION_SQL``).
        """
        params = {"condition_id": checked_condition(condition_id)}
        return await self._fetch_one(RESOLUTION_SQL, params, ResolutionRecord)
