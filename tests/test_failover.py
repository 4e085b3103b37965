"""pmstore on a replicated server: failover, lost batches, reads on a hot standby.

The servers are real: a primary and a streaming hot standby started by the
tests with the suite's own PostgreSQL and TimescaleDB binaries
(``tests/replication.py``: ``pg_basebackup``, replication on 127.0.0.1).
Nothing waits on a clock: replay is awaited by a ``remote_apply`` commit and
checked with ``pg_last_wal_replay_lsn()``; the failover's timing comes from
the test through ``tests/fault_proxy.py``, which holds the Writer's n-th
connection attempt until the test has promoted the standby, and cuts the WAL
stream to lose a batch on purpose. A read-only server is also made by a
trigger raising SQLSTATE 25006 (what a hot standby answers a write).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg
import pytest
from async_adapter import Kind, kind
from conftest import APACHE_ONLY, RECENT_DAY, TestServer, tsl_module_installed
from fault_proxy import PgProxy, pg_proxy
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from replication import DATABASE, Pair, replicated_pair
from test_ingest_resume import archive_lines, ingest, state

from pmstore import AsyncReader, migrations
from pmstore._write.connection_base import CONNECT_TIMEOUT, writer_conninfo
from pmstore._write.retry import (
    DEFAULT_BACKOFF,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_RETRY_FOR,
    RetryBudget,
)
from pmstore.cli import build_parser
from pmstore.dsn import describe
from pmstore.errors import (
    ConfigurationError,
    ConnectionLostError,
    MigrationError,
    ServerError,
    WriteError,
)
from pmstore.reader import Reader
from pmstore.refresh import refresh_range
from pmstore.server import find_bindir
from pmstore.synthetic import MarketSimulator
from pmstore.writer import Writer

__all__ = ["kind"]  # the fixture, imported for pytest

Conn = psycopg.Connection[tuple[Any, ...]]


def price_columns(n: int, seed: int) -> dict[str, Any]:
    """``n`` price rows of batch ``seed``: timestamps of one batch never meet another's."""
    rng = np.random.default_rng(seed)
    ids = np.array([str(10**76 + i * 7919) for i in range(40)], dtype=object)
    start = np.datetime64(RECENT_DAY.replace(tzinfo=None), "us") + np.timedelta64(seed, "h")
    return {
        "ts": start + np.arange(n).astype("timedelta64[ms]") * 53,
        "token_id": ids[rng.integers(0, len(ids), n)],
        "price": rng.uniform(0, 1, n),
    }


def count(conn: Conn, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


# -- dsn.describe of several servers --------------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "described"),
    [
        (
            "postgresql://app:s3cret@db1:5432,db2:5433/pm?target_session_attrs=read-write",
            "app@db1:5432,db2:5433/pm",
        ),
        (
            "host=db1,db2,db3 port=5432,5433,5434 user=app password=s3cret dbname=pm",
            "app@db1:5432,db2:5433,db3:5434/pm",
        ),
        (
            "host=db1,db2 port=6432 user=app password='s 3cret' dbname=pm",
            "app@db1:6432,db2:6432/pm",
        ),
        ("postgresql://app:s3cret@[::1]:5432,db2/pm", "app@[::1]:5432,db2:5432/pm"),
        ("postgresql://app:s3cret@db1:5433/pm", "app@db1:5433/pm"),
        (
            "host=/var/run/postgresql,db2 port=5432 user=app dbname=pm",
            "app@/var/run/postgresql:5432,db2:5432/pm",  # a socket folder, as libpq names it
        ),
    ],
)
def test_describe_names_each_server_as_host_port(dsn: str, described: str) -> None:
    text = describe(dsn)
    assert text == described
    assert "s3cret" not in text and "s 3cret" not in text


# -- the retry budget -----------------------------------------------------------------


