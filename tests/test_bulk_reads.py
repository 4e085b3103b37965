"""The bulk COPY reader (pmstore._read.bulk) on a real server: values, batches, errors, state.

Results are compared with psycopg's own row-by-row reading of the same query
and with the previous engine (psycopg's Copy); errors raised by the server in
the middle of a stream (a ReadError with the server's sqlstate), a reader
closed early and a wrong schema must leave the connection usable, as psycopg
leaves it. No password reaches an error's message or its chained cause.
``fetch_table`` (the Reader's ``as_=`` reads) reads through it, with its errors.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pmstore import ConfigurationError, Writer
from pmstore._pgcopy import copy_statement
from pmstore._read.bulk import iter_batches, iter_batches_async, read_table, read_table_async
from pmstore.cli import main
from pmstore.errors import CopyDecodeError, ReadError
from pmstore.frames.copy_decoding import iter_record_batches
from pmstore.frames.outbound import fetch_table, fetch_table_async

Conn = psycopg.Connection[tuple[Any, ...]]

DAY0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
TOKENS = [str(10**76 + i * 7919) for i in range(7)] + ["9" * 78, "1" * 74]
PRICES_SQL = """
    SELECT ts, token_id, price, volume_24h FROM price_snapshots
    WHERE ts >= %(start)s AND ts < %(end)s
    ORDER BY token_id, ts
