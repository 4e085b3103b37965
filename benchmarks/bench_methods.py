"""The ingest methods compared: pmstore's Writer, the server's own COPY, and the Python peers.

Each method loads a whole data set into a target table in one transaction
and returns the seconds it took, from the first byte produced to the commit.
Connecting (and, for pgcopy, reading the table's column types) happens
before the clock starts; converting the data into the method's input form
happened before that (see ``bench_data``). A method that cannot run here
(a library missing) raises ``UnavailableError`` with the reason.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg
from bench_data import BOOK_COLUMNS, PRICE_COLUMNS, BookData, PriceData, read_chunks
from bench_report import BOOK_TEXTS_BASELINE
from bench_server import Target
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from pmstore import Writer

Group = Literal["pmstore", "server", "peer"]

PRICE_TYPES = ("timestamptz", "text", "float8", "float8")
BOOK_TYPES = ("timestamptz", "text", "jsonb", "jsonb", "float8", "float8")
"""psycopg's binary jsonb dumper serializes the sides' lists (json.dumps) itself."""

SORTED_BASELINE = "server COPY FROM file (binary, sorted by (token_id, ts))"

EXECUTEMANY_ROWS = 100_000
"""psycopg executemany runs on at most this many rows (the first ones); rows/s is from those."""


class UnavailableError(Exception):
    """The method cannot run here; the message says why."""


@dataclass(frozen=True, slots=True)
class Run:
    """One method's measurement: rows written and seconds, and anything worth saying."""

    rows: int
    seconds: float
    note: str = ""

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Method:
    """A named way of loading a data set."""

    name: str
    group: Group
    run: Callable[[Target, Any], Run]


def _columns(names: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, names))


# -- pmstore -------------------------------------------------------------------------------


def _writer_call(
    target: Target, call: Callable[[Writer], Any], rows: int, *, index_order: bool | None = None
) -> Run:
    with Writer(target.dsn, index_order=index_order) as writer:
        _ = writer.connection  # connect before timing
        started = time.perf_counter()
        result = call(writer)
        seconds = time.perf_counter() - started
    if result.rows_written != rows:
        raise RuntimeError(f"Writer wrote {result.rows_written} rows of {rows}")
    return Run(rows, seconds)


def pmstore_price_columns(target: Target, data: PriceData) -> Run:
    return _writer_call(target, lambda w: w.copy_prices(data.columns), data.n)


def pmstore_price_as_given(target: Target, data: PriceData) -> Run:
    run = _writer_call(target, lambda w: w.copy_prices(data.columns), data.n, index_order=False)
    return Run(run.rows, run.seconds, "rows in the order given (no sort)")


def pmstore_price_tuples(target: Target, data: PriceData) -> Run:
    return _writer_call(target, lambda w: w.copy_prices(data.rows), data.n)


def pmstore_price_records(target: Target, data: PriceData) -> Run:
    return _writer_call(target, lambda w: w.copy_prices(data.records), data.n)


def pmstore_book_raw(target: Target, data: BookData) -> Run:
    return _writer_call(target, lambda w: w.copy_orderbooks(data.raw), data.n)


def pmstore_book_batch(target: Target, data: BookData) -> Run:
    return _writer_call(target, lambda w: w.copy_orderbooks(data.batch), data.n)


def pmstore_book_text_batch(target: Target, data: BookData) -> Run:
    run = _writer_call(target, lambda w: w.copy_orderbooks(data.text_batch), data.n)
    return Run(run.rows, run.seconds, "built by from_columns from the string levels (texts kept)")


# -- the server's own COPY FROM a file -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerCopy:
    """``COPY <table> FROM '<file>'`` by the server, or the file streamed when it cannot read it."""

    path: Path
    fmt: Literal["binary", "csv"]
    columns: tuple[str, ...]
    rows: int
    server_reads: bool

    def __call__(self, target: Target, _data: object) -> Run:
        with psycopg.connect(target.dsn) as conn:
            return self.load(conn, target)

    def load(self, conn: psycopg.Connection[tuple[Any, ...]], target: Target) -> Run:
        """The timed part, on an open connection (not in a transaction; committed)."""
        cols = _columns(self.columns)
        started = time.perf_counter()
        if self.server_reads:
            conn.execute(
                sql.SQL("COPY {} ({}) FROM {} (FORMAT {})").format(
                    target.qualified, cols, sql.Literal(str(self.path)), sql.SQL(self.fmt)
                )
            )
            note = "server-side file"
        else:
            with (
                conn.cursor() as cur,
                cur.copy(
                    sql.SQL("COPY {} ({}) FROM STDIN (FORMAT {})").format(
                        target.qualified, cols, sql.SQL(self.fmt)
                    )
                ) as copy,
            ):
                for chunk in read_chunks(self.path):
                    copy.write(chunk)
            note = "file bytes streamed FROM STDIN (the server cannot read the file)"
        conn.commit()
        seconds = time.perf_counter() - started
        return Run(self.rows, seconds, note)


