"""The copy pipeline (no database): byte-sized chunks, row order, validation while streaming,
the digest, the bulk order-book paths, and the keep-order encoder."""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from test_copy_encoding import PRICE_TYPES, decode_stream, expected_prices

from pmstore._pgcopy import PGCOPY_HEADER
from pmstore._write.encoding import encode_prices, price_chunk
from pmstore._write.pipeline import CopyStream, chunk_bounds, index_order
from pmstore.batches import OrderbookBatch, PriceBatch
from pmstore.batches._checks import level_problem
from pmstore.batches._convert import parse_levels
from pmstore.batches._decimal_levels import DecimalLevels
from pmstore.batches._levels import best_prices, check_sides, flat_sides, side_lists
from pmstore.batches._tables import parsed_sides
from pmstore.errors import BatchValidationError
from pmstore.models import PriceSnapshot


def prices(n: int, *, seed: int = 1, tokens: int = 300) -> PriceBatch:
    """Tokens of 1-78 characters (some non-ASCII), half the volumes NULL, time not sorted."""
    rng = np.random.default_rng(seed)
    ids = [str(10**75 + int(x)) for x in rng.integers(0, 10**15, tokens)]
    ids[:4] = ["7", "é" * 3, "9" * 78, "10" * 37]
    volume = rng.uniform(0, 1e6, n)
    volume[rng.random(n) < 0.5] = np.nan
    return PriceBatch.from_columns(
        {
            "ts": np.datetime64("2026-03-01", "us") + rng.integers(0, 10**9, n).astype("m8[us]"),
            "token_id": np.array(
                json.loads(json.dumps([ids[i] for i in rng.integers(0, tokens, n)]))
            ),
            "price": rng.uniform(0, 1, n),
            "volume_24h": volume,
        }
    )


def chunk(batch: Any, rows: Any, prefix: bytes) -> bytes:
    return price_chunk(batch, rows, prefix=prefix, keep_order=True)


def test_chunks_are_bounded_in_bytes_and_make_the_whole_stream() -> None:
    batch = prices(20_000)
    with CopyStream(batch, chunk, chunk_bytes=64 * 1024) as stream:
        chunks = list(stream)
    assert stream.chunks > 10
    assert max(map(len, chunks)) <= 64 * 1024 * 1.3  # an estimate: rows are never split
    assert chunks[0].startswith(PGCOPY_HEADER)
    assert decode_stream(b"".join(chunks), PRICE_TYPES) == expected_prices(batch)


def test_rows_go_in_the_given_order_and_the_digest_is_the_batchs() -> None:
    batch = prices(5_000)
    order = index_order(batch)
    assert order is not None
    with CopyStream(batch, chunk, order=order, digest=True, chunk_bytes=50_000) as stream:
        data = b"".join(stream)
    assert decode_stream(data, PRICE_TYPES) == expected_prices(batch.in_index_order())
    assert stream.digest == batch.content_digest()


def test_index_order_is_token_then_time_in_byte_order() -> None:
    batch = prices(3_000, seed=4)
    order = index_order(batch)
    assert order is not None
    tokens: list[str] = batch.token_id.tolist()
    times: list[int] = batch.ts.view(np.int64).tolist()
    expected = sorted(range(len(batch)), key=lambda i: (tokens[i].encode(), times[i], i))
    assert order.tolist() == expected
    # Each token's rows already rising in time take the radix path: same result.
    in_time = batch.take(np.argsort(batch.ts, kind="stable"))
    in_time_order = index_order(in_time)
    assert in_time_order is not None
    assert in_time.take(in_time_order).token_id.tolist() == batch.take(order).token_id.tolist()
    assert index_order(batch.take(order)) is None  # already sorted


