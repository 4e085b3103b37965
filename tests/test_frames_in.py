"""DataFrames in: pandas, polars and pyarrow frames written by the Writer, read back raw.

Each test writes through ``Writer.copy_*`` into a real TimescaleDB and compares
what the server stored with values computed here from the frame's own data.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import psycopg
import pyarrow as pa
import pytest

from pmstore import BatchValidationError, Writer
from pmstore.batches import PriceBatch, as_batch
from pmstore.errors import RowProblem

Conn = psycopg.Connection[tuple[Any, ...]]

T0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
TOKENS = [str(10**76 + i * 7919) for i in range(3)]


def price_frame(n: int = 6) -> pd.DataFrame:
    """pandas: tz-aware nanosecond timestamps, float64 prices, nullable Float64 volumes."""
    ns = np.array([T0.timestamp() * 1e9 + i * 60e9 + 789 for i in range(n)], dtype=np.int64)
    volume = pd.array([float(i * 10) if i % 2 else None for i in range(n)], dtype="Float64")
    return pd.DataFrame(
        {
            "ts": pd.to_datetime(ns, unit="ns", utc=True),
            "token_id": [TOKENS[i % 3] for i in range(n)],
            "price": np.linspace(0.1, 0.9, n),
            "volume_24h": volume,
        }
    )


def stored_prices(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT ts, token_id, price, volume_24h FROM price_snapshots ORDER BY ts, token_id"
    ).fetchall()


def expected_prices(df: pd.DataFrame) -> list[tuple[Any, ...]]:
    """The rows as stored: microseconds (nanoseconds truncated), NA volumes as NULL."""
    rows = []
    for ts, token, price, volume in zip(
        df["ts"], df["token_id"], df["price"], df["volume_24h"], strict=True
    ):
        instant = datetime.fromtimestamp(ts.value // 1000 / 1e6, UTC).replace(
            microsecond=(ts.value // 1000) % 1_000_000
        )
        rows.append((instant, token, float(price), None if pd.isna(volume) else float(volume)))
    return sorted(rows, key=lambda r: (r[0], r[1]))


@pytest.mark.parametrize("library", ["pandas", "polars", "pyarrow"])
def test_price_frames_of_each_library_are_written_as_given(conn: Conn, library: str) -> None:
    df = price_frame()
    frame: Any = {
        "pandas": df,
        "polars": pl.from_pandas(df),
        "pyarrow": pa.Table.from_pandas(df, preserve_index=False),
    }[library]
    with Writer(conn) as writer:
        result = writer.copy_prices(frame)
    assert result.rows_written == len(df)
    assert stored_prices(conn) == expected_prices(df)
    # The same content gives the same batch id: a retry writes nothing.
    with Writer(conn) as writer:
        assert writer.copy_prices(frame).already_written


def test_timestamps_in_any_zone_and_unit_are_the_same_instants(conn: Conn) -> None:
    df = price_frame()
    berlin = df.assign(ts=df["ts"].dt.tz_convert("Europe/Berlin"))
    seconds = pa.table(
        {
            "ts": pa.array(
                [int(T0.timestamp()) + 86_400 + 3600 * i for i in range(3)],
                type=pa.timestamp("s", tz="+05:30"),
            ),
            "token_id": TOKENS,
            "price": [0.5, 0.25, 0.75],
        }
    )
    with Writer(conn) as writer:
        writer.copy_prices(berlin)
        writer.copy_prices(seconds)
    rows = stored_prices(conn)
    assert rows[: len(df)] == expected_prices(df)
    assert [r[0] for r in rows[len(df) :]] == [T0 + timedelta(days=1, hours=i) for i in range(3)]


def test_float32_integers_and_nulls_convert_and_float64_is_not_copied(conn: Conn) -> None:
    df = price_frame(4)
    f32 = df.assign(price=df["price"].astype("float32"))
    batch = as_batch(PriceBatch, df)
    assert np.shares_memory(batch.price, df["price"].to_numpy())  # zero-copy view
    arrow = pa.Table.from_pandas(df, preserve_index=False)
    assert np.shares_memory(
        as_batch(PriceBatch, arrow).price, arrow.column("price").chunk(0).to_numpy()
    )
    polars_nulls = pl.from_pandas(df).with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(None)
        .otherwise(pl.col("volume_24h"))
        .alias("volume_24h")
    )
    ints = pl.DataFrame(
        {"ts": df["ts"].tolist(), "token_id": df["token_id"].tolist(), "price": [0, 1, 1, 0]}
    )
    assert as_batch(PriceBatch, ints).price.tolist() == [0.0, 1.0, 1.0, 0.0]
    with Writer(conn) as writer:
        writer.copy_prices(f32)
    stored = [r[2] for r in stored_prices(conn)]
    assert stored == [float(np.float32(p)) for p in df["price"]]
    assert np.isnan(as_batch(PriceBatch, polars_nulls).volume_24h[0])


def test_categorical_and_chunked_columns(conn: Conn) -> None:
    df = price_frame(6)
    table = pa.Table.from_pandas(df, preserve_index=False)
    chunked = pa.concat_tables([table.slice(0, 2), table.slice(2, 4)])
    assert chunked.column("price").num_chunks == 2
    categorical = pl.from_pandas(df).with_columns(pl.col("token_id").cast(pl.Categorical))
    with Writer(conn) as writer:
        writer.copy_prices(chunked)
    assert stored_prices(conn) == expected_prices(df)
    assert as_batch(PriceBatch, categorical).token_id.tolist() == df["token_id"].tolist()


def test_a_bad_row_is_named_by_row_and_column_and_nothing_is_written(conn: Conn) -> None:
    df = price_frame(5)
    df.loc[3, "price"] = 1.5
    for frame in (df, pl.from_pandas(df), pa.Table.from_pandas(df, preserve_index=False)):
        with Writer(conn) as writer, pytest.raises(BatchValidationError) as err:
            writer.copy_prices(frame)
        assert err.value.problems == [RowProblem(3, "price", "1.5 is outside [0, 1]")]
    # A pandas index does not matter: rows are numbered by position.
    with Writer(conn) as writer, pytest.raises(BatchValidationError) as err:
        writer.copy_prices(df.set_index(pd.Index([10, 20, 30, 40, 50])))
    assert err.value.problems[0].row == 3
    assert stored_prices(conn) == []
    with Writer(conn) as writer:
        result = writer.copy_prices(df, on_invalid="skip")
    assert result.rows_written == 4 and [p.row for p in result.rejected] == [3]


def test_naive_timestamps_are_refused_like_naive_datetimes(conn: Conn) -> None:
    df = price_frame(3)
    naive = df.assign(ts=df["ts"].dt.tz_localize(None))
    mixed = df.assign(ts=[T0, T0.replace(tzinfo=None), T0 + timedelta(minutes=1)])
    for frame in (naive, pl.from_pandas(naive), pa.Table.from_pandas(naive)):
        with Writer(conn) as writer, pytest.raises(BatchValidationError) as err:
            writer.copy_prices(frame)
        assert [(p.row, p.column) for p in err.value.problems] == [(0, "ts"), (1, "ts"), (2, "ts")]
        assert "naive" in err.value.problems[0].reason
    with Writer(conn) as writer, pytest.raises(BatchValidationError) as err:
        writer.copy_prices(mixed)  # an object column of datetimes: flagged row by row
    assert [(p.row, p.column) for p in err.value.problems] == [(1, "ts")]
    assert stored_prices(conn) == []


def test_structural_problems_name_the_column() -> None:
    df = price_frame(2)
    cases: list[tuple[Any, str, str]] = [
        (df.assign(token_id=[1, 2]), "token_id", "expected text, got int64"),
        (pl.from_pandas(df).with_columns(pl.lit("x").alias("price")), "price", "expected numbers"),
        (df.assign(price=[True, False]), "price", "expected numbers, got bool"),
        (df.drop(columns=["price"]), "price", "is missing"),
        (df.assign(market="m"), "market", "is not a column"),
        (pl.from_pandas(df).lazy(), "*", "LazyFrame"),
        (
            pa.table(
                {"ts": pa.array([1, 2], pa.date32()), "token_id": ["a", "b"], "price": [0.1, 0.2]}
            ),
            "ts",
            "expected timezone-aware timestamps, got date32",
        ),
    ]
    for frame, column, reason in cases:
        with pytest.raises(BatchValidationError) as err:
            as_batch(PriceBatch, frame)
        problem = err.value.problems[0]
        assert (problem.row, problem.column) == (None, column), err.value
        assert reason in problem.reason, problem


def test_trades_and_orderbooks_from_frames(conn: Conn) -> None:
    ts = [T0 + timedelta(seconds=i) for i in range(3)]
    trades = pl.DataFrame(
        {
            "ts": ts,
            "token_id": TOKENS,
            "side": ["BUY", "SELL", "BUY"],
            "price": [0.5, 0.25, None],
            "size": np.array([1.0, 2.0, 3.0], dtype=np.float32),
            "trade_id": ["t1", None, "t3"],
        }
    )
    books = pa.table(
        {
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "token_id": TOKENS,
            "bids": [[[0.4, 10.0], [0.45, 1.0]], [], [[0.1, 1.0]]],
            "asks": [[[0.6, 5.0]], [[0.7, 1.0]], []],
        }
    )
    string_books = pd.DataFrame(
        {
            "ts": pd.to_datetime(ts[:1], utc=True),
            "token_id": TOKENS[:1],
            "bids": [[("0.30", "2")]],
            "asks": [[("0.50", "1")]],
        }
    )
    with Writer(conn) as writer:
        # price None: trades.price is nullable in the schema, not in the batch.
        with pytest.raises(BatchValidationError) as err:
            writer.copy_trades(trades)
        assert [(p.row, p.column) for p in err.value.problems] == [(2, "price")]
        assert writer.copy_trades(trades.slice(0, 2)).rows_written == 2
        assert writer.copy_orderbooks(books).rows_written == 3
        assert writer.copy_orderbooks(string_books).rows_written == 1
    stored = conn.execute("SELECT trade_id, size FROM trades ORDER BY ts").fetchall()
    assert stored[0] == ("t1", 1.0) and stored[1][0].startswith("sha1:") and stored[1][1] == 2.0
    got = conn.execute(
        "SELECT bids, asks, spread, midpoint FROM orderbook_snapshots ORDER BY ts, midpoint"
    ).fetchall()
    assert got[0] == ([[0.3, 2.0]], [[0.5, 1.0]], pytest.approx(0.2), pytest.approx(0.4))
    texts = conn.execute(  # string levels are stored with their own digits
        "SELECT bids::text, asks::text FROM orderbook_snapshots ORDER BY ts, midpoint LIMIT 1"
    ).fetchone()
    assert texts == ("[[0.30, 2]]", "[[0.50, 1]]")
    assert got[1][0] == [[0.45, 1.0], [0.4, 10.0]]  # stored best-first
    assert got[1][2] == pytest.approx(0.6 - 0.45) and got[1][3] == pytest.approx(0.525)
    assert got[2][2] is None and got[3][2] is None  # one-sided books
