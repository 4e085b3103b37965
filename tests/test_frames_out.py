"""DataFrames out: the binary COPY decoder, and the Reader's bulk reads as frames.

The decoder is checked on pmstore's own encoder output (many rows a chunk) and
on a real server's stream (one row a message); the Reader's frames are compared
value by value with the same Reader's pydantic results on a real TimescaleDB.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import psycopg
import pyarrow as pa
import pytest
from async_adapter import kind, make_reader

from pmstore import ConfigurationError, Writer
from pmstore._pgcopy import PGCOPY_HEADER, PGCOPY_TRAILER
from pmstore._write.encoding import encode_prices, encode_trades
from pmstore.batches import PriceBatch, TradeBatch
from pmstore.errors import CopyDecodeError
from pmstore.frames.copy_decoding import (
    JSONB_METADATA,
    CopyDecoder,
    decode_copy,
    iter_record_batches,
)
from pmstore.frames.outbound import copy_statement, fetch_table
from pmstore.reader import Reader

__all__ = ["kind", "make_reader"]  # the fixtures, imported

Conn = psycopg.Connection[tuple[Any, ...]]

DAY0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
TOKENS = [str(10**76 + i * 7919) for i in range(5)] + ["7" * 74]
PRICE_SCHEMA = pa.schema(
    [
        ("ts", pa.timestamp("us", tz="UTC")),
        ("token_id", pa.string()),
        ("price", pa.float64()),
        ("volume_24h", pa.float64()),
    ]
)


def price_columns(n: int, seed: int = 3) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    volume = rng.uniform(0, 1e6, n)
    volume[rng.random(n) < 0.4] = np.nan
    start = np.datetime64(DAY0.replace(tzinfo=None), "us")
    return {
        "ts": start + np.sort(rng.choice(3 * 86_400_000_000, n, replace=False)),
        "token_id": np.array(TOKENS, dtype=object)[rng.integers(0, len(TOKENS), n)],
        "price": rng.uniform(0, 1, n),
        "volume_24h": volume,
    }


def as_rows(table: Any) -> list[tuple[Any, ...]]:
    return list(zip(*(table.column(i).to_pylist() for i in range(table.num_columns)), strict=True))


def batch_rows(cols: dict[str, Any]) -> list[tuple[Any, ...]]:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return [
        (
            epoch + timedelta(microseconds=int(ts)),
            token,
            float(price),
            None if math.isnan(volume) else float(volume),
        )
        for ts, token, price, volume in zip(
            cols["ts"].astype(np.int64),
            cols["token_id"],
            cols["price"],
            cols["volume_24h"],
            strict=True,
        )
    ]


# -- the decoder, on pmstore's encoder output ---------------------------------------------


def test_decoder_reads_the_encoders_streams_of_many_rows_a_chunk() -> None:
    cols = price_columns(5_000)
    batch = PriceBatch.from_columns(cols)
    chunks = list(encode_prices(batch, chunk_rows=700, keep_order=True))
    assert len(chunks) > 7  # header inside the first chunk, trailer in its own
    table = decode_copy(chunks, PRICE_SCHEMA)
    assert table.schema == PRICE_SCHEMA
    assert as_rows(table) == batch_rows(cols)
    # Header, rows and trailer in one chunk; and an empty stream.
    assert as_rows(decode_copy([b"".join(chunks)], PRICE_SCHEMA)) == batch_rows(cols)
    empty = PriceBatch.from_columns({k: v[:0] for k, v in cols.items()})
    assert decode_copy(list(encode_prices(empty)), PRICE_SCHEMA).num_rows == 0


def test_decoder_reads_text_of_any_length_and_non_ascii() -> None:
    n = 4
    batch = TradeBatch.from_columns(
        {
            "ts": np.array(["2026-01-01T00:00:00"] * n, dtype="datetime64[us]"),
            "token_id": np.array(["", "a", "é" * 12, "x" * 13], dtype=object),
            "side": np.array(["BUY", "SELL", "BUY", "SELL"], dtype=object),
            "price": np.array([0.1, 0.2, 0.3, 0.4]),
            "size": np.array([1.0, 2.0, 3.0, 4.0]),
            "trade_id": np.array(["t" * 12, "t" * 11, "ü", "long id " * 20], dtype=object),
        }
    )
    schema = pa.schema(
        [
            ("ts", pa.timestamp("us", tz="UTC")),
            ("token_id", pa.string()),
            ("side", pa.string()),
            ("price", pa.float64()),
            ("size", pa.float64()),
            ("trade_id", pa.string()),
        ]
    )
    # (The encoder groups rows by byte layout: put them back in price order.)
    table = decode_copy(list(encode_trades(batch)), schema).sort_by("price")
    assert table.column("token_id").to_pylist() == ["", "a", "é" * 12, "x" * 13]
    assert table.column("trade_id").to_pylist() == ["t" * 12, "t" * 11, "ü", "long id " * 20]
    assert table.column("side").to_pylist() == ["BUY", "SELL", "BUY", "SELL"]


def test_decoder_refuses_broken_streams() -> None:
    cols = price_columns(10)
    chunks = list(encode_prices(PriceBatch.from_columns(cols), chunk_rows=3, keep_order=True))
    whole = b"".join(chunks)
    with pytest.raises(CopyDecodeError, match="without its trailer"):
        decode_copy(chunks[:-1], PRICE_SCHEMA)
    with pytest.raises(CopyDecodeError, match="split across chunks"):
        decode_copy([whole[:100], whole[100:]], PRICE_SCHEMA)  # ends mid-row: 9,999 fields
    with pytest.raises(CopyDecodeError, match="split across chunks"):
        decode_copy([whole[:140], whole[140:]], PRICE_SCHEMA)  # one row longer than its chunk
    with pytest.raises(CopyDecodeError, match="no PGCOPY signature"):
        decode_copy([b"PGCOPX" + whole[6:]], PRICE_SCHEMA)
    with pytest.raises(CopyDecodeError, match="after the COPY stream's trailer"):
        decode_copy([whole, chunks[1]], PRICE_SCHEMA)
    with pytest.raises(CopyDecodeError, match="has 4 fields; the schema has 3"):
        decode_copy(chunks, PRICE_SCHEMA.remove(3))
    wrong = PRICE_SCHEMA.set(2, pa.field("price", pa.int32()))
    with pytest.raises(CopyDecodeError, match="column 'price', row 0: a 8-byte value"):
        decode_copy(chunks, wrong)
    with pytest.raises(CopyDecodeError, match="cannot decode arrow type bool"):
        CopyDecoder(pa.schema([("x", pa.bool_())]))


def test_decoder_reads_jsonb_values_of_version_1_only() -> None:
    schema = pa.schema([pa.field("bids", pa.string(), metadata=JSONB_METADATA)])

    def stream(*values: bytes | None) -> list[bytes]:
        rows = [
            struct.pack(">hi", 1, -1) if v is None else struct.pack(">hi", 1, len(v)) + v
            for v in values
        ]
        return [PGCOPY_HEADER + rows[0], *rows[1:], PGCOPY_TRAILER]

    table = decode_copy(stream(b"\x01[[0.0100, 2]]", None, b"\x01[]"), schema)
    assert table.column("bids").to_pylist() == ["[[0.0100, 2]]", None, "[]"]
    with pytest.raises(CopyDecodeError, match="column 'bids', row 1: not a jsonb value"):
        decode_copy(stream(b"\x01[]", b"\x02[]"), schema)


# -- a real server's stream -----------------------------------------------------------------


def test_server_stream_decodes_to_the_rows_psycopg_reads(conn: Conn) -> None:
    cols = price_columns(30_000)
    with Writer(conn) as writer:
        writer.copy_prices(cols)
    sql = "SELECT ts, token_id, price, volume_24h FROM price_snapshots ORDER BY ts, token_id"
    expected = conn.execute(sql).fetchall()
    with conn.cursor() as cur, cur.copy(copy_statement(sql)) as copy:
        batches = list(iter_record_batches(copy, PRICE_SCHEMA, batch_rows=7_000))
    assert [b.num_rows for b in batches] == [7_000] * 4 + [2_000]  # bounded batches
    assert as_rows(pa.Table.from_batches(batches)) == expected
    assert as_rows(fetch_table(conn, sql, {})) == expected
    # Types come from the server's description of the query.
    typed = fetch_table(
        conn, "SELECT count(*) AS n, 1::int4 AS one, 'x'::text AS t FROM price_snapshots", {}
    )
    assert typed.schema == pa.schema([("n", pa.int64()), ("one", pa.int32()), ("t", pa.string())])
    assert as_rows(typed) == [(0 + len(expected), 1, "x")]
    with pytest.raises(CopyDecodeError, match="cannot read PostgreSQL type bool"):
        fetch_table(conn, "SELECT true AS b", {})


def test_jsonb_levels_decode_to_the_servers_json_text(conn: Conn) -> None:
    books = {
        "ts": [DAY0, DAY0 + timedelta(minutes=1)],
        "token_id": TOKENS[:2],
        "bids": [[{"price": "0.001", "size": "1000"}, {"price": "0.0100", "size": "2.5"}], []],
        "asks": [[[0.6, 5.0]], []],
    }
    with Writer(conn) as writer:
        writer.copy_orderbooks(books)
    sql = "SELECT ts, bids, asks FROM orderbook_snapshots ORDER BY ts"
    table = fetch_table(conn, sql, {})
    assert table.schema.field("bids").type == pa.string()
    assert table.schema.field("bids").metadata == JSONB_METADATA
    expected = conn.execute("SELECT bids::text, asks::text FROM orderbook_snapshots ORDER BY ts")
    assert list(zip(*(table.column(c).to_pylist() for c in ("bids", "asks")), strict=True)) == [
        tuple(row) for row in expected.fetchall()
    ]
    first = json.loads(table.column("bids")[0].as_py(), parse_float=Decimal)
    assert first == [[Decimal("0.0100"), Decimal("2.5")], [Decimal("0.001"), 1000]]
    assert table.column("asks").to_pylist() == ["[[0.6, 5.0]]", "[]"]


# -- the Reader's bulk reads ----------------------------------------------------------------


def frame_rows(frame: Any) -> list[dict[str, Any]]:
    """Rows of a Table or DataFrame as dicts of Python values (None for NULL/NaN/NA)."""
    if isinstance(frame, pd.DataFrame):
        frame = pa.Table.from_pandas(frame, preserve_index=False)
    elif isinstance(frame, pl.DataFrame):
        frame = frame.to_arrow()
    rows: list[dict[str, Any]] = frame.to_pylist()
    for row in rows:
        for key, value in row.items():
            if isinstance(value, float) and math.isnan(value):
                row[key] = None
    return rows


def model_rows(models: list[Any]) -> list[dict[str, Any]]:
    return [m.model_dump() for m in models]


@pytest.fixture
def filled(conn: Conn) -> Conn:
    cols = price_columns(40_000)
    rng = np.random.default_rng(9)
    n = 5_000
    trades = {
        "ts": np.datetime64(DAY0.replace(tzinfo=None), "us")
        + np.sort(rng.choice(2 * 86_400_000_000, n, replace=False)),
        "token_id": np.array(TOKENS, dtype=object)[rng.integers(0, len(TOKENS), n)],
        "side": np.where(rng.random(n) < 0.5, "BUY", "SELL").astype(object),
        "price": rng.uniform(0, 1, n),
        "size": rng.uniform(0, 100, n),
    }
    with Writer(conn) as writer:
        writer.copy_prices(cols)
        writer.copy_trades(trades)
    return conn


@pytest.mark.parametrize("frame_kind", ["arrow", "polars", "pandas"])
def test_bulk_reads_as_frames_hold_the_models_values(
    filled: Conn, make_reader: Callable[..., Any], frame_kind: Any
) -> None:
    """On a Reader and on an AsyncReader (``make_reader``)."""
    reader = make_reader(aggregates=False)
    token = TOKENS[2]
    lo, hi = DAY0 + timedelta(hours=5, minutes=17), DAY0 + timedelta(days=2, hours=3)
    at = DAY0 + timedelta(days=1, hours=12)
    calls: list[tuple[str, Any, Any]] = [
        ("raw history", lambda **k: reader.price_history(token, lo, hi, **k), None),
        (
            "bucketed history",
            lambda **k: reader.price_history(token, lo, hi, timedelta(minutes=30), **k),
            None,
        ),
        ("candles", lambda **k: reader.candles(token, lo, hi, **k), None),
        ("trade volume", lambda **k: reader.trade_volume(token, lo, hi, **k), None),
        ("latest of tokens", lambda **k: reader.latest_prices(at, TOKENS[:3], **k), None),
        ("latest of all", lambda **k: reader.latest_prices(at, **k), None),
    ]
    for name, call, _ in calls:
        models = call()
        frame = call(as_=frame_kind)
        library = {"arrow": "pyarrow"}.get(frame_kind, frame_kind)
        assert type(frame).__module__.partition(".")[0] == library
        assert len(models) >= 3, name
        got = frame_rows(frame)
        expected = model_rows(models)
        if name == "raw history":  # no samples column in raw rows: each is one snapshot
            assert all(e.pop("samples") == 1 for e in expected)
        assert got == expected, name
    # Timestamps are UTC in every library.
    ts = reader.price_history(token, lo, hi, as_=frame_kind)["ts"]
    if frame_kind == "pandas":
        assert str(ts.dtype) == "datetime64[us, UTC]"
    elif frame_kind == "polars":
        assert ts.dtype == pl.Datetime("us", "UTC")
    else:
        assert ts.type == pa.timestamp("us", tz="UTC")


def test_empty_bulk_reads_have_the_columns(filled: Conn, make_reader: Callable[..., Any]) -> None:
    reader = make_reader(aggregates=False)
    long_ago = datetime(2001, 1, 1, tzinfo=UTC)
    empty = [
        reader.price_history(TOKENS[0], long_ago, long_ago + timedelta(hours=1), as_="arrow"),
        reader.candles(TOKENS[0], long_ago, long_ago + timedelta(minutes=5), as_="arrow"),
        reader.latest_prices(long_ago, as_="arrow"),
        reader.latest_prices(long_ago, [], as_="arrow"),
    ]
    assert [t.num_rows for t in empty] == [0, 0, 0, 0]
    assert empty[0].column_names == ["ts", "token_id", "price", "volume_24h"]
    assert empty[1].column_names[:3] == ["bucket", "token_id", "open"]
    assert empty[2].schema == empty[3].schema == PRICE_SCHEMA
    with pytest.raises(ConfigurationError, match="as_ must be one of"):
        reader.price_history(TOKENS[0], long_ago, long_ago + timedelta(hours=1), as_="numpy")


@pytest.mark.community
def test_candles_from_the_continuous_aggregate_as_frames(community_server: Any) -> None:
    dsn = community_server.migrated_database("t_frames_out_community")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            with Writer(conn) as writer:
                writer.copy_prices(price_columns(20_000))
            conn.execute("CALL refresh_continuous_aggregate('price_candles_1h', NULL, NULL)")
            reader = Reader(conn, aggregates=True)
            lo, hi = DAY0, DAY0 + timedelta(days=3)
            models = reader.candles(TOKENS[1], lo, hi)
            assert len(models) > 10
            assert frame_rows(reader.candles(TOKENS[1], lo, hi, as_="polars")) == model_rows(models)
    finally:
        community_server.drop_database("t_frames_out_community")


def test_async_fetch_decodes_the_same_table(filled: Conn, db: str) -> None:
    import asyncio

    from pmstore.frames.outbound import fetch_frame_async, fetch_table_async

    sql = "SELECT ts, token_id, price, volume_24h FROM price_snapshots ORDER BY ts, token_id"
    expected = fetch_table(filled, sql, {})

    async def read() -> tuple[Any, Any]:
        async with await psycopg.AsyncConnection.connect(db, autocommit=True) as aconn:
            table = await fetch_table_async(aconn, sql, {}, batch_rows=3_000)
            frame = await fetch_frame_async(
                aconn, "SELECT token_id FROM price_snapshots", {}, "polars", sort_by="token_id"
            )
            return table, frame

    table, frame = asyncio.run(read())
    assert table.num_rows == 40_000 and table.equals(expected)
    assert frame["token_id"].to_list() == sorted(expected.column("token_id").to_pylist())