"""
PRICE_SCHEMA = pa.schema(
    [
        ("ts", pa.timestamp("us", tz="UTC")),
        ("token_id", pa.string()),
        ("price", pa.float64()),
        ("volume_24h", pa.float64()),
    ]
)
SERIES_SQL = (
    "SELECT g::int8 AS g, 1 / (g - %(fail_at)s)::int8 AS r FROM generate_series(1, %(n)s) g"
)
SERIES_SCHEMA = pa.schema([("g", pa.int64()), ("r", pa.int64())])


def write_prices(conn: Conn, n: int, seed: int = 5) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    volume = rng.uniform(0, 1e6, n)
    volume[rng.random(n) < 0.4] = np.nan  # NULLs
    start = np.datetime64(DAY0.replace(tzinfo=None), "us")
    with Writer(conn) as writer:
        writer.copy_prices(
            {
                "ts": start + np.sort(rng.choice(86_400_000_000, n, replace=False)),
                "token_id": np.array(TOKENS, dtype=object)[rng.integers(0, len(TOKENS), n)],
                "price": rng.uniform(0, 1, n),
                "volume_24h": volume,
            }
        )
    return {"start": DAY0, "end": DAY0 + timedelta(days=1)}


def rows_of(table: Any) -> list[tuple[Any, ...]]:
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return list(zip(*columns, strict=True))


def fetched(conn: Conn, sql: str, values: dict[str, Any]) -> list[tuple[Any, ...]]:
    with conn.cursor(binary=True) as cur:
        return list(cur.execute(sql, values).fetchall())


def test_a_read_equals_psycopg_rows_and_the_previous_engine(conn: Conn) -> None:
    values = write_prices(conn, 6_000)
    expected = fetched(conn, PRICES_SQL, values)
    assert len(expected) == 6_000
    with conn.cursor() as cur, cur.copy(copy_statement(PRICES_SQL), values) as copy:
        previous = pa.Table.from_batches(list(iter_record_batches(copy, PRICE_SCHEMA)))
    for batch_rows in (1_000, 2_999, 6_000, 65_536):  # threads and batches, or one batch
        table = read_table(conn, PRICES_SQL, values, PRICE_SCHEMA, batch_rows=batch_rows)
        assert table.schema == PRICE_SCHEMA
        assert rows_of(table) == expected, batch_rows
        assert table.equals(previous)
    batches = list(iter_batches(conn, PRICES_SQL, values, PRICE_SCHEMA, batch_rows=1_000))
    assert [b.num_rows for b in batches] == [1_000] * 6  # the trailer's batch is empty: not yielded
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_types_nulls_and_text(conn: Conn) -> None:
    sql = """
        SELECT * FROM (VALUES
            (1::int8, 2::int4, 'é€😀'::text, 0.5::float8,
             '2026-01-02 03:04:05.000006+00'::timestamptz),
            (NULL, NULL, NULL, NULL, NULL),
            (-9223372036854775808, -2147483648, '', 'NaN'::float8, '1970-01-01 00:00:00+00'),
            (9223372036854775807, 2147483647, repeat('x', 100000), '-Infinity',
             '2299-12-31 23:59:59.999999+00')
        ) AS v(a, b, c, d, e)
    """
    schema = pa.schema(
        [
            ("a", pa.int64()),
            ("b", pa.int32()),
            ("c", pa.string()),
            ("d", pa.float64()),
            ("e", pa.timestamp("us", tz="UTC")),
        ]
    )
    table = read_table(conn, sql, {}, schema)
    expected = fetched(conn, sql, {})
    got = rows_of(table)
    assert len(got) == 4 and got[1] == (None,) * 5
    for row, want in zip(got, expected, strict=True):
        for value, wanted in zip(row, want, strict=True):
            if isinstance(wanted, float) and np.isnan(wanted):
                assert np.isnan(value)
            else:
                assert value == wanted


def test_empty_and_one_row_results(conn: Conn) -> None:
    values = {"start": DAY0, "end": DAY0 + timedelta(days=1)}
    empty = read_table(conn, PRICES_SQL, values, PRICE_SCHEMA)
    assert empty.num_rows == 0 and empty.schema == PRICE_SCHEMA  # header and trailer in one message
    assert list(iter_batches(conn, PRICES_SQL, values, PRICE_SCHEMA)) == []
    one = read_table(conn, "SELECT 7::int8 AS g, NULL::int8 AS r", {}, SERIES_SCHEMA)
    assert rows_of(one) == [(7, None)]


def test_a_server_error_mid_stream_is_a_read_error_and_the_connection_recovers(
    conn: Conn, db: str
) -> None:
    values = {"fail_at": 3_000, "n": 5_000}
    for batch_rows in (500, 65_536):
        got = []
        with pytest.raises(ReadError) as info:
            for batch in iter_batches(
                conn, SERIES_SQL, values, SERIES_SCHEMA, batch_rows=batch_rows
            ):
                got.extend(batch.column("g").to_pylist())
        assert info.value.sqlstate == "22012"
        assert info.value.message_primary == "division by zero"
        assert isinstance(info.value.__cause__, psycopg.errors.DivisionByZero)
        assert got == list(range(1, len(got) + 1)) and len(got) < 3_000  # rows before it, in order
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with psycopg.connect(db) as tx:  # in a transaction: failed, then rolled back
        with pytest.raises(ReadError, match="division by zero"):
            read_table(tx, SERIES_SQL, values, SERIES_SCHEMA, batch_rows=500)
        assert tx.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        tx.rollback()
        assert tx.execute("SELECT 2").fetchone() == (2,)


def test_fetch_table_reads_through_the_bulk_reader_and_raises_its_errors(
    conn: Conn, db: str
) -> None:
    # The as_= reads of the Reader: the columns described by the server, then the bulk read.
    values = write_prices(conn, 3_000)
    assert fetch_table(conn, PRICES_SQL, values).equals(
        read_table(conn, PRICES_SQL, values, PRICE_SCHEMA)
    )
    with pytest.raises(ReadError) as info:  # the description fails
        fetch_table(conn, "SELECT no_such_column::int8 AS g", {})
    assert info.value.sqlstate == "42703"
    assert isinstance(info.value.__cause__, psycopg.errors.UndefinedColumn)
    with pytest.raises(ReadError) as info:  # the stream fails
        fetch_table(conn, SERIES_SQL, {"fail_at": 3_000, "n": 5_000})
    assert info.value.sqlstate == "22012"
    assert conn.execute("SELECT 1").fetchone() == (1,)

    async def body() -> None:
        async with await psycopg.AsyncConnection.connect(db, autocommit=True) as aconn:
            with pytest.raises(ReadError) as info:
                await fetch_table_async(aconn, "SELECT no_such_column::int8 AS g", {})
            assert info.value.sqlstate == "42703"
            with pytest.raises(ReadError) as info:
                await fetch_table_async(
                    aconn, SERIES_SQL, {"fail_at": 2_000, "n": 3_000}, batch_rows=300
                )
            assert info.value.sqlstate == "22012"
            assert await (await aconn.execute("SELECT 5")).fetchone() == (5,)

    asyncio.run(body())


def test_closing_early_cancels_and_a_wrong_schema_raises(conn: Conn) -> None:
    values = {"fail_at": 0, "n": 200_000}
    batches = iter_batches(conn, SERIES_SQL, values, SERIES_SCHEMA, batch_rows=1_000)
    first = next(batches)
    assert first.num_rows == 1_000 and first.column("g")[0].as_py() == 1
    batches.close()  # psycopg cancels the COPY and drains it
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert conn.execute("SELECT 3").fetchone() == (3,)
    wrong = pa.schema([("g", pa.float64()), ("r", pa.string()), ("x", pa.int32())])
    for batch_rows in (100, 65_536):
        with pytest.raises(CopyDecodeError, match="fields"):
            read_table(conn, SERIES_SQL, {"fail_at": 0, "n": 1_000}, wrong, batch_rows=batch_rows)
        assert conn.execute("SELECT 4").fetchone() == (4,)


def test_reads_run_in_the_callers_transaction(conn: Conn, db: str) -> None:
    values = {"start": DAY0, "end": DAY0 + timedelta(days=1)}
    with psycopg.connect(db) as tx:
        tx.execute(
            "INSERT INTO price_snapshots (ts, token_id, price)"
            " SELECT %s + g * interval '1 minute', %s, 0.5 FROM generate_series(0, 49) g",
            (DAY0, TOKENS[0]),
        )  # not committed: only this transaction sees them
        table = read_table(tx, PRICES_SQL, values, PRICE_SCHEMA)
        assert table.num_rows == 50
        assert tx.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert read_table(conn, PRICES_SQL, values, PRICE_SCHEMA).num_rows == 0
        tx.rollback()
        assert read_table(tx, PRICES_SQL, values, PRICE_SCHEMA).num_rows == 0


def test_bad_arguments(conn: Conn, db: str) -> None:
    with pytest.raises(ConfigurationError, match="batch_rows"):
        read_table(conn, SERIES_SQL, {"fail_at": 0, "n": 3}, SERIES_SCHEMA, batch_rows=0)
    with (
        psycopg.connect(db, autocommit=True, client_encoding="LATIN1") as latin,
        pytest.raises(ConfigurationError, match="UTF-8"),
    ):
        read_table(latin, SERIES_SQL, {"fail_at": 0, "n": 3}, SERIES_SCHEMA)


def test_async_reads(conn: Conn, db: str) -> None:
    values = write_prices(conn, 4_000)
    expected = read_table(conn, PRICES_SQL, values, PRICE_SCHEMA)

    async def body() -> None:
        async with await psycopg.AsyncConnection.connect(db, autocommit=True) as aconn:
            for batch_rows in (700, 65_536):
                table = await read_table_async(
                    aconn, PRICES_SQL, values, PRICE_SCHEMA, batch_rows=batch_rows
                )
                assert table.equals(expected)
            with pytest.raises(ReadError) as info:
                await read_table_async(
                    aconn, SERIES_SQL, {"fail_at": 2_000, "n": 3_000}, SERIES_SCHEMA, batch_rows=300
                )
            assert info.value.sqlstate == "22012"
            batches = iter_batches_async(
                aconn, SERIES_SQL, {"fail_at": 0, "n": 100_000}, SERIES_SCHEMA, batch_rows=1_000
            )
            first = await anext(batches)
            assert first.num_rows == 1_000
            await batches.aclose()
            assert await (await aconn.execute("SELECT 5")).fetchone() == (5,)

    asyncio.run(body())


def test_a_server_error_at_the_start_keeps_its_sqlstate_and_hides_passwords(conn: Conn) -> None:
    secret = "hunter" + "2-4711"  # built, so no source line in a traceback shows it
    with pytest.raises(ReadError) as info:
        read_table(conn, "SELECT no_such_column::int8 AS g", {}, pa.schema([("g", pa.int64())]))
    assert info.value.sqlstate == "42703"  # undefined_column
    assert isinstance(info.value.__cause__, psycopg.errors.UndefinedColumn)
    assert conn.execute("SELECT 6").fetchone() == (6,)
    # A server message quoting a connection string: its password never shows.
    sql = "SELECT %(text)s::int8 AS g"
    with pytest.raises(ReadError) as info:
        read_table(
            conn, sql, {"text": f"host=db password={secret}"}, pa.schema([("g", pa.int64())])
        )
    assert info.value.sqlstate == "22P02"  # invalid_text_representation
    shown = [str(info.value), repr(info.value), str(info.value.message_primary)]
    cause = info.value.__cause__
    assert cause is not None
    shown += [str(cause), repr(cause)]
    assert all(secret not in text for text in shown), shown
    assert "***" in str(info.value)


def test_export_with_a_wrong_password_never_prints_it(db: str, tmp_path: Any, capsys: Any) -> None:
    secret = "hunter" + "3-0815"  # built, so no source line in a traceback shows it
    info = conninfo_to_dict(db)
    info["password"] = secret
    wrong = make_conninfo(**{k: str(v) for k, v in info.items() if v is not None})
    args = ["export", "price_snapshots", "--dsn", wrong, "--out", str(tmp_path), "--no-progress"]
    code = main([*args, "--start", "2026-01-01T00:00Z", "--end", "2026-01-02T00:00Z"])
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err
    # Refused (password auth) or accepted (trust auth): either way a clean end, no traceback.
    assert code in (0, 1) and "Traceback" not in captured.err