def test_retry_budget_defaults_ride_out_a_30_second_failover() -> None:
    budget = RetryBudget()
    assert (budget.retry_for, budget.retries) == (DEFAULT_RETRY_FOR, None)
    assert (budget.backoff, budget.max_backoff) == (DEFAULT_BACKOFF, DEFAULT_MAX_BACKOFF)
    # The longest waits (draw -> 1): doubling from backoff, capped at max_backoff.
    longest = [budget.wait(k, 0.0, 1.0) for k in range(1, 8)]
    assert longest == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    # The shortest (draw 0) are half as long: writers cut off together spread out.
    assert [budget.wait(k, 0.0, 0.0) for k in range(1, 5)] == [0.25, 0.5, 1.0, 2.0]
    # Attempts go on through a 30 s outage with the shortest waits as with the longest,
    # and a new primary is found at most max_backoff after it appears.
    for draw in (0.0, 1.0):
        failed_for, retry = 0.0, 1
        while (wait := budget.wait(retry, failed_for, draw)) is not None:
            failed_for, retry = failed_for + wait, retry + 1
        assert failed_for == pytest.approx(DEFAULT_RETRY_FOR)  # the last wait ends on time
        assert retry > 10
    # The last wait is cut to end at the deadline; past it, none.
    assert budget.wait(40, 58.5, 1.0) == pytest.approx(1.5)
    assert budget.wait(40, 60.0, 0.5) is None


def test_retries_and_retry_for_limit_together() -> None:
    old = RetryBudget(retry_for=None, retries=3)  # what the Writer did before retry_for
    assert [old.wait(k, 1e6, 1.0) for k in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, None]
    both = RetryBudget(retry_for=2.0, retries=5, backoff=1.0)
    assert both.wait(1, 0.0, 1.0) == 1.0 and both.wait(2, 1.0, 1.0) == 1.0  # time first
    assert both.wait(3, 2.0, 1.0) is None
    assert RetryBudget(retries=0).wait(1, 0.0, 0.0) is None
    assert RetryBudget(retry_for=0).wait(1, 0.0, 0.0) is None
    assert RetryBudget(retry_for=1, backoff=1e300).wait(10_000, 0.0, 1.0) == 1.0  # no overflow
    assert str(RetryBudget()) == "60 s"
    assert str(both) == "5 retries within 2 s" and str(old) == "3 retries"
    for bad in (
        {"retry_for": -1.0},
        {"retries": -1},
        {"backoff": float("nan")},
        {"max_backoff": float("inf")},
        {"retry_for": None, "retries": None},
    ):
        with pytest.raises(ConfigurationError):
            RetryBudget(**bad)
        with pytest.raises(ConfigurationError):
            Writer("host=x", **bad)


def test_writer_connections_get_a_connect_timeout_unless_one_is_set() -> None:
    params = conninfo_to_dict(writer_conninfo("postgresql://u:pw@h1,h2/db", "w", environ={}))
    assert params["connect_timeout"] == str(CONNECT_TIMEOUT)
    assert params["application_name"] == "w" and params["host"] == "h1,h2"
    given = conninfo_to_dict(writer_conninfo("host=h connect_timeout=3", "w", environ={}))
    assert given["connect_timeout"] == "3"
    from_env = writer_conninfo("host=h", "w", environ={"PGCONNECT_TIMEOUT": "4"})
    assert "connect_timeout" not in conninfo_to_dict(from_env)


# -- logged(): which batches the server holds ------------------------------------------


def test_logged_lists_the_batches_in_the_ingest_log(kind: Kind, db: str, conn: Conn) -> None:
    with kind.writer(db) as writer:
        named = writer.copy_prices(price_columns(100, seed=1), batch_id="mine-1")
        digest = writer.copy_prices(price_columns(100, seed=2))  # id: the content's digest
        assert digest.batch_id and digest.batch_id.startswith("price_snapshots:")
        asked = ["mine-1", "lost-2", digest.batch_id, "mine-1", "x" * 500]
        assert writer.logged(asked) == {"mine-1", digest.batch_id}
        assert writer.logged(iter(["lost-2"])) == set()
        assert writer.logged([]) == set()
        for bad in ("mine-1", [1], [None]):
            with pytest.raises(ConfigurationError):
                writer.logged(bad)
        # The recipe: write again what is missing, with its id; what is there is not.
        again = writer.copy_prices(price_columns(100, seed=1), batch_id="mine-1")
        assert again.already_written and again.rows_written == 0
    assert named.rows_written == 100
    assert count(conn, "SELECT count(*) FROM price_snapshots") == 200


