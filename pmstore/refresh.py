"""Continuous aggregates that stay true under late data: the pending-refresh queue.

The hourly refresh policies (migration 0007) cover only ``[now - 3 h, now -
1 h]``; rows written into older hours would never reach ``price_candles_1h``
and ``trade_volume_1h``. So (migration 0011):

- the Writer records the hours each price or trade batch touched
  (``touched_ranges``, ``RECORD_TOUCHED_SQL``) in ``pmstore_refresh_queue``,
  in the batch's own transaction: a crash after COMMIT loses nothing;
- the TimescaleDB job ``pmstore_refresh_pending`` (every 30 s) refreshes
  the queued hours below the aggregate's watermark (those above it are
  computed from the raw rows by real-time aggregation), merged into runs,
  never below the retention horizon (``pmstore_refresh_floor``), at most
  ``max_hours`` hours per run, one committed piece of at most a day at a
  time;
- ``refresh_range`` (``pmstore refresh``) refreshes a whole range for
  operators, clamped to the same floor, with a progress bar;
- ``drain`` runs the job's procedure now (``pmstore refresh --pending``).

On the Apache-2 edition there are no aggregates (the Reader computes
candles and volume live): nothing is queued, and ``refresh_range`` and
``drain`` do nothing.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import psycopg
from numpy.typing import NDArray

from pmstore.errors import ConfigurationError

__all__ = [
    "MAX_RANGES_PER_BATCH",
    "RECORD_TOUCHED_SQL",
    "PendingRefreshes",
    "RefreshReport",
    "drain",
    "pending",
    "refresh_command",
    "refresh_range",
    "touched_ranges",
]

HOUR: Final = timedelta(hours=1)
DAY: Final = timedelta(days=1)

MAX_RANGES_PER_BATCH: Final = 64
"""At most this many ranges are recorded per batch: beyond it the smallest gaps are merged."""

RECORD_TOUCHED_SQL: Final = """
    INSERT INTO pmstore_refresh_queue (hypertable, range_start, range_end)
    SELECT %(table)s::text, r.range_start, r.range_end
    FROM unnest(%(starts)s::timestamptz[], %(ends)s::timestamptz[]) AS r(range_start, range_end)
"""

DRAIN_SQL: Final = "CALL pmstore_refresh_pending(NULL::integer, %(config)s::jsonb)"

# The drain procedure's session-level lock (migration 0011): one pmstore drain or
# refresh_range at a time; overlapping refreshes fail with SQLSTATE 55P03.
LOCK_SQL: Final = "SELECT pg_advisory_lock(hashtext('pmstore_refresh_pending'))"
UNLOCK_SQL: Final = "SELECT pg_advisory_unlock(hashtext('pmstore_refresh_pending'))"

COLLISION_RETRIES: Final = 5
"""Retries of a refresh that collided with TimescaleDB's own policy refresh (55P03)."""

PENDING_SQL: Final = """
    SELECT count(*), min(range_start), max(range_end), min(queued_at)
    FROM pmstore_refresh_queue
"""

TARGETS_SQL: Final = """
    SELECT t.view_name, t.hypertable
    FROM pmstore_refresh_targets t
    WHERE to_regclass(t.view_name) IS NOT NULL
    ORDER BY t.view_name
"""

FLOOR_SQL: Final = "SELECT pmstore_refresh_floor(%(hypertable)s::regclass), now()"

REFRESH_SQL: Final = (
    "CALL refresh_continuous_aggregate(%(view)s::regclass, %(start)s::timestamptz, "
    "%(end)s::timestamptz)"
)
REFRESH_FORCE_SQL: Final = (
    "CALL refresh_continuous_aggregate(%(view)s::regclass, %(start)s::timestamptz, "
    "%(end)s::timestamptz, force => true)"
)

Conn = psycopg.Connection[Any]


# -- what a batch touched (pure) ------------------------------------------------------


def touched_ranges(
    ts: NDArray[np.datetime64], max_ranges: int = MAX_RANGES_PER_BATCH
) -> tuple[list[datetime], list[datetime]]:
    """The whole UTC hours holding ``ts`` (``datetime64[us]``), as merged [start, end) runs.

    Adjacent hours make one run. With more than ``max_ranges`` runs, the
    runs separated by the smallest gaps are merged (refreshing an untouched
    hour costs little: TimescaleDB re-materializes only invalidated data).
    Returns (starts, ends), UTC datetimes, oldest first. Costs a sort of the
    batch's distinct hours.
    """
    if len(ts) == 0:
        return [], []
    hours = np.unique(ts.astype("datetime64[h]").view(np.int64))
    breaks = np.flatnonzero(np.diff(hours) > 1)  # a run ends after these positions
    if len(breaks) >= max_ranges:
        gaps = np.diff(hours)[breaks]
        keep = np.sort(breaks[np.argsort(-gaps, kind="stable")[: max(max_ranges - 1, 0)]])
        breaks = keep
    starts_at = np.concatenate(([0], breaks + 1))
    ends_at = np.concatenate((breaks, [len(hours) - 1]))
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    starts = [epoch + HOUR * int(h) for h in hours[starts_at]]
    ends = [epoch + HOUR * (int(h) + 1) for h in hours[ends_at]]
    return starts, ends


