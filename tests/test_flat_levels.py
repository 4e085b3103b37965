"""Order books carried in flat form (``OrderbookBatch.levels``) behave exactly like the tuples.

The ingest path builds its order-book batches with flat level arrays next to
the ``bids``/``asks`` objects; checks, digest, size estimates and the COPY
bytes then come from those arrays. Each must give what the object form
gives for the same rows: the same problems, digest and encoded bytes.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest

from pmstore._write.encoding import encode_orderbooks, orderbook_chunk
from pmstore._write.pipeline import estimated_row_bytes
from pmstore.batches import OrderbookBatch
from pmstore.batches._levels import BookLevels, FlatLevels, best_first_order, side_lists
from pmstore.errors import BatchValidationError
from pmstore.polymarket._columnar import Columns, convert_into

T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)


def flat_of(sides: list[list[tuple[float, float]]]) -> FlatLevels:
    counts = np.array([len(s) for s in sides], dtype=np.int64)
    prices = np.array([p for s in sides for p, _ in s], dtype=np.float64)
    sizes = np.array([q for s in sides for _, q in s], dtype=np.float64)
    return FlatLevels(counts, prices, sizes)


def objects(items: list[Any]) -> Any:
    return np.fromiter(items, dtype=object, count=len(items))


def pair(
    bids: list[list[tuple[float, float]]],
    asks: list[list[tuple[float, float]]],
    spread: list[float] | None = None,
) -> tuple[OrderbookBatch, OrderbookBatch]:
    """The same rows without and with the flat form."""
    n = len(bids)
    columns: dict[str, Any] = {
        "ts": np.datetime64("2025-01-01T00:00:00", "us") + np.arange(n) * np.timedelta64(1, "s"),
        "token_id": objects([f"{7 + i % 3}123" for i in range(n)]),
        "bids": objects([list(s) for s in bids]),
        "asks": objects([list(s) for s in asks]),
        "spread": np.array(spread if spread is not None else [np.nan] * n, dtype=np.float64),
        "midpoint": np.full(n, np.nan),
    }
    plain = OrderbookBatch(**columns)
    flat = OrderbookBatch(**columns, levels=BookLevels(flat_of(bids), flat_of(asks)))
    return plain, flat


def random_side(rng: random.Random, descending: bool) -> list[tuple[float, float]]:
    k = rng.choice((0, 1, 2, 5, 30))
    prices = [rng.randint(1, 999) / 1000 for _ in range(k)]
    levels = [(p, rng.randint(1, 90_000) / 100) for p in prices]
    levels.sort(key=lambda lv: lv[0], reverse=descending)
    return levels


def test_best_first_order_is_the_stable_sort_row_by_row() -> None:
    rng = random.Random(5)
    for descending in (True, False):
        rows: list[list[tuple[float, float]]] = []
        for _ in range(400):
            k = rng.choice((0, 1, 2, 3, 8, 40))
            grid = rng.choice((3, 20, 1000))  # few distinct prices: ties
            side = [(rng.randint(0, grid) / grid, float(j)) for j in range(k)]
            shape = rng.random()
            if shape < 0.3:
                side.sort(key=lambda lv: lv[0], reverse=descending)
            elif shape < 0.6:
                side = sorted(dict(side).items(), key=lambda lv: lv[0], reverse=not descending)
            rows.append(side)
        flat = flat_of(rows)
        order = best_first_order(flat, descending)
        prices = flat.prices if order is None else flat.prices[order]
        sizes = flat.sizes if order is None else flat.sizes[order]
        got = side_lists(FlatLevels(flat.counts, prices, sizes))
        want = [sorted(s, key=lambda lv: lv[0], reverse=descending) for s in rows]
        assert got == want


def test_orjson_writes_numpy_floats_as_python_floats() -> None:
    """``_flat_levels_field`` relies on it: the text of a float64 array is that of its floats."""
    rng = np.random.default_rng(9)
    samples = [
        rng.random(20_000),
        rng.integers(1, 90_000, 20_000) / 100,
        rng.integers(0, 1001, 20_000) / 1000,
        np.frombuffer(rng.bytes(8 * 20_000), dtype=np.float64),
        np.array([0.0, -0.0, 5e-324, 1e-7, 1e16, 1e21, 1e22, 9007199254740993.0, 1 / 3]),
    ]
    for values in samples:
        values = values[np.isfinite(values)]
        assert orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY) == orjson.dumps(
            values.tolist()
        )


def test_flat_batches_check_digest_and_encode_like_the_objects() -> None:
    rng = random.Random(11)
    n = 300
    bids = [random_side(rng, True) for _ in range(n)]
    asks = [random_side(rng, False) for _ in range(n)]
    plain, flat = pair(bids, asks)
    assert flat.validated() is flat
    assert plain.content_digest() == flat.content_digest()
    np.testing.assert_array_equal(estimated_row_bytes(plain), estimated_row_bytes(flat))
    assert b"".join(encode_orderbooks(plain, chunk_rows=37)) == b"".join(
        encode_orderbooks(flat, chunk_rows=37)
    )
    order = np.array(rng.sample(range(n), n), dtype=np.intp)
    for rows in (slice(0, n), slice(5, 9), slice(7, 7), order, order[:10]):
        assert orderbook_chunk(plain, rows) == orderbook_chunk(flat, rows)
    mask = np.array([rng.random() < 0.5 for _ in range(n)])
    picked = flat.select(mask)
    assert picked.levels is not None
    assert picked.content_digest() == plain.select(mask).content_digest()
    assert side_lists(picked.levels.bids) == picked.bids.tolist()
    ordered = flat.in_index_order()
    assert ordered.levels is not None
    assert side_lists(ordered.levels.asks) == ordered.asks.tolist()
    assert ordered.content_digest() == plain.in_index_order().content_digest()


def test_flat_batches_report_the_same_problems() -> None:
    bids = [[(0.5, 1.0), (0.4, 2.0)], [(1.5, 1.0)], [(0.3, -1.0)], [(0.2, 1.0), (0.3, 1.0)], []]
    asks = [[(0.6, 1.0)], [], [(0.7, np.inf)], [(0.8, 1.0), (0.7, 1.0)], [(0.9, 1.0)]]
    plain, flat = pair(bids, asks, spread=[0.1, np.nan, np.nan, np.nan, np.inf])
    want, want_mask = plain.problems()
    got, got_mask = flat.problems()
    assert got == want and len(got) == 6
    np.testing.assert_array_equal(got_mask, want_mask)
    with pytest.raises(BatchValidationError) as caught:
        flat.validated()
    assert "outside [0, 1]" in str(caught.value)


def test_inconsistent_flat_levels_are_refused() -> None:
    _, flat = pair([[(0.5, 1.0)]], [[]])
    assert flat.levels is not None
    short = FlatLevels(
        np.array([2], dtype=np.int64), flat.levels.bids.prices, flat.levels.bids.sizes
    )
    with pytest.raises(BatchValidationError, match="one count per row"):
        OrderbookBatch(
            ts=flat.ts.copy(),
            token_id=flat.token_id.copy(),
            bids=flat.bids.copy(),
            asks=flat.asks.copy(),
            spread=flat.spread.copy(),
            midpoint=flat.midpoint.copy(),
            levels=BookLevels(short, flat.levels.asks),
        )


def test_columns_mix_fast_and_slow_books_in_one_batch() -> None:
    """Worst-first books (fast path) and best-first ones (the adapters') share the arrays."""
    book = {
        "event_type": "book",
        "asset_id": "123",
        "timestamp": "1729084877448",
        "bids": [{"price": "0.1", "size": "5"}, {"price": "0.3", "size": "2"}],
        "asks": [{"price": "0.9", "size": "1"}, {"price": "0.5", "size": "4"}],
    }
    odd = {**book, "bids": [{"price": 0.3, "size": 2}, {"price": "0.1", "size": "5"}]}  # int size
    columns = Columns()
    for payload in (book, odd, book):
        convert_into(payload, columns)
    batch = columns.orderbook_batch().validated()
    # Checks, digest, encoding and selections work on the flat arrays: no tuples are made.
    digest = batch.content_digest()
    chunk = orderbook_chunk(batch, slice(0, 3))
    picked = batch.select(np.array([True, False, True]))
    assert batch._unbuilt("bids") and batch._unbuilt("asks") and picked._unbuilt("bids")
    assert picked.bids.tolist() == [[(0.3, 2.0), (0.1, 5.0)]] * 2
    assert not picked._unbuilt("bids") and not picked.bids.flags.writeable
    plain = OrderbookBatch(**{name: getattr(batch, name) for name in OrderbookBatch.COLUMNS})
    assert plain.levels is None and plain.content_digest() == digest
    assert orderbook_chunk(plain, slice(0, 3)) == chunk
    assert batch.bids.tolist() == [[(0.3, 2.0), (0.1, 5.0)]] * 3
    assert batch.asks.tolist() == [[(0.5, 4.0), (0.9, 1.0)]] * 3
    np.testing.assert_allclose(batch.spread, [0.2] * 3)


def test_from_columns_keeps_common_levels_flat_with_their_texts() -> None:
    """Polymarket's dict levels given to from_columns stay flat (no tuple per level) with
    their texts: the checks and spreads are those of the same books in object form, the
    COPY bytes carry the texts unchanged, and the digest is the texts' (a float batch of
    the same books is another batch: its decimals may differ)."""
    rng = np.random.default_rng(4)
    n = 40
    bids, asks = [], []
    for _ in range(n):
        prices = np.sort(rng.choice(np.arange(1, 50), size=rng.integers(0, 8), replace=False))
        bids.append([{"price": f"{p / 100:g}", "size": f"{rng.integers(1, 900)}"} for p in prices])
        asks.append([{"price": f"{(100 - p) / 100:g}", "size": "3.5"} for p in prices])
    ts = [T0 + timedelta(seconds=k) for k in range(n)]
    columns = {
        "ts": ts,
        "token_id": [str(10**75 + k) for k in range(n)],
        "bids": bids,
        "asks": asks,
    }
    flat = OrderbookBatch.from_columns(columns).validated()
    assert flat.levels is not None and flat._unbuilt("bids")
    plain = OrderbookBatch(**{name: getattr(flat, name) for name in OrderbookBatch.COLUMNS})
    assert plain.levels is None
    assert flat.content_digest() == OrderbookBatch.from_columns(columns).content_digest()
    assert flat.content_digest() != plain.content_digest()
    chunk = orderbook_chunk(flat, slice(0, n))
    for side, descending in ((bids, True), (asks, False)):
        for levels in side:
            best_first = sorted(levels, key=lambda v: float(v["price"]), reverse=descending)
            text = ",".join(f"[{v['price']},{v['size']}]" for v in best_first)
            assert b"\x01[" + text.encode() + b"]" in chunk
    np.testing.assert_array_equal(flat.spread, plain.spread)
    bad = dict(columns, bids=[*bids[:-1], [{"price": "0.2", "size": "-1"}]])
    with pytest.raises(BatchValidationError) as raised:
        OrderbookBatch.from_columns(bad).validated()
    assert [(p.row, p.column) for p in raised.value.problems] == [(n - 1, "bids")]
    odd = dict(columns, asks=[*asks[:-1], "not levels"])  # one side unusual: both as objects
    mixed = OrderbookBatch.from_columns(odd)
    assert mixed.levels is None and mixed.bids.tolist()[:3] == plain.bids.tolist()[:3]
