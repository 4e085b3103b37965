"""Coverage's bulk path: each token's timestamps fetched in bulk, gaps found in one pass.

    sql, values, ordered = timestamps_query(tokens, start, end, parts)
    runs = gap_runs(rows, ordered, start, step, steps)   # rows: (token_id, bytes) of sql

The server does the least it can per snapshot: one index-only range scan per
token (the ``(token_id, ts DESC)`` index, tokens given as one ``= ANY``
array per part, sent in binary) whose timestamps it packs into one ``bytea``
per token (``string_agg(timestamptz_send(ts))``: 8 bytes each, the binary
wire form, µs since 2000-01-01). The tokens are split into ``parts``
contiguous parts, each a branch of one ``UNION ALL`` that the planner runs as
a Parallel Append: each part in its own process (settings local to the
transaction, ``TIMESTAMPS_SETTINGS``: parallel setup and tuple costs 0, JIT
off). The rows can be streamed (``stream_rows``): ``gap_runs`` takes them as
they come, so the client's work overlaps the server's.

The client needs no tokens x steps bitmap: a token's timestamps come in index
order (descending, across chunks too; sorted first where not), and a gap lies
between two neighbours only where they are more than a step apart, so one
subtraction and one comparison per snapshot find the few pairs whose steps are
computed (integer µs arithmetic: exact, no floating point), a block of tokens
at a time (``BLOCK`` timestamps). Plus each token's first and last step. The
pass is C (``pmstore._copydata.runs``, no array allocated) where pmstore was
built with it, else numpy over the block (the reference, and the path for a
block whose timestamps are not in order). ``pmstore._read.coverage`` turns the
runs into its report, with the same rules as its server-side query (``COVERAGE_GAPS_SQL``);
the tests check both give the same reports, on data with several rows in a
step, duplicates, rows on step boundaries and unsorted input.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any, Final

import numpy as np
import psycopg

from pmstore._optional import compiled_module
from pmstore.errors import CopyDecodeError

__all__ = [
    "BLOCK",
    "DEFAULT_PARTS",
    "STREAM_ROWS",
    "TIMESTAMPS_PART_SQL",
    "TIMESTAMPS_SETTINGS",
    "Runs",
    "gap_runs",
    "stream_rows",
    "timestamps_query",
]

TIMESTAMPS_PART_SQL: Final = """
    SELECT token_id, string_agg(timestamptz_send(ts), ''::bytea) AS ts
    FROM (
        SELECT token_id, ts
        FROM price_snapshots
        WHERE token_id = ANY(%(tokens_{part})b::text[]) AND ts >= %(start)s AND ts < %(end)s
        ORDER BY token_id, ts DESC
    ) AS rows
    GROUP BY token_id
"""
"""One part's tokens with rows in [start, end), each with its timestamps as 8-byte
big-endian µs since 2000-01-01, back to back, in index order: descending. The inner
``ORDER BY`` is the index's order (across chunks, a Merge Append on both keys instead
of on the token alone, which interleaved the chunks' timestamps of a token; no Sort
node on uncompressed chunks) and the aggregate usually takes its rows in that order,
as PostgreSQL's documentation says of a sorted subquery: not a guarantee, so
``gap_runs`` checks, and sorts a token's timestamps where they are not in order."""

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

STREAM_ROWS: Final = 64
"""Rows (tokens) per chunk when the bulk query is streamed (``stream_rows``)."""

_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)

IntArray = np.ndarray[Any, np.dtype[np.int64]]

Runs = tuple[list[tuple[str, int, int]], list[str]]
"""(token, first missing step, step after the run) per gap, by token (bytes) then step;
and the tokens without any row, in byte order."""