# -- psycopg ---------------------------------------------------------------------------------


def _psycopg_write_row(
    target: Target, rows: Sequence[tuple[Any, ...]], columns: Sequence[str], types: Sequence[str]
) -> Run:
    query = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
        target.qualified, _columns(columns)
    )
    with psycopg.connect(target.dsn) as conn:
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(query) as copy:
            copy.set_types(list(types))
            for row in rows:
                copy.write_row(row)
        conn.commit()
        seconds = time.perf_counter() - started
    return Run(len(rows), seconds)


def psycopg_write_row_prices(target: Target, data: PriceData) -> Run:
    return _psycopg_write_row(target, data.rows, PRICE_COLUMNS, PRICE_TYPES)


def psycopg_write_row_books(target: Target, data: BookData) -> Run:
    return _psycopg_write_row(target, data.rows, BOOK_COLUMNS, BOOK_TYPES)


def psycopg_executemany_prices(target: Target, data: PriceData) -> Run:
    rows = data.rows[:EXECUTEMANY_ROWS]
    query = sql.SQL("INSERT INTO {} ({}) VALUES (%s, %s, %s, %s)").format(
        target.qualified, _columns(PRICE_COLUMNS)
    )
    with psycopg.connect(target.dsn) as conn:
        started = time.perf_counter()
        with conn.cursor() as cur:
            cur.executemany(query, rows)
        conn.commit()
        seconds = time.perf_counter() - started
    note = "" if len(rows) == data.n else f"first {len(rows):,} rows only (rows/s from those)"
    return Run(len(rows), seconds, note)


# -- asyncpg ---------------------------------------------------------------------------------


def _asyncpg_params(dsn: str) -> dict[str, Any]:
    """asyncpg.connect keyword arguments from a libpq DSN (asyncpg does not read all of libpq's)."""
    info = conninfo_to_dict(dsn)
    names = {
        "host": "host",
        "port": "port",
        "user": "user",
        "password": "password",
        "dbname": "database",
        "passfile": "passfile",
    }
    params: dict[str, Any] = {new: info[old] for old, new in names.items() if info.get(old)}
    if "port" in params:
        params["port"] = int(params["port"])
    return params


def _asyncpg_copy(target: Target, rows: Sequence[tuple[Any, ...]], columns: Sequence[str]) -> Run:
    try:
        import asyncpg
    except ImportError as exc:
        raise UnavailableError(f"asyncpg is not installed ({exc}); pip install asyncpg") from None

    async def copy() -> float:
        conn = await asyncpg.connect(
            **_asyncpg_params(target.dsn),
            server_settings={"search_path": f"{target.schema},public"},
        )
        try:  # jsonb sides: asyncpg's codec takes their JSON text (json_rows)
            started = time.perf_counter()
            await conn.copy_records_to_table(
                target.table, records=rows, columns=list(columns), schema_name=target.schema
            )
            return time.perf_counter() - started
        finally:
            await conn.close()

    return Run(len(rows), asyncio.run(copy()))


def asyncpg_prices(target: Target, data: PriceData) -> Run:
    return _asyncpg_copy(target, data.rows, PRICE_COLUMNS)


def asyncpg_books(target: Target, data: BookData) -> Run:
    return _asyncpg_copy(target, data.json_rows, BOOK_COLUMNS)


# -- ADBC ------------------------------------------------------------------------------------


def adbc_prices(target: Target, data: PriceData) -> Run:
    """ADBC's PostgreSQL driver ``adbc_ingest`` (binary COPY from an Arrow table)."""
    try:
        adbc = importlib.import_module("adbc_driver_postgresql.dbapi")  # untyped: by name
    except ImportError as exc:
        raise UnavailableError(
            f"adbc-driver-postgresql is not installed ({exc}); pip install adbc-driver-postgresql"
        ) from None
    table = data.arrow
    with adbc.connect(target.dsn) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        cur.adbc_ingest(target.table, table, mode="append", db_schema_name=target.schema)
        conn.commit()
        seconds = time.perf_counter() - started
    return Run(data.n, seconds, "cursor.adbc_ingest(pyarrow.Table)")