# -- the queue ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingRefreshes:
    """The refresh queue's state: queued ranges, the span they cover, the oldest entry."""

    ranges: int
    start: datetime | None
    end: datetime | None
    oldest_queued_at: datetime | None


def pending(conn: Conn) -> PendingRefreshes:
    """Return what ``pmstore_refresh_queue`` holds. One query."""
    row = conn.execute(PENDING_SQL).fetchone()
    assert row is not None
    return PendingRefreshes(int(row[0]), row[1], row[2], row[3])


def drain(conn: Conn, *, max_hours: int | None = None) -> PendingRefreshes:
    """Refresh the queued hours now, as the job does; return what is still queued.

    Needs an autocommit connection (refresh_continuous_aggregate cannot run in
    a transaction block): ConfigurationError otherwise. ``max_hours`` bounds
    the hours refreshed (default: the job's 168). Hours at or above an
    aggregate's watermark stay queued (real-time aggregation shows them).
    Waits for a drain running meanwhile (the job's), and retries a refresh
    that collided with TimescaleDB's own policy refresh (SQLSTATE 55P03, up
    to 5 times, 0.5 s doubling). Does nothing on a database without
    aggregates (Apache-2 edition).
    """
    _require_autocommit(conn, "drain")
    if _targets(conn):
        config = {} if max_hours is None else {"max_hours": int(max_hours)}
        with _drain_lock(conn):
            _retrying(conn, DRAIN_SQL, {"config": json.dumps(config)})
    return pending(conn)


# -- a whole range (pmstore refresh) ----------------------------------------------------------


@dataclass(slots=True)
class RefreshReport:
    """What ``refresh_range`` did: per aggregate, the range refreshed (None: nothing)."""

    ranges: dict[str, tuple[datetime, datetime] | None] = field(default_factory=dict)
    clamped: dict[str, datetime] = field(default_factory=dict)
    """Aggregates whose requested start was raised to the retention floor: the floor."""
    pieces: int = 0
    seconds: float = 0.0
    reason: str | None = None
    """Why nothing was refreshed at all (no aggregates on this database), else None."""


