"""Reading what the recorder stored about itself: feed gaps and its health row.

For ``pmstore status``, ``pmstore coverage`` and ``Reader.coverage``:
``feed_gaps`` lists the gaps overlapping a window (of some tokens, or all),
``open_gaps`` those open now, ``recorder_health`` each recorder's last
health row (migration 0017); ``recorded`` says whether the database has
these tables at all (a database migrated by a pmstore before 0017 has not).
Plain functions of a psycopg connection, one query each, served by the
tables' indexes; ``feed_gaps_async`` and ``recorded_async`` are the
``AsyncConnection`` twins (``AsyncReader.coverage``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg

__all__ = [
    "FEED_GAPS_SQL",
    "HEALTH_SQL",
    "OPEN_GAPS_SQL",
    "RECORDED_SQL",
    "FeedGap",
    "RecorderHealth",
    "feed_gaps",
    "feed_gaps_async",
    "open_gaps",
    "recorded",
    "recorded_async",
    "recorder_health",
]

RECORDED_SQL: Final = """
    SELECT to_regclass('feed_gaps') IS NOT NULL
       AND to_regclass('pmstore_recorder_health') IS NOT NULL
"""
"""Whether the recorder's tables (migration 0017) exist."""

FEED_GAPS_SQL: Final = """
    SELECT token_id, started_at, ended_at, reason FROM feed_gaps
    WHERE started_at < %(end)s AND (ended_at IS NULL OR ended_at > %(start)s)
      AND (%(tokens)s::text[] IS NULL OR token_id = ANY(%(tokens)s::text[]))
    ORDER BY token_id, started_at
"""
"""Gaps overlapping [start, end); all tokens when ``tokens`` is NULL."""

OPEN_GAPS_SQL: Final = """
    SELECT token_id, started_at, ended_at, reason FROM feed_gaps
    WHERE ended_at IS NULL ORDER BY started_at, token_id
"""

HEALTH_SQL: Final = """
    SELECT recorder_id, run_id, host, pid, archive_dir, state, started_at, updated_at,
           tokens, sockets, sockets_connected, last_frame_at, open_gaps, archived_records,
           committed_records, reconnects, detail, now() - updated_at AS age,
           now() - last_frame_at AS last_frame_age
    FROM pmstore_recorder_health ORDER BY updated_at DESC
"""


@dataclass(frozen=True, slots=True)
class FeedGap:
    """A row of ``feed_gaps``: a token without continuity from ``started_at`` to ``ended_at``
    (None: still open), and why (``pmstore.recorder.GAP_REASONS``)."""

    token_id: str
    started_at: datetime
    ended_at: datetime | None
    reason: str


@dataclass(frozen=True, slots=True)
class RecorderHealth:
    """A recorder's health row (``pmstore_recorder_health``), as of ``updated_at``.

    ``age_seconds`` is how old the row is (a running recorder refreshes it
    every few seconds: an old row with state 'running' means it died);
    ``last_frame_age_seconds`` how long ago, as of this query, the last data
    frame of any of its sockets arrived (None before the first).
    """

    recorder_id: str
    run_id: str
    host: str
    pid: int
    archive_dir: str
    state: str
    started_at: datetime
    updated_at: datetime
    tokens: int
    sockets: int
    sockets_connected: int
    last_frame_at: datetime | None
    open_gaps: int
    archived_records: int
    committed_records: int
    reconnects: int
    detail: dict[str, Any]
    age_seconds: float
    last_frame_age_seconds: float | None = None

    @property
    def db_lag(self) -> int:
        """Archive records not yet committed, as the recorder counted them."""
        return int(self.detail.get("db_lag", 0))


Conn = psycopg.Connection[Any]
AsyncConn = psycopg.AsyncConnection[Any]


def recorded(conn: Conn) -> bool:
    """Whether the database has the recorder's tables (``feed_gaps``, ``pmstore_recorder_health``:
    migration 0017). One catalog lookup; runs in the caller's transaction."""
    row = conn.execute(RECORDED_SQL).fetchone()
    return bool(row and row[0])


async def recorded_async(conn: AsyncConn) -> bool:
    """``recorded`` on an ``AsyncConnection``."""
    row = await (await conn.execute(RECORDED_SQL)).fetchone()
    return bool(row and row[0])


def _feed_gap_params(
    start: datetime, end: datetime, tokens: Sequence[str] | None
) -> dict[str, Any]:
    return {"start": start, "end": end, "tokens": list(tokens) if tokens is not None else None}


def _gaps(rows: Sequence[Sequence[Any]]) -> list[FeedGap]:
    return [FeedGap(str(r[0]), r[1], r[2], str(r[3])) for r in rows]


def feed_gaps(
    conn: Conn, start: datetime, end: datetime, tokens: Sequence[str] | None = None
) -> list[FeedGap]:
    """The gaps overlapping [``start``, ``end``), of ``tokens`` (all when None), ordered
    by token and start. Raises psycopg errors as they come (``UndefinedTable`` without
    migration 0017: ask ``recorded`` first)."""
    return _gaps(conn.execute(FEED_GAPS_SQL, _feed_gap_params(start, end, tokens)).fetchall())


async def feed_gaps_async(
    conn: AsyncConn, start: datetime, end: datetime, tokens: Sequence[str] | None = None
) -> list[FeedGap]:
    """``feed_gaps`` on an ``AsyncConnection``."""
    cur = await conn.execute(FEED_GAPS_SQL, _feed_gap_params(start, end, tokens))
    return _gaps(await cur.fetchall())


def open_gaps(conn: Conn) -> list[FeedGap]:
    """The gaps open now, oldest first."""
    return _gaps(conn.execute(OPEN_GAPS_SQL).fetchall())


def recorder_health(conn: Conn) -> list[RecorderHealth]:
    """Every recorder's health row, the most recently updated first."""
    out = []
    for r in conn.execute(HEALTH_SQL).fetchall():
        (rid, run, host, pid, adir, state, started, updated, tokens, sockets, connected,
         last, gaps, archived, committed, reconnects, detail, age,
         frame_age) = r  # fmt: skip
        out.append(
            RecorderHealth(
                rid,
                run,
                host,
                pid,
                adir,
                state,
                started,
                updated,
                tokens,
                sockets,
                connected,
                last,
                gaps,
                archived,
                committed,
                reconnects,
                detail,
                age.total_seconds(),
                frame_age.total_seconds() if frame_age is not None else None,
            )
        )
    return out
