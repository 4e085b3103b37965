"""The state of a pmstore deployment, for ``pmstore status`` and the demo's summary.

``collect(conn, dsn)`` gathers it (a handful of catalog queries, cheap even on
large tables: a hypertable's rows are counted exactly only while TimescaleDB's
estimate is below ``EXACT_COUNT_BELOW``) as a ``Status``; ``pmstore status``
prints it (``pmstore.cli.status``).

Partially compressed chunks: TimescaleDB 2.11+ accepts INSERT and COPY into
compressed chunks (pmstore's late prices, books and trades older than the
7-day compression horizon); the rows land uncompressed beside the compressed
ones and the chunk is marked PARTIAL until the compression policy (or
``compress_chunk``) recompresses it (``partially_compressed_chunks``). Trades
stay de-duplicated there: ``INSERT ... ON CONFLICT (trade_id, ts) DO NOTHING``
checks the compressed rows too (tested on 2.28).

The live recorder (``pmstore record``): ``Status.recorder`` holds each
recorder's health row and the feed gaps open now (``pmstore.recorder.health``),
or None where the database has no recorder tables (migration 0017 not applied).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import psycopg

from pmstore import migrations
from pmstore.edition import Feature, ServerInfo, features, server_info
from pmstore.recorder.health import FeedGap, RecorderHealth, open_gaps, recorded, recorder_health
from pmstore.refresh import PendingRefreshes, pending

__all__ = [
    "EXACT_COUNT_BELOW",
    "HYPERTABLES",
    "PARTIAL_CHUNKS_SQL",
    "STALE_AFTER",
    "HypertableState",
    "JobState",
    "PartialChunk",
    "RecorderState",
    "Status",
    "collect",
    "partially_compressed_chunks",
]

HYPERTABLES = ("price_snapshots", "orderbook_snapshots", "trades")
EXACT_COUNT_BELOW = 10_000_000
"""Hypertables whose estimated row count is below this are counted exactly."""
PLAIN_TABLES = ("markets", "resolutions", "pmstore_ingest_log")
STALE_AFTER: Final = 30.0
"""A recorder's health row not updated for this many seconds while it says 'running' means
the recorder is gone (a running one updates it every 5 s)."""


@dataclass(frozen=True, slots=True)
class HypertableState:
    """Rows (estimated), chunks and sizes of one hypertable."""

    name: str
    rows: int
    chunks: int
    compressed_chunks: int
    total_bytes: int
    index_bytes: int
    before_compression_bytes: int | None
    after_compression_bytes: int | None


@dataclass(frozen=True, slots=True)
class JobState:
    """A TimescaleDB policy job and its last run."""

    job_id: int
    proc_name: str
    target: str
    schedule: str
    last_run: datetime | None
    last_result: str | None
    total_failures: int


@dataclass(frozen=True, slots=True)
class RecorderState:
    """What the live recorders stored about themselves (migration 0017).

    ``recorders``: each recorder's last health row (sockets, last frame, open
    gaps, database lag), the most recently updated first; ``open_gaps``: every
    feed gap open now, oldest first.
    """

    recorders: list[RecorderHealth]
    open_gaps: list[FeedGap]

    @staticmethod
    def stale(health: RecorderHealth) -> bool:
        """Whether ``health`` says 'running' but was not updated for ``STALE_AFTER`` seconds
        (the recorder died without stopping)."""
        return health.state == "running" and health.age_seconds > STALE_AFTER

    def open_by_reason(self) -> dict[str, int]:
        """Open gaps per reason, the most frequent first."""
        counts: dict[str, int] = {}
        for gap in self.open_gaps:
            counts[gap.reason] = counts.get(gap.reason, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass(slots=True)
class Status:
    """Everything ``pmstore status`` reports."""

    server: ServerInfo
    applied: list[str]
    pending: list[str]
    features: dict[str, Feature]
    drifted: list[str] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)
    hypertables: list[HypertableState] = field(default_factory=list)
    table_rows: dict[str, int] = field(default_factory=dict)
    jobs: list[JobState] = field(default_factory=list)
    partial_chunks: list[PartialChunk] = field(default_factory=list)
    refresh_queue: PendingRefreshes | None = None
    recorder: RecorderState | None = None
    """None: the database has no recorder tables (migrated by a pmstore before 0017)."""


# Bit 8 of a chunk's status is PARTIAL (compressed, with uncompressed rows beside).
PARTIAL_CHUNKS_SQL: Final = """
    SELECT c.hypertable_name, c.chunk_schema, c.chunk_name, c.range_start, c.range_end
    FROM timescaledb_information.chunks c
    JOIN _timescaledb_catalog.chunk k
      ON k.schema_name = c.chunk_schema AND k.table_name = c.chunk_name
    WHERE c.hypertable_schema = current_schema() AND c.is_compressed AND (k.status & 8) = 8
    ORDER BY c.hypertable_name, c.range_start