def refresh_range(
    conn: Conn,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RefreshReport:
    """Refresh the continuous aggregates over [start, end), a UTC day at a time.

    ``start`` defaults to the retention floor (``pmstore_refresh_floor``: the
    retention horizon plus an hour, rounded up to the hour, or the oldest
    chunk), and is never taken below it: refreshing hours whose raw chunks
    retention dropped would delete their stored candles. ``end`` defaults
    to, and is capped at, the start of the current hour (later rows are
    computed live). Both are widened to whole hours. ``force`` re-materializes
    even hours without recorded changes. ``progress(done, total)`` is called
    after each piece. Needs an autocommit connection (ConfigurationError
    otherwise; also for naive datetimes or start >= end). Cost: one
    ``refresh_continuous_aggregate`` per aggregate and day, each reading
    that day's raw rows where they changed (all of them with ``force``).
    """
    _require_autocommit(conn, "refresh_range")
    lo_req = None if start is None else _floor_hour(_aware("start", start))
    hi_req = None if end is None else _ceil_hour(_aware("end", end))
    if lo_req is not None and hi_req is not None and lo_req >= hi_req:
        raise ConfigurationError(
            f"empty range: start ({lo_req.isoformat()}) must be before end ({hi_req.isoformat()})"
        )
    report = RefreshReport()
    started = time.perf_counter()
    targets = _targets(conn)
    if not targets:
        report.reason = (
            "no continuous aggregates on this database (TimescaleDB Apache-2 edition): "
            "the Reader computes candles and volume from the raw rows"
        )
        return report
    plans: list[tuple[str, str, list[tuple[datetime, datetime]]]] = []
    for view, hypertable in targets:
        floor, now = _floor(conn, hypertable)
        cap = _floor_hour(now)
        hi = cap if hi_req is None else min(hi_req, cap)
        lo = floor if lo_req is None else (lo_req if floor is None else max(lo_req, floor))
        if lo_req is not None and floor is not None and lo_req < floor:
            report.clamped[view] = floor
        if lo is None or lo >= hi:
            report.ranges[view] = None
            continue
        report.ranges[view] = (lo, hi)
        plans.append((view, hypertable, _day_pieces(lo, hi)))
    total = sum(len(p) for _, _, p in plans)
    sql = REFRESH_FORCE_SQL if force else REFRESH_SQL
    with _drain_lock(conn):
        for view, hypertable, pieces in plans:
            for a, b in reversed(pieces):  # newest first
                # Re-read the floor before each piece: retention may have run meanwhile.
                floor, _ = _floor(conn, hypertable)
                a = a if floor is None else max(a, floor)
                if a < b:
                    _retrying(conn, sql, {"view": view, "start": a, "end": b})
                report.pieces += 1
                if progress is not None:
                    progress(report.pieces, total)
    report.seconds = time.perf_counter() - started
    return report


# -- the command (pmstore refresh) -----------------------------------------------------------


def refresh_command(
    conn: Conn,
    start: datetime | None,
    end: datetime | None,
    *,
    force: bool = False,
    pending_only: bool = False,
    show_progress: bool = True,
) -> list[str]:
    """``pmstore refresh``: refresh a range (or, with ``pending_only``, drain the queue).

    Shows a tqdm bar (one step per aggregate and day) on stderr unless
    ``show_progress`` is False; returns the lines to print. Raises as
    ``refresh_range`` and ``drain``.
    """
    if pending_only:
        before = pending(conn)
        after = drain(conn)
        return [
            f"refresh queue: {before.ranges} range(s) before, {after.ranges} left "
            "(hours above the aggregates' watermark are computed live and wait)"
        ]
    from tqdm import tqdm

    with tqdm(desc="refresh", unit=" day", disable=not show_progress, file=sys.stderr) as bar:

        def step(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        report = refresh_range(conn, start, end, force=force, progress=step)
    if report.reason is not None:
        return [f"nothing to refresh: {report.reason}"]
    lines = []
    for view, span in report.ranges.items():
        if span is None:
            lines.append(f"{view:<18} nothing in range (after clamping to retention)")
        else:
            lines.append(
                f"{view:<18} refreshed {span[0]:%Y-%m-%d %H:%M} - {span[1]:%Y-%m-%d %H:%M}"
            )
        if view in report.clamped:
            floor = report.clamped[view]
            lines.append(
                f"{'':<18} start raised to {floor:%Y-%m-%d %H:%M}, the retention horizon or "
                "the oldest chunk: refreshing hours without raw rows would delete their candles"
            )
    lines.append(f"{report.pieces} piece(s) in {report.seconds:.1f} s")
    return lines


# -- helpers ------------------------------------------------------------------------------


@contextmanager
def _drain_lock(conn: Conn) -> Iterator[None]:
    """Hold the drain's advisory lock (waiting for a running drain), released after."""
    conn.execute(LOCK_SQL)
    try:
        yield
    finally:
        if not conn.closed:
            conn.execute(UNLOCK_SQL)


def _retrying(conn: Conn, sql: str, params: dict[str, Any]) -> None:
    """Run a refresh; retry it when it collided with the policy's refresh (SQLSTATE 55P03)."""
    for attempt in range(COLLISION_RETRIES + 1):
        try:
            conn.execute(sql, params)
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == COLLISION_RETRIES:
                raise
            time.sleep(0.5 * 2**attempt)


def _targets(conn: Conn) -> list[tuple[str, str]]:
    return [(str(r[0]), str(r[1])) for r in conn.execute(TARGETS_SQL).fetchall()]


def _floor(conn: Conn, hypertable: str) -> tuple[datetime | None, datetime]:
    row = conn.execute(FLOOR_SQL, {"hypertable": hypertable}).fetchone()
    assert row is not None
    floor = None if row[0] is None else row[0].astimezone(UTC)
    return floor, row[1].astimezone(UTC)


def _require_autocommit(conn: Conn, what: str) -> None:
    if not conn.autocommit:
        raise ConfigurationError(
            f"{what} needs an autocommit connection: refresh_continuous_aggregate "
            "cannot run inside a transaction block"
        )


def _aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ConfigurationError(f"{name} must be a timezone-aware datetime, not {value!r}")
    return value.astimezone(UTC)


def _floor_hour(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _ceil_hour(value: datetime) -> datetime:
    floor = _floor_hour(value)
    return floor if floor == value else floor + HOUR


def _day_pieces(lo: datetime, hi: datetime) -> list[tuple[datetime, datetime]]:
    """[lo, hi) cut at UTC midnights."""
    pieces = []
    a = lo
    while a < hi:
        midnight = a.replace(hour=0) + DAY
        b = min(midnight, hi)
        pieces.append((a, b))
        a = b
    return pieces
