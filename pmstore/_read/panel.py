"""Panel reads: price history, candles and trade volume of one token, several, or all.

    select = tokens(["123...", "456..."])          # or tokens("123..."), or tokens(ALL_TOKENS)
    query = price_history_query(select, bucket=None)
    table = fetch_panel(conn, query, params(select, start, end), "arrow")

Every panel returns its rows sorted by (token_id, ts) (byte order of the ids,
``COLLATE "C"``), in the columns of the Reader's models; the column types are
declared with the query (``PanelQuery.columns``, checked against the
server's description by the tests), so a read is one round trip: a binary
``COPY (query) TO STDOUT`` read by ``pmstore._read.bulk``.

Price history of several tokens is read in index order, never sorted on the
server: the ids, deduplicated and in byte order, drive one backward range
scan of the ``(token_id, ts DESC)`` index per token (``LATERAL``: ts
ascending, chunk after chunk), so rows stream from the first one on. (A
plain ``ORDER BY token_id, ts`` sorts every row first, during which nothing
travels: slower, see benchmarks/README.md.) Every token (``ALL_TOKENS``):
the ids come from a loose index scan of the chunks covering the range
(``PRICE_CHUNKS_SPAN_SQL`` first, as ``Reader.latest_prices`` does), then the
same per-token scans. Settings local to the read's transaction
(``INDEX_ORDER``, put back after the read): no sort, no bitmap scan (the planner would
otherwise pick a bitmap scan and a sort per token), no JIT. The order rests
on the nested loop's, which SQL does not promise: each result is checked
(one pass) and sorted when it is not in order.

Candles and trade volume are hourly (60 times fewer rows): one query with
``ORDER BY token_id, bucket``, JIT off. One token: the Reader's own
single-token queries (``pmstore._read.queries``), one round trip; its bulk
read leaves the token_id column on the server (``PanelQuery.bulk_sql``: the
same rows, each one the id's ~80 bytes lighter) and the client puts it back
(``with_token``), which in a loop of one-token reads saves the server's
sending, the socket's bytes and the decoding of the same text on every row.
One token's raw snapshots are read without ``ORDER BY``
(``PRICE_HISTORY_RAW_BULK_SQL``): the planner takes its cheapest scan, never
a sort (a bitmap scan, rows in heap order, where the same statement with
``ORDER BY`` would sort them all before the first could travel; or the index,
ts descending or ascending); the client puts them in ts order
(``in_time_order``: as they are, reversed, or sorted by ts when neither, e.g.
rows written out of time order across chunks, compressed chunks newest first).

Without ``as_`` the same statements run as plain queries whose rows the
Reader turns into models (sorted the same way).
"""

from __future__ import annotations

import asyncio
import enum
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import numpy as np
import psycopg
from psycopg.rows import dict_row

from pmstore._optional import require
from pmstore._read.bulk import read_table, read_table_async
from pmstore._read.queries import (
    AGGREGATE_GROUP_BY,
    CANDLES_AGGREGATE_SQL,
    CANDLES_LIVE_SQL,
    PRICE_CANDLES_1H_SELECT,
    PRICE_CHUNKS_SPAN_SQL,
    PRICE_HISTORY_BUCKETED_SQL,
    PRICE_HISTORY_RAW_BULK_SQL,
    PRICE_HISTORY_RAW_SQL,
    TOKENS_BY_SKIP_SCAN,
    TRADE_VOLUME_1H_SELECT,
    TRADE_VOLUME_AGGREGATE_SQL,
    TRADE_VOLUME_LIVE_SQL,
    checked_positive,
    checked_range,
    checked_token,
)
from pmstore._read.settings import local_settings, local_settings_async
from pmstore._utc import ceil_hour
from pmstore.errors import ConfigurationError
from pmstore.frames.outbound import FRAME_KINDS, FrameKind, arrow_type, to_frame