"""


@dataclass(frozen=True, slots=True)
class PartialChunk:
    """A compressed chunk holding uncompressed (late) rows too."""

    hypertable: str
    chunk: str
    range_start: datetime
    range_end: datetime


def partially_compressed_chunks(conn: psycopg.Connection[Any]) -> list[PartialChunk]:
    """Return the partially compressed chunks of pmstore's hypertables, oldest first per table.

    Empty where nothing is compressed (and on the Apache-2 edition). One
    catalog query; reads TimescaleDB's chunk status flags.
    """
    rows = conn.execute(PARTIAL_CHUNKS_SQL).fetchall()
    return [PartialChunk(str(r[0]), f"{r[1]}.{r[2]}", r[3], r[4]) for r in rows]


def _exists(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def _hypertable(conn: psycopg.Connection[Any], name: str, compression: bool) -> HypertableState:
    row = conn.execute(
        """
        SELECT approximate_row_count(%(t)s::regclass),
               (SELECT count(*) FROM show_chunks(%(t)s::regclass)),
               (SELECT count(*) FROM timescaledb_information.chunks
                WHERE hypertable_name = %(name)s AND is_compressed),
               (SELECT total_bytes FROM hypertable_detailed_size(%(t)s::regclass)),
               (SELECT index_bytes FROM hypertable_detailed_size(%(t)s::regclass))
        """,
        {"t": name, "name": name},
    ).fetchone()
    assert row is not None
    rows = int(row[0] or 0)
    if rows < EXACT_COUNT_BELOW:
        # The estimate comes from statistics (0 before the first ANALYZE): count exactly.
        exact = conn.execute(f"SELECT count(*) FROM {name}").fetchone()  # noqa: S608 - fixed names
        rows = int(exact[0]) if exact else rows
    before = after = None
    if compression:
        stats = conn.execute(
            "SELECT sum(before_compression_total_bytes), sum(after_compression_total_bytes) "
            "FROM hypertable_compression_stats(%s::regclass)",
            (name,),
        ).fetchone()
        if stats and stats[0] is not None:
            before, after = int(stats[0]), int(stats[1])
    return HypertableState(
        name,
        rows,
        int(row[1]),
        int(row[2]),
        int(row[3] or 0),
        int(row[4] or 0),
        before,
        after,
    )


def collect(conn: psycopg.Connection[Any], dsn: str) -> Status:
    """Gather the server's and the schema's state. Costs about a dozen catalog queries,
    plus a read of the open feed gaps (at most one per recorded token)."""
    info = server_info(conn)
    state = migrations.status(dsn)
    have = features(conn) if _exists(conn, "pmstore_features") else {}
    status = Status(info, state.applied, state.pending, have, state.drifted, state.unrecorded)
    compression = bool(have.get("compression") and have["compression"].available)
    for name in HYPERTABLES:
        if _exists(conn, name):
            status.hypertables.append(_hypertable(conn, name, compression))
    if compression:
        status.partial_chunks = partially_compressed_chunks(conn)
    if _exists(conn, "pmstore_refresh_queue"):
        status.refresh_queue = pending(conn)
    if recorded(conn):
        status.recorder = RecorderState(recorder_health(conn), open_gaps(conn))
    for name in PLAIN_TABLES:
        if _exists(conn, name):
            row = conn.execute(f"SELECT count(*) FROM {name}").fetchone()  # noqa: S608 - fixed names
            status.table_rows[name] = int(row[0]) if row else 0
    if info.timescaledb_version is not None and _exists(conn, "timescaledb_information.jobs"):
        rows = conn.execute(
            """
            SELECT j.job_id, j.proc_name,
                   coalesce(ca.view_name, j.hypertable_name, ''),
                   j.schedule_interval::text,
                   nullif(s.last_run_started_at, '-infinity'),  -- a job that never ran
                   s.last_run_status,
                   coalesce(s.total_failures, 0)
            FROM timescaledb_information.jobs j
            LEFT JOIN timescaledb_information.job_stats s USING (job_id)
            LEFT JOIN timescaledb_information.continuous_aggregates ca
                   ON ca.materialization_hypertable_name = j.hypertable_name
                   OR ca.view_name = j.hypertable_name
            WHERE j.job_id >= 1000
            ORDER BY j.job_id
            """
        ).fetchall()
        status.jobs = [
            JobState(int(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4], r[5], int(r[6]))
            for r in rows
        ]
    return status
