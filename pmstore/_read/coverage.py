"""Coverage: where a token's price snapshots have holes.

    report = coverage(conn, token_ids, start, end, step=timedelta(minutes=1))
    report.gaps            # [Gap(token_id, start, end, steps), ...] runs of missing steps
    report.missing_tokens  # tokens without a single snapshot in [start, end)
    report.feed_gaps       # the recorder's feed_gaps rows of these tokens overlapping the range
    await coverage_async(aconn, ...)  # the same on a psycopg AsyncConnection

[start, end) is cut into steps of ``step`` from ``start`` (the last may be
shorter); a step is covered when the token has at least one snapshot in it.
A gap is a maximal run of uncovered steps of a token that has some rows; a
token with none is listed in ``missing_tokens`` instead.

Two ways, same reports (the tests check them against each other): below
``SMALL_REQUEST`` tokens x steps the work is on the server; from there on the
timestamps travel in bulk and numpy finds the gaps (``pmstore._read.gaps``:
one index-only scan per token, in parallel parts, the rows streamed and
handled as they come; figures in benchmarks/README.md).

On the server (``COVERAGE_GAPS_SQL``): for each token, a range
scan of the ``(token_id, ts DESC)`` index over [start, end) (index-only once
the chunk is vacuumed) in ts order, ``time_bucket`` with ``origin => start``
per entry, and ``lag``/``lead`` over that order (no sort, no hash) to find the
rows that follow a hole. Only those rows travel back. Cost: one index entry
read per snapshot in the range, no sequential scan, no per-step probe, but a
window over every row.

The recorder's own account of what it lost (``feed_gaps``, migration 0017:
why, and from when to when, at the receive-time precision) comes along in
``Coverage.feed_gaps``: two more queries (a catalog lookup and the gaps
overlapping the range, by the table's primary key), None where the database
has no such table.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, cast

import psycopg
from pydantic import BaseModel, ConfigDict, Field

from pmstore._read.gaps import (
    DEFAULT_PARTS,
    TIMESTAMPS_SETTINGS,
    Runs,
    gap_runs,
    stream_rows,
    timestamps_query,
)
from pmstore._read.settings import local_settings, local_settings_async
from pmstore._utc import aware_utc
from pmstore.errors import ConfigurationError
from pmstore.models import UtcDatetime
from pmstore.recorder.health import FeedGap, feed_gaps, feed_gaps_async, recorded, recorded_async

__all__ = [
    "ACTIVE_MARKET_TOKENS_SQL",
    "COVERAGE_GAPS_SQL",
    "DEFAULT_STEP",
    "SMALL_REQUEST",
    "Coverage",
    "Gap",
    "active_market_tokens",
    "coverage",
    "coverage_async",
]

DEFAULT_STEP: Final = timedelta(minutes=1)
"""The default step: the seed plan's cadence of one price snapshot a minute."""

SMALL_REQUEST: Final = 100_000
"""Tokens x steps below which coverage runs on the server (``COVERAGE_GAPS_SQL``); from
here on, by the bulk path (``pmstore._read.gaps``)."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")

# Per token, its rows in index order (ts ascending: the (token_id, ts DESC) index
# read backwards, chunks in order), so the window needs no sort: each row's
# bucket, the previous row's (``before`` for the first) and whether it is the
# last. Only rows after a hole, the last row and tokens without rows (NULLs,
# from the LEFT JOIN) come back; ``coverage`` turns them into gaps.
COVERAGE_GAPS_SQL: Final = """
    SELECT t.token_id, x.previous, x.bucket, x.last
    FROM unnest(%(token_ids)s::text[]) AS t(token_id)
    LEFT JOIN LATERAL (
        SELECT b.bucket,
               lag(b.bucket, 1, %(before)s::timestamptz) OVER w AS previous,
               lead(b.bucket) OVER w IS NULL AS last
        FROM (
            SELECT s.ts, time_bucket(%(step)s::interval, s.ts, %(start)s::timestamptz) AS bucket
            FROM price_snapshots s
            WHERE s.token_id = t.token_id AND s.ts >= %(start)s AND s.ts < %(end)s
        ) AS b
        WINDOW w AS (ORDER BY b.ts)
    ) AS x ON true
    WHERE x.bucket IS NULL
       OR x.bucket > x.previous + %(step)s::interval
       OR (x.last AND x.bucket + %(step)s::interval < %(after)s::timestamptz)
    ORDER BY t.token_id COLLATE "C", x.bucket
"""

ACTIVE_MARKET_TOKENS_SQL: Final = """
    SELECT DISTINCT token_id
    FROM markets m CROSS JOIN LATERAL unnest(m.clob_token_ids) AS token_id
    WHERE m.active AND token_id <> ''
    ORDER BY token_id