# -- a read-only server: retried like a lost connection ---------------------------------

READ_ONLY_SQL = """
CREATE SEQUENCE IF NOT EXISTS pmstore_test_read_only;
CREATE OR REPLACE FUNCTION pmstore_test_read_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('pmstore_test_read_only') <= %(times)s THEN
        RAISE EXCEPTION 'cannot execute INSERT in a read-only transaction'
            USING ERRCODE = 'read_only_sql_transaction';
    END IF;
    RETURN NULL;
END $$;
SELECT setval('pmstore_test_read_only', 1, false);
CREATE OR REPLACE TRIGGER pmstore_test_read_only BEFORE INSERT ON pmstore_ingest_log
    FOR EACH STATEMENT EXECUTE FUNCTION pmstore_test_read_only();
CREATE OR REPLACE TRIGGER pmstore_test_read_only BEFORE INSERT ON markets
    FOR EACH STATEMENT EXECUTE FUNCTION pmstore_test_read_only();
"""
"""Makes the first ``times`` writes of the ingest log or markets fail as on a hot standby."""

NOT_READ_ONLY_SQL = """
DROP TRIGGER IF EXISTS pmstore_test_read_only ON pmstore_ingest_log;
DROP TRIGGER IF EXISTS pmstore_test_read_only ON markets;
"""


@pytest.fixture
def read_only(conn: Conn) -> Iterator[Any]:
    """``read_only(times)``: the database refuses the next ``times`` writes with SQLSTATE 25006."""
    try:
        yield lambda times: conn.execute(READ_ONLY_SQL.replace("%(times)s", str(int(times))))
    finally:
        conn.execute(NOT_READ_ONLY_SQL)


def test_a_read_only_server_is_left_for_a_new_connection(
    kind: Kind, db: str, conn: Conn, read_only: Any
) -> None:
    read_only(1)
    with kind.writer(db, backoff=0) as writer:
        first_pid = writer.backend_pid
        result = writer.copy_prices(price_columns(300, seed=3), batch_id="after-read-only")
        assert writer.backend_pid != first_pid  # the read-only connection was replaced
    assert result.attempts == 2 and result.rows_written == 300
    assert count(conn, "SELECT count(*) FROM price_snapshots") == 300


def test_a_read_only_server_until_the_budget_runs_out(
    kind: Kind, db: str, conn: Conn, read_only: Any
) -> None:
    read_only(1_000)
    with kind.writer(db, retry_for=0) as writer, pytest.raises(ConnectionLostError) as info:
        writer.copy_prices(price_columns(10, seed=4), batch_id="never")
    error = info.value
    assert error.sqlstate == "25006" and error.table == "price_snapshots"
    assert "read-only" in str(error) and "gave up after 1 attempt(s)" in str(error)
    assert "target_session_attrs=read-write" in str(error)
    own = kind.connect(db)
    try:  # a given connection cannot be replaced: the server's error at once
        with pytest.raises(WriteError) as given:
            kind.writer(own).copy_prices(price_columns(10, seed=4), batch_id="never")
        assert type(given.value) is WriteError and given.value.sqlstate == "25006"
    finally:
        kind.close(own)
    assert count(conn, "SELECT count(*) FROM price_snapshots") == 0


# -- the commands that write take --retry-for ------------------------------------------

NEW_MARKET = {
    "event_type": "new_market",
    "id": "1",
    "question": "Will it rain?",
    "market": "0x" + "ab" * 32,
    "slug": "rain",
    "assets_ids": ["1" * 76, "2" * 77],
    "outcomes": ["Yes", "No"],
    "timestamp": "1764547200000",
}


