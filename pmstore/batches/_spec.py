"""The column spec of the batches: how each column is stored (its kind and dtype)
and which value rules it has.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

__all__ = ["TS_DTYPE", "ColumnKind", "ColumnSpec", "Level", "column", "spec_of"]


Level = tuple[float, float]
"""One order-book level: (price, size)."""


TS_DTYPE = np.dtype("datetime64[us]")
"""The dtype of every batch's ``ts`` column."""


_FLOAT_DTYPE = np.dtype(np.float64)


OBJECT_DTYPE = np.dtype(object)


ColumnKind = Literal["ts", "text", "float", "levels"]


DTYPE_OF_KIND: dict[ColumnKind, np.dtype[Any]] = {
    "ts": TS_DTYPE,
    "text": OBJECT_DTYPE,
    "float": _FLOAT_DTYPE,
    "levels": OBJECT_DTYPE,
}


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """How one column is stored and checked (declared with :func:`column`)."""

    name: str
    kind: ColumnKind
    required: bool = True
    nullable: bool = False  # float: NaN is NULL; text: None is filled in by the batch
    low: float | None = None  # float: smallest valid value (inclusive)
    high: float | None = None  # float: largest valid value (inclusive)
    choices: tuple[str, ...] | None = None  # text: the only valid values
    descending: bool = False  # levels: sorted by descending price (bids)


_SPEC_KEY: Final = "pmstore.batches.column"


def column(
    kind: ColumnKind,
    *,
    required: bool = True,
    nullable: bool = False,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] | None = None,
    descending: bool = False,
) -> Any:
    """Declare a batch column: a dataclass field that carries its :class:`ColumnSpec`.

    The column's name is the field's name, and the fields' order is the COPY
    order, so each table's column list is written once: as the batch's fields
    (see :func:`spec_of`). Costs nothing at run time.
    """
    spec = ColumnSpec("", kind, required, nullable, low, high, choices, descending)
    return dataclasses.field(metadata={_SPEC_KEY: spec})


def spec_of(batch_class: type[Any]) -> tuple[ColumnSpec, ...]:
    """The column specs of a batch dataclass, in field (COPY) order, named after the fields."""
    return tuple(
        dataclasses.replace(f.metadata[_SPEC_KEY], name=f.name)
        for f in dataclasses.fields(batch_class)
        if _SPEC_KEY in f.metadata
    )
