"""Panel reads (``Reader.price_history``/``candles``/``trade_volume`` of one token, several
or ``ALL_TOKENS``; pmstore._read.panel) on both editions.

Every panel, as models and with each ``as_``, is checked against the Reader's
single-token models (token by token in byte order), so a panel holds exactly
the rows of its tokens, sorted by (token_id, ts); the declared column types
are checked against the server's description of every query.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import psycopg
import pyarrow as pa
import pytest
from conftest import TestServer

from pmstore import ConfigurationError, ReadError, Writer
from pmstore._read.panel import (
    ALL_TOKENS,
    PanelQuery,
    candles_query,
    fetch_panel,
    fetch_panel_async,
    hour_params,
    in_time_order,
    params,
    price_history_query,
    tokens,
    trade_volume_query,
)
from pmstore.frames.outbound import query_schema
from pmstore.reader import ALL_TOKENS as READER_ALL_TOKENS
from pmstore.reader import Reader
from pmstore.reader_async import AsyncReader

Conn = psycopg.Connection[tuple[Any, ...]]

DAY0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
TOKENS = [str(10**76 + i * 7919) for i in range(6)] + ["9" * 78, "2" * 74]


def write(conn: Conn, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    n, m = 4_000, 1_500
    start = np.datetime64(DAY0.replace(tzinfo=None), "us")
    span = 10 * 3_600_000_000
    volume = rng.uniform(0, 1e6, n)
    volume[rng.random(n) < 0.5] = np.nan
    price = rng.uniform(0, 1, m)
    with Writer(conn) as writer:
        writer.copy_prices(
            {
                "ts": start + rng.choice(span, n, replace=False),
                "token_id": np.array(TOKENS[:-1], dtype=object)[rng.integers(0, 7, n)],
                "price": rng.uniform(0, 1, n),
                "volume_24h": volume,
            }
        )
        writer.copy_trades(
            {
                "ts": start + rng.choice(span, m, replace=False),
                "token_id": np.array(TOKENS[:-1], dtype=object)[rng.integers(0, 7, m)],
                "side": np.array(["BUY", "SELL"], dtype=object)[rng.integers(0, 2, m)],
                "price": price,
                "size": rng.uniform(1, 100, m),
                "trade_id": np.array([f"0x{i:064x}:0" for i in range(m)], dtype=object),
            }
        )


def model_rows(models: list[Any], columns: list[str]) -> list[tuple[Any, ...]]:
    return [tuple(m.model_dump()[c] for c in columns) for m in models]


def table_rows(table: Any) -> list[tuple[Any, ...]]:
    return list(zip(*(table.column(i).to_pylist() for i in range(table.num_columns)), strict=True))


def expected(
    read_one: Callable[[str], list[Any]], ids: list[str], columns: list[str]
) -> list[tuple[Any, ...]]:
    rows = []
    for token in sorted(dict.fromkeys(ids), key=str.encode):
        rows.extend(model_rows(read_one(token), columns))
    return rows


def same_sums(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> bool:
    """Equal rows, floats equal but for the last bits (sums in another order)."""
    if len(got) != len(want):
        return False
    for row, wanted in zip(got, want, strict=True):
        for value, w in zip(row, wanted, strict=True):
            if isinstance(w, float) and isinstance(value, float):
                if not math.isclose(value, w, rel_tol=1e-12):
                    return False
            elif value != w:
                return False
    return True


def check_declared(conn: Conn, query: PanelQuery, values: dict[str, Any]) -> None:
    if query.span:  # any chunk bounds: only the columns are described
        values = {**values, "chunks_from": values["start"], "chunks_to": values["end"]}
    with conn.cursor() as cur:
        assert query_schema(cur, query.sql, values) == query.schema()
        assert query_schema(cur, query.bulk_sql(), values) == query.bulk_schema()
    # one token: the id is not sent with each row; several: its number in the given ids
    assert (query.wire_ids == "omitted") == ("token_id" in values)
    assert ("token_id" in query.bulk_schema().names) == (query.wire_ids == "text")
    assert ("token_n" in query.bulk_schema().names) == (query.wire_ids == "numbered")


SELECTIONS: list[Any] = [TOKENS[3], [TOKENS[5], TOKENS[0], TOKENS[5], TOKENS[7]], ALL_TOKENS]


@pytest.mark.parametrize(
    "edition", ["apache", pytest.param("community", marks=pytest.mark.community)]
)
def test_panels_hold_the_readers_rows_in_token_then_time_order(
    edition: str, request: pytest.FixtureRequest
) -> None:
    srv: TestServer = request.getfixturevalue(f"{edition}_server")
    name = f"t_panel_reads_{edition}"
    dsn = srv.migrated_database(name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            write(conn)
            conn.execute("VACUUM ANALYZE price_snapshots")
            reader = Reader(conn)
            aggregates = reader.uses_aggregates
            assert aggregates == (edition == "community")
            if aggregates:
                for view in ("price_candles_1h", "trade_volume_1h"):
                    conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
            start, end = DAY0 + timedelta(hours=1, minutes=7), DAY0 + timedelta(hours=8, minutes=3)
            for chosen in SELECTIONS:
                ids = (
                    TOKENS
                    if chosen is ALL_TOKENS
                    else [chosen]
                    if isinstance(chosen, str)
                    else chosen
                )
                check_prices(conn, reader, chosen, ids, start, end)
                check_hourly(conn, reader, chosen, ids, start, end, aggregates)
            jit = conn.execute("SHOW jit").fetchone()
            assert jit is not None and jit[0] == "on"  # the settings were the transaction's
    finally:
        srv.drop_database(name)


def check_prices(
    conn: Conn, reader: Reader, chosen: Any, ids: list[str], start: datetime, end: datetime
) -> None:
    select = tokens(chosen)
    raw = price_history_query(select, None)
    values = params(select, start, end)
    check_declared(conn, raw, values)
    table = reader.price_history(chosen, start, end, as_="arrow")
    columns = ["ts", "token_id", "price", "volume_24h"]
    want = expected(lambda t: reader.price_history(t, start, end), ids, columns)
    assert len(want) > 100 and table_rows(table) == want
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.column("volume_24h").null_count > 0
    assert table_rows(fetch_panel(conn, raw, values, "arrow")) == want
    models = reader.price_history(chosen, start, end)
    assert model_rows(models, columns) == want and all(m.samples == 1 for m in models)
    for bucket in (timedelta(minutes=5), timedelta(hours=1)):
        query = price_history_query(select, bucket)
        check_declared(conn, query, {**values, "bucket": bucket})
        table = reader.price_history(chosen, start, end, bucket, as_="arrow")
        want = expected(
            partial(reader.price_history, start=start, end=end, bucket=bucket),
            ids,
            [*columns, "samples"],
        )
        assert table_rows(table) == want
        assert (
            model_rows(reader.price_history(chosen, start, end, bucket), [*columns, "samples"])
            == want
        )
    polars = reader.price_history(chosen, start, end, as_="polars")
    assert isinstance(polars, pl.DataFrame)
    assert (
        polars.schema["ts"] == pl.Datetime("us", "UTC") and polars.schema["token_id"] == pl.String
    )
    assert polars.rows() == want_raw(reader, ids, start, end)
    pandas = reader.price_history(chosen, start, end, as_="pandas")
    assert isinstance(pandas, pd.DataFrame) and str(pandas["ts"].dtype) == "datetime64[us, UTC]"
    assert len(pandas) == len(polars) and pandas["volume_24h"].isna().sum() > 0


def want_raw(reader: Reader, ids: list[str], start: datetime, end: datetime) -> list[Any]:
    columns = ["ts", "token_id", "price", "volume_24h"]
    return expected(lambda t: reader.price_history(t, start, end), ids, columns)


def check_hourly(
    conn: Conn,
    reader: Reader,
    chosen: Any,
    ids: list[str],
    start: datetime,
    end: datetime,
    aggregates: bool,
) -> None:
    select = tokens(chosen)
    values = hour_params(select, start, end)
    for source in {aggregates, False}:
        query = candles_query(select, source)
        check_declared(conn, query, values)
        one = Reader(conn, aggregates=source)
        columns = ["bucket", "token_id", "open", "high", "low", "close", "avg_volume"]
        want = expected(partial(one.candles, start=start, end=end), ids, columns)
        assert want and same_sums(table_rows(one.candles(chosen, start, end, as_="arrow")), want)
        assert same_sums(model_rows(one.candles(chosen, start, end), columns), want)
        query = trade_volume_query(select, source)
        check_declared(conn, query, values)
        columns = ["bucket", "token_id", "trade_count", "total_size", "total_value", "avg_price"]
        want = expected(partial(one.trade_volume, start=start, end=end), ids, columns)
        got = one.trade_volume(chosen, start, end, as_="arrow")
        assert want and same_sums(table_rows(got), want)
        assert same_sums(model_rows(one.trade_volume(chosen, start, end), columns), want)


def test_empty_selections_bad_arguments_and_async(conn: Conn, db: str) -> None:
    write(conn)
    start, end = DAY0, DAY0 + timedelta(hours=10)
    query = price_history_query(tokens([]), None)
    empty = fetch_panel(conn, query, params(tokens([]), start, end), "polars")
    assert empty.height == 0 and empty.columns == ["ts", "token_id", "price", "volume_24h"]
    unknown = tokens(["5" * 77])
    assert fetch_panel(conn, query, params(unknown, start, end), "arrow").num_rows == 0
    bad: list[Callable[[], object]] = [
        lambda: tokens(""),
        lambda: tokens([TOKENS[0], 7]),  # type: ignore[list-item]
        lambda: tokens(b"123"),  # type: ignore[arg-type]
        lambda: params(tokens(TOKENS), end, start),
        lambda: params(tokens(TOKENS), start.replace(tzinfo=None), end),
        lambda: price_history_query(tokens(TOKENS), timedelta(0)),
        lambda: fetch_panel(conn, query, params(tokens(TOKENS), start, end), "numpy"),  # type: ignore[arg-type]
    ]
    for call in bad:
        with pytest.raises(ConfigurationError):
            call()
    reader = Reader(conn)
    assert READER_ALL_TOKENS is ALL_TOKENS
    assert reader.price_history([], start, end) == []
    assert reader.candles([], start, end) == [] and reader.trade_volume([], start, end) == []
    nothing = reader.price_history([], start, end, as_="pandas")
    assert len(nothing) == 0 and list(nothing.columns) == ["ts", "token_id", "price", "volume_24h"]
    inside = (start + timedelta(minutes=1), start + timedelta(minutes=5))  # no hour starts
    assert reader.candles(TOKENS[:2], *inside, as_="arrow").num_rows == 0
    assert reader.trade_volume(ALL_TOKENS, *inside) == []
    later = DAY0 + timedelta(days=30)  # no chunk covers it: ALL_TOKENS finds no token
    assert reader.price_history(ALL_TOKENS, later, later + timedelta(hours=1)) == []
    assert (
        reader.price_history(ALL_TOKENS, later, later + timedelta(hours=1), as_="arrow").num_rows
        == 0
    )
    for wrong in ("", [TOKENS[0], 7], b"123", None, 5):
        with pytest.raises(ConfigurationError):
            reader.price_history(wrong, start, end)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="as_"):
        reader.price_history(TOKENS[:2], start, end, as_="numpy")  # type: ignore[call-overload]
    select = tokens(TOKENS[1:4])
    values = params(select, start, end)
    sync = fetch_panel(conn, price_history_query(select, None), values, "arrow")
    sync_models = reader.price_history(TOKENS[1:4], start, end)
    sync_all = reader.candles(ALL_TOKENS, start, end, as_="arrow")
    with psycopg.connect(db) as tx:  # in a caller's transaction: its settings stay its own
        tx.execute("SET LOCAL enable_sort = on; SET LOCAL jit = on")
        assert Reader(tx).price_history(ALL_TOKENS, start, end, as_="arrow").num_rows > 1_000
        assert Reader(tx).candles(TOKENS[1:4], start, end) != []
        shown = tx.execute("SELECT current_setting('enable_sort'), current_setting('jit')")
        assert shown.fetchone() == ("on", "on")
        assert tx.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS

    async def body() -> None:
        async with await psycopg.AsyncConnection.connect(db, autocommit=True) as aconn:
            table = await fetch_panel_async(
                aconn, price_history_query(select, None), values, "arrow"
            )
            assert table.equals(sync) and table.num_rows > 100
            one = tokens(TOKENS[2])
            frame = await fetch_panel_async(
                aconn, price_history_query(one, None), params(one, start, end), "pandas"
            )
            assert list(frame["token_id"].unique()) == [TOKENS[2]]
            areader = AsyncReader(aconn)
            got = await areader.price_history(TOKENS[3:0:-1], start, end, as_="arrow")
            assert got.equals(sync)
            assert await areader.price_history(TOKENS[1:4], start, end) == sync_models
            assert (await areader.candles(ALL_TOKENS, start, end, as_="arrow")).equals(sync_all)
            assert await areader.trade_volume([], start, end) == []

    asyncio.run(body())


def test_parallel_panels_read_the_same_rows_in_one_snapshot(conn: Conn, db: str) -> None:
    """``Reader(conn, parallel=[...])``: several given tokens read on several connections,
    the same rows as one connection's read, all in ``conn``'s snapshot (sync and async)."""
    write(conn)
    start, end = DAY0, DAY0 + timedelta(hours=10)
    chosen = [TOKENS[5], TOKENS[0], TOKENS[2], TOKENS[5], TOKENS[7], TOKENS[3], TOKENS[1]]
    alone = Reader(conn)
    want = alone.price_history(chosen, start, end, as_="arrow")
    want_candles = alone.candles(chosen, start, end, as_="arrow")
    assert want.num_rows > 1_000
    with (
        psycopg.connect(db, autocommit=True) as second,
        psycopg.connect(db) as third,  # not autocommit: idle until the read
    ):
        for others in ([second], [second, third]):
            reader = Reader(conn, parallel=others)
            assert reader.price_history(chosen, start, end, as_="arrow").equals(want)
            candles = reader.candles(chosen, start, end, as_="arrow")  # avg: sums' last bits
            assert same_sums(table_rows(candles), table_rows(want_candles))
            polars = reader.price_history(chosen, start, end, as_="polars")
            assert polars.rows() == pl.from_arrow(want).rows()  # type: ignore[union-attr]
            assert reader.price_history(chosen, start, end) == alone.price_history(
                chosen, start, end
            )
            assert all(
                c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                for c in (conn, second, third)
            )
        # More connections than tokens: the extra ones stay unused.
        two = Reader(conn, parallel=[second, third]).price_history(
            TOKENS[:2], start, end, as_="arrow"
        )
        assert two.equals(alone.price_history(TOKENS[:2], start, end, as_="arrow"))

        # One snapshot: rows committed after the caller's REPEATABLE READ transaction
        # took its snapshot are in no part, though the other connections start later.
        later = {
            "ts": np.array([np.datetime64(DAY0.replace(tzinfo=None), "us")] * 2)
            + np.array([1, 2], dtype="timedelta64[us]"),
            "token_id": np.array([TOKENS[0], TOKENS[7]], dtype=object),
            "price": np.array([0.5, 0.25]),
            "volume_24h": np.array([1.0, 2.0]),
        }
        with psycopg.connect(db) as tx:
            tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            before = tx.execute("SELECT count(*) FROM price_snapshots").fetchone()
            with Writer(conn) as writer:
                writer.copy_prices(later)
            seen = Reader(tx, parallel=[second, third]).price_history(
                chosen, start, end, as_="arrow"
            )
            assert seen.equals(want) and before == (
                tx.execute("SELECT count(*) FROM price_snapshots").fetchone()
            )
        fresh = Reader(conn, parallel=[second]).price_history(chosen, start, end, as_="arrow")
        assert fresh.num_rows == want.num_rows + 2

        # Refused: a READ COMMITTED caller's transaction, one that has written (the others
        # would not see its rows); a busy other connection.
        with psycopg.connect(db) as tx:
            tx.execute("SELECT 1")
            with pytest.raises(ConfigurationError, match="REPEATABLE READ"):
                Reader(tx, parallel=[second]).price_history(chosen, start, end, as_="arrow")
        with psycopg.connect(db) as tx:
            tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            tx.execute(
                "INSERT INTO price_snapshots (ts, token_id, price) VALUES (%s, %s, 0.5)",
                (DAY0 + timedelta(minutes=1), TOKENS[7]),
            )
            with pytest.raises(ConfigurationError, match="written"):
                Reader(tx, parallel=[second]).price_history(chosen, start, end, as_="arrow")
            tx.rollback()
        # Nothing to read (no whole hour in the range): no part runs.
        inside = (start + timedelta(minutes=1), start + timedelta(minutes=5))
        empty = Reader(conn, parallel=[second]).candles(chosen, *inside, as_="arrow")
        assert empty.num_rows == 0 and empty.schema == want_candles.schema
        third.execute("SELECT 1")  # third now in a transaction
        with pytest.raises(ConfigurationError, match="idle"):
            Reader(conn, parallel=[third]).price_history(chosen, start, end, as_="arrow")
        third.rollback()
        # A part that fails on the server (a snapshot of another database): ReadError with
        # the sqlstate; every transaction ends.
        elsewhere = psycopg.conninfo.make_conninfo(db, dbname="postgres")
        with psycopg.connect(elsewhere, autocommit=True) as foreign:
            with pytest.raises(ReadError) as failed:
                Reader(conn, parallel=[foreign]).price_history(chosen, start, end, as_="arrow")
            assert failed.value.sqlstate is not None
            idle = psycopg.pq.TransactionStatus.IDLE
            assert conn.info.transaction_status == idle == foreign.info.transaction_status
        for wrong in ([conn], [second, second], ["dsn"]):
            with pytest.raises(ConfigurationError, match="parallel"):
                Reader(conn, parallel=wrong)  # type: ignore[arg-type]

    async def body() -> None:
        async with (
            await psycopg.AsyncConnection.connect(db, autocommit=True) as aconn,
            await psycopg.AsyncConnection.connect(db, autocommit=True) as asecond,
        ):
            areader = AsyncReader(aconn, parallel=[asecond])
            got = await areader.price_history(chosen, start, end, as_="arrow")
            assert got.num_rows == want.num_rows + 2
            assert got.equals(fresh)

    asyncio.run(body())


def test_one_tokens_rows_are_put_in_time_order_by_the_client() -> None:
    """``in_time_order``: rows as an index scan gives them (either way) or in any order."""
    ts = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=m) for m in (0, 1, 2, 5, 9)]
    rows = pa.table({"ts": pa.array(ts, pa.timestamp("us", tz="UTC")), "n": list(range(5))})
    assert in_time_order(rows, "ts") is rows
    backwards = rows.take([4, 3, 2, 1, 0])
    assert in_time_order(backwards, "ts").equals(rows)
    shuffled = rows.take([2, 0, 4, 1, 3])
    assert in_time_order(shuffled, "ts").equals(rows)
    ties = pa.table(
        {"ts": pa.array([ts[1], ts[1], ts[0]], rows.schema.field("ts").type), "n": [0, 1, 2]}
    )
    assert in_time_order(ties, "ts").column("n").to_pylist() == [2, 0, 1]  # stable
    assert in_time_order(rows.slice(0, 1), "ts").num_rows == 1
