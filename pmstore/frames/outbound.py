"""A query's rows as a pyarrow Table, a polars or a pandas DataFrame, fetched in bulk.

``fetch_frame(conn, sql, params, "polars")`` runs ``COPY (sql) TO STDOUT (FORMAT
binary)`` through pmstore's bulk reader (``pmstore._read.bulk``: the stream
taken from libpq, decoded by ``pmstore.frames.copy_decoding``, numpy over whole
columns, never a Python object per value except pandas' own). The column types
come from the server: one ``SELECT * FROM (sql) LIMIT 0`` first (a round trip
and a plan), mapped by ``arrow_type``. COPY cannot take server-side parameters,
so psycopg binds ``params`` into the statement on the client (literals: the
plan is a custom one, with chunk exclusion at plan time). A server error, in
the description or the COPY, raises ``pmstore.errors.ReadError`` with its
``sqlstate``.

Column types in the result: timestamptz -> ``timestamp[us, UTC]`` (pandas:
``datetime64[us, UTC]``), float8 -> float64, int8/int4 -> int64/int32, text ->
string, jsonb (order-book sides) -> string holding the JSON text (the field's metadata
``JSONB_METADATA``; numbers keep their stored digits: parse with ``json.loads``, or
``parse_float=decimal.Decimal`` for exact decimals); NULL -> null (pandas: NaN in float
columns, NA elsewhere).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, get_args

import psycopg

from pmstore._optional import require
from pmstore._pgcopy import copy_statement
from pmstore._read.bulk import read_error, read_table, read_table_async, require_utf8
from pmstore.dsn import redact_error
from pmstore.errors import ConfigurationError, CopyDecodeError
from pmstore.frames.copy_decoding import JSONB_METADATA

__all__ = [
    "ASYNC_BATCH_ROWS",
    "FRAME_KINDS",
    "FrameKind",
    "arrow_type",
    "copy_statement",
    "fetch_frame",
    "fetch_frame_async",
    "fetch_table",
    "fetch_table_async",
    "query_schema",
    "to_frame",
]

FrameKind = Literal["arrow", "polars", "pandas"]
"""What a bulk read returns: a ``pyarrow.Table``, a ``polars.DataFrame``, a ``pandas.DataFrame``."""
FRAME_KINDS: Final[tuple[str, ...]] = get_args(FrameKind)

_TYPE_NAMES: Final = {
    "timestamptz": "timestamp",
    "float8": "float64",
    "int8": "int64",
    "int4": "int32",
    "text": "string",
    "varchar": "string",
    "jsonb": "string",
}

DESCRIBE_SQL: Final = "SELECT * FROM ({query}) AS described LIMIT 0"
"""How ``query_schema`` asks the server for a query's column types."""


def arrow_type(type_name: str) -> Any:
    """The arrow type pmstore decodes a PostgreSQL type (by name) into; CopyDecodeError
    for the others."""
    pa = require("pyarrow")
    kind = _TYPE_NAMES.get(type_name)
    if kind is None:
        raise CopyDecodeError(f"cannot read PostgreSQL type {type_name} into arrow")
    if kind == "timestamp":
        return pa.timestamp("us", tz="UTC")
    return getattr(pa, kind)()


def query_schema(cur: psycopg.Cursor[Any], sql: str, params: Mapping[str, Any]) -> Any:
    """The ``pyarrow.Schema`` of ``sql``'s result, from the server's description of it.

    One round trip (``DESCRIBE_SQL``); raises CopyDecodeError for a column of
    a type pmstore does not decode.
    """
    cur.execute(DESCRIBE_SQL.format(query=sql), params, prepare=False)
    return _described_schema(cur)


def _described_schema(cur: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]) -> Any:
    """The arrow schema of the columns ``cur`` just described."""
    pa = require("pyarrow")
    fields = []
    for column in cur.description or ():
        info = cur.adapters.types.get(column.type_code)
        name = info.name if info is not None else str(column.type_code)
        metadata = JSONB_METADATA if name == "jsonb" else None
        fields.append(pa.field(column.name, arrow_type(name), metadata=metadata))
    return pa.schema(fields)


