"""The ``pmstore`` command line through its real entry point, against real servers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from conftest import RECENT_DAY, TestServer

import pmstore as pmstore_package
from pmstore.edition import TESTED_WITH
from pmstore.server import EmbeddedServer

PASSWORD = "Sup3r-Secret-pw"


def pmstore(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pmstore ARGS`` with the given environment additions."""
    full = {k: v for k, v in os.environ.items() if k not in ("PMSTORE_DSN", "PGHOST", "PGSERVICE")}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-P", "-m", "pmstore", *args],  # -P: not the checkout
        capture_output=True,
        text=True,
        env=full,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    """A PMSTORE_HOME for the embedded server of these tests (stopped afterwards)."""
    folder = Path(tempfile.mkdtemp(prefix="pmstore-cli-home-"))
    os.chmod(folder, 0o755)
    yield folder
    EmbeddedServer(folder).stop(mode="immediate")


def test_db_start_twice_url_status_stop(home: Path) -> None:
    env = {"PMSTORE_HOME": str(home)}
    first = pmstore("db", "start", env=env)
    assert first.returncode == 0, first.stderr
    assert "started" in first.stdout
    second = pmstore("db", "start", env=env)
    assert second.returncode == 0 and "already running" in second.stdout

    url = pmstore("db", "url", env=env)
    assert url.returncode == 0
    dsn = url.stdout.strip()
    assert dsn.startswith("postgresql://") and "passfile=" in dsn
    password = (home / "pgpass").read_text().strip().rsplit(":", 1)[1]
    for done in (first, second, url):
        assert password not in done.stdout + done.stderr
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("pmstore",)
    yoyo = pmstore("db", "url", "--yoyo", env=env)
    assert yoyo.stdout.startswith("postgresql+psycopg://")

    status = pmstore("db", "status", env=env)
    assert status.returncode == 0 and "running" in status.stdout

    stop = pmstore("db", "stop", env=env)
    assert stop.returncode == 0 and "stopped" in stop.stdout
    status = pmstore("db", "status", env=env)
    assert status.returncode == 3 and "stopped" in status.stdout
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=3)
    again = pmstore("db", "start", env=env)
    assert again.returncode == 0 and "started" in again.stdout


def test_migrate_forward_status_rollback(server: TestServer) -> None:
    dsn = server.create_database("t_cli_migrate")
    try:
        applied = pmstore("migrate", "--dsn", dsn)
        assert applied.returncode == 0, applied.stderr
        assert applied.stdout.count("applied  0") >= 9
        status = pmstore("migrate", "--status", env={"PMSTORE_DSN": dsn})
        assert status.returncode == 0
        assert "0 pending" in status.stdout and "pending  " not in status.stdout
        back = pmstore("migrate", "--rollback", "2", "--dsn", dsn)
        assert back.returncode == 0, back.stderr
        assert back.stdout.count("rolled back  0") == 2
        status = pmstore("migrate", "--status", "--dsn", dsn)
        assert "2 pending" in status.stdout
        everything = pmstore("migrate", "--rollback-all", "--dsn", dsn)
        assert everything.returncode == 0
        with psycopg.connect(dsn) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables "
                "WHERE schemaname='public' AND tablename NOT LIKE '%yoyo%'"
            ).fetchone()
            assert tables == (0,)
    finally:
        server.drop_database("t_cli_migrate")


def test_migrate_reports_a_stale_lock(server: TestServer) -> None:
    dsn = server.migrated_database("t_cli_lock")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now(), 424242)")
        done = pmstore("migrate", "--dsn", dsn, "--lock-timeout", "1")
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        # One line saying who holds the lock before the wait, one error line after it.
        assert len(lines) == 2 and "waiting up to 1s" in lines[0] and "424242" in lines[0]
        assert lines[1].startswith("pmstore: error:")
        assert "424242" in lines[1] and "--break-lock" in lines[1]
        assert pmstore("migrate", "--break-lock", "--dsn", dsn).returncode == 0
        assert pmstore("migrate", "--dsn", dsn, "--lock-timeout", "1").returncode == 0
    finally:
        server.drop_database("t_cli_lock")


