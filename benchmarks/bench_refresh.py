"""The planned day with and without the refresh recording (issue 10), in the same run.

    python benchmarks/run.py --refresh [--refresh-minutes 1440] --scenarios 1

Minute batches of 8,000 tokens through ``copy_prices``, three Writers taking
turns minute by minute on the same table (so each sees the same chunk growth
and the same background work):

- ``with recording``: pmstore's Writer (retention check, touched hours queued
  in the batch's transaction: one INSERT into ``pmstore_refresh_queue``);
- ``without recording``: the same, but the table's policy says "no
  aggregates", so nothing is queued (only the recording's cost differs);
- ``neither``: no retention lookup and no recording (the Writer before issue 10).

Two days are written, each starting from empty tables:

- ``live``: the minutes of the 24 hours (or ``--refresh-minutes``) ending at
  the current hour, as a collector writes them; the aggregates' watermark
  stays where the hourly policy left it;
- ``backfill``: the same minutes two days earlier, after the hourly policy
  has moved the watermark to now - 1 h: every batch lands below it, so the
  drain job refreshes the hours queued while the day is written.

The server's job scheduler runs throughout: the drain job every 30 s
(competing for the 2 cores), the policies hourly. The drain's runs during
each day are counted from ``timescaledb_information.job_stats``;
after each day, one more drain and a ``refresh_range`` of the whole day are
timed. Needs the Community edition (elsewhere it says so and measures
nothing).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from datetime import UTC, timedelta
from typing import Any

import psycopg
from bench_data import PRICE_COLUMNS
from bench_scenarios import Result, latency_summary, log
from bench_server import BenchDB
from tqdm import tqdm

from pmstore._write.retention import TablePolicy
from pmstore.refresh import drain, pending, refresh_range
from pmstore.synthetic import MarketSimulator
from pmstore.writer import Writer

VARIANTS = ("with recording", "without recording", "neither")


class WriterWithoutRecording(Writer):
    """pmstore's Writer, told the table has no aggregates: it queues no touched hours."""

    def _policy(self, table: str) -> TablePolicy:
        return dataclasses.replace(super()._policy(table), aggregated=False)


class WriterBeforeIssue10(Writer):
    """No retention lookup and no recording: the Writer as it was."""

    def _policy(self, table: str) -> TablePolicy:
        return TablePolicy(table, None, None, False, time.monotonic())


