"""Continuous aggregates that stay true under late data: the pending-refresh queue.

The hourly refresh policies (migration 0007) cover only ``[now - 3 h, now -
1 h]``; rows written into older hours would never reach ``price_candles_1h``
and ``trade_volume_1h``. So (migration 0011):

- the Writer records the hours each price or trade batch touched in
  ``pmstore_refresh_queue``, in the batch's own transaction
  (``pmstore._write.touched``): a crash after COMMIT loses nothing;
- the TimescaleDB job ``pmstore_refresh_pending`` (every 30 s) refreshes
  the queued hours below the aggregate's watermark (those above it are
  computed from the raw rows by real-time aggregation), merged into runs,
  never below the retention horizon (``pmstore_refresh_floor``), at most
  ``max_hours`` hours per run, one committed piece of at most a day at a
  time;
- ``refresh_range`` (``pmstore refresh``) refreshes a whole range for
  operators, clamped to the same floor, reporting its progress;
- ``drain`` runs the job's procedure now (``pmstore refresh --pending``).

On the Apache-2 edition there are no aggregates (the Reader computes
candles and volume live): nothing is queued, and ``refresh_range`` and
``drain`` do nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import psycopg

from pmstore._twins import Conn
from pmstore._utc import aware_utc, ceil_hour, day_windows, floor_hour
from pmstore.errors import ConfigurationError

__all__ = [
    "COLLISION_BACKOFF",
    "COLLISION_RETRIES",
    "PendingRefreshes",
    "RefreshReport",
    "drain",
    "pending",
    "refresh_range",
]

DRAIN_SQL: Final = "CALL pmstore_refresh_pending(NULL::integer, %(config)s::jsonb)"

# The drain procedure's session-level lock (migration 0011): one pmstore drain or
# refresh_range at a time; overlapping refreshes fail with SQLSTATE 55P03.
LOCK_SQL: Final = "SELECT pg_advisory_lock(hashtext('pmstore_refresh_pending'))"
UNLOCK_SQL: Final = "SELECT pg_advisory_unlock(hashtext('pmstore_refresh_pending'))"

COLLISION_RETRIES: Final = 5
"""Retries of a refresh that collided with TimescaleDB's own policy refresh (55P03)."""
COLLISION_BACKOFF: Final = 0.5
"""Seconds before the first such retry; doubled before each next one."""

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
    the hours refreshed (default: the job's, migration 0011). Hours at or
    above an aggregate's watermark stay queued (real-time aggregation shows
    them). Waits for a drain running meanwhile (the job's), and retries a
    refresh that collided with TimescaleDB's own policy refresh (SQLSTATE
    55P03; ``COLLISION_RETRIES`` times, waiting ``COLLISION_BACKOFF`` seconds,
    doubled each time). Does nothing on a database without aggregates
    (Apache-2 edition).
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
    lo_req = None if start is None else floor_hour(aware_utc("start", start))
    hi_req = None if end is None else ceil_hour(aware_utc("end", end))
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
        cap = floor_hour(now)
        hi = cap if hi_req is None else min(hi_req, cap)
        lo = floor if lo_req is None else (lo_req if floor is None else max(lo_req, floor))
        if lo_req is not None and floor is not None and lo_req < floor:
            report.clamped[view] = floor
        if lo is None or lo >= hi:
            report.ranges[view] = None
            continue
        report.ranges[view] = (lo, hi)
        plans.append((view, hypertable, [(a, b) for _, a, b in day_windows(lo, hi)]))
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
            time.sleep(COLLISION_BACKOFF * 2**attempt)


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