__all__ = [
    "ALL_TOKENS",
    "INDEX_ORDER",
    "JIT_OFF",
    "WIRE_IDS",
    "AllTokens",
    "PanelQuery",
    "Selection",
    "TokenChoice",
    "WireIds",
    "arrow_schema",
    "candles_query",
    "checked_kind",
    "fetch_panel",
    "fetch_panel_async",
    "hour_params",
    "in_order",
    "in_time_order",
    "no_rows",
    "params",
    "price_history_query",
    "rows_in_order",
    "tokens",
    "trade_volume_query",
]


class AllTokens(enum.Enum):
    """The type of ``ALL_TOKENS``."""

    ALL = "all"


ALL_TOKENS: Final = AllTokens.ALL
"""Select every token (those with rows in the chunks of the range)."""

TokenChoice = str | Sequence[str] | AllTokens
"""The tokens of a panel read: one token id, a sequence of them, or ``ALL_TOKENS``."""


@dataclass(frozen=True, slots=True)
class Selection:
    """Which tokens a panel read covers: ``kind`` "one", "several" or "all"; ``ids``
    deduplicated and, for several, in byte order (the order of the result)."""

    kind: str
    ids: tuple[str, ...] = ()


def tokens(value: TokenChoice) -> Selection:
    """The selection of ``value``: one token id, a sequence of them, or ``ALL_TOKENS``.
    ConfigurationError for an empty or non-str id, or anything else."""
    if value is ALL_TOKENS:
        return Selection("all")
    if isinstance(value, str):
        return Selection("one", (checked_token(value),))
    if isinstance(value, bytes) or not isinstance(value, Sequence):
        raise ConfigurationError(
            f"tokens must be a token id, a sequence of them or ALL_TOKENS, not {value!r}"
        )
    unique = set(checked_token(t) for t in value)
    return Selection("several", tuple(sorted(unique, key=str.encode)))


def params(select: Selection, start: datetime, end: datetime) -> dict[str, Any]:
    """The parameters of a panel query over [start, end) (ConfigurationError for a
    naive or empty range)."""
    lo, hi = checked_range(start, end)
    out: dict[str, Any] = {"start": lo, "end": hi}
    if select.kind == "one":
        out["token_id"] = select.ids[0]
    elif select.kind == "several":
        out["token_ids"] = list(select.ids)
    return out


def hour_params(select: Selection, start: datetime, end: datetime) -> dict[str, Any]:
    """``params`` for hourly rows: hours starting in [start, end) (as the Reader's
    single-token candles: the bounds rounded up to whole hours)."""
    out = params(select, start, end)
    out["start"], out["end"] = ceil_hour(out["start"]), ceil_hour(out["end"])
    return out


@dataclass(frozen=True, slots=True)
class PanelQuery:
    """A panel query and how it runs.

    ``columns``: the result's (name, PostgreSQL type); ``settings``: planner
    settings for the read, set and then put back inside a savepoint (None:
    none, no savepoint; ``pmstore._read.settings``);
    ``span``: the query takes ``chunks_from``/``chunks_to`` (``PRICE_CHUNKS_SPAN_SQL``);
    ``order``: the result comes in index order, checked (and sorted if not)
    by (token_id, this column); ``wire_ids``: how a bulk read gets each row's
    token id (``WIRE_IDS``); ``bulk``: the bulk read's own statement (see
    ``bulk_sql``), one token's rows in any order, which the client puts in
    order of ``bulk_order`` (``in_time_order``) when set.
    """

    sql: str
    columns: tuple[tuple[str, str], ...]
    settings: Mapping[str, str] | None = None
    span: bool = False
    order: str = ""
    wire_ids: WireIds = "text"
    bulk: str = ""
    bulk_order: str = ""

    def schema(self) -> Any:
        """The ``pyarrow.Schema`` of the result (ConfigurationError without pyarrow)."""
        return arrow_schema(self.columns, "text")

    def bulk_sql(self) -> str:
        """The statement a bulk read runs: ``bulk`` when given; else for one token
        (``WIRE_IDS``), ``sql``'s rows without the token_id column, in the same order
        (ordered by its first column; the planner keeps one sort, without the id);
        else ``sql``."""
        if self.bulk:
            return self.bulk
        if self.wire_ids == "omitted":
            kept = ", ".join(name for name, _ in self.columns if name != "token_id")
            order = self.columns[0][0]
            return f"SELECT {kept} FROM ({self.sql}) AS one ORDER BY {order}"  # noqa: S608 - ours
        return self.sql

    def bulk_schema(self) -> Any:
        """The ``pyarrow.Schema`` of ``bulk_sql``'s rows."""
        return arrow_schema(self.columns, self.wire_ids)