@pytest.mark.parametrize("edition", ["community", "apache"])
def test_status_on_both_editions(edition: str, request: pytest.FixtureRequest) -> None:
    srv: TestServer = request.getfixturevalue(f"{edition}_server")
    dsn = srv.migrated_database(f"t_cli_status_{edition}")
    try:
        done = pmstore("status", "--dsn", dsn)
        assert done.returncode == 0, done.stderr
        text = done.stdout
        assert "0 pending" in text and "price_snapshots" in text
        if edition == "apache":
            assert text.count("MISSING") == 3 and "Apache-2 edition" in text
            assert "policy jobs  none" in text
        else:
            assert "MISSING" not in text and "Community edition" in text
            assert text.count("policy_compression") == 3
            assert "policy_refresh_continuous_aggregate" in text
    finally:
        srv.drop_database(f"t_cli_status_{edition}")


def test_drift_is_named_by_status_and_refused_by_migrate(server: TestServer) -> None:
    dsn = server.migrated_database("t_cli_drift")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            # What an edit of 0003's file after it was applied looks like to pmstore.
            conn.execute(
                "UPDATE pmstore_migration_checksums SET sha256 = repeat('0', 64) "
                "WHERE migration_id = '0003_price_snapshots'"
            )
        listed = pmstore("migrate", "--status", "--dsn", dsn)
        assert listed.returncode == 1
        assert re.search(r"^DRIFTED +0003_price_snapshots$", listed.stdout, re.M), listed.stdout
        assert listed.stdout.count("DRIFTED") == 1
        status = pmstore("status", "--dsn", dsn)
        assert status.returncode == 0, status.stderr
        assert "DRIFT: changed since applied: 0003_price_snapshots " in status.stdout
        refused = pmstore("migrate", "--dsn", dsn)
        assert refused.returncode == 1
        (line,) = refused.stderr.strip().splitlines()
        assert line.startswith("pmstore: error:") and "0003_price_snapshots" in line
        assert "--allow-drift" in line
        allowed = pmstore("migrate", "--allow-drift", "--dsn", dsn)
        assert allowed.returncode == 0, allowed.stderr
        assert "0003_price_snapshots" in allowed.stderr
        again = pmstore("migrate", "--status", "--dsn", dsn)
        assert again.returncode == 0 and "DRIFTED" not in again.stdout
    finally:
        server.drop_database("t_cli_drift")


def test_status_names_the_tested_versions(server: TestServer) -> None:
    dsn = server.migrated_database("t_cli_versions")
    try:
        done = pmstore("status", "--dsn", dsn)
        assert done.returncode == 0, done.stderr
        for combination in TESTED_WITH:
            assert combination in done.stdout
        assert "TimescaleDB 2.19.3" in done.stdout and "2.28.3" in done.stdout
    finally:
        server.drop_database("t_cli_versions")


