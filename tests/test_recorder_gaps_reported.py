"""The recorder's feed gaps and health, as ``pmstore coverage``, ``Reader.coverage`` (and
``AsyncReader``'s) and ``pmstore status`` report them.

The gap rows come from a real recorder run against the simulator's real sockets (a socket
dropped mid-run: ``disconnect`` gaps that close; the clean stop: ``shutdown`` gaps that
stay open), on a real TimescaleDB (the session's edition). A database without migration
0017 (rolled back: the schema a pmstore or a plain yoyo before 0017 left) is reported as
such, never an error.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from conftest import TestServer
from recorder_support import all_valid, recording

from pmstore import migrations
from pmstore.reader import Reader
from pmstore.reader_async import AsyncReader
from pmstore.recorder.health import FeedGap
from pmstore.status import STALE_AFTER, collect

_names = itertools.count()

ALL_GAPS_SQL = """
    SELECT token_id, started_at, ended_at, reason FROM feed_gaps
    WHERE token_id = ANY(%s) ORDER BY token_id, started_at
"""


@pytest.fixture
def live(server: TestServer) -> Iterator[str]:
    name = f"t_gaps_reported_{next(_names)}"
    yield server.migrated_database(name)
    server.drop_database(name)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-P", "-m", "pmstore", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def all_gaps(dsn: str, tokens: list[str]) -> list[FeedGap]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(ALL_GAPS_SQL, (tokens,)).fetchall()
    return [FeedGap(str(r[0]), r[1], r[2], str(r[3])) for r in rows]


@pytest.mark.asyncio
async def test_coverage_and_status_report_the_gaps_a_real_recorder_wrote(
    live: str, tmp_path: Path
) -> None:
    before = datetime.now(UTC)
    async with recording(tmp_path, live) as (sim, rec):
        await all_valid(rec)
        conns = await sim.wait_connections(2)
        await sim.step(20)
        victim = conns[1]
        dropped = sorted(victim.asset_ids)
        await victim.drop()
        await rec.until(lambda: rec.stats.reconnects >= 1)
        await all_valid(rec)
        updates = rec.stats.health_updates  # one may be under way with older figures:
        await rec.until(lambda: rec.stats.health_updates > updates + 1)  # the next one
        with psycopg.connect(live) as conn:
            running = collect(conn, live)
        tokens = sorted(rec.deriver.tracked())
    after = datetime.now(UTC)

    # While it ran: its health, and no gap open (the drop's gaps closed with fresh books).
    assert running.recorder is not None
    [health] = running.recorder.recorders
    assert (health.state, health.run_id) == ("running", rec.run)
    assert (health.sockets, health.sockets_connected, health.tokens) == (2, 2, 12)
    assert health.reconnects >= 1 and health.open_gaps == 0 and health.db_lag >= 0
    assert health.last_frame_at is not None and health.last_frame_age_seconds is not None
    assert not running.recorder.stale(health)
    assert running.recorder.open_gaps == []

    # What the recorder wrote: the drop's disconnect gaps (closed), the stop's (open).
    stored = all_gaps(live, tokens)
    disconnect = [g for g in stored if g.reason == "disconnect"]
    shutdown = [g for g in stored if g.reason == "shutdown"]
    assert sorted(g.token_id for g in disconnect) == dropped
    assert all(g.ended_at is not None for g in disconnect)
    assert sorted(g.token_id for g in shutdown) == tokens
    assert all(g.ended_at is None for g in shutdown)

    # Reader.coverage and AsyncReader.coverage: the rows overlapping the range, by token.
    with psycopg.connect(live) as conn:
        report = Reader(conn).coverage(tokens, before, after + timedelta(minutes=1))
        assert report.feed_gaps == stored
        one = Reader(conn).coverage(dropped[:1], before, after)
        assert one.feed_gaps == [g for g in stored if g.token_id == dropped[0]]
        assert {g.reason for g in one.feed_gaps} == {"disconnect", "shutdown"}
        earlier = Reader(conn).coverage(tokens, before - timedelta(hours=2), before)
        assert earlier.feed_gaps == []
        # Closed gaps end inside the run: a window after the run keeps only the open ones.
        later = Reader(conn).coverage(tokens, after, after + timedelta(hours=1))
        assert later.feed_gaps == sorted(shutdown, key=lambda g: (g.token_id, g.started_at))
    async with await psycopg.AsyncConnection.connect(live) as aconn:
        areport = await AsyncReader(aconn).coverage(tokens, before, after + timedelta(minutes=1))
    assert areport == report

    # Status after the stop: the recorder stopped, its shutdown gaps open.
    with psycopg.connect(live) as conn:
        stopped = collect(conn, live)
    assert stopped.recorder is not None
    [health] = stopped.recorder.recorders
    assert health.state == "stopped" and health.open_gaps == 12
    assert sorted(stopped.recorder.open_gaps, key=lambda g: g.token_id) == shutdown
    assert stopped.recorder.open_by_reason() == {"shutdown": 12}

    # The command line prints them.
    status = cli("status", "--dsn", live)
    assert status.returncode == 0, status.stderr
    assert f"(run {rec.run}," in status.stdout and "stopped at" in status.stdout
    assert "sockets 0/2 connected, 12 tokens" in status.stdout
    assert "feed gaps open  12 (shutdown 12), oldest first" in status.stdout
    assert "... and 2 more" in status.stdout
    window = ["--start", before.isoformat(), "--end", (after + timedelta(minutes=1)).isoformat()]
    cov = cli("coverage", dropped[0], *window, "--dsn", live)
    assert cov.returncode == 0, cov.stderr
    assert "feed gaps (the recorder's, feed_gaps): 2 overlapping the range, 1 still open" in (
        cov.stdout
    )
    lines = [line.split() for line in cov.stdout.splitlines() if line.startswith("  feed ")]
    assert [(w[1], w[2], w[-1]) for w in lines] == [
        (dropped[0], "disconnect", "s)"),
        (dropped[0], "shutdown", "open"),
    ]


def test_a_running_row_not_updated_for_long_is_reported_as_not_running(
    live: str, tmp_path: Path
) -> None:
    """A recorder killed without stopping leaves its row at 'running': status says it is not."""
    import asyncio

    async def run_once() -> str:
        async with recording(tmp_path, live) as (_sim, rec):
            await all_valid(rec)
            return rec.run

    run = asyncio.run(run_once())
    with psycopg.connect(live, autocommit=True) as conn:
        # What a kill -9 leaves: the last 'running' row, no longer refreshed.
        conn.execute(
            "UPDATE pmstore_recorder_health SET state = 'running', "
            "updated_at = now() - make_interval(secs => %s)",
            (STALE_AFTER * 4,),
        )
        state = collect(conn, live).recorder
    assert state is not None
    [health] = state.recorders
    assert health.run_id == run and state.stale(health)
    done = cli("status", "--dsn", live)
    assert done.returncode == 0, done.stderr
    assert "NOT RUNNING: says running but not updated for 2.0 min" in done.stdout


@pytest.mark.asyncio
async def test_a_database_without_migration_0017_is_reported_not_an_error(live: str) -> None:
    rolled = migrations.rollback(live, 1).migrations
    assert rolled == ["0017_feed_gaps"]
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    token = "1" * 77
    with psycopg.connect(live) as conn:
        report = Reader(conn).coverage([token], start, end)
        assert report.feed_gaps is None and report.missing_tokens == [token]
        assert Reader(conn).coverage([], start, end).feed_gaps is None
        status = collect(conn, live)
        assert status.recorder is None and status.pending == ["0017_feed_gaps"]
    async with await psycopg.AsyncConnection.connect(live) as aconn:
        assert await AsyncReader(aconn).coverage([token], start, end) == report
    cov = cli("coverage", token, "--start", "2026-01-01", "--end", "2026-01-02", "--dsn", live)
    assert cov.returncode == 0, cov.stderr
    assert "feed gaps: not recorded here (no feed_gaps table: migration 0017" in cov.stdout
    done = cli("status", "--dsn", live)
    assert done.returncode == 0, done.stderr
    assert "recorder    not recorded here: no feed_gaps / pmstore_recorder_health" in done.stdout
