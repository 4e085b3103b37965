"""Migration 0007's continuous aggregates and the Reader's live queries: one definition.

0007 can never be edited (installed databases would drift), so it keeps its own
copy of the aggregates' SELECTs; ``pmstore._read.queries`` holds the definition the live
queries run. These tests check the two against each other on every edition:
against the migration file, against the function 0007 installed (which creates
the views, also on Apache-2 databases that cannot have them yet), and on
Community against the views themselves, whose results must agree with the live
queries.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
from conftest import RECENT_DAY, TestServer

from pmstore._read import queries as rd
from pmstore.edition import features
from pmstore.reader import Reader
from pmstore.writer import Writer

MIGRATION = Path(__file__).resolve().parents[1] / "migrations" / "0007_continuous_aggregates.sql"
SELECT_OF_VIEW = {
    "price_candles_1h": rd.PRICE_CANDLES_1H_SELECT,
    "trade_volume_1h": rd.TRADE_VOLUME_1H_SELECT,
}
TOKEN = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
OTHER = "21742633143463906290569050155826241533067272736897614950488156847949938836455"
T0 = RECENT_DAY.replace(hour=10)


def words(sql: str) -> str:
    """SQL text with its whitespace collapsed: layout is not meaning."""
    return " ".join(sql.split())


def definition(view: str) -> str:
    """The SELECT that defines ``view``, from pmstore._read.queries."""
    return f"{SELECT_OF_VIEW[view]} {rd.AGGREGATE_GROUP_BY}"


def view_statement(view: str) -> str:
    """The CREATE statement of ``view`` that 0007 runs, from pmstore._read.queries."""
    return words(
        f"CREATE MATERIALIZED VIEW {view}"
        " WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS"
        f" {definition(view)} WITH NO DATA"
    )


@pytest.mark.parametrize("view", sorted(SELECT_OF_VIEW))
def test_the_readers_definition_is_migration_0007s(view: str) -> None:
    assert view_statement(view) in words(MIGRATION.read_text())


@pytest.mark.parametrize(
    ("live_sql", "select"),
    [
        (rd.CANDLES_LIVE_SQL, rd.PRICE_CANDLES_1H_SELECT),
        (rd.TRADE_VOLUME_LIVE_SQL, rd.TRADE_VOLUME_1H_SELECT),
    ],
)
def test_the_live_queries_are_the_definition_on_whole_hours_of_one_token(
    live_sql: str, select: str
) -> None:
    assert words(live_sql) == words(
        f"{select} WHERE token_id = %(token_id)s AND ts >= %(start)s AND ts < %(end)s"
        f" {rd.AGGREGATE_GROUP_BY} ORDER BY bucket"
    )


@pytest.mark.parametrize("view", sorted(SELECT_OF_VIEW))
def test_the_installed_function_creates_the_views_from_the_readers_definition(
    conn: psycopg.Connection[tuple[object, ...]], view: str
) -> None:
    """On every edition 0007 installs the function that creates the views (at once on
    Community, once the server has the Community edition on Apache-2)."""
    row = conn.execute(
        "SELECT prosrc FROM pg_proc WHERE proname = 'pmstore_ensure_continuous_aggregates'"
    ).fetchone()
    assert row is not None and isinstance(row[0], str)
    assert view_statement(view) in words(row[0])
    # ... and the definition runs on this database.
    conn.execute(f"CREATE TEMP VIEW pmstore_definition AS {definition(view)}")
    assert conn.execute("SELECT count(*) FROM pmstore_definition").fetchone() == (0,)


# --------------------------------------------------------------------------- Community


@pytest.fixture
def community_conn(
    community_server: TestServer,
) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    dsn = community_server.migrated_database("t_live_aggregate_sql")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            yield conn
    finally:
        community_server.drop_database("t_live_aggregate_sql")


def write_rows(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Six hours of prices and trades of two tokens, some volumes NULL, some hours empty."""
    rng = np.random.default_rng(14)
    n = 2_000
    offsets = np.sort(rng.choice(6 * 3600 * 1_000_000, size=n, replace=False))
    offsets = offsets[(offsets < 2 * 3600 * 1_000_000) | (offsets >= 3 * 3600 * 1_000_000)]
    ts = np.datetime64(T0.replace(tzinfo=None), "us") + offsets.astype("timedelta64[us]")
    tokens = np.array([TOKEN, OTHER], dtype=object)[rng.integers(0, 2, len(ts))]
    prices = np.round(rng.uniform(0.01, 0.99, len(ts)), 4)
    volume = np.where(rng.random(len(ts)) < 0.3, np.nan, np.round(rng.uniform(0, 1e5, len(ts)), 2))
    with Writer(conn) as writer:
        writer.copy_prices({"ts": ts, "token_id": tokens, "price": prices, "volume_24h": volume})
        writer.copy_trades(
            {
                "ts": ts,
                "token_id": tokens,
                "side": np.array(["BUY", "SELL"], dtype=object)[rng.integers(0, 2, len(ts))],
                "price": prices,
                "size": np.round(rng.uniform(1, 500, len(ts)), 2),
            }
        )


@pytest.mark.parametrize("view", sorted(SELECT_OF_VIEW))
def test_the_views_are_the_readers_definition(
    community_conn: psycopg.Connection[tuple[object, ...]], view: str
) -> None:
    """The server's rendering of each view equals its rendering of the definition."""
    conn = community_conn
    conn.execute(f"CREATE TEMP VIEW pmstore_definition AS {definition(view)}")
    rendered = conn.execute("SELECT pg_get_viewdef('pmstore_definition'::regclass)").fetchone()
    row = conn.execute(
        "SELECT view_definition FROM timescaledb_information.continuous_aggregates"
        " WHERE view_name = %s",
        (view,),
    ).fetchone()
    assert rendered is not None and row is not None
    assert isinstance(row[0], str) and "time_bucket" in row[0]
    assert words(row[0]) == words(str(rendered[0]))


def test_live_queries_agree_with_the_aggregates(
    community_conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    conn = community_conn
    assert features(conn)["continuous_aggregates"].available
    write_rows(conn)
    live, aggregate = Reader(conn, aggregates=False), Reader(conn, aggregates=True)
    start, end = T0 - timedelta(minutes=30), T0 + timedelta(hours=7)

    def check() -> None:
        for token in (TOKEN, OTHER):
            for query in (Reader.candles, Reader.trade_volume):
                expected = query(live, token, start, end)
                got = query(aggregate, token, start, end)
                assert len(expected) == 5  # six hours, one of them empty
                assert [r.bucket for r in got] == [r.bucket for r in expected]
                for a, b in zip(got, expected, strict=True):
                    for name, value in b.model_dump().items():
                        if isinstance(value, float):  # sums in another order: last bits
                            assert getattr(a, name) == pytest.approx(value, rel=1e-12), name
                        else:
                            assert getattr(a, name) == value, name

    check()  # real time: the aggregates compute from the raw rows
    for view in SELECT_OF_VIEW:
        conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
    for view in SELECT_OF_VIEW:  # the buckets are materialized now
        row = conn.execute(
            "SELECT materialization_hypertable_schema, materialization_hypertable_name"
            " FROM timescaledb_information.continuous_aggregates WHERE view_name = %s",
            (view,),
        ).fetchone()
        assert row is not None
        count = conn.execute(f'SELECT count(*) FROM "{row[0]}"."{row[1]}"').fetchone()
        assert count == (10,), view  # 5 hours x 2 tokens
    check()  # materialized
