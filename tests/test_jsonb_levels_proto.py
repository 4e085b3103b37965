"""The JSONB level encoder prototype (pmstore._jsonb_levels_proto): its binary jsonb values
as the server stores them, the decimal texts kept exactly, and the bulk checks."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg
import pytest

from pmstore import OrderbookBatch
from pmstore._jsonb_levels_proto import (
    DecimalLevels,
    decimal_levels,
    orderbook_batch_from_strings,
    sides_field,
    sides_from_floats,
    sides_from_text,
)
from pmstore.batches.levels import FlatLevels
from pmstore.copy_encoding import PGCOPY_HEADER, PGCOPY_TRAILER
from pmstore.copy_engines import Blob, encode_fields

TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"

# Polymarket's /book sides, worst-first, with decimals a double cannot hold exactly and
# trailing zeros; an empty side; one level.
BIDS: list[list[dict[str, str]]] = [
    [{"price": "0.47", "size": "10"}, {"price": "0.48", "size": "1234.50"}],
    [],
    [{"price": "0.001", "size": "123456789012345678.123456789"}],
    [{"price": "0.5", "size": "0"}, {"price": "0.6", "size": "1"}, {"price": "0.55", "size": "2"}],
]


def _stored(conn: psycopg.Connection[Any], blob: Blob, n: int) -> list[Any]:
    """The values of ``blob`` as the server stores them: binary COPY into a jsonb column."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS proto_sides (k serial, v jsonb)")
    conn.execute("TRUNCATE proto_sides")
    with conn.cursor() as cur, cur.copy("COPY proto_sides (v) FROM STDIN (FORMAT binary)") as copy:
        copy.write(encode_fields([blob], n, PGCOPY_HEADER))
        copy.write(PGCOPY_TRAILER)
    return conn.execute("SELECT v::text FROM proto_sides ORDER BY k").fetchall()


def _values(blob: Blob) -> list[bytes]:
    """Each row's bytes of a Blob field."""
    data = bytes(blob.blob)
    assert blob.starts is not None
    body = blob.lengths - len(blob.head) - len(blob.tail)
    return [
        blob.head + data[start : start + length] + blob.tail
        for start, length in zip(blob.starts.tolist(), body.tolist(), strict=True)
    ]


def test_decimal_texts_are_stored_exactly_best_first(db: str) -> None:
    levels = decimal_levels(BIDS, descending=True)
    assert isinstance(levels, DecimalLevels)
    with psycopg.connect(db, autocommit=True) as conn:
        stored = _stored(conn, sides_from_text(levels, slice(None)), len(BIDS))
        assert [row[0] for row in stored] == [
            "[[0.48, 1234.50], [0.47, 10]]",
            "[]",
            "[[0.001, 123456789012345678.123456789]]",
            "[[0.6, 1], [0.55, 2], [0.5, 0]]",
        ]
        exact = conn.execute(
            "SELECT (v -> 0 ->> 1)::numeric FROM proto_sides ORDER BY k LIMIT 1 OFFSET 2"
        ).fetchone()
        assert exact == (Decimal("123456789012345678.123456789"),)
        # Rows picked in another order (the Writer's index order) keep their own levels.
        picked = _stored(conn, sides_from_text(levels, np.array([3, 1, 0])), 3)
        assert [row[0] for row in picked] == [
            "[[0.6, 1], [0.55, 2], [0.5, 0]]",
            "[]",
            "[[0.48, 1234.50], [0.47, 10]]",
        ]


def test_floats_are_stored_as_their_shortest_decimals(db: str) -> None:
    sides = [
        [(0.48, 1234.5), (0.47, 10.0)],
        [],
        [(0.3333333333333333, 2.220446049250313e-16), (0.1, 0.30000000000000004)],
        [(0.001, 1.2345678901234568e17)],
    ]
    counts = np.array([len(s) for s in sides], dtype=np.int64)
    pairs = np.array([level for side in sides for level in side])
    flat = FlatLevels(counts, pairs[:, 0].copy(), pairs[:, 1].copy())
    with psycopg.connect(db, autocommit=True) as conn:
        stored = _stored(conn, sides_from_floats(flat, slice(None)), len(sides))
        assert [json.loads(row[0]) for row in stored] == [
            [list(level) for level in s] for s in sides
        ]
        numbers = conn.execute(
            "SELECT (l ->> 0)::numeric, (l ->> 1)::numeric "
            "FROM proto_sides, jsonb_array_elements(v) l ORDER BY k"
        ).fetchall()
        assert numbers == [(Decimal(repr(p)), Decimal(repr(s))) for side in sides for p, s in side]
        # orjson in blocks of levels (any size) gives the same values.
        for block in (1, 2, 3):
            assert _values(sides_from_floats(flat, slice(None), block=block)) == _values(
                sides_from_floats(flat, slice(None))
            )
        # sides_field picks the floats for plain levels, the texts when they are kept.
        assert _values(sides_field(flat, slice(None))) == _values(
            sides_from_floats(flat, slice(None))
        )
        levels = decimal_levels(BIDS, descending=True)
        assert levels is not None
        assert _values(sides_field(levels, slice(None))) == _values(
            sides_from_text(levels, slice(None))
        )


@pytest.mark.parametrize(
    "text",
    ["05", ".5", "5.", "1e-5", "-1", "", "1.2.3", "0x1", "é", " 1", "1\x002", "12\x00", "NaN"],
)
def test_strings_that_are_not_plain_decimals_leave_the_bulk_path(text: str) -> None:
    """None: the caller then parses row by row and names the row and column."""
    assert (
        decimal_levels([[{"price": "0.5", "size": "1"}, {"price": text, "size": "1"}]], True)
        is None
    )
    assert decimal_levels([[{"price": "0.5", "size": text}]], False) is None


def test_other_level_shapes_leave_the_bulk_path() -> None:
    assert decimal_levels([[{"price": "0.5"}]], True) is None
    assert decimal_levels([[("0.5", "1")]], True) is None
    assert decimal_levels([[{"price": 0.5, "size": "1"}]], True) is None
    assert decimal_levels([({"price": "0.5", "size": "1"},)], True) is None


def test_string_batch_matches_the_parsed_batch() -> None:
    """The same floats, order, spread and midpoint as from_columns parses (and so the same
    digest), with the texts kept beside them."""
    asks = [
        [{"price": "0.53", "size": "5"}, {"price": "0.52", "size": "7.25"}],
        [{"price": "0.9", "size": "1"}],
        [],
        [{"price": "0.7", "size": "3"}],
    ]
    columns = {
        "ts": np.array(["2026-12-01T00:00:00"] * 4, dtype="datetime64[us]"),
        "token_id": np.array([TOKEN] * 4, dtype=object),
        "bids": BIDS,
        "asks": asks,
    }
    proto = orderbook_batch_from_strings(columns)
    assert proto is not None
    parsed = OrderbookBatch.from_columns(columns)
    assert proto.bids.tolist() == parsed.bids.tolist()
    assert proto.asks.tolist() == parsed.asks.tolist()
    np.testing.assert_array_equal(proto.spread, parsed.spread)
    np.testing.assert_array_equal(proto.midpoint, parsed.midpoint)
    assert proto.content_digest() == parsed.content_digest()
    threaded = orderbook_batch_from_strings(columns, threads=True)
    assert threaded is not None and threaded.content_digest() == proto.content_digest()
    assert _values(sides_field(threaded.levels.bids, slice(None))) == _values(  # type: ignore[union-attr]
        sides_field(proto.levels.bids, slice(None))  # type: ignore[union-attr]
    )
    assert proto.validated() is not None