def test_an_invalid_row_in_a_late_chunk_raises_the_whole_batchs_error() -> None:
    good = prices(10_000)
    columns = {name: getattr(good, name).copy() for name in good.COLUMNS}
    columns["price"][9_990] = 1.5
    columns["price"][17] = -0.5
    bad = PriceBatch.from_columns(columns)
    with pytest.raises(BatchValidationError) as expected:
        bad.validated()
    stream = CopyStream(bad, chunk, chunk_bytes=32 * 1024)
    sent = []
    with pytest.raises(BatchValidationError) as got:
        for data in stream:
            sent.append(data)
    assert got.value.problems == expected.value.problems and got.value.total == 2
    assert len(sent) < stream.chunks  # the trailer was never produced


def test_an_encoder_error_is_reported_as_the_validation_error() -> None:
    batch = prices(4_000)
    columns = {name: getattr(batch, name).copy() for name in batch.COLUMNS}
    columns["token_id"][3_000] = 12345  # not text: the encoder refuses it too
    bad = PriceBatch.from_columns(columns)
    with pytest.raises(BatchValidationError) as got:
        b"".join(CopyStream(bad, chunk, order=np.arange(len(bad))[::-1].copy()))
    assert [(p.row, p.column) for p in got.value.problems] == [(3_000, "token_id")]


def test_closing_a_stream_early_stops_its_worker() -> None:
    stream = CopyStream(prices(20_000), chunk, chunk_bytes=16 * 1024, prefetch=1)
    iterator = iter(stream)
    next(iterator)
    stream.close()
    assert stream._worker is None


def test_chunk_bounds_cover_every_row_once() -> None:
    sizes = np.array([10, 500, 10, 10, 10, 2_000, 1, 1], dtype=np.int64)
    bounds = chunk_bounds(sizes, 100, max_rows=3)
    assert bounds[0] == 0 and bounds[-1] == len(sizes)
    assert all(0 < b - a <= 3 for a, b in itertools.pairwise(bounds))
    assert chunk_bounds(np.zeros(0, dtype=np.int64), 100, 3) == [0]


def test_a_smaller_first_chunk_only_when_there_are_several() -> None:
    sizes = np.full(100, 10, dtype=np.int64)  # 1,000 bytes
    assert chunk_bounds(sizes, 400, 1_000, first_chunk_bytes=100) == [0, 10, 50, 90, 100]
    assert chunk_bounds(sizes, 400, 1_000) == [0, 40, 80, 100]
    assert chunk_bounds(sizes, 2_000, 1_000, first_chunk_bytes=100) == [0, 100]  # one chunk


def test_keep_order_encoding_keeps_every_row_in_place() -> None:
    batch = prices(3_000, seed=7)
    stream = b"".join(encode_prices(batch, chunk_rows=700, keep_order=True))
    assert decode_stream(stream, PRICE_TYPES) == expected_prices(batch)


# -- order-book levels in bulk ------------------------------------------------------------------


def sides(seed: int, shape: str) -> list[Any]:
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    for _ in range(300):
        prices_ = np.round(rng.uniform(0.01, 0.99, rng.integers(0, 12)), 3)
        order = {"up": np.sort(prices_), "down": np.sort(prices_)[::-1], "mixed": prices_}
        levels = [
            (repr(float(p)), repr(float(s)))
            for p, s in zip(order[shape], rng.uniform(1, 500, len(prices_)), strict=True)
        ]
        if seed % 2:
            out.append([{"price": p, "size": s} for p, s in levels])
        else:
            out.append([(float(p), float(s)) for p, s in levels])
    return out


@pytest.mark.parametrize("shape", ["up", "down", "mixed"])
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("descending", [True, False])
def test_bulk_parse_equals_row_by_row(shape: str, seed: int, descending: bool) -> None:
    raw = sides(seed, shape)  # seed 1: Polymarket's string dicts (texts kept), 2: numbers
    flat = parsed_sides(raw, descending)
    assert flat is not None and isinstance(flat, DecimalLevels) == (seed % 2 == 1)
    if seed % 2 == 0:
        assert flat_sides(raw, descending) is not None
    best = best_prices(flat)
    parsed = side_lists(flat)
    one_by_one = [parse_levels(side, descending) for side in raw]
    assert parsed == one_by_one
    expected_best = [side[0][0] if side else math.nan for side in one_by_one]
    np.testing.assert_array_equal(best, np.array(expected_best))


