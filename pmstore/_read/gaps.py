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
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np

__all__ = [
    "BITMAP_CELLS",
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

BITMAP_CELLS: Final = 1 << 25
"""Tokens x steps marked at a time (32 MiB of int8): whole tokens, at least one."""

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
    bitmap_cells: int = BITMAP_CELLS,
) -> Runs:
    """The runs of steps without a timestamp, from the rows (token, bytes) of
    ``timestamps_query``; steps of ``step`` from ``start``, ``steps`` of them.

    Cost: a byteswap and an integer division per snapshot, then a few numpy
    passes over tokens x steps, ``bitmap_cells`` at a time.
    """
    row_of = {token: i for i, token in enumerate(ordered)}
    pairs = sorted(((row_of[token], blob) for token, blob in rows), key=lambda pair: pair[0])
    blobs = [blob for _, blob in pairs]
    present = np.fromiter((row for row, _ in pairs), dtype=np.int64, count=len(pairs))
    counts = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs)) // 8
    bounds = np.zeros(len(present) + 1, dtype=np.int64)
    np.cumsum(counts, out=bounds[1:])
    at_step = np.empty(int(bounds[-1]), dtype=np.int64)
    for i, blob in enumerate(blobs):
        at_step[bounds[i] : bounds[i + 1]] = np.frombuffer(blob, dtype=">i8")
    at_step -= _us(start)
    at_step //= step // _US  # each snapshot's step, from 0
    runs: list[tuple[str, int, int]] = []
    width = steps + 2  # a marked cell before the first step and after the last
    per_block = max(1, bitmap_cells // width)
    for lo in range(0, len(present), per_block):
        hi = min(len(present), lo + per_block)
        marked = np.zeros((hi - lo) * width, dtype=np.int8)
        marked[0::width] = marked[width - 1 :: width] = 1
        cells = np.repeat(np.arange(1, (hi - lo) * width, width), counts[lo:hi])
        cells += at_step[bounds[lo] : bounds[hi]]
        marked[cells] = 1
        # Per token the changes alternate: a gap starts (1 -> 0), then ends (0 -> 1).
        change = np.flatnonzero(np.diff(marked))
        first, after = change[0::2], change[1::2]
        owners = present[lo + first // width].tolist()
        runs.extend(
            (ordered[r], f, a)
            for r, f, a in zip(
                owners, (first % width).tolist(), (after % width).tolist(), strict=True
            )
        )
    seen = set(present.tolist())
    missing = [token for i, token in enumerate(ordered) if i not in seen]
    return runs, missing
