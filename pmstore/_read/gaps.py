"""Coverage's bulk path: each token's timestamps fetched in bulk, gaps found with numpy.

    sql, values, ordered = timestamps_query(tokens, start, end, parts)
    runs = gap_runs(rows, ordered, start, step, steps)   # rows: (token_id, bytes) of sql

The server does the least it can per snapshot: one index-only range scan per
token (the ``(token_id, ts DESC)`` index, tokens given as one ``= ANY``
array per part) whose timestamps it packs into one ``bytea`` per token
(``string_agg(timestamptz_send(ts))``: 8 bytes each, the binary wire form,
µs since 2000-01-01). The tokens are split into ``parts`` contiguous parts,
each a branch of one ``UNION ALL`` that the planner runs as a Parallel
Append: each part in its own process (settings local to the transaction,
``TIMESTAMPS_SETTINGS``: parallel setup and tuple costs 0, JIT off).

The client turns the bytes into step numbers (integer µs arithmetic:
exact, no floating point) and marks them in a bitmap of tokens x steps, a
block of tokens at a time (``BITMAP_CELLS``); the runs of unmarked steps are
the gaps. ``pmstore._read.coverage`` turns them into its report, with the same
rules as its server-side query (``COVERAGE_GAPS_SQL``); the tests check both
give the same reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np

__all__ = [
    "BLOCK",
    "DEFAULT_PARTS",
    "TIMESTAMPS_PART_SQL",
    "TIMESTAMPS_SETTINGS",
    "Runs",
    "gap_runs",
    "timestamps_query",
]

TIMESTAMPS_PART_SQL: Final = """
    SELECT token_id, string_agg(timestamptz_send(ts), ''::bytea) AS ts
    FROM price_snapshots
    WHERE token_id = ANY(%(tokens_{part})s::text[]) AND ts >= %(start)s AND ts < %(end)s
    GROUP BY token_id
"""
"""One part's tokens with rows in [start, end), each with its timestamps as 8-byte
big-endian µs since 2000-01-01 (index order, not sorted), back to back."""

TIMESTAMPS_SETTINGS: Final = {
    "jit": "off",
    "parallel_setup_cost": "0",
    "parallel_tuple_cost": "0",
}
"""For the bulk query (then put back, ``pmstore._read.settings``): the parts as a
Parallel Append, no JIT."""

DEFAULT_PARTS: Final = 2
"""Parts of the token list (server processes, where it has parallel workers free)."""

BLOCK: Final = 1 << 18
"""Timestamps handled at a time by ``gap_runs`` (2 MiB of int64: they stay in cache)."""

_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)

Runs = tuple[list[tuple[str, int, int]], list[str]]
"""(token, first missing step, step after the run) per gap, by token (bytes) then step;
and the tokens without any row, in byte order."""


def timestamps_query(
    tokens: Sequence[str], start: datetime, end: datetime, parts: int
) -> tuple[str, dict[str, Any], list[str]]:
    """The SQL of ``parts`` parts (fewer for fewer tokens), its parameters, and the
    tokens in byte order (the rows of the bitmap)."""
    ordered = sorted(tokens, key=str.encode)
    count = max(1, min(parts, len(ordered)))
    bounds = [len(ordered) * i // count for i in range(count + 1)]
    values: dict[str, Any] = {"start": start, "end": end}
    for i in range(count):
        values[f"tokens_{i}"] = ordered[bounds[i] : bounds[i + 1]]
    sql = "UNION ALL".join(TIMESTAMPS_PART_SQL.format(part=i) for i in range(count))
    return sql, values, ordered


def _us(value: datetime) -> int:
    """µs since 2000-01-01 UTC (timestamptz's wire form)."""
    return (value - _EPOCH) // _US


def gap_runs(
    rows: Sequence[Sequence[Any]],
    ordered: list[str],
    start: datetime,
    step: timedelta,
    steps: int,
    *,
    block: int = BLOCK,
) -> Runs:
    """The runs of steps without a timestamp, from the rows (token, bytes) of
    ``timestamps_query``; steps of ``step`` from ``start``, ``steps`` of them.

    Whole tokens at a time, about ``block`` timestamps (one token's at least).
    Each token's timestamps come in index order, descending; where they do not,
    they are sorted first. Two timestamps next to each other can only have a
    gap between them when they are more than a step apart: only those get
    their steps computed (integer µs arithmetic: exact). Cost: a byteswap, a
    subtraction and a comparison per snapshot, then numpy work per candidate
    and Python work per gap.
    """
    row_of = {token: i for i, token in enumerate(ordered)}
    pairs = sorted(((row_of[token], blob) for token, blob in rows), key=itemgetter(0))
    present = [row for row, _ in pairs]
    seen = set(present)
    missing = [token for i, token in enumerate(ordered) if i not in seen]
    blobs = [blob for _, blob in pairs]
    counts = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs)) // 8
    bounds = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum(counts, out=bounds[1:])
    origin, width = _us(start), step // _US
    found: list[tuple[np.ndarray[Any, Any], ...]] = []
    lo = 0
    while lo < len(blobs):
        hi = max(lo + 1, int(np.searchsorted(bounds, bounds[lo] + block, side="right")) - 1)
        edges = bounds[lo : hi + 1] - bounds[lo]
        found.append(_block_runs(blobs[lo:hi], edges, origin, width, steps, lo))
        lo = hi
    if not found:
        return [], missing
    owners, firsts, afters = (np.concatenate(parts) for parts in zip(*found, strict=True))
    order = np.lexsort((firsts, owners))
    runs = [
        (ordered[present[i]], first, after)
        for i, first, after in zip(
            owners[order].tolist(), firsts[order].tolist(), afters[order].tolist(), strict=True
        )
    ]
    return runs, missing