@functools.lru_cache(maxsize=64)
def arrow_schema(columns: tuple[tuple[str, str], ...], wire_ids: WireIds) -> Any:
    """The ``pyarrow.Schema`` of ``columns`` with the token id as ``wire_ids`` has it
    (made once per query shape: a one-token read is short, building it is not free)."""
    pa = require("pyarrow")
    fields = []
    for name, kind in columns:
        if name == "token_id" and wire_ids == "numbered":
            fields.append(pa.field("token_n", arrow_type("int8")))
        elif name != "token_id" or wire_ids == "text":
            fields.append(pa.field(name, arrow_type(kind)))
    return pa.schema(fields)


WireIds = Literal["text", "omitted", "numbered"]
WIRE_IDS: Final[tuple[WireIds, ...]] = ("text", "omitted", "numbered")
"""How a panel's bulk read gets each row's token id (a 74-78-digit id is ~80 of a price
row's ~120 bytes on the wire): "text", sent with every row; "omitted", one token's
query: not sent, the ``token_id`` parameter on every row; "numbered", several given
tokens: each row's 1-based number in the ``token_ids`` parameter (8 bytes), turned
back into the id by the client (``with_token``)."""


JIT_OFF: Final = {"jit": "off"}
"""A panel read's settings: no JIT compilation (its cost estimate would switch it on)."""

INDEX_ORDER: Final = {"jit": "off", "enable_sort": "off", "enable_bitmapscan": "off"}
"""An index-order read's settings: per token a backward index scan, no sort."""

_PRICE_COLUMNS: Final = (
    ("ts", "timestamptz"),
    ("token_id", "text"),
    ("price", "float8"),
    ("volume_24h", "float8"),
)
_CANDLE_COLUMNS: Final = (
    ("bucket", "timestamptz"),
    ("token_id", "text"),
    ("open", "float8"),
    ("high", "float8"),
    ("low", "float8"),
    ("close", "float8"),
    ("avg_volume", "float8"),
)
_VOLUME_COLUMNS: Final = (
    ("bucket", "timestamptz"),
    ("token_id", "text"),
    ("trade_count", "int8"),
    ("total_size", "float8"),
    ("total_value", "float8"),
    ("avg_price", "float8"),
)

# The tokens: given (in byte order), or every token with rows in the chunks of the
# range, by the latest prices' loose index scan (queries.TOKENS_BY_SKIP_SCAN).
GIVEN_TOKENS: Final = "unnest(%(token_ids)s::text[]) WITH ORDINALITY AS t(token_id, token_n)"

# {token}: the row's token_id, or (a bulk read of given tokens) t.token_n (WIRE_IDS).
PRICES_RAW_TEMPLATE: Final = """{cte}
    SELECT p.ts, {token}, p.price, p.volume_24h
    FROM {tokens}
    CROSS JOIN LATERAL (
        SELECT s.ts, s.token_id, s.price, s.volume_24h
        FROM price_snapshots s
        WHERE s.token_id = t.token_id AND s.ts >= %(start)s AND s.ts < %(end)s
        ORDER BY s.ts
    ) AS p
"""

PRICES_BUCKETED_TEMPLATE: Final = """{cte}
    SELECT b.bucket AS ts, {token}, b.price, b.volume_24h, b.samples
    FROM {tokens}
    CROSS JOIN LATERAL (
        SELECT time_bucket(%(bucket)s::interval, s.ts) AS bucket,
               s.token_id,
               last(s.price, s.ts)      AS price,
               last(s.volume_24h, s.ts) AS volume_24h,
               count(*)                 AS samples
        FROM price_snapshots s
        WHERE s.token_id = t.token_id AND s.ts >= %(start)s AND s.ts < %(end)s
        GROUP BY bucket, s.token_id
        ORDER BY bucket
    ) AS b
"""

