"""The schema: yoyo migrations on both TimescaleDB editions, rollback, locks, the yoyo CLI."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import APACHE_ONLY, TestServer, tsl_module_installed
from yoyo import read_migrations

from pmstore import migrations
from pmstore.dsn import describe, to_yoyo_url
from pmstore.edition import FEATURES, features, require_feature, server_info
from pmstore.errors import (
    FeatureUnavailableError,
    MigrationDriftError,
    MigrationError,
    MigrationLockError,
)
from pmstore.server import EmbeddedServer

REPO = Path(__file__).resolve().parents[1]
MIGRATIONS = REPO / "migrations"
HYPERTABLES = {
    "price_snapshots": "1 day",
    "orderbook_snapshots": "7 days",
    "trades": "1 day",
}
TABLES = {"markets", "price_snapshots", "orderbook_snapshots", "trades", "resolutions"}
AGGREGATES = {"price_candles_1h", "trade_volume_1h"}


def _rows(conn: psycopg.Connection[Any], sql: str, *args: object) -> list[tuple[Any, ...]]:
    return conn.execute(sql, args or None).fetchall()


def user_jobs(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str]]:
    """(proc_name, object name, schedule) of pmstore's jobs, system jobs left out.

    A continuous aggregate's refresh job names its view from TimescaleDB
    2.20 on, and its materialized hypertable before: both map to the view.
    """
    rows = _rows(
        conn,
        """
        SELECT j.proc_name,
               coalesce(ca.view_name, j.hypertable_name),
               j.schedule_interval::text
        FROM timescaledb_information.jobs j
        LEFT JOIN timescaledb_information.continuous_aggregates ca
               ON ca.materialization_hypertable_name = j.hypertable_name
               OR ca.view_name = j.hypertable_name
        WHERE j.job_id >= 1000
        ORDER BY 1, 2
        """,
    )
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def catalog(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    """A dump of the schema pmstore owns, free of ids that change between applies."""
    return {
        "columns": _rows(
            conn,
            """
            SELECT table_name, column_name, data_type, is_nullable, column_default,
                   collation_name
            FROM information_schema.columns
            WHERE table_schema = 'public' AND table_name NOT LIKE '%yoyo%'
            ORDER BY 1, 2
            """,
        ),
        "indexes": _rows(
            conn,
            """
            SELECT tablename, indexname, indexdef FROM pg_indexes
            WHERE schemaname = 'public' AND tablename NOT LIKE '%yoyo%' ORDER BY 1, 2
            """,
        ),
        "hypertables": _rows(
            conn,
            """
            SELECT h.hypertable_name, d.column_name, d.time_interval::text, h.compression_enabled
            FROM timescaledb_information.hypertables h
            JOIN timescaledb_information.dimensions d USING (hypertable_schema, hypertable_name)
            WHERE h.hypertable_schema = 'public' ORDER BY 1
            """,
        ),
        "aggregates": _rows(
            conn,
            """
            SELECT view_name, materialized_only, view_definition
            FROM timescaledb_information.continuous_aggregates ORDER BY 1
            """,
        ),
        "compression": _rows(
            conn,
            """
            SELECT hypertable::text, segmentby, orderby
            FROM timescaledb_information.hypertable_compression_settings
            WHERE hypertable::text NOT LIKE '%_materialized_hypertable_%' ORDER BY 1
            """,
        ),
        "jobs": [tuple(j) for j in user_jobs(conn)],
        "functions": _rows(
            conn,
            """
            SELECT proname, pg_get_function_identity_arguments(oid) FROM pg_proc
            WHERE proname LIKE 'pmstore%' ORDER BY 1
            """,
        ),
        "features": _rows(conn, "SELECT feature, available FROM pmstore_features ORDER BY 1"),
    }


# -- files ------------------------------------------------------------------


def test_every_migration_has_a_rollback() -> None:
    steps = sorted(p for p in MIGRATIONS.glob("*.sql") if not p.name.endswith(".rollback.sql"))
    forward = [p for p in steps if not p.name.startswith("post-apply")]
    assert len(forward) >= 9
    missing = [
        p.name
        for p in forward
        if not p.with_name(p.name.replace(".sql", ".rollback.sql")).exists()
        or not p.with_name(p.name.replace(".sql", ".rollback.sql")).read_text().strip()
    ]
    assert missing == [], f"migrations without a rollback file: {missing}"


def test_migration_files_are_what_yoyo_expects() -> None:
    assert not (MIGRATIONS / "__init__.py").exists(), "yoyo would load __init__.py as a migration"
    names = sorted(p.name for p in MIGRATIONS.iterdir())
    for name in names:
        assert name == "post-apply.sql" or name[:4].isdigit(), name
        assert name.endswith(".sql"), name
    for path in MIGRATIONS.glob("[0-9]*.sql"):
        if path.name.endswith(".rollback.sql"):
            continue
        head = path.read_text().splitlines()[:3]
        assert any(line.startswith("-- depends:") for line in head), path.name


# -- the full schema (Community) -------------------------------------------


@pytest.fixture(scope="module")
def community_db(community_server: TestServer) -> Any:
    name = "t_migrations_community"
    yield community_server.migrated_database(name)
    community_server.drop_database(name)


def test_full_schema_on_community(community_db: str) -> None:
    with psycopg.connect(community_db) as conn:
        tables = {
            r[0] for r in _rows(conn, "SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        assert tables >= TABLES | {"pmstore_features", "pmstore_ingest_log"}

        intervals = dict(
            _rows(
                conn,
                """SELECT hypertable_name, time_interval::text
                   FROM timescaledb_information.dimensions WHERE hypertable_schema='public'""",
            )
        )
        expected = {"price_snapshots": "1 day", "orderbook_snapshots": "7 days", "trades": "1 day"}
        assert intervals == expected

        aggregates = {
            r[0]
            for r in _rows(
                conn, "SELECT view_name FROM timescaledb_information.continuous_aggregates"
            )
        }
        assert aggregates == AGGREGATES

        candle_cols = [
            r[0]
            for r in _rows(
                conn,
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name='price_candles_1h' ORDER BY ordinal_position",
            )
        ]
        assert candle_cols == ["bucket", "token_id", "open", "high", "low", "close", "avg_volume"]
        volume_cols = [
            r[0]
            for r in _rows(
                conn,
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name='trade_volume_1h' ORDER BY ordinal_position",
            )
        ]
        assert volume_cols == [
            "bucket",
            "token_id",
            "trade_count",
            "total_size",
            "total_value",
            "avg_price",
        ]

        compression = {
            r[0]: (r[1], r[2])
            for r in _rows(
                conn,
                """SELECT hypertable::text, segmentby, orderby
                   FROM timescaledb_information.hypertable_compression_settings""",
            )
            if r[0] in HYPERTABLES
        }
        assert compression == {
            "price_snapshots": ("token_id", "ts DESC"),
            "orderbook_snapshots": ("token_id", "ts DESC"),
            "trades": ("token_id", "ts DESC,trade_id"),
        }

        indexes = {
            r[0]: r[1]
            for r in _rows(
                conn, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname='public'"
            )
        }
        for table in HYPERTABLES:  # plan 01-03's names (migration 0015)
            assert f"{table} USING btree (token_id, ts DESC)" in indexes[f"idx_{table}_token_time"]
        assert "UNIQUE INDEX" in indexes["idx_trades_trade_id"]
        assert "(trade_id, ts)" in indexes["idx_trades_trade_id"]
        assert "WHERE (active = true)" in indexes["idx_markets_active"]

        jobs = user_jobs(conn)
        by_kind = {(j[0], j[1]) for j in jobs}
        assert by_kind == {
            ("policy_compression", "orderbook_snapshots"),
            ("policy_compression", "price_snapshots"),
            ("policy_compression", "trades"),
            ("policy_refresh_continuous_aggregate", "price_candles_1h"),
            ("policy_refresh_continuous_aggregate", "trade_volume_1h"),
            ("policy_retention", "price_snapshots"),
            ("policy_retention", "trades"),
            ("pmstore_refresh_pending", "None"),  # 0011: drains the refresh queue
        }
        configs = _rows(
            conn,
            "SELECT proc_name, config FROM timescaledb_information.jobs WHERE job_id >= 1000",
        )
        for proc, config in configs:
            if proc == "policy_refresh_continuous_aggregate":
                assert (config["start_offset"], config["end_offset"]) == ("03:00:00", "01:00:00")
            elif proc == "policy_compression":
                assert config["compress_after"] == "7 days"
            elif proc == "pmstore_refresh_pending":
                assert config == {"max_hours": 168}
            else:
                assert config["drop_after"] == "90 days"

        have = features(conn)
        assert set(have) == set(FEATURES)
        assert all(f.available for f in have.values())
        assert require_feature(conn, "compression").available


@pytest.fixture(params=["community", "apache"])
def edition_server(request: pytest.FixtureRequest) -> TestServer:
    """Each edition in turn (the Community one skips, naming what is missing, where none is)."""
    server: TestServer = request.getfixturevalue(f"{request.param}_server")
    return server


def test_round_trip_leaves_an_identical_schema(edition_server: TestServer) -> None:
    community_server = edition_server
    dsn = community_server.create_database("t_migrations_round_trip")
    try:
        applied = migrations.apply(dsn).migrations
        assert applied[0] == "0001_extensions" and len(applied) >= 9
        with psycopg.connect(dsn) as conn:
            first = catalog(conn)
        if community_server.info.edition == "community":
            assert first["aggregates"] and first["jobs"]
        else:
            assert first["aggregates"] == [] and first["jobs"] == []
        assert len(first["hypertables"]) == 3

        rolled = migrations.rollback(dsn).migrations
        assert sorted(rolled) == sorted(applied)
        with psycopg.connect(dsn) as conn:
            left = _rows(
                conn,
                "SELECT tablename FROM pg_tables WHERE schemaname='public' "
                "AND tablename NOT LIKE '%yoyo%'",
            )
            assert left == []
            assert _rows(conn, "SELECT 1 FROM pg_extension WHERE extname='timescaledb'") == []
            assert _rows(conn, "SELECT 1 FROM pg_proc WHERE proname LIKE 'pmstore%'") == []

        migrations.apply(dsn)
        with psycopg.connect(dsn) as conn:
            again = catalog(conn)
        assert again == first
        assert migrations.status(dsn).pending == []
    finally:
        community_server.drop_database("t_migrations_round_trip")


def test_rollback_of_the_last_steps_drops_aggregates_and_jobs(community_server: TestServer) -> None:
    dsn = community_server.create_database("t_migrations_partial")
    try:
        migrations.apply(dsn)
        # 0007 and every later step go: aggregates before their hypertables, policies removed.
        applied = migrations.status(dsn).applied
        later = applied[applied.index("0007_continuous_aggregates") :]
        rolled = migrations.rollback(dsn, len(later)).migrations
        assert sorted(rolled) == later and rolled[-1] == "0007_continuous_aggregates"
        assert rolled.index("0008_compression_retention") < rolled.index(
            "0007_continuous_aggregates"
        )
        with psycopg.connect(dsn) as conn:
            assert user_jobs(conn) == []
            assert _rows(conn, "SELECT * FROM timescaledb_information.continuous_aggregates") == []
            assert features(conn) == {}
        assert migrations.status(dsn).pending == rolled[::-1]
    finally:
        community_server.drop_database("t_migrations_partial")


# -- the Apache-2 edition ---------------------------------------------------


def test_apache_edition_applies_with_warnings_and_records_missing_features(
    apache_server: TestServer,
) -> None:
    dsn = apache_server.create_database("t_migrations_apache")
    try:
        result = migrations.apply(dsn)
        assert "0008_compression_retention" in result.migrations
        joined = " ".join(result.warnings)
        for word in ("continuous aggregates", "compression", "retention"):
            assert word in joined, f"no warning names {word!r}: {result.warnings}"
        with psycopg.connect(dsn) as conn:
            assert server_info(conn).edition == "apache"
            have = features(conn)
            assert set(have) == set(FEATURES)
            assert not any(f.available for f in have.values())
            assert all("Apache" in f.detail for f in have.values())
            with pytest.raises(FeatureUnavailableError, match="Apache"):
                require_feature(conn, "continuous_aggregates")
            tables = {
                r[0]
                for r in _rows(conn, "SELECT tablename FROM pg_tables WHERE schemaname='public'")
            }
            assert tables >= TABLES
            hypertables = {
                r[0]
                for r in _rows(
                    conn, "SELECT hypertable_name FROM timescaledb_information.hypertables"
                )
            }
            assert hypertables == set(HYPERTABLES)
            assert user_jobs(conn) == []
        # Applying again is a quiet no-op, and rolling everything back works here too.
        assert migrations.apply(dsn).migrations == []
        assert len(migrations.rollback(dsn).migrations) >= 9
    finally:
        apache_server.drop_database("t_migrations_apache")


def test_server_that_gains_the_community_edition_gets_the_missing_features(
    server: TestServer,
) -> None:
    if server.embedded is None:
        pytest.skip(
            "needs an embedded server it can restart with another license, started from "
            "binaries with the TimescaleDB Community edition; the suite's server is not one "
            f"it started ({server.source})"
        )
    bindir = server.embedded.bindir
    if not tsl_module_installed(bindir):
        pytest.skip(
            "needs binaries with the TimescaleDB Community edition to restart a server with "
            f"it; the suite's binaries in {bindir} {APACHE_ONLY}"
        )
    with EmbeddedServer.throwaway(bindir=bindir, license="apache") as embedded:
        dsn = embedded.dsn()
        migrations.apply(dsn)
        with psycopg.connect(dsn) as conn:
            assert not any(f.available for f in features(conn).values())
        embedded.license = "timescale"
        embedded.restart()
        result = migrations.apply(dsn)
        assert result.migrations == []  # nothing pending: the post-apply hook did it
        with psycopg.connect(dsn) as conn:
            assert all(f.available for f in features(conn).values())
            assert len(user_jobs(conn)) == 8  # 0007/0008's seven, 0011's refresh drain
            views = _rows(
                conn, "SELECT view_name FROM timescaledb_information.continuous_aggregates"
            )
            assert {r[0] for r in views} == AGGREGATES


# -- a session that missed the drop of TimescaleDB ----------------------------

_MISSED_DROP = """\
\"\"\"0001_extensions for one test: its rollback drops TimescaleDB while every other
session of the database (yoyo's own) is stopped, then floods the server's invalidation
queue, so that those sessions miss the drop (a queue reset) when they wake up.\"\"\"

import os
import signal

from yoyo import step

__transactional__ = False
APPLY = {apply!r}
ROLLBACK = {rollback!r}
FLOOD = (
    "DO $$ BEGIN FOR i IN 1..2000 LOOP"
    " CREATE TEMP TABLE pmstore_flood (a int); DROP TABLE pmstore_flood;"
    " END LOOP; END $$"
)


def apply(conn):
    conn.cursor().execute(APPLY)


def rollback(conn):
    cur = conn.cursor()
    cur.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )
    others = [row[0] for row in cur.fetchall()]
    assert others, "no other session: yoyo's own should be connected"
    for pid in others:
        os.kill(pid, signal.SIGSTOP)
    try:
        cur.execute(ROLLBACK)
        cur.execute(FLOOD)
    finally:
        for pid in others:
            os.kill(pid, signal.SIGCONT)


