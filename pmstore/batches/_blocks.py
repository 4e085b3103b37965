"""Passes over Python objects in row blocks, so that no single C-level call holds the GIL long.

One C-level call over a million Python objects (``np.fromiter``,
``dict.fromkeys``, ``map(len, ...)``, ``"".join``) holds the GIL for 20-70
ms, and a worker thread that only ever releases the GIL briefly (numpy
does, inside many calls) re-takes it before a waiting thread wakes up,
which also resets the waiter's request for a switch. The AsyncWriter runs
its CPU work in worker threads beside the event loop, so the loop would
wait for many such calls in a row (measured: 24 ms stalls behind 3 ms
calls). These helpers make the passes ``ROW_BLOCK`` rows at a time and hand
the GIL over between two blocks (``time.sleep(0)``: a waiting thread gets
it, and when none waits it costs a system call, ~1 µs); the stalls then
stay near one block's work (measured: 2.7 ms). The results are those of
the one-call forms. Each block's items are a short list, never a list of
the whole column: a young list of a million items makes every
garbage-collector pass over the young objects cost ~30 ms.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ROW_BLOCK",
    "all_of_types",
    "block_items",
    "block_map",
    "object_array",
    "row_blocks",
]

ROW_BLOCK: Final = 16_384
"""Rows per C-level pass over Python objects: ~1 ms of GIL for 80-byte token strings."""

Items = Sequence[Any] | NDArray[Any]
"""A column as a sequence or a 1-D numpy array."""


def row_blocks(n: int, size: int = ROW_BLOCK) -> Iterator[slice]:
    """``slice`` objects covering ``range(n)`` in order, ``size`` rows each (the last
    fewer); the GIL is handed over to a waiting thread between two of them."""
    for start in range(0, n, size):
        if start:
            time.sleep(0)  # releases the GIL: a waiting thread (the event loop) takes it
        yield slice(start, min(n, start + size))


def block_items(items: Items, rows: slice) -> list[Any]:
    """The items of ``rows`` as a list (``tolist`` for an array: its Python objects)."""
    part = items[rows]
    return part.tolist() if isinstance(part, np.ndarray) else list(part)


def object_array(items: Items) -> NDArray[np.object_]:
    """An object array of ``items`` as given (lists stay list items: no nested arrays);
    a numpy str array gives ``str`` items, as ``astype(object)`` does."""
    n = len(items)
    out = np.empty(n, dtype=object)
    for rows in row_blocks(n):
        part = items[rows]
        if isinstance(part, np.ndarray) and part.dtype.kind == "U":
            out[rows] = part.astype(object)
        else:
            out[rows] = np.fromiter(part, dtype=object, count=len(part))
    return out


def all_of_types(items: Items, types: frozenset[type]) -> bool:
    """True when the type of every item is one of ``types`` (exactly, not a subclass)."""
    return all(set(map(type, block_items(items, rows))) <= types for rows in row_blocks(len(items)))


def block_map(
    function: Callable[[Any], Any], items: Items, dtype: np.dtype[Any] | type
) -> NDArray[Any]:
    """``np.fromiter(map(function, items), dtype)``, a block at a time."""
    n = len(items)
    out = np.empty(n, dtype=dtype)
    for rows in row_blocks(n):
        part = block_items(items, rows)
        out[rows] = np.fromiter(map(function, part), dtype=dtype, count=len(part))
    return out