def _block_runs(
    blobs: list[bytes], edges: np.ndarray[Any, Any], origin: int, width: int, steps: int, lo: int
) -> tuple[np.ndarray[Any, Any], ...]:
    """(token, first, after) arrays of the gaps of a block of tokens (numbered from ``lo``),
    ``edges`` the offsets of their timestamps in the block (from 0)."""
    at = np.frombuffer(b"".join(blobs), dtype=">i8").astype(np.int64)
    within = np.ones(max(0, len(at) - 1), dtype=np.bool_)  # False: two tokens' timestamps
    within[edges[1:-1] - 1] = False
    apart = at[:-1] - at[1:]
    apart -= 1  # >= width: more than a step apart, or (wrapped) not descending, or equal
    odd = np.flatnonzero(apart.view(np.uint64) >= width)
    odd = odd[within[odd]]
    if (apart[odd] < -1).any():  # not descending within a token: sort each token's
        owner = np.repeat(np.arange(len(blobs)), np.diff(edges))
        at = at[np.lexsort((-at, owner))]
        apart = at[:-1] - at[1:]
        odd = np.flatnonzero(apart > width)
        odd = odd[within[odd]]
    upper = (at[odd] - origin) // width
    lower = (at[odd + 1] - origin) // width
    hole = upper - lower > 1
    odd, upper, lower = odd[hole], upper[hole], lower[hole]
    highest = (at[edges[:-1]] - origin) // width
    lowest = (at[edges[1:] - 1] - origin) // width
    before = np.flatnonzero(lowest > 0)  # tokens without their first steps
    after = np.flatnonzero(highest < steps - 1)  # ... or their last ones
    owners = np.concatenate([before, np.searchsorted(edges, odd, side="right") - 1, after])
    firsts = np.concatenate([np.zeros(len(before), np.int64), lower + 1, highest[after] + 1])
    ends = np.concatenate([lowest[before], upper, np.full(len(after), steps, np.int64)])
    return owners + lo, firsts, ends
