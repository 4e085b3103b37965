"""The content digest of a batch (XXH3-128 over the table, column names and values)."""

from __future__ import annotations

from itertools import chain
from typing import Any, ClassVar, Protocol

import numpy as np
import xxhash
from numpy.typing import NDArray

from pmstore.batches._blocks import Items, all_of_types, block_items, block_map, row_blocks
from pmstore.batches._decimal_levels import DecimalLevels
from pmstore.batches._levels import FlatLevels
from pmstore.batches._spec import ColumnSpec


class Digestible(Protocol):
    """What the digest reads of a batch (``ColumnBatch`` is one): its table, columns, rows."""

    TABLE: ClassVar[str]
    SPEC: ClassVar[tuple[ColumnSpec, ...]]
    naive_ts: NDArray[np.bool_] | None

    def __len__(self) -> int: ...

    def flat_form(self, name: str) -> FlatLevels | None: ...


_STR = frozenset({str})


def _level_numbers(
    values: NDArray[np.object_],
) -> tuple[NDArray[np.int64], NDArray[np.float64]] | None:
    """Levels per row and every (price, size) as float64, for hashing; None unless every
    row is a list of 2-item pairs of real numbers (then the caller hashes reprs).
    About 0.15 s for 50,000 books of 36 levels, against 1.3 s for their reprs."""
    sides = values.tolist()
    try:
        counts = np.fromiter(map(len, sides), dtype=np.int64, count=len(sides))
        if set(map(type, sides)) - {list} or set(map(len, chain.from_iterable(sides))) - {2}:
            return None
        flat = np.fromiter(
            chain.from_iterable(chain.from_iterable(sides)),
            dtype=np.float64,
            count=int(counts.sum()) * 2,
        )
    except (TypeError, ValueError):
        return None
    nan = np.isnan(flat)
    canonical = np.where(nan, np.nan, flat) if nan.any() else flat
    return (
        np.ascontiguousarray(counts, dtype="<i8"),
        np.ascontiguousarray(canonical, dtype="<f8"),
    )


def _levels_numbers(
    batch: Digestible, name: str
) -> tuple[NDArray[np.int64], NDArray[np.float64]] | None:
    """``_level_numbers`` of a levels column, from the batch's flat form when it has one
    (the same counts and numbers, without a pass over per-level tuples)."""
    flat = batch.flat_form(name)
    if flat is None:
        return _level_numbers(getattr(batch, name))
    pairs = np.empty(2 * len(flat.prices), dtype="<f8")
    pairs[0::2], pairs[1::2] = flat.prices, flat.sizes
    nan = np.isnan(pairs)
    if nan.any():
        pairs[nan] = np.nan
    return np.ascontiguousarray(flat.counts, dtype="<i8"), pairs


def _update_texts(digest: Any, levels: DecimalLevels) -> None:
    """Hash levels that carry their texts: the counts, then per value column (price, size)
    the texts' lengths and the texts as a NUL-padded matrix (texts hold no NUL)."""
    digest.update(b"\x00texts\x00")
    digest.update(np.ascontiguousarray(levels.counts, dtype="<i8").data)
    for texts in (levels.price_text, levels.size_text):
        digest.update(np.ascontiguousarray(texts.lengths, dtype="<i8").data)
        digest.update(np.ascontiguousarray(texts.padded()).data)


def batch_digest(batch: Digestible) -> str:
    """The digest ``ColumnBatch.content_digest`` returns (see its docstring)."""
    digest = xxhash.xxh3_128()
    digest.update(f"{batch.TABLE}\x00{len(batch)}".encode())
    for col in batch.SPEC:
        digest.update(f"\x00{col.name}\x00".encode())
        if col.kind == "levels" and isinstance(flat := batch.flat_form(col.name), DecimalLevels):
            _update_texts(digest, flat)
            continue
        if col.kind == "levels" and (numbers := _levels_numbers(batch, col.name)) is not None:
            digest.update(b"\x00pairs\x00")
            for part in numbers:
                digest.update(part.data)
            continue
        values = getattr(batch, col.name)
        if col.kind == "ts":
            digest.update(np.ascontiguousarray(values.view(np.int64), dtype="<i8").data)
        elif col.kind == "float":
            nan = np.isnan(values)
            canonical = np.where(nan, np.nan, values) if nan.any() else values
            digest.update(np.ascontiguousarray(canonical, dtype="<f8").data)
        else:
            texts: Items = values if col.kind == "text" else list(map(repr, values))
            if not all_of_types(texts, _STR):
                texts = [v if type(v) is str else f"\x00{type(v).__name__}:{v!r}" for v in texts]
            # All lengths, then all text: each hashed in blocks (the same bytes, the GIL
            # free between blocks, no big copies).
            lengths = block_map(len, texts, np.dtype("<i8"))
            digest.update(lengths.data)
            for rows in row_blocks(len(texts)):
                block = "".join(block_items(texts, rows))
                digest.update(block.encode("utf-8", "surrogatepass"))
    if batch.naive_ts is not None and batch.naive_ts.any():
        digest.update(b"\x00naive_ts\x00")
        digest.update(np.ascontiguousarray(np.flatnonzero(batch.naive_ts), dtype="<i8").data)
    return digest.hexdigest()