def pmstore_command(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PMSTORE_DSN", "PGHOST")}
    return subprocess.run(
        [sys.executable, "-P", "-m", "pmstore", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_retry_for_option_parsed_for_every_writing_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["ingest", "f"]).retry_for == DEFAULT_RETRY_FOR
    assert parser.parse_args(["ingest", "f", "--retry-for", "90"]).retry_for == 90.0
    assert parser.parse_args(["demo", "--retry-for", "0"]).retry_for == 0.0
    for bad in ("-1", "inf", "soon"):
        with pytest.raises(SystemExit):
            parser.parse_args(["ingest", "f", "--retry-for", bad])


def test_retry_for_reaches_the_writer_of_each_command(
    db: str, conn: Conn, read_only: Any, tmp_path: Path
) -> None:
    """With ``--retry-for 0`` each command gives up at the first read-only refusal; with
    the default it would go on for a minute."""
    read_only(1_000_000)
    files = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for f in files:
        f.write_bytes(orjson.dumps(NEW_MARKET) + b"\n")
    runs = {
        "ingest": ["ingest", "--dsn", db, "--no-progress", str(files[0])],
        "ingest --jobs": ["ingest", "--dsn", db, "--no-progress", "--jobs", "2", *map(str, files)],
        "demo": ["demo", "--dsn", db, "--no-progress", "--force", "--minutes", "1"],
    }
    for name, args in runs.items():
        done = pmstore_command(*args, "--retry-for", "0")
        assert done.returncode == 1, (name, done.stderr)
        assert "read-only" in done.stderr and "gave up after 1 attempt(s)" in done.stderr, name
    assert count(conn, "SELECT count(*) FROM markets") == 0


# -- a real primary and its hot standby -------------------------------------------------


def bindir_of(server: TestServer) -> Path:
    """The binaries of the suite's server, to start a primary and a standby with."""
    if server.embedded is not None:
        bindir = server.embedded.bindir
    else:
        try:
            bindir = find_bindir()
        except ServerError as exc:
            pytest.skip(
                "needs PostgreSQL server binaries on this machine to start a primary and a "
                f"standby: {exc}"
            )
    if not (bindir / "pg_basebackup").exists():
        pytest.skip(f"needs pg_basebackup beside the server binaries in {bindir} for a standby")
    return bindir


def servers_dsn(ports: list[int], password: str, **params: str) -> str:
    """A DSN naming the servers at 127.0.0.1:``ports``, in that order."""
    return make_conninfo(
        host=",".join("127.0.0.1" for _ in ports),
        port=",".join(map(str, ports)),
        dbname=DATABASE,
        user="pmstore",
        password=password,
        sslmode="disable",
        gssencmode="disable",
        **params,
    )


START = RECENT_DAY + timedelta(hours=9, minutes=20)
MINUTES = 100


def market_data(writer: Writer) -> MarketSimulator:
    """A hundred minutes of 60 tokens: markets, resolutions, prices, books and trades."""
    sim = MarketSimulator(60, seed=7)
    writer.upsert_markets(sim.markets())
    writer.upsert_resolutions(sim.resolutions(4))
    for k in range(MINUTES):
        minute = START + timedelta(minutes=k)
        writer.copy_prices(sim.prices(minute))
        writer.copy_orderbooks(sim.orderbooks(minute, 10))
        writer.copy_trades(sim.trades(minute, 6))
    return sim


@pytest.fixture(scope="module", params=["apache", "community"])
def pair(request: pytest.FixtureRequest, server: TestServer) -> Iterator[tuple[Pair, Any, str]]:
    """A primary holding market data, and its hot standby; on each TimescaleDB edition."""
    bindir = bindir_of(server)
    if request.param == "community" and not tsl_module_installed(bindir):
        pytest.skip(
            "needs binaries with the TimescaleDB Community edition to start a primary and "
            f"a standby with it; the binaries in {bindir} {APACHE_ONLY}"
        )
    license = "apache" if request.param == "apache" else "timescale"
    with replicated_pair(bindir, license) as pair:
        with Writer(pair.primary.dsn(DATABASE)) as writer:
            sim = market_data(writer)
        with psycopg.connect(pair.primary.dsn(DATABASE), autocommit=True) as conn:
            if Reader(conn).uses_aggregates:  # half the hours materialized, half live
                refresh_range(conn, START - timedelta(hours=1), START + timedelta(hours=1))
        yield pair, sim, request.param


def test_the_reader_answers_the_same_on_the_hot_standby(pair: tuple[Pair, Any, str]) -> None:
    servers, sim, edition = pair
    servers.replicated()
    tokens = [str(t) for t in sim.tokens[:6]]
    mid, end = START + timedelta(minutes=MINUTES // 2), START + timedelta(minutes=MINUTES)
    hour = timedelta(hours=1)

    def answers(reader: Reader) -> dict[str, Any]:
        return {
            "uses_aggregates": reader.uses_aggregates,
            "latest": reader.latest_prices(),
            "latest_at": reader.latest_prices(at=mid, token_ids=tokens),
            "history": [reader.price_history(t, START, end) for t in tokens],
            "bucketed": reader.price_history(tokens[0], START, end, timedelta(minutes=5)),
            "arrow": reader.price_history(tokens[1], START, end, as_="arrow").to_pylist(),
            "candles": [reader.candles(t, START - hour, end + hour) for t in tokens],
            "volume": [reader.trade_volume(t, START - hour, end + hour) for t in tokens],
            "book": [reader.orderbook_at(t, at=end) for t in tokens],
            "markets": reader.markets(),
            "market": reader.market(str(sim.condition_ids[0])),
            "resolutions": [reader.resolution(str(c)) for c in sim.condition_ids[:8]],
            "coverage": reader.coverage(tokens, START, end),
        }

    with (
        psycopg.connect(servers.primary.dsn(DATABASE), autocommit=True) as on_primary,
        psycopg.connect(servers.standby.dsn(DATABASE), autocommit=True) as on_standby,
    ):
        assert on_standby.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        expected, got = answers(Reader(on_primary)), answers(Reader(on_standby))
    assert got == expected
    assert got["uses_aggregates"] == (edition == "community")  # materialized rows too
    # Real answers, not empty ones compared with empty ones.
    assert len(got["latest"]) == 60 and all(len(h) == MINUTES for h in got["history"])
    assert all(len(c) == 2 for c in got["candles"])  # 09:20-11:00 and len(got["markets"]) == 30
    assert any(got["volume"]) and any(got["book"]) and any(got["resolutions"])

    async def async_answers() -> tuple[Any, Any]:
        conn = await psycopg.AsyncConnection.connect(servers.standby.dsn(DATABASE))
        async with conn:
            reader = AsyncReader(conn)
            latest = await reader.latest_prices()
            return latest, await reader.candles(tokens[0], START - hour, end + hour)

    assert asyncio.run(async_answers()) == (expected["latest"], expected["candles"][0])


def test_libpq_picks_the_server_by_target_session_attrs(pair: tuple[Pair, Any, str]) -> None:
    """psycopg hands each host of a multi-host DSN to libpq in turn, with the attribute."""
    servers, _, _ = pair
    primary, standby = int(servers.primary.port or 0), int(servers.standby.port or 0)

    def lands_on_standby(ports: list[int], attrs: str) -> bool:
        dsn = servers_dsn(ports, servers.password, target_session_attrs=attrs)
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        assert row is not None
        return bool(row[0])

    assert not lands_on_standby([standby, primary], "read-write")
    assert not lands_on_standby([standby, primary], "primary")
    assert lands_on_standby([primary, standby], "standby")
    assert lands_on_standby([primary, standby], "prefer-standby")
    assert lands_on_standby([standby, primary], "any")
    # The Writer, given the standby first, writes on the primary.
    dsn = servers_dsn([standby, primary], servers.password, target_session_attrs="read-write")
    with Writer(dsn) as writer:
        assert writer.connection.info.port == primary
        done = writer.copy_prices(price_columns(50, seed=30), batch_id="via-multi-host")
        assert done.rows_written == 50 and done.attempts == 1
        assert servers.password not in repr(writer)
    servers.replicated()
    with Writer(servers.standby.dsn(DATABASE)) as on_standby:  # logged() reads: a standby serves
        assert on_standby.logged(["via-multi-host", "nowhere"]) == {"via-multi-host"}


def test_migrations_refuse_a_hot_standby_at_once(
    pair: tuple[Pair, Any, str], tmp_path: Path
) -> None:
    """``pmstore migrate`` (and ingest and demo, which migrate first) against a standby: a
    MigrationError naming the server, not yoyo's lock wait ending in a "locked" error (a
    lock timeout of 1 s here would end in MigrationLockError)."""
    servers, _, _ = pair
    port = int(servers.standby.port or 0)
    dsn = servers_dsn([port], servers.password)
    for call in (
        lambda: migrations.apply(dsn, lock_timeout=1),
        lambda: migrations.rollback(dsn, 1, lock_timeout=1),
        lambda: migrations.break_lock(dsn),
    ):
        with pytest.raises(MigrationError) as info:
            call()
        assert type(info.value) is MigrationError
        message = str(info.value)
        assert f"{describe(dsn)} is a read-only standby (in recovery)" in message, message
        assert "primary" in message and "target_session_attrs=read-write" in message
        assert servers.password not in message
    state = migrations.status(dsn)  # reading the state needs no writes: a standby answers
    assert state.pending == [] and state.drifted == [] and state.applied
    archive = tmp_path / "a.jsonl"
    archive.write_bytes(orjson.dumps(NEW_MARKET) + b"\n")
    for args in (
        ["migrate", "--dsn", dsn, "--lock-timeout", "1"],
        ["ingest", "--dsn", dsn, "--no-progress", str(archive)],
        ["demo", "--dsn", dsn, "--no-progress", "--force", "--minutes", "1"],
    ):
        done = pmstore_command(*args)
        assert done.returncode == 1, (args[0], done.stderr)
        assert "is a read-only standby (in recovery)" in done.stderr, (args[0], done.stderr)
        assert "locked" not in done.stderr and servers.password not in done.stderr


# -- the failover ---------------------------------------------------------------------


class Retries(logging.Handler):
    """Collects the writers' retry warnings; ``read_only`` is set at the first read-only one."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self.read_only = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.messages.append(message)
        if "is read-only" in message:
            self.read_only.set()


def test_the_writer_rides_out_a_failover_longer_than_the_old_budget(server: TestServer) -> None:
    """Asynchronous replication, the primary stopped, the standby promoted only when the
    Writer's fifth attempt is under way (>= 3.75 s after its first failure, whatever the
    jitter: the old default gave up after 4 attempts and at most 3.5 s, as ``old`` shows).

    - b1 is written and replicated; b2 is written while the WAL stream is cut, so the
      failover loses it (asynchronous replication); b3 is written by the Writer with its
      defaults through the failover; b4 by a Writer whose single host is the standby
      (as through a load balancer): it is refused as read-only until the promotion.
    - ``logged()`` then finds b2 missing; written again, every row is there exactly once.
    """
    n = 3_000
    batches = {f"b{k}": price_columns(n, seed=10 + k) for k in range(1, 5)}
    retries = Retries()
    logging.getLogger("pmstore").addHandler(retries)
    with ExitStack() as stack:
        stack.callback(logging.getLogger("pmstore").removeHandler, retries)
        wal: list[PgProxy] = []

        def through_proxy(primary: Any) -> int:
            wal.append(stack.enter_context(pg_proxy(primary.dsn("postgres"))))
            return wal[0].port

        servers = stack.enter_context(
            replicated_pair(bindir_of(server), None, replication_port=through_proxy)
        )
        to_standby = stack.enter_context(pg_proxy(servers.standby.dsn(DATABASE)))
        old_to_standby = stack.enter_context(pg_proxy(servers.standby.dsn(DATABASE)))
        primary = int(servers.primary.port or 0)
        password = servers.password
        writer = stack.enter_context(
            Writer(
                servers_dsn(
                    [primary, to_standby.port],
                    password,
                    target_session_attrs="read-write",
                    connect_timeout="120",  # the held attempt waits for the promotion
                )
            )
        )
        assert writer.copy_prices(batches["b1"], batch_id="b1").rows_written == n
        servers.replicated()
        wal[0].pause()  # from here on the standby receives no WAL
        assert writer.copy_prices(batches["b2"], batch_id="b2").rows_written == n
        with Writer(servers.standby.dsn(DATABASE)) as reading:
            assert reading.logged(["b1", "b2"]) == {"b1"}  # b2 is on the primary only

        servers.primary.stop(mode="immediate")
        to_standby.hold_connection(4)  # the Writer's 5th attempt: its 4th through the proxy
        old = stack.enter_context(
            Writer(
                servers_dsn(
                    [primary, old_to_standby.port], password, target_session_attrs="read-write"
                ),
                retries=3,
                retry_for=None,
            )
        )
        behind_balancer = stack.enter_context(
            Writer(servers.standby.dsn(DATABASE), backoff=0.05, max_backoff=0.5)
        )
        with ThreadPoolExecutor(2) as pool:
            rides_out = pool.submit(writer.copy_prices, batches["b3"], batch_id="b3")
            refused = pool.submit(behind_balancer.copy_prices, batches["b4"], batch_id="b4")
            with pytest.raises(ConnectionLostError) as gave_up:
                old.copy_prices(batches["b3"], batch_id="b3")
            assert "gave up after 4 attempt(s)" in str(gave_up.value)
            assert old_to_standby.accepted == 4 and password not in str(gave_up.value)
            assert to_standby.held.wait(timeout=120), "the Writer stopped trying"
            assert retries.read_only.wait(timeout=120), "no write was refused as read-only"
            servers.promote()
            to_standby.release()
            b3, b4 = rides_out.result(timeout=120), refused.result(timeout=120)

        assert b3.attempts == 5 and b3.rows_written == n and not b3.already_written
        assert to_standby.accepted == 4  # 3 refused by the standby, then the promoted one
        assert b4.attempts >= 2 and b4.rows_written == n
        ours = [m for m in retries.messages if f"127.0.0.1:{to_standby.port}/" in m]
        assert len(ours) == 4 and all("retrying" in m for m in ours)
        assert all(password not in m for m in retries.messages)

        # After the failover: b2 is lost, found, written again; nothing twice.
        everything = sorted(batches)
        missing = sorted(set(everything) - writer.logged(everything))
        assert missing == ["b2"]
        for batch_id in missing:
            assert writer.copy_prices(batches[batch_id], batch_id=batch_id).rows_written == n
        assert all(writer.copy_prices(batches[b], batch_id=b).already_written for b in everything)
        with psycopg.connect(servers.standby.dsn(DATABASE)) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
            stored = conn.execute(
                "SELECT count(*), count(DISTINCT (ts, token_id)) FROM price_snapshots"
            ).fetchone()
            logged = conn.execute(
                "SELECT batch_id, rows_written FROM pmstore_ingest_log ORDER BY 1"
            ).fetchall()
        assert stored == (4 * n, 4 * n)
        assert logged == [(b, n) for b in everything]


def test_ingest_run_again_after_a_lossy_failover_writes_what_was_lost(
    server: TestServer, tmp_path: Path
) -> None:
    """``pmstore ingest`` of a growing file: its second run commits on the primary only (the
    WAL stream is cut), the primary dies, the standby is promoted. Run again against the new
    primary, the ingest resumes at the cursor that primary holds: every table ends equal to
    the old primary's, nothing lost, nothing twice."""
    lines = archive_lines(1_200)
    half = b"\n".join(lines[: len(lines) // 2]) + b"\n"
    whole = b"\n".join(lines) + b"\n"
    assert whole.startswith(half)
    path = tmp_path / "market.jsonl"
    with ExitStack() as stack:
        wal: list[PgProxy] = []

        def through_proxy(primary: Any) -> int:
            wal.append(stack.enter_context(pg_proxy(primary.dsn("postgres"))))
            return wal[0].port

        servers = stack.enter_context(
            replicated_pair(bindir_of(server), None, replication_port=through_proxy)
        )
        primary, standby = servers.primary.dsn(DATABASE), servers.standby.dsn(DATABASE)
        path.write_bytes(half)
        first = ingest(primary, str(path), "--batch-rows", "200")
        assert first.returncode == 0, first.stderr
        servers.replicated()
        wal[0].pause()
        path.write_bytes(whole)  # the file grew; the second run continues it
        second = ingest(primary, str(path), "--batch-rows", "200")
        assert second.returncode == 0, second.stderr
        everything = state(primary)
        servers.primary.stop(mode="immediate")
        servers.promote()
        lost = state(standby)
        assert lost["price_snapshots"][0] < everything["price_snapshots"][0]  # a real loss
        again = ingest(standby, str(path), "--batch-rows", "200")
        assert again.returncode == 0, again.stderr
        assert state(standby) == everything