steps = [step(apply, rollback)]
"""


def test_rollback_survives_a_session_that_missed_the_drop_of_timescaledb(
    edition_server: TestServer, tmp_path: Path
) -> None:
    """Issue 23 item 5: yoyo writes its log row and releases its lock on the session it
    opened first. A session that missed DROP EXTENSION timescaledb (the server's
    invalidation queue was reset under it, e.g. while it waited for a CPU) keeps
    TimescaleDB's catalog ids and fails with "could not open relation with OID". The
    test stops that session during the drop (SIGSTOP, deterministic) instead of
    waiting for the race."""
    if edition_server.embedded is None:
        pytest.skip(
            "needs a server process on this machine whose backends the test may stop "
            f"(an embedded server the suite started); the server is {edition_server.source}"
        )
    source = tmp_path / "migrations"
    shutil.copytree(migrations.migrations_dir(), source)
    first = source / "0001_extensions.sql"
    undo = source / "0001_extensions.rollback.sql"
    (source / "0001_extensions.py").write_text(
        _MISSED_DROP.format(apply=first.read_text(), rollback=undo.read_text())
    )
    first.unlink()
    undo.unlink()
    dsn = edition_server.create_database("t_migrations_missed_drop")
    try:
        for _ in range(2):  # and the schema comes back over the same database
            applied = migrations.apply(dsn, source=source).migrations
            assert applied[0] == "0001_extensions"
            rolled = migrations.rollback(dsn, source=source).migrations
            assert sorted(rolled) == sorted(applied) and rolled[-1] == "0001_extensions"
            assert migrations.status(dsn, source=source).applied == []
            with psycopg.connect(dsn) as conn:
                assert _rows(conn, "SELECT 1 FROM pg_extension WHERE extname='timescaledb'") == []
                assert _rows(conn, "SELECT pid FROM yoyo_lock") == []  # the lock was released
                logged = _rows(
                    conn,
                    "SELECT operation FROM _yoyo_log WHERE migration_id = '0001_extensions' "
                    "ORDER BY created_at_utc DESC LIMIT 1",
                )
                assert logged == [("rollback",)]
    finally:
        edition_server.drop_database("t_migrations_missed_drop")


# -- the lock ---------------------------------------------------------------


def test_stale_lock_is_reported_with_the_way_out(empty_db: str) -> None:
    migrations.apply(empty_db)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        # What a process killed mid-migration leaves behind.
        conn.execute("INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now(), 999999)")
    with pytest.raises(MigrationLockError) as info:
        migrations.apply(empty_db, lock_timeout=1)
    message = str(info.value)
    assert "999999" in message and "break-lock" in message
    migrations.break_lock(empty_db)
    assert migrations.apply(empty_db, lock_timeout=1).migrations == []


def test_a_database_that_takes_no_writes_is_refused_at_once(empty_db: str) -> None:
    """Not a standby, but read-only all the same: refused before yoyo's lock (a lock timeout
    of 1 s would end in MigrationLockError); reading the state still works. A real hot
    standby: tests/test_failover.py."""
    applied = migrations.apply(empty_db).migrations
    name = str(psycopg.conninfo.conninfo_to_dict(empty_db)["dbname"])
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    calls: list[Callable[[], object]] = [
        lambda: migrations.apply(empty_db, lock_timeout=1),
        lambda: migrations.rollback(empty_db, 1, lock_timeout=1),
    ]
    for call in calls:
        with pytest.raises(MigrationError) as info:
            call()
        assert type(info.value) is MigrationError
        assert str(info.value) == (
            f"{describe(empty_db)} accepts no writes (transaction_read_only is on, e.g. "
            "through default_transaction_read_only): migrations need a writable session"
        )
    assert migrations.status(empty_db).applied == applied
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")
        conn.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
    assert migrations.apply(empty_db, lock_timeout=1).migrations == []


# -- the yoyo command line --------------------------------------------------


def _yoyo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the yoyo command line with no PMSTORE_* / PG* variable set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMSTORE_YOYO", "PG"))}
    yoyo = Path(sys.executable).with_name("yoyo")
    return subprocess.run(
        [str(yoyo), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_yoyo_apply_and_list_from_the_repo_root(empty_db: str) -> None:
    url = to_yoyo_url(empty_db)
    done = _yoyo("apply", "--database", url, cwd=REPO)
    assert done.returncode == 0, done.stderr
    # yoyo prints the rows of SELECT statements: the migrations must have none.
    assert "create_hypertable" not in done.stdout and "(1,t)" not in done.stdout
    assert done.stdout.strip() == ""
    status = migrations.status(empty_db)
    assert status.pending == [] and len(status.applied) >= 10
    # Plain yoyo records no checksums: the next pmstore migrate does.
    assert status.unrecorded == status.applied and status.drifted == []
    with psycopg.connect(empty_db) as conn:
        assert set(features(conn)) == set(FEATURES)
    listed = _yoyo("list", "--database", url, cwd=REPO)
    assert listed.returncode == 0, listed.stderr
    for mid in status.applied:
        assert re.search(rf"^A +{mid} ", listed.stdout, re.M), (mid, listed.stdout)
    assert migrations.apply(empty_db).migrations == []
    after = migrations.status(empty_db)
    assert after.unrecorded == [] and after.drifted == []


def test_yoyo_without_a_database_says_so_in_one_line() -> None:
    for command in ("apply", "list"):
        done = _yoyo(command, cwd=REPO)
        assert done.returncode != 0
        assert "Traceback" not in done.stderr and "Interpolation" not in done.stderr
        assert done.stderr.strip().splitlines()[-1] == "yoyo: error: Please specify a database uri"
    helped = _yoyo("--help", cwd=REPO)
    assert helped.returncode == 0 and "apply" in helped.stdout, helped.stderr


def test_yoyo_apply_from_the_installed_package(empty_db: str, db: str, tmp_path: Path) -> None:
    """The README's one command for a wheel without a checkout: the same schema, hook included."""
    loaded = read_migrations(migrations.YOYO_SOURCE)
    assert [m.id for m in loaded.post_apply] == ["post-apply"]
    assert [m.id for m in loaded] == sorted(
        p.stem for p in MIGRATIONS.glob("[0-9]*.sql") if not p.name.endswith(".rollback.sql")
    )
    url = to_yoyo_url(empty_db)
    done = _yoyo("apply", "--batch", "--database", url, migrations.YOYO_SOURCE, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with psycopg.connect(empty_db) as got, psycopg.connect(db) as want:
        assert catalog(got) == catalog(want)


# -- drift --------------------------------------------------------------------


def test_drift_is_named_refused_and_allowed_on_request(empty_db: str, tmp_path: Path) -> None:
    migrations.apply(empty_db)
    assert migrations.status(empty_db).drifted == []
    edited = tmp_path / "migrations"
    shutil.copytree(migrations.migrations_dir(), edited)
    markets = edited / "0002_markets.sql"
    markets.write_text(markets.read_text() + "\n-- edited after it was applied\n")
    (edited / "0099_probe.sql").write_text(
        "-- a pending step\n-- depends: 0010_migration_checksums\nCREATE TABLE probe (x int);\n"
    )
    (edited / "0099_probe.rollback.sql").write_text("DROP TABLE probe;\n")

    state = migrations.status(empty_db, source=edited)
    assert state.drifted == ["0002_markets"] and state.pending == ["0099_probe"]
    with pytest.raises(MigrationDriftError) as info:
        migrations.apply(empty_db, source=edited)
    assert info.value.migrations == ("0002_markets",)
    assert "0002_markets" in str(info.value) and "--allow-drift" in str(info.value)
    assert pickle.loads(pickle.dumps(info.value)).migrations == ("0002_markets",)
    with psycopg.connect(empty_db) as conn:
        assert _rows(conn, "SELECT to_regclass('probe')") == [(None,)]

    allowed = migrations.apply(empty_db, source=edited, allow_drift=True)
    assert allowed.migrations == ["0099_probe"]
    assert any("0002_markets" in w for w in allowed.warnings)
    # The edited files are the reference now; pmstore's own 0002 differs from it.
    assert migrations.status(empty_db, source=edited).drifted == []
    assert migrations.status(empty_db).drifted == ["0002_markets"]


def test_rollback_forgets_checksums_and_apply_records_them_again(empty_db: str) -> None:
    migrations.apply(empty_db)
    applied = migrations.status(empty_db).applied
    back = migrations.rollback(empty_db, len(applied) - applied.index("0009_ingest_log"))
    assert "0010_migration_checksums" in back.migrations
    assert back.migrations[-1] == "0009_ingest_log"
    state = migrations.status(empty_db)
    assert state.pending[:2] == ["0009_ingest_log", "0010_migration_checksums"]
    assert state.unrecorded == state.applied  # the table went with 0010
    migrations.apply(empty_db)
    with psycopg.connect(empty_db) as conn:
        rows = dict(_rows(conn, f"SELECT migration_id, sha256 FROM {migrations.CHECKSUM_TABLE}"))
    loaded = read_migrations(migrations.YOYO_SOURCE)
    assert rows == {m.id: migrations.checksum(m) for m in loaded}