_CONDITIONS: Final = {
    "several": "token_id = ANY(%(token_ids)s::text[])",
    "all": "TRUE",
}

CANDLES_AGGREGATE_TEMPLATE: Final = """
    SELECT bucket, token_id, open, high, low, close, avg_volume
    FROM price_candles_1h
    WHERE {tokens} AND bucket >= %(start)s AND bucket < %(end)s
    ORDER BY token_id COLLATE "C", bucket
"""

TRADE_VOLUME_AGGREGATE_TEMPLATE: Final = """
    SELECT bucket, token_id, trade_count, total_size, total_value, avg_price
    FROM trade_volume_1h
    WHERE {tokens} AND bucket >= %(start)s AND bucket < %(end)s
    ORDER BY token_id COLLATE "C", bucket
"""


def _live_template(aggregate_select: str) -> str:
    """An aggregate's own SELECT on the raw rows of the hours [start, end), by token."""
    where = "WHERE {tokens} AND ts >= %(start)s AND ts < %(end)s"
    order = 'ORDER BY token_id COLLATE "C", bucket'
    return "\n    ".join((aggregate_select.rstrip(), where, AGGREGATE_GROUP_BY, order)) + "\n"


CANDLES_LIVE_TEMPLATE: Final = _live_template(PRICE_CANDLES_1H_SELECT)
TRADE_VOLUME_LIVE_TEMPLATE: Final = _live_template(TRADE_VOLUME_1H_SELECT)


def price_history_query(select: Selection, bucket: timedelta | None) -> PanelQuery:
    """Raw snapshots, or one row per ``time_bucket(bucket, ts)`` (closing price and
    volume, ``samples``), as ``Reader.price_history``; the parameters get ``bucket``."""
    columns: tuple[tuple[str, str], ...] = _PRICE_COLUMNS
    if bucket is not None:
        checked_positive("bucket", bucket)
        columns = (*_PRICE_COLUMNS, ("samples", "int8"))
    if select.kind == "one":  # the Reader's own single-token queries
        if bucket is None:  # rows as the scan finds them, sorted by the client
            bulk = PRICE_HISTORY_RAW_BULK_SQL
            return PanelQuery(
                PRICE_HISTORY_RAW_SQL, columns, wire_ids="omitted", bulk=bulk, bulk_order="ts"
            )
        return PanelQuery(PRICE_HISTORY_BUCKETED_SQL, columns, wire_ids="omitted")
    template = PRICES_RAW_TEMPLATE if bucket is None else PRICES_BUCKETED_TEMPLATE
    token = "p.token_id" if bucket is None else "b.token_id"
    if select.kind == "all":
        sql = template.format(cte=TOKENS_BY_SKIP_SCAN, tokens="tokens AS t", token=token)
        return PanelQuery(sql, columns, INDEX_ORDER, span=True, order="ts")
    sql, numbered = (
        template.format(cte="", tokens=GIVEN_TOKENS, token=t) for t in (token, "t.token_n")
    )
    return PanelQuery(sql, columns, INDEX_ORDER, order="ts", wire_ids="numbered", bulk=numbered)


def _hourly(
    template: str, one: str, select: Selection, columns: tuple[tuple[str, str], ...]
) -> PanelQuery:
    if select.kind == "one":  # the Reader's own single-token query
        return PanelQuery(one, columns, wire_ids="omitted")
    return PanelQuery(template.format(tokens=_CONDITIONS[select.kind]), columns, JIT_OFF)


def candles_query(select: Selection, aggregates: bool) -> PanelQuery:
    """Hourly candles from ``price_candles_1h``, or computed from the raw rows."""
    if aggregates:
        return _hourly(CANDLES_AGGREGATE_TEMPLATE, CANDLES_AGGREGATE_SQL, select, _CANDLE_COLUMNS)
    return _hourly(CANDLES_LIVE_TEMPLATE, CANDLES_LIVE_SQL, select, _CANDLE_COLUMNS)