def test_version_is_the_package_version() -> None:
    done = pmstore("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"pmstore {pmstore_package.__version__}"


def report_number(text: str, pattern: str) -> int:
    """The number the demo's report prints where ``pattern`` (one group) matches."""
    found = re.search(pattern, text, re.MULTILINE)
    assert found, f"{pattern!r} not in:\n{text}"
    return int(found.group(1).replace(",", ""))


def archived_frames(directory: Path, run: str) -> int:
    """Frames in the closed archive files of one recorder run."""
    from pmstore.recorder import read_archive
    from pmstore.recorder.archive import closed_files

    frames = 0
    for f in closed_files(directory):
        if f.run == run:
            _, records = read_archive(f.path)
            frames += sum(1 for r in records if r.get("k") == "frame")
    return frames


def test_demo_summary_matches_the_database(server: TestServer, tmp_path: Path) -> None:
    """The demo records the simulator (a socket frozen mid-run), then writes a short history;
    what its report names is what the database and the archive hold."""
    dsn = server.create_database("t_cli_demo")
    archive = tmp_path / "archive"
    history_end = RECENT_DAY.replace(hour=12)
    live_from = RECENT_DAY + timedelta(days=1)  # the history ends two days ago, noon
    try:
        demo = ["demo", "--dsn", dsn, "--seconds", "3", "--snapshot-every", "2",
                "--markets", "6", "--minutes", "3", "--tokens", "400", "--archive",
                str(archive), "--no-progress", "--end", history_end.isoformat()]  # fmt: skip
        done = pmstore(*demo)
        assert done.returncode == 0, done.stderr
        text = done.stdout
        live = {
            table: report_number(text, rf"^    {table}\s+([\d,]+)$")
            for table in ("price_snapshots", "orderbook_snapshots", "trades", "markets",
                          "resolutions", "feed_gaps")
        }  # fmt: skip
        with psycopg.connect(dsn) as conn:

            def count(sql: str, *params: object) -> int:
                row = conn.execute(sql, params).fetchone()
                assert row is not None
                return int(row[0])

            for table in ("price_snapshots", "orderbook_snapshots", "trades"):
                in_db = count(f"SELECT count(*) FROM {table} WHERE ts >= %s", live_from)
                assert in_db == live[table] > 0, table
            tokens = [str(r[0]) for r in conn.execute("SELECT DISTINCT token_id FROM feed_gaps")]
            assert len(tokens) == 12  # only the recorder writes gaps: every token has one
            markets_sql = "SELECT count(*) FROM markets WHERE clob_token_ids && %s::text[]"
            assert count(markets_sql, tokens) == live["markets"] == 6
            resolved_sql = (
                "SELECT count(*) FROM resolutions JOIN markets USING (condition_id) "
                "WHERE clob_token_ids && %s::text[]"
            )
            assert count(resolved_sql, tokens) == live["resolutions"] == 1
            # Every gap is the run's (a fresh database); the freeze's closed, one open per token.
            assert count("SELECT count(*) FROM feed_gaps") == live["feed_gaps"]
            silenced = report_number(text, r"(\d+) silence gap\(s\) opened and closed")
            closed_silence = (
                "SELECT count(*) FROM feed_gaps WHERE reason = 'silence' AND ended_at IS NOT NULL"
            )
            assert count(closed_silence) == silenced > 0
            open_sql = "SELECT token_id, started_at FROM feed_gaps WHERE ended_at IS NULL"
            first_open = conn.execute(open_sql).fetchall()
            assert sorted(str(r[0]) for r in first_open) == sorted(tokens)
            # The history: synthetic rows through the Writer, before the live ones.
            history_prices = count("SELECT count(*) FROM price_snapshots WHERE ts < %s", live_from)
            fifty = count(
                "SELECT count(*) FROM resolutions "
                "WHERE winner_token_id IS NULL AND payout_price = 0.5"
            )
        assert history_prices == 3 * 400 and fifty == 1
        assert re.search(rf"price snapshots\s+{history_prices:,} rows", text)
        assert (
            "hourly candles" in text
            and "p99" in text
            and "coverage    price snapshots of 12" in text
        )
        run = re.search(r"run ([0-9a-f]{16})\)", text)
        assert run, text
        assert archived_frames(archive, run.group(1)) == report_number(
            text, r"archived\s+([\d,]+) frames verbatim"
        )
        # A given server's database with data: refused without --force.
        refused = pmstore(*demo)
        assert refused.returncode == 1 and "--force" in refused.stderr
        # Again on the same archive (a drop this time): the history is in the ingest log
        # already, and the first run's open gaps are closed by the second run's fresh books.
        again = pmstore(*demo, "--fault", "drop", "--force")
        assert again.returncode == 0, again.stderr
        assert "3 price batch(es) were already written" in again.stdout
        assert re.search(r"\d+ disconnect gap\(s\) opened and closed", again.stdout)
        with psycopg.connect(dsn) as conn:
            assert conn.execute(
                "SELECT count(*) FROM price_snapshots WHERE ts < %s", (live_from,)
            ).fetchone() == (1200,)
            still_open = conn.execute(
                "SELECT count(*) FROM feed_gaps WHERE ended_at IS NULL AND (token_id, started_at) "
                "IN (SELECT * FROM unnest(%s::text[], %s::timestamptz[]))",
                ([r[0] for r in first_open], [r[1] for r in first_open]),
            ).fetchone()
        assert still_open == (0,)
    finally:
        server.drop_database("t_cli_demo")


def test_wrong_dsn_and_unreachable_server_give_one_line_errors() -> None:
    for args in (
        ["status", "--dsn", f"postgresql://u:{PASSWORD}@127.0.0.1:1/x?connect_timeout=2"],
        ["migrate", "--dsn", f"host=127.0.0.1 port=1 password={PASSWORD} connect_timeout=2"],
        ["status", "--dsn", "this is not a dsn"],
        ["db", "url", "--dsn", f"postgresql://u:{PASSWORD}@h/db"],
    ):
        done = pmstore(*args)
        output = done.stdout + done.stderr
        assert PASSWORD not in output, args
        if args[:2] == ["db", "url"]:
            assert done.returncode == 0 and "***" in done.stdout
            continue
        assert done.returncode == 1, (args, output)
        assert (
            done.stderr.startswith("pmstore: error: ")
            and len(done.stderr.strip().splitlines()) == 1
        )
        assert "Traceback" not in output


def test_every_command_has_help() -> None:
    for command in ([], ["db"], ["migrate"], ["demo"], ["status"], ["ingest"]):
        done = pmstore(*command, "--help")
        assert done.returncode == 0 and "usage: pmstore" in done.stdout