# -- pgcopy ----------------------------------------------------------------------------------


def _pgcopy(target: Target, rows: Any, n: int, columns: Sequence[str]) -> Run:
    try:
        psycopg2 = importlib.import_module("psycopg2")  # untyped: imported by name
    except ImportError as exc:
        raise UnavailableError(f"pgcopy needs psycopg2, which is not installed ({exc})") from None
    try:
        from pgcopy import CopyManager
    except ImportError as exc:
        raise UnavailableError(f"pgcopy is not installed ({exc}); pip install pgcopy") from None
    conn = psycopg2.connect(target.dsn)
    try:
        manager = CopyManager(conn, f"{target.schema}.{target.table}", list(columns))
        started = time.perf_counter()
        manager.copy(rows, io.BytesIO)  # in memory: pgcopy's fastest documented mode
        conn.commit()
        seconds = time.perf_counter() - started
    finally:
        conn.close()
    return Run(n, seconds, "CopyManager.copy(records, BytesIO)")


def pgcopy_prices(target: Target, data: PriceData) -> Run:
    return _pgcopy(target, data.rows, data.n, PRICE_COLUMNS)


def pgcopy_books(target: Target, data: BookData) -> Run:
    rows = [  # jsonb sides: pgcopy takes their JSON text as bytes
        (ts, token, bids.encode(), asks.encode(), spread, mid)
        for ts, token, bids, asks, spread, mid in data.json_rows
    ]
    return _pgcopy(target, rows, data.n, BOOK_COLUMNS)


# -- the lists -------------------------------------------------------------------------------


def price_methods(
    binary: ServerCopy,
    csv: ServerCopy,
    *,
    records: bool = True,
    sorted_binary: ServerCopy | None = None,
) -> list[Method]:
    """Every price method, baseline (server binary COPY) first; ``sorted_binary`` adds the
    server's binary COPY of the same rows sorted by (token_id, ts)."""
    methods = [
        Method("server COPY FROM file (binary)", "server", binary),
        Method("server COPY FROM file (CSV)", "server", csv),
    ]
    if sorted_binary is not None:
        methods.append(Method(SORTED_BASELINE, "server", sorted_binary))
    methods += [
        Method("pmstore copy_prices (columns)", "pmstore", pmstore_price_columns),
        Method(
            "pmstore copy_prices (columns, index_order=False)", "pmstore", pmstore_price_as_given
        ),
    ]
    if records:
        methods += [
            Method("pmstore copy_prices (tuples)", "pmstore", pmstore_price_tuples),
            Method("pmstore copy_prices (records)", "pmstore", pmstore_price_records),
        ]
    methods += [
        Method("psycopg Copy.write_row (binary)", "peer", psycopg_write_row_prices),
        Method("psycopg executemany INSERT", "peer", psycopg_executemany_prices),
        Method("asyncpg copy_records_to_table", "peer", asyncpg_prices),
        Method("ADBC adbc_ingest (Arrow)", "peer", adbc_prices),
        Method("pgcopy CopyManager", "peer", pgcopy_prices),
    ]
    return methods


def book_methods(binary: ServerCopy, csv: ServerCopy, texts_binary: ServerCopy) -> list[Method]:
    """Every order-book method, baseline (server binary COPY of the rows a built batch of
    float levels gives) first; ``texts_binary``: of the rows string levels give."""
    return [
        Method("server COPY FROM file (binary)", "server", binary),
        Method(BOOK_TEXTS_BASELINE, "server", texts_binary),
        Method("server COPY FROM file (CSV)", "server", csv),
        Method("pmstore copy_orderbooks (string levels)", "pmstore", pmstore_book_raw),
        Method("pmstore copy_orderbooks (OrderbookBatch)", "pmstore", pmstore_book_batch),
        Method(
            "pmstore copy_orderbooks (OrderbookBatch with texts)",
            "pmstore",
            pmstore_book_text_batch,
        ),
        Method("psycopg Copy.write_row (binary)", "peer", psycopg_write_row_books),
        Method("asyncpg copy_records_to_table", "peer", asyncpg_books),
        Method("pgcopy CopyManager", "peer", pgcopy_books),
    ]
