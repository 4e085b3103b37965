"""Binary COPY encoding, checked against a small pure-Python reference decoder (no database)."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from pmstore._pgcopy import PGCOPY_HEADER, PGCOPY_TRAILER, POSTGRES_EPOCH_OFFSET_US
from pmstore._write.encoding import (
    encode_orderbooks,
    encode_prices,
    encode_trades,
    text_field,
)
from pmstore._write.engines import Fixed, Text, encode_layouts, encode_scatter
from pmstore.batches import OrderbookBatch, PriceBatch, TradeBatch
from pmstore.errors import BatchValidationError, ConfigurationError

# The format as the PostgreSQL 15 manual states it, written out independently of the module.
SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

PRICE_TYPES = ("timestamptz", "text", "float8", "float8")
ORDERBOOK_TYPES = ("timestamptz", "text", "jsonb", "jsonb", "float8", "float8")
TRADE_TYPES = ("timestamptz", "text", "text", "float8", "float8", "text")

Row = tuple[Any, ...]


# -- reference decoder ------------------------------------------------------------------------


def decode_value(kind: str, data: bytes) -> Any:
    if kind == "timestamptz":
        assert len(data) == 8
        (micros,) = struct.unpack(">q", data)
        return PG_EPOCH + timedelta(microseconds=micros)
    if kind == "float8":
        assert len(data) == 8
        return struct.unpack(">d", data)[0]
    if kind == "text":
        return data.decode("utf-8")
    if kind == "jsonb":  # jsonb_recv: the format version 1, then the JSON text
        assert data[:1] == b"\x01", data[:1]
        return json.loads(data[1:].decode("utf-8"))
    raise AssertionError(kind)


def decode_tuples(data: bytes, types: Sequence[str], pos: int = 0) -> tuple[list[Row], int, bool]:
    """Tuples from ``pos``; returns (rows, end position, whether the trailer was read)."""
    rows: list[Row] = []
    while pos < len(data):
        (count,) = struct.unpack_from(">h", data, pos)
        pos += 2
        if count == -1:
            return rows, pos, True
        assert count == len(types), f"field count {count}"
        row: list[Any] = []
        for kind in types:
            (length,) = struct.unpack_from(">i", data, pos)
            pos += 4
            if length == -1:
                row.append(None)
                continue
            assert length >= 0 and pos + length <= len(data)
            row.append(decode_value(kind, data[pos : pos + length]))
            pos += length
        rows.append(tuple(row))
    return rows, pos, False


def decode_stream(stream: bytes, types: Sequence[str]) -> list[Row]:
    assert stream[:11] == SIGNATURE
    flags, extension = struct.unpack_from(">ii", stream, 11)
    assert (flags, extension) == (0, 0)
    rows, end, trailer = decode_tuples(stream, types, 19)
    assert trailer, "no trailer"
    assert end == len(stream), "bytes after the trailer"
    return rows


# -- expected rows, computed from the batches' columns -----------------------------------------


def as_datetime(ts: np.datetime64) -> datetime:
    return UNIX_EPOCH + timedelta(microseconds=int(ts.astype("datetime64[us]").astype(np.int64)))


def nullable(value: float) -> float | None:
    return None if math.isnan(value) else value


def expected_prices(batch: PriceBatch) -> list[Row]:
    return [
        (as_datetime(t), tok, float(p), nullable(float(v)))
        for t, tok, p, v in zip(
            batch.ts, batch.token_id, batch.price, batch.volume_24h, strict=True
        )
    ]


def expected_orderbooks(batch: OrderbookBatch) -> list[Row]:
    return [
        (
            as_datetime(t),
            tok,
            [[p, s] for p, s in bids],
            [[p, s] for p, s in asks],
            nullable(float(spread)),
            nullable(float(mid)),
        )
        for t, tok, bids, asks, spread, mid in zip(
            batch.ts,
            batch.token_id,
            batch.bids,
            batch.asks,
            batch.spread,
            batch.midpoint,
            strict=True,
        )
    ]


def expected_trades(batch: TradeBatch) -> list[Row]:
    return [
        (as_datetime(t), tok, side, float(p), float(s), tid)
        for t, tok, side, p, s, tid in zip(
            batch.ts,
            batch.token_id,
            batch.side,
            batch.price,
            batch.size,
            batch.trade_id,
            strict=True,
        )
    ]


def sort_key(row: Row) -> str:
    return repr(row)


def joined(chunks: Iterable[bytes]) -> bytes:
    return b"".join(chunks)


# -- fixtures ---------------------------------------------------------------------------------

TOKEN_74 = "1" + "2" * 73
TOKEN_77 = "9" * 77
TOKEN_78 = "3" + "4" * 77
TOKEN_UTF8 = "tökén-€-🙂"
T0 = datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)

EDGE_TIMES = [
    datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC),  # microseconds kept
    datetime(2000, 1, 1, tzinfo=UTC),  # PostgreSQL's epoch: 0
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # -1 us
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1901, 12, 13, 20, 45, 52, 1, tzinfo=UTC),  # before int32 Unix time
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # far future
    datetime(2024, 6, 1, 14, 0, 0, 7, tzinfo=timezone(timedelta(hours=2))),  # another zone
]


def edge_prices() -> PriceBatch:
    n = len(EDGE_TIMES)
    tokens = [TOKEN_74, TOKEN_78, TOKEN_UTF8, TOKEN_77, TOKEN_74, TOKEN_78, "x"]
    prices = [0.0, 1.0, 0.5, 1e-9, 0.999999, 0.123456789, 0.25]
    volumes = [None, 0.0, 12345.678, None, 1e12, None, 5e-324]
    assert len(tokens) == len(prices) == len(volumes) == n
    return PriceBatch.from_columns(
        {"ts": EDGE_TIMES, "token_id": tokens, "price": prices, "volume_24h": volumes}
    )


def random_prices(
    n: int, seed: int, *, token_lengths: Sequence[int] = (74, 76, 77, 78)
) -> PriceBatch:
    rng = np.random.default_rng(seed)
    tokens = [
        "".join(map(str, rng.integers(1, 10, size=int(rng.choice(token_lengths)))))
        for _ in range(n)
    ]
    volume = rng.random(n) * 1000
    volume[rng.random(n) < 0.5] = np.nan
    ts = np.datetime64("2024-01-01T00:00:00", "us") + rng.integers(-(10**15), 10**15, n).astype(
        "timedelta64[us]"
    )
    return PriceBatch.from_columns(
        {"ts": ts, "token_id": tokens, "price": rng.random(n), "volume_24h": volume}
    )


# -- constants --------------------------------------------------------------------------------


def test_constants_match_the_manual() -> None:
    assert PGCOPY_HEADER == SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
    assert PGCOPY_TRAILER == b"\xff\xff"
    assert (PG_EPOCH - UNIX_EPOCH) // timedelta(microseconds=1) == POSTGRES_EPOCH_OFFSET_US


# -- prices -----------------------------------------------------------------------------------


def test_price_row_bytes_are_exactly_the_format() -> None:
    ts = datetime(2024, 6, 1, 0, 0, 0, 42, tzinfo=UTC)
    batch = PriceBatch.from_rows([(ts, TOKEN_77, 0.5, None)])
    micros = (ts - PG_EPOCH) // timedelta(microseconds=1)
    row = (
        struct.pack(">h", 4)
        + struct.pack(">iq", 8, micros)
        + struct.pack(">i", 77)
        + TOKEN_77.encode()
        + struct.pack(">id", 8, 0.5)
        + struct.pack(">i", -1)
    )
    assert joined(encode_prices(batch)) == SIGNATURE + bytes(8) + row + b"\xff\xff"


def test_prices_round_trip_edge_values() -> None:
    batch = edge_prices()
    rows = decode_stream(joined(encode_prices(batch)), PRICE_TYPES)
    assert sorted(rows, key=sort_key) == sorted(expected_prices(batch), key=sort_key)
    decoded = {row[1]: row for row in rows if row[1] in (TOKEN_UTF8, "x")}
    assert decoded[TOKEN_UTF8][2] == 0.5 and decoded[TOKEN_UTF8][3] == 12345.678
    assert decoded["x"][0] == datetime(2024, 6, 1, 12, 0, 0, 7, tzinfo=UTC)
    assert sorted(r[0] for r in rows) == sorted(t.astimezone(UTC) for t in EDGE_TIMES)
    assert {r[2] for r in rows} >= {0.0, 1.0}
    assert sum(r[3] is None for r in rows) == 3


def test_prices_keep_row_order_with_one_layout() -> None:
    n = 50
    ts = np.datetime64("2024-01-01", "us") + np.arange(n).astype("timedelta64[us]")
    batch = PriceBatch.from_columns(
        {
            "ts": ts,
            "token_id": [TOKEN_77] * n,
            "price": np.linspace(0, 1, n),
            "volume_24h": np.arange(n, dtype=float),
        }
    )
    rows = decode_stream(joined(encode_prices(batch, chunk_rows=7)), PRICE_TYPES)
    assert rows == expected_prices(batch)


def test_prices_mixed_layouts_round_trip_as_a_set() -> None:
    batch = random_prices(500, seed=1)
    rows = decode_stream(joined(encode_prices(batch, chunk_rows=128)), PRICE_TYPES)
    assert len(rows) == 500
    assert sorted(rows, key=sort_key) == sorted(expected_prices(batch), key=sort_key)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 10])
def test_chunks_hold_whole_tuples(n: int) -> None:
    batch = random_prices(n, seed=n)
    chunks = list(encode_prices(batch, chunk_rows=3))
    assert len(chunks) == -(-n // 3) + 1
    assert chunks[0].startswith(PGCOPY_HEADER)
    assert chunks[-1] == b"\xff\xff"
    seen: list[Row] = []
    for i, chunk in enumerate(chunks[:-1]):
        body = chunk[len(PGCOPY_HEADER) :] if i == 0 else chunk
        rows, end, trailer = decode_tuples(body, PRICE_TYPES)
        assert not trailer and end == len(body)
        assert len(rows) == min(3, n - 3 * i)
        seen.extend(rows)
    assert sorted(seen, key=sort_key) == sorted(expected_prices(batch), key=sort_key)


def test_empty_batches_are_header_and_trailer() -> None:
    empty_prices = PriceBatch.from_columns({"ts": [], "token_id": [], "price": []})
    empty_books = OrderbookBatch.from_rows([])
    empty_trades = TradeBatch.from_rows([])
    for stream in (
        joined(encode_prices(empty_prices)),
        joined(encode_orderbooks(empty_books)),
        joined(encode_trades(empty_trades)),
    ):
        assert stream == SIGNATURE + bytes(8) + b"\xff\xff"


def test_chunk_rows_must_be_positive() -> None:
    with pytest.raises(ConfigurationError):
        encode_prices(edge_prices(), chunk_rows=0)


def test_text_that_is_not_str_is_refused_not_stringified() -> None:
    batch = PriceBatch.from_columns(
        {"ts": [T0, T0], "token_id": [TOKEN_77, None], "price": [0.5, 0.5]}
    )
    with pytest.raises(BatchValidationError) as info:
        joined(encode_prices(batch))
    assert [(p.row, p.column) for p in info.value.problems] == [(1, "token_id")]


def test_missing_timestamp_is_refused() -> None:
    batch = PriceBatch.from_columns(
        {"ts": [T0, None], "token_id": [TOKEN_77, TOKEN_77], "price": [0.5, 0.5]}
    )
    with pytest.raises(BatchValidationError) as info:
        joined(encode_prices(batch, chunk_rows=1))
    assert [(p.row, p.column) for p in info.value.problems] == [(1, "ts")]


def test_layout_and_scatter_engines_agree() -> None:
    batch = random_prices(300, seed=7, token_lengths=(1, 2, 5, 74, 78))
    fields: list[Fixed | Text] = [
        Fixed(batch.ts.view(np.int64) - POSTGRES_EPOCH_OFFSET_US, ">i8"),
        text_field(batch, "token_id", slice(0, 300)),
        Fixed(batch.price, ">f8"),
        Fixed(batch.volume_24h, ">f8", np.isnan(batch.volume_24h)),
    ]
    by_layout = encode_layouts(fields, 300, b"")
    by_scatter = encode_scatter(fields, 300, b"")
    assert by_layout is not None
    assert by_layout.size == by_scatter.size
    layout_rows, _, _ = decode_tuples(by_layout.tobytes(), PRICE_TYPES)
    scatter_rows, _, _ = decode_tuples(by_scatter.tobytes(), PRICE_TYPES)
    assert scatter_rows == expected_prices(batch)  # scatter keeps the order
    assert sorted(layout_rows, key=sort_key) == sorted(scatter_rows, key=sort_key)


# -- order books ------------------------------------------------------------------------------


def test_orderbooks_round_trip() -> None:
    batch = OrderbookBatch.from_columns(
        {
            "ts": [T0, datetime(1999, 1, 1, tzinfo=UTC), T0, T0, T0],
            "token_id": [TOKEN_74, TOKEN_78, TOKEN_UTF8, TOKEN_77, TOKEN_77],
            "bids": [
                [("0.47", "10"), ("0.48", "1234.5")],
                [],
                [(0.0, 0.0), (1e-05, 3.0)],
                [(0.2, 1.0)],
                [(0.4, 2.0)],
            ],
            "asks": [
                [("0.53", "5"), ("0.52", "7.25")],
                [],
                [(1.0, 2.5)],
                [],
                [(0.6, 1.0)],
            ],
            "spread": [None, None, None, None, 0.25],
            "midpoint": [None, None, None, None, None],
        }
    )
    rows = decode_stream(joined(encode_orderbooks(batch, chunk_rows=2)), ORDERBOOK_TYPES)
    assert rows == expected_orderbooks(batch)  # order books keep the row order
    first = rows[0]
    assert first[2] == [[0.48, 1234.5], [0.47, 10.0]]
    assert first[3] == [[0.52, 7.25], [0.53, 5.0]]
    assert first[4] == pytest.approx(0.52 - 0.48) and first[5] == pytest.approx(0.5)
    assert rows[1][2:] == ([], [], None, None)  # empty book
    assert rows[3][3:] == ([], None, None)  # one-sided book
    assert rows[4][4:] == (0.25, None)  # a given spread is kept, midpoint stays NULL


def test_orderbook_levels_are_the_documented_jsonb_values() -> None:
    batch = OrderbookBatch.from_rows([(T0, TOKEN_77, [(0.48, 1234.5), (0.47, 10)], [])])
    stream = joined(encode_orderbooks(batch))
    # jsonb version 1, then best-first [price, size] pairs: the floats' shortest decimals
    bids = b"\x01[[0.48,1234.5],[0.47,10.0]]"
    assert struct.pack(">i", len(bids)) + bids in stream
    empty = b"\x01[]"  # no levels: an empty array
    assert struct.pack(">i", len(empty)) + empty in stream


def test_string_levels_are_sent_as_their_own_texts() -> None:
    side = [{"price": "0.001", "size": "1000"}, {"price": "0.0100", "size": "12.50"}]
    batch = OrderbookBatch.from_columns(
        {"ts": [T0], "token_id": [TOKEN_77], "bids": [side], "asks": [[]]}
    )
    stream = joined(encode_orderbooks(batch))
    bids = b"\x01[[0.0100,12.50],[0.001,1000]]"  # best-first, each text unchanged
    assert struct.pack(">i", len(bids)) + bids in stream


# -- trades -----------------------------------------------------------------------------------


def test_trades_round_trip_with_given_and_derived_ids() -> None:
    batch = TradeBatch.from_columns(
        {
            "ts": EDGE_TIMES,
            "token_id": [TOKEN_74, TOKEN_78, TOKEN_UTF8, TOKEN_77, TOKEN_77, TOKEN_74, "y"],
            "side": ["BUY", "SELL", "BUY", "SELL", "BUY", "BUY", "SELL"],
            "price": [0.0, 1.0, 0.5, 0.25, 0.75, 0.1, 0.9],
            "size": [0.0, 1.5, 1e9, 2.0, 3.0, 4.0, 5.0],
            "trade_id": ["0x" + "ab" * 32 + ":0", None, "ü-1", None, "t", None, None],
        }
    )
    rows = decode_stream(joined(encode_trades(batch, chunk_rows=3)), TRADE_TYPES)
    assert sorted(rows, key=sort_key) == sorted(expected_trades(batch), key=sort_key)
    ids = {row[5] for row in rows}
    assert {"0x" + "ab" * 32 + ":0", "ü-1", "t"} <= ids
    assert sum(i.startswith("sha1:") for i in ids) == 4


def test_trades_with_many_layouts_fall_back_to_scatter() -> None:
    n = 40
    batch = TradeBatch.from_columns(
        {
            "ts": [T0 + timedelta(microseconds=i) for i in range(n)],
            "token_id": [TOKEN_77] * n,
            "side": ["BUY", "SELL"] * (n // 2),
            "price": np.linspace(0, 1, n),
            "size": np.arange(n, dtype=float),
            "trade_id": ["i" * (n - i) for i in range(n)],  # 40 layouts, in descending order
        }
    )
    rows = decode_stream(joined(encode_trades(batch)), TRADE_TYPES)
    assert rows == expected_trades(batch)  # scatter keeps the order


def test_text_that_is_not_valid_unicode_is_refused() -> None:
    batch = PriceBatch.from_columns(
        {"ts": [T0, T0], "token_id": ["é", "bad\ud800"], "price": [0.5, 0.5]}
    )
    with pytest.raises(BatchValidationError) as info:
        joined(encode_prices(batch))
    assert [(p.row, p.column) for p in info.value.problems] == [(1, "token_id")]


def test_chunk_rows_may_be_a_numpy_integer() -> None:
    batch = edge_prices()
    chunks = list(encode_prices(batch, chunk_rows=np.int64(2)))  # type: ignore[arg-type]
    assert len(chunks) == 4 + 1  # 7 rows in chunks of 2, then the trailer
    rows = decode_stream(b"".join(chunks), PRICE_TYPES)
    assert sorted(rows, key=sort_key) == sorted(expected_prices(batch), key=sort_key)


def test_keep_order_keeps_mixed_layout_rows_in_their_order() -> None:
    tokens = np.array(["1" * 76, "2" * 77, "3" * 78, "4" * 77], dtype=object)
    n = 400
    volume = np.where(np.arange(n) % 3 == 0, np.nan, 1.5)
    batch = PriceBatch.from_columns(
        {
            "ts": np.datetime64("2026-01-01", "us") + np.arange(n).astype("timedelta64[s]"),
            "token_id": tokens[np.arange(n) % 4],
            "price": np.linspace(0, 1, n),
            "volume_24h": volume,
        }
    )
    stream = b"".join(encode_prices(batch, chunk_rows=128, keep_order=True))
    rows = decode_stream(stream, PRICE_TYPES)
    assert [r[1] for r in rows] == batch.token_id.tolist()
    assert [r[2] for r in rows] == batch.price.tolist()