def _scalar(conn: psycopg.Connection[Any], query: str, params: Any = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def _drain_runs(conn: psycopg.Connection[Any]) -> tuple[int, float]:
    """The drain job's runs so far and its last run's seconds (job_stats keeps no total time)."""
    row = conn.execute(
        """
        SELECT coalesce(s.total_runs, 0), coalesce(extract(epoch FROM s.last_run_duration), 0)
        FROM timescaledb_information.jobs j
        LEFT JOIN timescaledb_information.job_stats s USING (job_id)
        WHERE j.proc_name = 'pmstore_refresh_pending'
        """
    ).fetchone()
    assert row is not None
    return int(row[0]), float(row[1])


def one_day(db: BenchDB, minutes: int, tokens: int, *, backfill: bool) -> Result:
    kind = "backfill" if backfill else "live"
    target = db.public("price_snapshots", "price_snapshots")
    db.reset(target)
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE pmstore_refresh_queue")
        end = _scalar(conn, "SELECT time_bucket(INTERVAL '1 hour', now())").astimezone(UTC)
        start = end - timedelta(minutes=minutes) - (timedelta(days=2) if backfill else timedelta())
        if backfill:
            # Live data in the policy's window, then the policy: the watermark is at now - 1 h.
            with Writer(db.dsn) as w:
                w.copy_prices(MarketSimulator(50, seed=9).prices(end - timedelta(hours=2)))
            job = _scalar(
                conn,
                "SELECT job_id FROM timescaledb_information.jobs "
                "WHERE proc_name = 'policy_refresh_continuous_aggregate' "
                "AND hypertable_name = 'price_candles_1h'",
            )
            conn.execute("CALL run_job(%s)", (job,))
        watermark = _scalar(conn, "SELECT pmstore_cagg_watermark('price_candles_1h')::text")
        runs_before, _ = _drain_runs(conn)
        sim = MarketSimulator(tokens, seed=4)
        writers = {
            "with recording": Writer(db.dsn),
            "without recording": WriterWithoutRecording(db.dsn),
            "neither": WriterBeforeIssue10(db.dsn),
        }
        latencies: dict[str, list[float]] = {v: [] for v in VARIANTS}
        queued = 0
        started = time.perf_counter()
        try:
            for k in tqdm(range(minutes), desc=f"day ({kind})", unit="min", file=sys.stderr):
                name = VARIANTS[k % len(VARIANTS)]
                batch = sim.prices(start + timedelta(minutes=k))
                columns = {c: getattr(batch, c) for c in PRICE_COLUMNS}
                t0 = time.perf_counter()
                result = writers[name].copy_prices(columns)
                latencies[name].append(time.perf_counter() - t0)
                queued += result.refresh_ranges
        finally:
            for w in writers.values():
                w.close()
        elapsed = time.perf_counter() - started
        runs, last_run = _drain_runs(conn)
        runs -= runs_before
        left = pending(conn).ranges
        t0 = time.perf_counter()
        left_after = drain(conn).ranges
        drain_after = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = refresh_range(conn, start, end)
        refresh_seconds = time.perf_counter() - t0
        stored = int(_scalar(conn, "SELECT count(*) FROM price_snapshots"))
    if stored < minutes * tokens:
        raise RuntimeError(f"refresh day: {stored} rows stored, {minutes * tokens} written")
    summaries = {v: latency_summary(latencies[v], [tokens] * len(latencies[v])) for v in VARIANTS}
    base = summaries["without recording"]["batch_p99_ms"]
    with_p99 = summaries["with recording"]["batch_p99_ms"]
    out: Result = {
        "title": f"refresh recording, {kind} day: {minutes:,} minute batches of {tokens:,} "
        "tokens, three Writers taking turns",
        "kind": kind,
        "minutes": minutes,
        "tokens": tokens,
        "day": [start.isoformat(), (start + timedelta(minutes=minutes)).isoformat()],
        "watermark_at_start": str(watermark),
        "variants": summaries,
        "p99_ratio_with_vs_without": with_p99 / base if base else None,
        "p99_ratio_with_vs_neither": with_p99 / summaries["neither"]["batch_p99_ms"],
        "ranges_queued": queued,
        "drain_job_runs_during_day": runs,
        "drain_job_last_run_s": last_run,
        "queue_left_after_day": left,
        "drain_after_day_s": drain_after,
        "queue_left_after_drain": left_after,
        "refresh_range_day_s": refresh_seconds,
        "refresh_range_pieces": report.pieces,
        "elapsed_s": elapsed,
        "latencies_ms": {v: [round(s * 1000, 3) for s in latencies[v]] for v in VARIANTS},
    }
    log(render_one(out))
    db.reset(target)
    return out


def run(db: BenchDB, minutes: int, tokens: int) -> Result:
    """Both days; on a server without aggregates, a note instead."""
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        have = _scalar(conn, "SELECT count(*) FROM pmstore_refresh_targets")
    if not have:
        log("refresh: no continuous aggregates on this server (Apache-2 edition): skipped")
        return {"skipped": "no continuous aggregates (TimescaleDB Apache-2 edition)"}
    return {
        "live": one_day(db, minutes, tokens, backfill=False),
        "backfill": one_day(db, minutes, tokens, backfill=True),
    }


def render_one(s: Result) -> str:
    lines = [f"== {s['title']}", f"   day {s['day'][0]} .. {s['day'][1]}"]
    for v in VARIANTS:
        m = s["variants"][v]
        lines.append(
            f"   {v:<18} {m['batches']:>5} batches  p50 {m['batch_p50_ms']:6.1f} ms  "
            f"p99 {m['batch_p99_ms']:6.1f} ms  max {m['batch_max_ms']:6.1f} ms  "
            f"{m['rows_per_s']:>9,.0f} rows/s"
        )
    lines.append(
        f"   p99 with / without recording: {s['p99_ratio_with_vs_without']:.3f}; "
        f"with / neither: {s['p99_ratio_with_vs_neither']:.3f}"
    )
    lines.append(
        f"   {s['ranges_queued']} ranges queued; drain job ran {s['drain_job_runs_during_day']} "
        f"times during the day (the last {s['drain_job_last_run_s']:.2f} s); "
        f"{s['queue_left_after_day']} left, a drain then {s['drain_after_day_s']:.2f} s "
        f"({s['queue_left_after_drain']} left, above the watermark); "
        f"refresh_range of the day {s['refresh_range_day_s']:.1f} s"
    )
    return "\n".join(lines)


def render(results: Result) -> str:
    if "skipped" in results:
        return f"== refresh recording: skipped ({results['skipped']})"
    return "\n".join(render_one(results[k]) for k in ("live", "backfill") if k in results)
