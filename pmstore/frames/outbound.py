"""A query's rows as a pyarrow Table, a polars or a pandas DataFrame, fetched in bulk.

``fetch_frame(conn, sql, params, "polars")`` runs ``COPY (sql) TO STDOUT (FORMAT
binary)`` and decodes the stream with ``pmstore.frames.copy_decoding`` (numpy
over whole columns, never a Python object per value except pandas' own). The
column types come from the server: one ``SELECT * FROM (sql) LIMIT 0`` first
(a round trip and a plan), mapped by ``arrow_type``. COPY cannot take
server-side parameters, so psycopg binds ``params`` into the statement on the
client (literals: the plan is a custom one, with chunk exclusion at plan time).

Column types in the result: timestamptz -> ``timestamp[us, UTC]`` (pandas:
``datetime64[us, UTC]``), float8 -> float64, int8/int4 -> int64/int32, text ->
string; NULL -> null (pandas: NaN in float columns, NA elsewhere).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, get_args

import psycopg

from pmstore.errors import ConfigurationError, CopyDecodeError
from pmstore.frames import require
from pmstore.frames.copy_decoding import iter_record_batches

__all__ = [
    "FRAME_KINDS",
    "FrameKind",
    "arrow_type",
    "copy_statement",
    "fetch_frame",
    "fetch_table",
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
}

DESCRIBE_SQL: Final = "SELECT * FROM ({query}) AS described LIMIT 0"
"""How ``query_schema`` asks the server for a query's column types."""


def copy_statement(sql: str) -> str:
    """The binary ``COPY (sql) TO STDOUT`` statement of a query."""
    return f"COPY ({sql}) TO STDOUT (FORMAT binary)"


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
    pa = require("pyarrow")
    cur.execute(DESCRIBE_SQL.format(query=sql), params, prepare=False)
    fields = []
    for column in cur.description or ():
        info = cur.adapters.types.get(column.type_code)
        name = info.name if info is not None else str(column.type_code)
        fields.append(pa.field(column.name, arrow_type(name)))
    return pa.schema(fields)


def fetch_table(
    conn: psycopg.Connection[Any], sql: str, params: Mapping[str, Any], *, sort_by: str = ""
) -> Any:
    """Run ``sql`` as a binary COPY and return its rows as a ``pyarrow.Table``.

    ``sort_by`` names a column to sort the result by (byte order for text, as
    ``COLLATE "C"``). Runs in the caller's transaction. Raises ConfigurationError
    when pyarrow is missing or the connection's encoding is not UTF-8, psycopg
    errors unchanged, CopyDecodeError for undecodable data. Costs two round
    trips; memory about twice the result's size while decoding.
    """
    pa = require("pyarrow")
    if conn.info.encoding.replace("-", "").replace("_", "").lower() != "utf8":
        raise ConfigurationError(
            f"bulk reads need a UTF-8 connection, this one is {conn.info.encoding}"
        )
    with conn.cursor() as cur:
        schema = query_schema(cur, sql, params)
        with cur.copy(copy_statement(sql), params) as copy:
            batches = list(iter_record_batches(copy, schema))
    table = pa.Table.from_batches(batches, schema=schema)
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