def timestamps_query(
    tokens: Sequence[str], start: datetime, end: datetime, parts: int
) -> tuple[str, dict[str, Any], list[str]]:
    """The SQL of ``parts`` parts (fewer for fewer tokens), its parameters, and the
    tokens in byte order (the order of the runs; ``gap_runs`` numbers tokens by it)."""
    ordered = sorted(tokens, key=str.encode)
    count = max(1, min(parts, len(ordered)))
    bounds = [len(ordered) * i // count for i in range(count + 1)]
    values: dict[str, Any] = {"start": start, "end": end}
    for i in range(count):
        values[f"tokens_{i}"] = ordered[bounds[i] : bounds[i + 1]]
    sql = "UNION ALL".join(TIMESTAMPS_PART_SQL.format(part=i) for i in range(count))
    return sql, values, ordered


def stream_rows() -> int:
    """Rows per chunk when streaming the bulk query: ``STREAM_ROWS`` where libpq can
    (17 and later), else one (psycopg's single-row mode)."""
    return STREAM_ROWS if psycopg.capabilities.has_stream_chunked() else 1


def _us(value: datetime) -> int:
    """µs since 2000-01-01 UTC (timestamptz's wire form)."""
    return (value - _EPOCH) // _US


def gap_runs(
    rows: Iterable[Sequence[Any]],
    ordered: list[str],
    start: datetime,
    step: timedelta,
    steps: int,
    *,
    block: int = BLOCK,
    compiled: bool = True,
) -> Runs:
    """The runs of steps without a timestamp, from the rows (token, bytes) of
    ``timestamps_query``; steps of ``step`` from ``start``, ``steps`` of them.

    ``rows`` may be a stream: they are taken as they come, whole tokens at a
    time until ``block`` timestamps (so the work overlaps the server's). Each
    token's timestamps come in index order, descending; where they do not,
    they are sorted first. Two neighbouring timestamps can only have a gap
    between them when they are more than a step apart: only those get their
    steps computed (integer µs arithmetic: exact). The search runs in C
    (``pmstore._copydata.runs``: one pass, no array allocated) where pmstore was
    built with it and the block is in index order; else, and with
    ``compiled=False``, in numpy (same runs). Cost: a byteswap, a subtraction
    and a comparison per snapshot (numpy: a few passes over the block, and a
    sort of each token not in order), Python work per token and per gap.
    Raises CopyDecodeError for a token's bytes that are not whole 8-byte
    timestamps (none, or a length not a multiple of 8).
    """
    module = compiled_module() if compiled else None
    row_of = {token: i for i, token in enumerate(ordered)}
    origin, width = _us(start), step // _US
    found: list[tuple[IntArray, IntArray, IntArray]] = []
    seen: set[int] = set()
    owners: list[int] = []
    blobs: list[bytes] = []
    size = 0
    for token, blob in rows:
        if not blob or len(blob) % 8:
            raise CopyDecodeError(
                f"coverage: token {token}: {len(blob)} bytes of timestamps, not a whole "
                "number of 8-byte ones (a query not matching TIMESTAMPS_PART_SQL)"
            )
        owners.append(row_of[token])
        blobs.append(blob)
        size += len(blob)
        if size >= 8 * block:
            found.append(_block_runs(module, blobs, owners, origin, width, steps))
            seen.update(owners)
            owners, blobs, size = [], [], 0
    if blobs:
        found.append(_block_runs(module, blobs, owners, origin, width, steps))
        seen.update(owners)
    missing = [token for i, token in enumerate(ordered) if i not in seen]
    if not found:
        return [], missing
    rows_of, firsts, afters = (np.concatenate(parts) for parts in zip(*found, strict=True))
    order = np.lexsort((firsts, rows_of))
    runs = [
        (ordered[r], first, after)
        for r, first, after in zip(
            rows_of[order].tolist(), firsts[order].tolist(), afters[order].tolist(), strict=True
        )
    ]
    return runs, missing


def _block_runs(
    module: ModuleType | None,
    blobs: list[bytes],
    rows: list[int],
    origin: int,
    width: int,
    steps: int,
) -> tuple[IntArray, IntArray, IntArray]:
    """(row in ``ordered``, first step, step after) of each gap of a block of tokens, their
    rows ``rows`` and their timestamps ``blobs`` (origin and width in µs): by the compiled
    ``module`` where given and it takes the block, else by ``_numpy_block_runs``."""
    if module is not None:
        out = bytearray()
        if module.runs(blobs, origin, width, steps, out):
            triples = np.frombuffer(out, dtype=np.int64).reshape(-1, 3).T
            return np.asarray(rows, dtype=np.int64)[triples[0]], triples[1], triples[2]
    return _numpy_block_runs(blobs, rows, origin, width, steps)


def _numpy_block_runs(
    blobs: list[bytes], rows: list[int], origin: int, width: int, steps: int
) -> tuple[IntArray, IntArray, IntArray]:
    """``_block_runs`` in numpy: the reference, and the path for any block (unsorted
    timestamps) the compiled search declines."""
    counts = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs)) // 8
    edges = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum(counts, out=edges[1:])
    at = np.frombuffer(b"".join(blobs), dtype=">i8").astype(np.int64)
    within = np.ones(max(0, len(at) - 1), dtype=np.bool_)  # False: two tokens' timestamps
    within[edges[1:-1] - 1] = False
    apart = at[:-1] - at[1:]
    apart -= 1  # >= width: more than a step apart, or (wrapped) not descending, or equal
    odd = np.flatnonzero(apart.view(np.uint64) >= width)
    odd = odd[within[odd]]
    if (apart[odd] < -1).any():  # not descending within a token: sort each token's
        owner = np.repeat(np.arange(len(blobs)), counts)
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
    local = np.concatenate([before, np.searchsorted(edges, odd, side="right") - 1, after])
    firsts = np.concatenate([np.zeros(len(before), np.int64), lower + 1, highest[after] + 1])
    ends = np.concatenate([lowest[before], upper, np.full(len(after), steps, np.int64)])
    return np.asarray(rows, dtype=np.int64)[local], firsts, ends
