"""Order-book sides as binary COPY ``jsonb`` values, a chunk of rows at a time (no I/O).

The stored shape (migration 0014): a side is a JSON array of levels,
best-first, each ``[price, size]`` a pair of JSON numbers; ``[]`` when empty:
``[[0.48,1234.5],[0.47,10]]``. A binary ``jsonb`` value is the version byte
(``pmstore._pgcopy.JSONB_VERSION``) and the JSON text; the server parses the
text, and a JSON number becomes a ``numeric`` holding exactly the digits sent.
So what is sent decides what is stored:

- levels that carry their texts (a batch built from Polymarket's decimal
  strings, ``pmstore.batches._decimal_levels``): the texts, unchanged
  (``sides_from_texts``);
- float64 levels (a built batch, the ingest fast path): each number as its
  shortest round-trip decimal (``sides_from_floats``, orjson's ``repr``
  digits): a decimal source string of at most 15 significant digits reads
  back as itself, minus trailing zeros (``"0.001"`` is stored as 0.001, not
  as 0.001000000000000000020816681711721685...).

Each returns an ``engines.Blob``: every row's body is a slice of one text laid
out for the whole chunk (no Python object per level), between the head
``\\x01[`` and the tail ``]``. Only finite values are written (a validated
batch has no others).
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

from pmstore._pgcopy import JSONB_VERSION
from pmstore._write.engines import Blob
from pmstore.batches._decimal_levels import LEVELS_PER_DUMP, DecimalLevels, float_levels_text
from pmstore.batches._levels import FlatLevels, flat_levels

__all__ = [
    "levels_field",
    "object_levels_field",
    "sides_from_floats",
    "sides_from_texts",
]

_HEAD: Final = JSONB_VERSION + b"["
_TAIL: Final = b"]"
_OPEN: Final = ord("[")
_CLOSE: Final = ord("]")
_COMMA: Final = ord(",")

Rows = slice | NDArray[np.intp]


def levels_field(flat: FlatLevels, rows: Rows) -> Blob:
    """The jsonb field of a levels column's ``rows``: the texts when the levels carry them,
    else the floats' shortest decimals."""
    if isinstance(flat, DecimalLevels):
        return sides_from_texts(flat, rows)
    return sides_from_floats(flat, rows)


def object_levels_field(sides: NDArray[np.object_]) -> Blob:
    """The jsonb field of sides given as objects (lists of ``(price, size)`` float tuples,
    a validated batch's form), as ``sides_from_floats``. Costs one C-level pass over the
    levels (``flat_levels``); sides in any other shape a numpy conversion each."""
    items = sides.tolist()
    flat = flat_levels(items)
    if flat is None:
        pairs = [np.asarray(side, dtype=np.float64).reshape(-1, 2) for side in items]
        counts = np.fromiter(map(len, pairs), dtype=np.int64, count=len(pairs))
        both = np.concatenate(pairs) if pairs else np.zeros((0, 2))
        flat = FlatLevels(counts, both[:, 0].copy(), both[:, 1].copy())
    return sides_from_floats(flat, slice(None))


def _blob(
    text: bytes | NDArray[np.uint8], counts: NDArray[np.int64], level_ends: NDArray[np.int64]
) -> Blob:
    """The Blob of rows whose levels ``[p,s]`` follow one another in ``text``, each but
    the last followed by a comma; ``level_ends[i]`` is one past level i's ``]``."""
    n = len(counts)
    starts = np.zeros(n, dtype=np.int64)
    bodies = np.zeros(n, dtype=np.int64)
    filled = counts > 0
    if filled.any():
        last = np.cumsum(counts)[filled] - 1
        first = last - counts[filled] + 1
        level_starts = np.empty(len(level_ends), dtype=np.int64)
        level_starts[0] = 0
        level_starts[1:] = level_ends[:-1] + 1  # past the comma
        starts[filled] = level_starts[first]
        bodies[filled] = level_ends[last] - starts[filled]
    return Blob(text, bodies + len(_HEAD) + len(_TAIL), starts, _HEAD, _TAIL)


def sides_from_floats(flat: FlatLevels, rows: Rows, *, block: int = LEVELS_PER_DUMP) -> Blob:
    """jsonb values ``\\x01[[p,s],[p,s],...]`` of the sides of ``rows`` from float64 levels.

    The chunk's levels as ``[p,s],[p,s],...`` (``float_levels_text``: orjson's shortest
    round-trip decimals, ``block`` levels a call, the texts digests and mixed columns
    give float levels); each row's
    levels are consecutive there, commas included, so its body is a slice of it,
    located by the levels' closing brackets. No Python object per level.
    """
    taken = flat.take(rows)
    text = float_levels_text(taken.prices, taken.sizes, block=block)
    closes = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == _CLOSE)
    return _blob(text, taken.counts, closes + 1)


def sides_from_texts(levels: DecimalLevels, rows: Rows) -> Blob:
    """jsonb values ``\\x01[[p,s],...]`` of the sides of ``rows``, the levels' texts passed
    through.

    Each level is laid out as ``[price,size],`` in a byte matrix (each text
    gathered from its buffer through a sliding-window view, one row copy a
    text), the padding dropped by one boolean compaction; the chunk's levels
    are then consecutive, each row's too. numpy only: no Python object per level.
    """
    taken = levels.take(rows)
    price, size = taken.price_text, taken.size_text
    wp, ws = price.width, size.width
    n = len(price.lengths)
    record = np.empty((n, wp + ws + 4), dtype=np.uint8)
    record[:, 0] = _OPEN
    record[:, 1 : 1 + wp] = price.padded(wp)
    record[:, 1 + wp] = _COMMA
    record[:, 2 + wp : 2 + wp + ws] = size.padded(ws)
    record[:, 2 + wp + ws] = _CLOSE
    record[:, 3 + wp + ws] = _COMMA
    text = record[record != 0]  # row-major: level after level, the padding dropped
    level_ends = np.cumsum(price.lengths + size.lengths + 4) - 1  # each level's comma
    return _blob(text, taken.counts, level_ends)