def trade_volume_query(select: Selection, aggregates: bool) -> PanelQuery:
    """Hourly trade volume from ``trade_volume_1h``, or computed from ``trades``."""
    if aggregates:
        return _hourly(
            TRADE_VOLUME_AGGREGATE_TEMPLATE, TRADE_VOLUME_AGGREGATE_SQL, select, _VOLUME_COLUMNS
        )
    return _hourly(TRADE_VOLUME_LIVE_TEMPLATE, TRADE_VOLUME_LIVE_SQL, select, _VOLUME_COLUMNS)


# -- running them -----------------------------------------------------------------------------


def checked_kind(as_: object) -> FrameKind | None:
    """``as_`` if None (models) or a frame kind, else ConfigurationError."""
    if as_ is not None and as_ not in FRAME_KINDS:
        raise ConfigurationError(f"as_ must be one of {FRAME_KINDS} or None, not {as_!r}")
    return as_  # type: ignore[return-value]


def in_order(table: Any, column: str) -> Any:
    """``table`` if sorted by (token_id, ``column``) (token ids by bytes), else sorted so.

    One pass of arrow comparisons; for several tokens the sort is a fallback
    that the plans of this module never need, for one token's raw rows it is
    the order's only guarantee (see the module notes).
    """
    require("pyarrow")
    import pyarrow.compute as pc

    n = table.num_rows
    if n < 2:
        return table
    token, key = table.column("token_id"), table.column(column)
    before, after = token.slice(0, n - 1), token.slice(1)
    ascending = pc.or_(
        pc.less(before, after),
        pc.and_(pc.equal(before, after), pc.less_equal(key.slice(0, n - 1), key.slice(1))),
    )
    if pc.all(ascending).as_py():
        return table
    return table.sort_by([("token_id", "ascending"), (column, "ascending")])


def rows_in_order(rows: list[dict[str, Any]], column: str) -> list[dict[str, Any]]:
    """``rows`` (dicts) sorted by (token_id as bytes, ``column``): one pass when they are."""
    return sorted(rows, key=lambda row: (row["token_id"].encode(), row[column]))


def empty(values: Mapping[str, Any]) -> bool:
    """Whether a read of ``values`` has no rows without asking: no token given, or an
    empty range of whole hours."""
    return values.get("token_ids") == [] or values["start"] >= values["end"]


def no_rows(query: PanelQuery, kind: FrameKind | None) -> Any:
    """A read of ``query`` without rows: an empty list (models) or an empty frame."""
    return [] if kind is None else to_frame(query.schema().empty_table(), kind)


def span_params(values: Mapping[str, Any], row: Any) -> dict[str, Any] | None:
    """``values`` with the chunk span of an ALL_TOKENS read, or None (no chunk)."""
    if row is None or row[0] is None:
        return None
    return {**values, "chunks_from": row[0], "chunks_to": row[1]}