def fetch_table(
    conn: psycopg.Connection[Any], sql: str, params: Mapping[str, Any], *, sort_by: str = ""
) -> Any:
    """Run ``sql`` as a binary COPY and return its rows as a ``pyarrow.Table``.

    The columns as the server describes them (``query_schema``), the rows read by
    ``pmstore._read.bulk.read_table``. ``sort_by`` names a column to sort the
    result by (byte order for text, as ``COLLATE "C"``). Runs in the caller's
    transaction. Raises ConfigurationError when pyarrow is missing or the
    connection's encoding is not UTF-8, ReadError (with the sqlstate) for a server
    error, CopyDecodeError for undecodable data. Costs two round trips; memory:
    the result, plus a few batches of bytes while reading.
    """
    require("pyarrow")
    require_utf8(conn)
    try:
        with conn.cursor() as cur:
            schema = query_schema(cur, sql, params)
    except psycopg.Error as exc:
        raise read_error(exc) from redact_error(exc)
    table = read_table(conn, sql, params, schema)
    return table.sort_by(sort_by) if sort_by else table


def to_frame(table: Any, as_: FrameKind) -> Any:
    """``table`` as ``as_``: itself, ``polars.from_arrow`` (zero-copy) or ``to_pandas()``.

    Raises ConfigurationError for an unknown kind or a library not installed.
    """
    if as_ == "arrow":
        return table
    if as_ == "polars":
        return require("polars").from_arrow(table)
    if as_ == "pandas":
        require("pandas")
        return table.to_pandas()
    raise ConfigurationError(f"as_ must be one of {FRAME_KINDS} or None, not {as_!r}")


def fetch_frame(
    conn: psycopg.Connection[Any],
    sql: str,
    params: Mapping[str, Any],
    as_: FrameKind,
    *,
    sort_by: str = "",
) -> Any:
    """``fetch_table`` then ``to_frame``: a query's rows as a Table or DataFrame.

    The kind is checked before anything is sent (ConfigurationError).
    """
    if as_ not in FRAME_KINDS:
        raise ConfigurationError(f"as_ must be one of {FRAME_KINDS} or None, not {as_!r}")
    return to_frame(fetch_table(conn, sql, params, sort_by=sort_by), as_)


# -- asyncio -------------------------------------------------------------------------------

ASYNC_BATCH_ROWS: Final = 10_000
"""Rows per decoded batch in ``fetch_table_async`` (decoded in a worker thread)."""


async def fetch_table_async(
    conn: psycopg.AsyncConnection[Any],
    sql: str,
    params: Mapping[str, Any],
    *,
    sort_by: str = "",
    batch_rows: int = ASYNC_BATCH_ROWS,
) -> Any:
    """``fetch_table`` on an ``AsyncConnection``: the same statements, decoder and errors.

    The rows are read by ``pmstore._read.bulk.read_table_async``, ``batch_rows``
    rows per batch, each decoded in a worker thread (the event loop is held for
    one take of the messages libpq holds at a time).
    """
    require("pyarrow")
    require_utf8(conn)
    try:
        async with conn.cursor() as cur:
            await cur.execute(DESCRIBE_SQL.format(query=sql), params, prepare=False)
            schema = _described_schema(cur)
    except psycopg.Error as exc:
        raise read_error(exc) from redact_error(exc)
    table = await read_table_async(conn, sql, params, schema, batch_rows=batch_rows)
    return table.sort_by(sort_by) if sort_by else table


async def fetch_frame_async(
    conn: psycopg.AsyncConnection[Any],
    sql: str,
    params: Mapping[str, Any],
    as_: FrameKind,
    *,
    sort_by: str = "",
) -> Any:
    """``fetch_frame`` on an ``AsyncConnection`` (see ``fetch_table_async``)."""
    if as_ not in FRAME_KINDS:
        raise ConfigurationError(f"as_ must be one of {FRAME_KINDS} or None, not {as_!r}")
    return to_frame(await fetch_table_async(conn, sql, params, sort_by=sort_by), as_)
