"""``pmstore status``: the server's and the schema's state."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pmstore.cli._target import connect, resolve

if TYPE_CHECKING:
    from pmstore.status import RecorderState, Status

__all__ = ["add_parser", "render", "render_recorder", "run"]

OPEN_GAPS_LISTED = 10
"""Open feed gaps ``pmstore status`` lists one by one (then a count)."""


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``status`` to the subcommands."""
    status = sub.add_parser(
        "status",
        parents=[common],
        help="state of the server and the schema",
        description="Versions (and the versions pmstore was tested with), edition, "
        "migrations (drift included), features, tables, jobs, and the live recorder: its "
        "health (sockets, last frame, open gaps, database lag) and the feed gaps open now.",
    )
    status.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the state; exit 0 (drift is reported, not an error here)."""
    from pmstore.status import collect

    target = resolve(args)
    with connect(target) as conn:
        print(render(collect(conn, target.dsn), target.where))
    return 0


def render(status: Status, where: str) -> str:
    """``status`` as the text ``pmstore status`` prints."""
    from pmstore.cli._render import size_text
    from pmstore.edition import FEATURES, MIN_TIMESCALEDB, TESTED_WITH, parse_version
    from pmstore.status import EXACT_COUNT_BELOW

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
                f"{size_text(h.total_bytes):>10} {size_text(h.index_bytes):>10} "
                f"{size_text(h.before_compression_bytes):>10} "
                f"{size_text(h.after_compression_bytes):>10}"
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
    lines.extend(render_recorder(status.recorder))
    return "\n".join(lines)


def render_recorder(state: RecorderState | None) -> list[str]:
    """The recorder section of ``pmstore status``: each recorder's health, the open gaps."""
    from pmstore.cli._render import duration_text, utc_text
    from pmstore.status import STALE_AFTER

    if state is None:
        return [
            "recorder    not recorded here: no feed_gaps / pmstore_recorder_health tables "
            "(migration 0017; `pmstore migrate` adds them)"
        ]
    lines = ["recorder" + ("" if state.recorders else "    none has written to this database")]
    for h in state.recorders:
        if state.stale(h):
            how = (
                f"NOT RUNNING: says running but not updated for {duration_text(h.age_seconds)} "
                f"(more than {STALE_AFTER:.0f} s: killed?)"
            )
        elif h.state == "running":
            how = f"running, updated {duration_text(h.age_seconds)} ago"
        else:
            how = f"{h.state} at {utc_text(h.updated_at)}"
        if h.last_frame_at is None:
            frame = "no frame yet"
        elif h.state == "running":
            frame = f"last frame {duration_text(h.last_frame_age_seconds)} ago"
        else:
            frame = f"last frame at {utc_text(h.last_frame_at)}"
        lines += [
            f"  {h.recorder_id}",
            f"    {how} (run {h.run_id}, pid {h.pid}, started {utc_text(h.started_at)})",
            f"    sockets {h.sockets_connected}/{h.sockets} connected, {h.tokens:,} tokens, "
            f"{h.reconnects:,} reconnect(s), {frame}",
            f"    open gaps {h.open_gaps:,}, database lag {h.db_lag:,} record(s) "
            f"({h.archived_records:,} archived by this run)",
        ]
        if h.detail.get("error"):
            lines.append(f"    error: {h.detail['error']}")
    gaps = state.open_gaps
    if not gaps:
        lines.append("feed gaps open  none")
        return lines
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in state.open_by_reason().items())
    lines.append(f"feed gaps open  {len(gaps):,} ({reasons}), oldest first")
    for gap in gaps[:OPEN_GAPS_LISTED]:
        lines.append(f"  {gap.token_id}  {gap.reason:<16} since {utc_text(gap.started_at)}")
    if len(gaps) > OPEN_GAPS_LISTED:
        lines.append(f"  ... and {len(gaps) - OPEN_GAPS_LISTED:,} more")
    return lines
