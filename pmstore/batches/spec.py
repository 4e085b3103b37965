"""The column spec of the batches: how each column is stored (its kind and dtype)
and which value rules it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["TS_DTYPE", "Level"]


Level = tuple[float, float]
"""One order-book level: (price, size)."""


TS_DTYPE = np.dtype("datetime64[us]")
"""The dtype of every batch's ``ts`` column."""


_FLOAT_DTYPE = np.dtype(np.float64)


_OBJECT_DTYPE = np.dtype(object)


_Kind = Literal["ts", "text", "float", "levels"]


_DTYPE_OF_KIND: dict[_Kind, np.dtype[Any]] = {
    "ts": TS_DTYPE,
    "text": _OBJECT_DTYPE,
    "float": _FLOAT_DTYPE,
    "levels": _OBJECT_DTYPE,
}


@dataclass(frozen=True, slots=True)
class _Column:
    """How one column is stored and checked."""

    name: str
    kind: _Kind
    required: bool = True
    nullable: bool = False  # float: NaN is NULL; text: None is filled in by the batch
    low: float | None = None  # float: smallest valid value (inclusive)
    high: float | None = None  # float: largest valid value (inclusive)
    choices: tuple[str, ...] | None = None  # text: the only valid values
    descending: bool = False  # levels: sorted by descending price (bids)