"""
"""The tokens of the active markets (what ``pmstore coverage`` checks by default)."""


class Gap(BaseModel):
    """A run of missing steps of one token: no snapshot in [start, end), ``steps`` steps."""

    model_config = _FROZEN

    token_id: str
    start: UtcDatetime
    end: UtcDatetime
    steps: int = Field(ge=1)


_GAP_FIELDS: Final = set(Gap.model_fields)
"""Every field of a Gap: the bulk path builds its gaps with all of them, unvalidated."""


class Coverage(BaseModel):
    """The gaps of some tokens over [start, end) in steps of ``step``.

    ``steps`` is the number of steps per token; ``tokens`` how many tokens were
    checked; ``gaps`` the runs of missing steps of tokens that have rows, by
    token then time; ``missing_tokens`` those without any row, sorted.
    ``feed_gaps``: the recorder's ``feed_gaps`` rows of these tokens that
    overlap [start, end) (open ones included: ``ended_at`` None), by token
    then start; None when the database has no ``feed_gaps`` table (migrated
    by a pmstore before migration 0017).
    """

    model_config = _FROZEN

    start: UtcDatetime
    end: UtcDatetime
    step: timedelta
    steps: int
    tokens: int
    gaps: list[Gap]
    missing_tokens: list[str]
    feed_gaps: list[FeedGap] | None = None

    @property
    def complete(self) -> bool:
        """True when every token has a snapshot in every step."""
        return not self.gaps and not self.missing_tokens

    @property
    def missing_steps(self) -> int:
        """Missing steps over all tokens, those of missing tokens included."""
        return sum(g.steps for g in self.gaps) + self.steps * len(self.missing_tokens)

    @property
    def ratio(self) -> float:
        """Covered steps / all steps (1.0 when complete, 0.0 with no tokens)."""
        total = self.steps * self.tokens
        return 1.0 - self.missing_steps / total if total else 0.0


@dataclass(frozen=True)
class _Request:
    """A checked coverage request: its bounds, grid and tokens (see ``_checked``)."""

    start: datetime
    end: datetime
    step: timedelta
    steps: int
    tokens: list[str]

    @property
    def grid_end(self) -> datetime:
        """The end of the last step (after ``end`` when the last step is partial)."""
        return self.start + self.steps * self.step

    @property
    def params(self) -> dict[str, Any]:
        """The parameters of ``COVERAGE_GAPS_SQL``."""
        return {
            "token_ids": self.tokens,
            "start": self.start,
            "end": self.end,
            "step": self.step,
            "before": self.start - self.step,
            "after": self.grid_end,
        }


def _checked_request(
    token_ids: Sequence[str], start: datetime, end: datetime, step: timedelta
) -> _Request:
    """The request of ``coverage``'s arguments; ConfigurationError as it documents."""
    lo, hi = aware_utc("start", start), aware_utc("end", end)
    if lo >= hi:
        raise ConfigurationError(
            f"empty time range: start {lo.isoformat()} >= end {hi.isoformat()}"
        )
    if not isinstance(step, timedelta) or step <= timedelta(0) or step % timedelta(microseconds=1):
        raise ConfigurationError(f"step must be a positive timedelta of whole µs, not {step!r}")
    steps = -((lo - hi) // step)  # ceil: the last step may be partial
    if steps > 10_000_000:
        raise ConfigurationError(f"{steps} steps per token: choose a longer step")
    if isinstance(token_ids, str | bytes):
        raise ConfigurationError("token_ids must be a sequence of token ids, not one str")
    tokens = list(dict.fromkeys(token_ids))
    for token in tokens:
        if not isinstance(token, str) or not token:
            raise ConfigurationError(f"token ids must be non-empty str, not {token!r}")
    return _Request(start=lo, end=hi, step=step, steps=steps, tokens=tokens)


def _report(request: _Request, rows: Sequence[Sequence[Any]]) -> Coverage:
    """The Coverage of ``request`` from the rows ``COVERAGE_GAPS_SQL`` returned."""
    step, after = request.step, request.grid_end
    gaps: list[Gap] = []
    missing: list[str] = []
    for token_id, previous, bucket, last in rows:
        if bucket is None:
            missing.append(token_id)
            continue
        if bucket > previous + step:  # the steps after the previous row's, up to this one
            gaps.append(_gap(token_id, previous + step, bucket, step))
        if last and bucket + step < after:  # the steps after the last row
            gaps.append(_gap(token_id, bucket + step, min(after, request.end), step, after))
    return Coverage(
        start=request.start,
        end=request.end,
        step=step,
        steps=request.steps,
        tokens=len(request.tokens),
        gaps=gaps,
        missing_tokens=sorted(missing, key=str.encode),
    )


def _report_of_runs(request: _Request, runs: Runs) -> Coverage:
    """The Coverage of ``request`` from the ``gap_runs`` of its timestamps (the bulk path)."""
    step = request.step
    found, missing = runs
    gaps = [
        Gap.model_construct(
            _GAP_FIELDS,
            token_id=token,
            start=request.start + first * step,
            end=min(request.start + after * step, request.end),
            steps=after - first,
        )
        for token, first, after in found
    ]
    return Coverage(
        start=request.start,
        end=request.end,
        step=step,
        steps=request.steps,
        tokens=len(request.tokens),
        gaps=gaps,
        missing_tokens=missing,
    )


def _bulk(request: _Request, bulk: bool | None) -> bool:
    """Whether ``request`` takes the bulk path (``bulk`` None: by its size)."""
    if bulk is None:
        return len(request.tokens) * request.steps >= SMALL_REQUEST
    if not isinstance(bulk, bool):
        raise ConfigurationError(f"bulk must be None, True or False, not {bulk!r}")
    return bulk


def coverage(
    conn: psycopg.Connection[Any],
    token_ids: Sequence[str],
    start: datetime,
    end: datetime,
    step: timedelta = DEFAULT_STEP,
    *,
    bulk: bool | None = None,
) -> Coverage:
    """Report each token's runs of steps without a price snapshot in [start, end).

    Duplicate token ids are checked once. Runs in the caller's transaction
    (the bulk path in a savepoint of its own holding its settings). ``bulk``:
    None chooses by size (``SMALL_REQUEST``), True/False forces the bulk or
    the server-side path (same report). Raises ConfigurationError for naive
    or empty bounds, a step that is not a positive whole number of
    microseconds, more than 10M steps, or ``token_ids`` that is one str or
    holds a non-str/empty id. Cost: see the module notes (one query; two
    small ones for the feed gaps; the bulk path streams its rows: memory for
    a block of timestamps and the gaps, not per snapshot).
    """
    request = _checked_request(token_ids, start, end, step)
    recorded_gaps = (
        feed_gaps(conn, request.start, request.end, request.tokens) if recorded(conn) else None
    )
    if not request.tokens:
        return _with_feed_gaps(_report(request, []), recorded_gaps)
    if _bulk(request, bulk):
        sql, values, ordered = timestamps_query(
            request.tokens, request.start, request.end, DEFAULT_PARTS
        )
        with (
            conn.transaction(),
            local_settings(conn, TIMESTAMPS_SETTINGS),
            conn.cursor(binary=True) as cur,
            # closed on a client-side error too, before the transaction ends
            contextlib.closing(
                cast(Generator[Any, None, None], cur.stream(sql, values, size=stream_rows()))
            ) as streamed,
        ):
            runs = gap_runs(streamed, ordered, request.start, request.step, request.steps)
        return _with_feed_gaps(_report_of_runs(request, runs), recorded_gaps)
    rows = conn.execute(COVERAGE_GAPS_SQL, request.params, prepare=False).fetchall()
    return _with_feed_gaps(_report(request, rows), recorded_gaps)


async def coverage_async(
    conn: psycopg.AsyncConnection[Any],
    token_ids: Sequence[str],
    start: datetime,
    end: datetime,
    step: timedelta = DEFAULT_STEP,
    *,
    bulk: bool | None = None,
) -> Coverage:
    """``coverage`` on an ``AsyncConnection``: the same queries, checks and report (the bulk
    path fetches its rows whole, ~8 bytes a snapshot, and finds the gaps in a thread)."""
    request = _checked_request(token_ids, start, end, step)
    recorded_gaps = (
        await feed_gaps_async(conn, request.start, request.end, request.tokens)
        if await recorded_async(conn)
        else None
    )
    if not request.tokens:
        return _with_feed_gaps(_report(request, []), recorded_gaps)
    if _bulk(request, bulk):
        sql, values, ordered = timestamps_query(
            request.tokens, request.start, request.end, DEFAULT_PARTS
        )
        async with (
            conn.transaction(),
            local_settings_async(conn, TIMESTAMPS_SETTINGS),
            conn.cursor(binary=True) as cur,
        ):
            await cur.execute(sql, values, prepare=False)
            rows = await cur.fetchall()
        runs = await asyncio.to_thread(
            gap_runs, rows, ordered, request.start, request.step, request.steps
        )
        return _with_feed_gaps(_report_of_runs(request, runs), recorded_gaps)
    cur = await conn.execute(COVERAGE_GAPS_SQL, request.params, prepare=False)
    return _with_feed_gaps(_report(request, await cur.fetchall()), recorded_gaps)


def _with_feed_gaps(report: Coverage, recorded_gaps: list[FeedGap] | None) -> Coverage:
    """``report`` with the recorder's feed gaps (None: the database has no such table)."""
    return report.model_copy(update={"feed_gaps": recorded_gaps})


def _gap(
    token_id: str, start: datetime, end: datetime, step: timedelta, grid_end: datetime | None = None
) -> Gap:
    """The gap [start, end); its steps counted up to ``grid_end`` (the last step's end)."""
    steps = ((grid_end or end) - start) // step
    return Gap(token_id=token_id, start=start, end=end, steps=steps)


def active_market_tokens(conn: psycopg.Connection[Any]) -> list[str]:
    """The token ids of every active market (``ACTIVE_MARKET_TOKENS_SQL``), sorted."""
    return [str(row[0]) for row in conn.execute(ACTIVE_MARKET_TOKENS_SQL).fetchall()]
