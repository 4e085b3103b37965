"""The state of a pmstore deployment, for ``pmstore status`` and the demo's summary.

``collect(conn, dsn)`` gathers it (a handful of catalog queries, cheap even on
large tables: a hypertable's rows are counted exactly only while TimescaleDB's
estimate is below ``EXACT_COUNT_BELOW``); ``render`` formats it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from pmstore import migrations
from pmstore.chunks import PartialChunk, partially_compressed_chunks
from pmstore.edition import (
    FEATURES,
    MIN_TIMESCALEDB,
    TESTED_WITH,
    Feature,
    ServerInfo,
    features,
    parse_version,
    server_info,
)
from pmstore.refresh import PendingRefreshes, pending

__all__ = ["HYPERTABLES", "HypertableState", "JobState", "Status", "collect", "render"]

HYPERTABLES = ("price_snapshots", "orderbook_snapshots", "trades")
EXACT_COUNT_BELOW = 10_000_000
"""Hypertables whose estimated row count is below this are counted exactly."""
PLAIN_TABLES = ("markets", "resolutions", "pmstore_ingest_log")


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
    """Gather the server's and the schema's state. Costs about a dozen catalog queries."""
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


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def render(status: Status, where: str) -> str:
    """Format ``status`` as the text ``pmstore status`` prints."""
    lines = [f"server      {where}", f"            {status.server}"]
    ts_version = status.server.timescaledb_version
    if ts_version and parse_version(ts_version) < parse_version(MIN_TIMESCALEDB):
        lines.append(f"            TOO OLD: pmstore needs TimescaleDB {MIN_TIMESCALEDB} or newer")
    lines.append("tested with " + TESTED_WITH[0])
    lines.extend(f"            {combination}" for combination in TESTED_WITH[1:])
    lines.append(
        f"migrations  {len(status.applied)} applied, {len(status.pending)} pending"
        + (f" ({', '.join(status.pending)})" if status.pending else "")
    )
    if status.drifted:
        lines.append(
            f"  DRIFT: changed since applied: {', '.join(status.drifted)} "
            "(`pmstore migrate` refuses to go on; see `pmstore migrate --status`)"
        )
    if status.unrecorded:
        lines.append(
            f"  no checksum yet (applied by plain yoyo): {', '.join(status.unrecorded)}; "
            "the next `pmstore migrate` records them"
        )
    lines.append("features")
    for name in FEATURES:
        feature = status.features.get(name)
        if feature is None:
            lines.append(f"  {name:<22} not recorded (apply the migrations)")
        else:
            mark = "yes" if feature.available else "MISSING"
            lines.append(f"  {name:<22} {mark:<8} {feature.detail}")
    if status.hypertables:
        lines.append(f"hypertables (rows above {EXACT_COUNT_BELOW:,} are estimates)")
        lines.append(
            f"  {'table':<20} {'rows':>12} {'chunks':>7} {'compressed':>10} "
            f"{'size':>10} {'indexes':>10} {'before':>10} {'after':>10}"
        )
        for h in status.hypertables:
            lines.append(
                f"  {h.name:<20} {h.rows:>12,} {h.chunks:>7} {h.compressed_chunks:>10} "
                f"{_size(h.total_bytes):>10} {_size(h.index_bytes):>10} "
                f"{_size(h.before_compression_bytes):>10} {_size(h.after_compression_bytes):>10}"
            )
    if status.partial_chunks:
        lines.append("partially compressed chunks (late rows; recompressed by the policy)")
        for c in status.partial_chunks:
            lines.append(
                f"  {c.hypertable:<20} {c.chunk:<44} {c.range_start:%Y-%m-%d %H:%M} "
                f"- {c.range_end:%Y-%m-%d %H:%M}"
            )
    if status.refresh_queue is not None and status.refresh_queue.ranges:
        q = status.refresh_queue
        lines.append(
            f"refresh queue  {q.ranges} range(s) pending, {q.start:%Y-%m-%d %H:%M} - "
            f"{q.end:%Y-%m-%d %H:%M}, oldest queued {q.oldest_queued_at:%Y-%m-%d %H:%M:%S}"
        )
    if status.table_rows:
        lines.append("tables")
        for name, rows in status.table_rows.items():
            lines.append(f"  {name:<20} {rows:>12,}")
    lines.append("policy jobs" + ("" if status.jobs else "  none"))
    for job in status.jobs:
        last = job.last_run.strftime("%Y-%m-%d %H:%M:%S") if job.last_run else "never run"
        lines.append(
            f"  #{job.job_id:<5} {job.proc_name:<36} {job.target:<20} every {job.schedule:<9} "
            f"last: {last} {job.last_result or ''} failures: {job.total_failures}"
        )
    return "\n".join(lines)
