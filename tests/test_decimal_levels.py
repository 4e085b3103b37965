"""Order-book levels given as decimal strings keep their texts (no database).

The bulk path (``decimal_levels``: orjson of the column, numpy over its bytes)
and the side-by-side path (``decimal_sides``) must give the same floats and
texts; the Writer then sends the texts unchanged (``_write.jsonb_levels``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import pytest

from pmstore._write.encoding import encode_orderbooks
from pmstore._write.engines import Blob
from pmstore._write.jsonb_levels import sides_from_floats, sides_from_texts
from pmstore.batches import OrderbookBatch
from pmstore.batches._decimal_levels import (
    DecimalLevels,
    decimal_levels,
    decimal_sides,
    is_plain_decimal,
    with_texts,
)
from pmstore.batches._levels import FlatLevels
from pmstore.batches._tables import parsed_sides
from pmstore.errors import BatchValidationError

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def polymarket_sides(seed: int, n: int = 200) -> list[list[dict[str, str]]]:
    """Sides as Polymarket's ``book`` event has them: worst-first dicts of decimal strings."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        ticks = np.sort(rng.choice(np.arange(1, 999), size=rng.integers(0, 40), replace=False))
        sizes = rng.integers(1, 10**9, len(ticks)) / 100
        out.append(
            [
                {"price": f"{t / 1000:g}", "size": f"{s:.2f}"}
                for t, s in zip(ticks, sizes, strict=True)
            ]
        )
    return out


def texts(levels: DecimalLevels) -> list[tuple[bytes, bytes]]:
    price, size = levels.price_text, levels.size_text
    return [
        (
            price.buffer[a : a + m].tobytes(),
            size.buffer[b : b + k].tobytes(),
        )
        for a, m, b, k in zip(price.starts, price.lengths, size.starts, size.lengths, strict=True)
    ]


def test_plain_decimals_are_their_own_texts() -> None:
    assert all(map(is_plain_decimal, ["0", "12", "0.48", "1234.50", "0.001"]))
    assert not any(map(is_plain_decimal, [".5", "1.", "01", "-1", "1e5", " 1", "0x1", "١"]))


@pytest.mark.parametrize("descending", [True, False])
def test_bulk_and_side_by_side_paths_agree(descending: bool) -> None:
    sides = polymarket_sides(3)
    bulk = decimal_levels(sides, descending)
    one_by_one = decimal_sides(sides, descending)
    assert isinstance(bulk, DecimalLevels) and isinstance(one_by_one, DecimalLevels)
    np.testing.assert_array_equal(bulk.counts, one_by_one.counts)
    np.testing.assert_array_equal(bulk.prices, one_by_one.prices)
    np.testing.assert_array_equal(bulk.sizes, one_by_one.sizes)
    assert texts(bulk) == texts(one_by_one)
    # Best-first, each text the string given and each float the string's value.
    k, kept = 0, texts(bulk)
    for side in sides:
        ordered = sorted(side, key=lambda v: float(v["price"]), reverse=descending)
        for level in ordered:
            assert kept[k] == (level["price"].encode(), level["size"].encode())
            assert bulk.prices[k] == float(level["price"])
            assert bulk.sizes[k] == float(level["size"])
            k += 1
    assert k == len(bulk.prices)


def test_other_values_get_their_floats_shortest_decimals() -> None:
    long = "0." + "1" * 50  # beyond the bulk width: kept by the side-by-side path
    sides: list[Any] = [
        [{"price": "1e-5", "size": "2"}],  # numeric, not plain: the float's decimal
        [(0.5, 1.0)],  # numbers beside strings
        [("0.30", "7")],  # pairs of strings
        [{"price": long, "size": "1"}],
    ]
    levels = parsed_sides(sides, True)
    assert isinstance(levels, DecimalLevels)
    got = texts(levels)
    assert Decimal(got[0][0].decode()) == Decimal("0.00001") and got[0][1] == b"2"
    assert got[1] == (b"0.5", b"1.0") and got[2] == (b"0.30", b"7") and got[3][0] == long.encode()
    for (price, size), p, s in zip(got, levels.prices, levels.sizes, strict=True):
        assert float(price) == p and float(size) == s


def blob_rows(blob: Blob) -> list[bytes]:
    data, starts = bytes(blob.blob), blob.starts
    assert starts is not None
    body = blob.lengths - len(blob.head) - len(blob.tail)
    return [
        blob.head + data[a : a + m] + blob.tail
        for a, m in zip(starts.tolist(), body.tolist(), strict=True)
    ]


def test_a_float_level_has_one_text_whichever_way_it_is_written() -> None:
    """A float level's text as the Writer sends it (``sides_from_floats``) is the text a
    column with texts gives it (``float_texts``, as in ``concat_levels`` and the digest)
    and the side-by-side parse's (``orjson`` of the Python float), across orjson blocks."""
    awkward = [0.0, 1000.0, 0.1 + 0.2, 1e-7, 1e16, 123456789012345680000.0, 5e-324, 2.5e-5]
    rng = np.random.default_rng(3)
    values = np.concatenate([awkward, rng.uniform(0, 1, 300), rng.uniform(0, 1e9, 300)])
    counts = np.array([0, 3, 1, 0, *([2] * 100), 0, 100], dtype=np.int64)  # 304 levels
    flat = FlatLevels(counts, values[:304].copy(), values[::-1][:304].copy())
    for block in (1, 7, 8_192):
        floats = blob_rows(sides_from_floats(flat, slice(None), block=block))
        assert floats == blob_rows(sides_from_texts(with_texts(flat), slice(None)))
    pairs = zip(texts(with_texts(flat)), flat.prices.tolist(), flat.sizes.tolist(), strict=True)
    for (price_text, size_text), price, size in pairs:
        assert price_text == orjson.dumps(price) and size_text == orjson.dumps(size)
        assert float(price_text) == price and float(size_text) == size


def test_every_digit_goes_into_the_copy_stream() -> None:
    bids = [{"price": "0.0100", "size": "0.123456789012345678901"}, {"price": "0.02", "size": "5"}]
    batch = OrderbookBatch.from_columns(
        {"ts": [T0], "token_id": ["7" * 77], "bids": [bids], "asks": [[]]}
    ).validated()
    stream = b"".join(encode_orderbooks(batch))
    side = b"[[0.02,5],[0.0100,0.123456789012345678901]]"
    assert b"\x01" + side in stream
    parsed = json.loads(side, parse_float=Decimal)
    assert parsed[1] == [Decimal("0.0100"), Decimal("0.123456789012345678901")]


def test_bad_string_levels_are_named_by_row_and_column() -> None:
    sides = polymarket_sides(5, n=20)
    bad = [*sides[:7], [{"price": "0.999", "size": "-1"}], *sides[8:]]
    with pytest.raises(BatchValidationError) as raised:
        OrderbookBatch.from_columns(
            {"ts": [T0] * 20, "token_id": ["1" * 76] * 20, "bids": sides, "asks": bad}
        ).validated()
    assert [(p.row, p.column) for p in raised.value.problems] == [(7, "asks")]
    with pytest.raises(BatchValidationError) as raised:
        OrderbookBatch.from_columns(
            {
                "ts": [T0],
                "token_id": ["1" * 76],
                "bids": [[{"price": "0.4", "size": "lots"}]],
                "asks": [[]],
            }
        ).validated()
    assert [(p.row, p.column) for p in raised.value.problems] == [(0, "bids")]