def test_bulk_parse_leaves_unusual_sides_to_the_row_by_row_path() -> None:
    assert flat_sides([[{"price": "0.4"}]], True) is None
    assert flat_sides([[("0.4", "lots")]], True) is None
    assert flat_sides([[(0.4, 1.0, 2.0)]], True) is None
    assert flat_sides(["0.4,1"], True) is None


def test_bulk_check_finds_what_the_row_by_row_check_finds() -> None:
    raw = [
        [(0.5, 1.0), (0.4, 2.0)],
        [(0.4, 1.0), (0.5, 2.0)],  # not best-first for bids
        [(1.5, 1.0)],
        [(0.5, -1.0)],
        [(0.5, math.inf)],
        [(math.nan, 1.0)],
        [],
        [(0.3, 1.0), (0.3, 2.0)],
    ]
    bulk = check_sides(raw, True)
    assert bulk is not None
    assert bulk.tolist() == [level_problem(side, True) is not None for side in raw]
    assert check_sides([[("0.5", "1")]], True) is None  # not a built batch's form


def test_polymarket_dict_levels_build_the_batch_of_pairs_with_their_texts() -> None:
    ts = [datetime(2026, 3, 1, tzinfo=UTC)] * 2
    as_dicts = OrderbookBatch.from_columns(
        {
            "ts": ts,
            "token_id": ["a", "b"],
            "bids": [[{"price": "0.30", "size": "20"}, {"price": "0.35", "size": "7"}], []],
            "asks": [[{"price": "0.45", "size": "2"}, {"price": "0.40", "size": "3"}], []],
        }
    ).validated()
    as_pairs = OrderbookBatch.from_columns(
        {
            "ts": ts,
            "token_id": ["a", "b"],
            "bids": [[(0.35, 7.0), (0.30, 20.0)], []],
            "asks": [[(0.40, 3.0), (0.45, 2.0)], []],
        }
    )
    assert as_dicts.bids.tolist() == as_pairs.bids.tolist()
    # The strings' texts are what is stored ("0.30", not 0.3): another batch than the floats'.
    assert as_dicts.content_digest() != as_pairs.content_digest()
    assert isinstance(as_dicts.levels and as_dicts.levels.bids, DecimalLevels)
    assert as_dicts.spread[0] == pytest.approx(0.05) and math.isnan(as_dicts.spread[1])


# -- fast construction from rows ----------------------------------------------------------------


def test_rows_and_records_build_the_batch_their_columns_build() -> None:
    zone = timezone(timedelta(hours=-5))
    ts = [datetime(2026, 3, 1, tzinfo=UTC) + timedelta(microseconds=7 * i) for i in range(50)]
    ts[3] = ts[3].astimezone(zone)  # another zone, same instant
    rows = [
        (t, f"{10**76 + i % 7}", 0.01 * i, None if i % 3 else 1.5 * i) for i, t in enumerate(ts)
    ]
    columns = PriceBatch.from_columns(
        {
            "ts": np.array(
                [t.replace(tzinfo=None) for t in [x.astimezone(UTC) for x in ts]], "M8[us]"
            ),
            "token_id": [r[1] for r in rows],
            "price": [r[2] for r in rows],
            "volume_24h": [np.nan if r[3] is None else r[3] for r in rows],
        }
    )
    records = [PriceSnapshot(ts=t, token_id=k, price=p, volume_24h=v) for t, k, p, v in rows]
    for built in (PriceBatch.from_rows(rows), PriceBatch.from_rows(records)):
        assert built.content_digest() == columns.content_digest()
    # A naive timestamp among aware ones takes the row loop, which flags it.
    mixed = [*rows[:-1], (datetime(2026, 3, 1), rows[-1][1], 0.5, None)]
    naive = PriceBatch.from_rows(mixed).naive_ts
    assert naive is not None and naive.tolist() == [False] * 49 + [True]
    # A bool is not a number, even on the fast path.
    with pytest.raises(BatchValidationError):
        PriceBatch.from_rows([(ts[0], "1", True, None)])