def span_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of ``PRICE_CHUNKS_SPAN_SQL`` for the range of ``values``."""
    return {"at": values["end"], "since": values["start"]}


def with_token(query: PanelQuery, table: Any, values: Mapping[str, Any]) -> Any:
    """The table a bulk read of ``query`` gave, its token_id column as the query's own
    (``WIRE_IDS``: the one token's id on every row, or each row's id by its number)."""
    if query.wire_ids == "text":
        return table
    pa = require("pyarrow")
    import pyarrow.compute as pc

    schema = query.schema()
    index = schema.get_field_index("token_id")
    field = schema.field(index)
    if query.wire_ids == "omitted":
        ids = pa.repeat(pa.scalar(values["token_id"], field.type), table.num_rows)
        return table.add_column(index, field, ids)
    given = pa.array(values["token_ids"], field.type)
    ids = pc.take(given, pc.subtract(table.column(index), 1))
    return table.set_column(index, field, ids)


def in_time_order(table: Any, column: str) -> Any:
    """One token's ``table`` in ascending ``column`` order: as it is, reversed (an index
    scanned newest first), or else sorted by ``column`` (stable). One or two passes of
    arrow comparisons, a sort only for rows in neither order."""
    require("pyarrow")
    import pyarrow.compute as pc

    n = table.num_rows
    if n < 2:
        return table
    key = table.column(column)
    before, after = key.slice(0, n - 1), key.slice(1)
    if pc.all(pc.less_equal(before, after)).as_py():
        return table
    if pc.all(pc.greater(before, after)).as_py():  # strictly: equal keys keep their order
        return table.take(np.arange(n - 1, -1, -1))
    return table.sort_by([(column, "ascending")])


def finished(query: PanelQuery, table: Any, values: Mapping[str, Any], kind: FrameKind) -> Any:
    """The table a bulk read of ``query`` gave, whole (``with_token``), in order, as
    ``kind``."""
    whole = with_token(query, table, values)
    if query.bulk_order:
        whole = in_time_order(whole, query.bulk_order)
    elif query.order:
        whole = in_order(whole, query.order)
    return to_frame(whole, kind)


def fetch_panel(
    conn: psycopg.Connection[Any],
    query: PanelQuery,
    values: Mapping[str, Any],
    as_: FrameKind | None,
) -> Any:
    """The rows of ``query``: dicts (``as_`` None, for models), or a pyarrow Table, a
    polars or a pandas DataFrame read by binary COPY (``pmstore._read.bulk``).

    Runs in the caller's transaction; a query with ``settings`` in a savepoint
    of its own (a transaction on an autocommit connection) holding them. No
    token or no whole hour: no rows, no query. Raises ConfigurationError for
    an unknown ``as_`` or a missing library; with ``as_``, ReadError for a
    server error (psycopg's errors unchanged without); CopyDecodeError for
    bytes not matching the columns. Costs one round trip (one token), else
    five or six (the savepoint and its release, the settings set and put back,
    the chunk span of ALL_TOKENS).
    """
    kind = checked_kind(as_)
    if empty(values):
        return no_rows(query, kind)
    if query.settings is None:
        return read_now(conn, query, values, kind)
    with conn.transaction(), local_settings(conn, query.settings):
        found: dict[str, Any] | None = dict(values)
        if query.span:
            span = conn.execute(PRICE_CHUNKS_SPAN_SQL, span_of(values))
            found = span_params(values, span.fetchone())
        result = None if found is None else read_now(conn, query, found, kind)
    if result is None:  # no chunk holds rows of the range
        return no_rows(query, kind)
    return result


def read_now(
    conn: psycopg.Connection[Any],
    query: PanelQuery,
    values: Mapping[str, Any],
    kind: FrameKind | None,
) -> Any:
    """Run ``query`` now: rows (dicts, sorted) or a frame of ``kind``."""
    if kind is None:
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(query.sql, values, prepare=False).fetchall()
        return rows_in_order(rows, query.order) if query.order else rows
    table = read_table(conn, query.bulk_sql(), values, query.bulk_schema())
    return finished(query, table, values, kind)


async def fetch_panel_async(
    conn: psycopg.AsyncConnection[Any],
    query: PanelQuery,
    values: Mapping[str, Any],
    as_: FrameKind | None,
) -> Any:
    """``fetch_panel`` on an ``AsyncConnection``: the same statements, checks and errors."""
    kind = checked_kind(as_)
    if empty(values):
        return no_rows(query, kind)
    if query.settings is None:
        return await read_now_async(conn, query, values, kind)
    async with conn.transaction(), local_settings_async(conn, query.settings):
        found: dict[str, Any] | None = dict(values)
        if query.span:
            span = await conn.execute(PRICE_CHUNKS_SPAN_SQL, span_of(values))
            found = span_params(values, await span.fetchone())
        result = None if found is None else await read_now_async(conn, query, found, kind)
    if result is None:  # no chunk holds rows of the range
        return no_rows(query, kind)
    return result


async def read_now_async(
    conn: psycopg.AsyncConnection[Any],
    query: PanelQuery,
    values: Mapping[str, Any],
    kind: FrameKind | None,
) -> Any:
    """``read_now`` on an ``AsyncConnection`` (the checks and frames off the event loop)."""
    if kind is None:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query.sql, values, prepare=False)
            rows = await cur.fetchall()
        if query.order:
            return await asyncio.to_thread(rows_in_order, rows, query.order)
        return rows
    table = await read_table_async(conn, query.bulk_sql(), values, query.bulk_schema())
    return await asyncio.to_thread(finished, query, table, values, kind)
