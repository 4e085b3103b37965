"""Block-wise passes (pmstore.batches._blocks) give what the one-call forms give, and the
batches, orders, digests and COPY streams built on them are unchanged (no database)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xxhash
from test_copy_encoding import PRICE_TYPES, decode_stream, expected_prices
from test_copy_pipeline import chunk, prices

from pmstore._write.pipeline import ENCODE_BLOCK, CopyStream, index_order
from pmstore.batches import PriceBatch, TradeBatch
from pmstore.batches._blocks import (
    ROW_BLOCK,
    all_of_types,
    block_items,
    block_map,
    object_array,
    row_blocks,
)
from pmstore.errors import BatchValidationError

N = 2 * ROW_BLOCK + 123  # three blocks, the last one short


def test_row_blocks_cover_every_row_once_in_order() -> None:
    blocks = list(row_blocks(N))
    assert [b.start for b in blocks] == [0, ROW_BLOCK, 2 * ROW_BLOCK]
    assert np.array_equal(np.concatenate([np.arange(N)[b] for b in blocks]), np.arange(N))
    assert list(row_blocks(0)) == []
    assert [(b.start, b.stop) for b in row_blocks(5, size=2)] == [(0, 2), (2, 4), (4, 5)]


def test_object_array_keeps_items_as_given() -> None:
    tokens = json.loads(json.dumps([str(10**75 + i) for i in range(N)]))
    out = object_array(tokens)
    assert out.dtype == object and out.shape == (N,) and out.tolist() == tokens
    assert all(a is b for a, b in zip(out.tolist(), tokens, strict=True))  # no copies
    nested = [[(0.5, 1.0)], [], [(0.4, 2.0), (0.3, 1.0)]] * (N // 3)
    levels = object_array(nested)
    assert levels.shape == (len(nested),) and levels[2] == [(0.4, 2.0), (0.3, 1.0)]
    text = np.array(["a", "bc", "def"] * (N // 3))
    as_objects = object_array(text)
    assert as_objects.tolist() == text.tolist()
    assert {type(v) for v in as_objects} == {str}  # str, not numpy.str_


def test_block_map_and_all_of_types_equal_their_one_call_forms() -> None:
    words = [str(i) * (i % 7 + 1) for i in range(N)]
    expected = np.fromiter(map(len, words), dtype=np.int64, count=N)
    assert np.array_equal(block_map(len, words, np.int64), expected)
    assert np.array_equal(block_map(len, np.array(words, dtype=object), np.int64), expected)
    assert all_of_types(words, frozenset({str}))
    words[-1] = None  # type: ignore[call-overload]  # in the last block only
    assert not all_of_types(words, frozenset({str}))
    assert all_of_types(words, frozenset({str, type(None)}))
    assert block_items(np.array(words, dtype=object), slice(0, 3)) == words[:3]


def test_float_and_text_columns_convert_as_in_one_pass() -> None:
    rng = np.random.default_rng(3)
    price = json.loads(json.dumps(rng.uniform(0, 1, N).tolist()))
    volume: list[float | None] = json.loads(json.dumps(rng.uniform(0, 9, N).tolist()))
    volume[ROW_BLOCK + 5] = None
    tokens = json.loads(json.dumps([str(10**75 + int(i)) for i in rng.integers(0, 99, N)]))
    ts = np.datetime64("2026-03-01", "us") + np.arange(N).astype("m8[s]")
    batch = PriceBatch.from_columns(
        {"ts": ts, "token_id": tokens, "price": price, "volume_24h": volume}
    )
    assert np.array_equal(batch.price, np.array(price))
    assert np.isnan(batch.volume_24h[ROW_BLOCK + 5])
    assert batch.token_id.tolist() == tokens
    bad = list(tokens)
    bad[2 * ROW_BLOCK + 7] = ""
    with pytest.raises(BatchValidationError) as caught:
        PriceBatch.from_columns(
            {"ts": ts, "token_id": bad, "price": price, "volume_24h": volume}
        ).validated()
    assert [(p.row, p.column) for p in caught.value.problems] == [(2 * ROW_BLOCK + 7, "token_id")]


def test_a_side_outside_its_choices_is_found_in_a_late_block() -> None:
    n = N
    side = ["BUY", "SELL"] * (n // 2) + ["BUY"] * (n % 2)
    side[-1] = "HOLD"
    batch = TradeBatch.from_columns(
        {
            "ts": np.datetime64("2026-03-01", "us") + np.arange(n).astype("m8[s]"),
            "token_id": ["1" * 76] * n,
            "side": side,
            "price": np.full(n, 0.5),
            "size": np.full(n, 1.0),
            "trade_id": [f"t{i}" for i in range(n)],
        }
    )
    with pytest.raises(BatchValidationError) as caught:
        batch.validated()
    assert [(p.row, p.column) for p in caught.value.problems] == [(n - 1, "side")]
    assert "'HOLD' is not one of" in caught.value.problems[0].reason


def reference_digest(batch: PriceBatch) -> str:
    """The digest's definition written out whole (XXH3-128 of the table, the row count,
    then per column its name and values; text as int64 lengths then UTF-8): the batch
    ids of logged batches depend on it, so block-wise hashing must not change it."""
    digest = xxhash.xxh3_128()
    digest.update(f"{batch.TABLE}\x00{len(batch)}".encode())
    for name in ("ts", "token_id", "price", "volume_24h"):
        values = getattr(batch, name)
        digest.update(f"\x00{name}\x00".encode())
        if name == "ts":
            digest.update(values.view(np.int64).astype("<i8").tobytes())
        elif name == "token_id":
            texts = values.tolist()
            digest.update(np.array([len(t) for t in texts], dtype="<i8").tobytes())
            digest.update("".join(texts).encode("utf-8", "surrogatepass"))
        else:
            canonical = np.where(np.isnan(values), np.nan, values)
            digest.update(canonical.astype("<f8").tobytes())
    return digest.hexdigest()


def test_content_digest_is_its_definition_over_many_blocks() -> None:
    batch = prices(N, seed=5)
    assert batch.content_digest() == reference_digest(batch)


def test_index_order_over_many_blocks_is_token_then_time() -> None:
    batch = prices(N, seed=9)
    order = index_order(batch)
    assert order is not None
    tokens = [t.encode() for t in batch.token_id.tolist()]
    expected = sorted(range(N), key=lambda i: (tokens[i], int(batch.ts.view(np.int64)[i]), i))
    assert order.tolist() == expected
    ordered = batch.take(order)
    assert index_order(ordered) is None  # already in order: compared block by block


@pytest.mark.parametrize("ordered", [False, True])
def test_a_chunk_encoded_in_blocks_is_the_chunk_encoded_at_once(ordered: bool) -> None:
    batch = prices(3 * ENCODE_BLOCK + 11, seed=4)
    order = index_order(batch) if ordered else None
    with CopyStream(batch, chunk, order=order, chunk_bytes=64 << 20) as stream:
        chunks = list(stream)
    assert stream.chunks == 1  # one chunk of four encoder blocks
    sent = batch if order is None else batch.take(order)
    assert decode_stream(b"".join(chunks), PRICE_TYPES) == expected_prices(sent)
