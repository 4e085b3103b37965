"""Migration 0013: order-book levels from JSONB to float8 arrays, and back, rows kept.

Later migrations (0014 turns the levels back into JSONB) are not applied here: the
database goes up to 0013 only (``migration_steps.up_to``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import TestServer
from migration_steps import up_to

from pmstore import migrations

STEP = "0013_orderbook_levels_arrays"
TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NOW = datetime.now(UTC).replace(microsecond=0)

# Sides as an earlier pmstore stored them (JSONB [[price, size], ...], best-first), with
# values whose text and double differ in the last digits, and empty and one-sided books.
SIDES: list[tuple[list[list[float]], list[list[float]]]] = [
    ([[0.48, 1234.5], [0.47, 10.0]], [[0.5, 3.0], [0.51, 0.1]]),
    ([], []),
    ([[0.999, 1e-05]], []),
    ([], [[0.001, 123456789.25]]),
    ([[0.3333333333333333, 2.220446049250313e-16], [0.1, 0.30000000000000004]], [[0.9, 7.0]]),
    ([[round(0.99 - i / 100, 2), float(i + 1)] for i in range(60)], [[0.995, 5.5]]),
]


def _before_the_step(dsn: str, folder: Path) -> Path:
    """Every migration before 0013 applied; returns the source that applies 0013 too."""
    migrations.apply(dsn, source=up_to("0012_ingest_cursors", folder / "before"))
    return up_to(STEP, folder / "with")


def _insert_jsonb_books(conn: psycopg.Connection[Any], at: datetime) -> None:
    for i, (bids, asks) in enumerate(SIDES):
        conn.execute(
            "INSERT INTO orderbook_snapshots (ts, token_id, bids, asks) "
            "VALUES (%s, %s, %s::jsonb, %s::jsonb)",
            (at + timedelta(minutes=i), TOKEN, json.dumps(bids), json.dumps(asks)),
        )


def _sides(conn: psycopg.Connection[Any]) -> list[tuple[Any, Any]]:
    rows = conn.execute("SELECT bids, asks FROM orderbook_snapshots ORDER BY ts").fetchall()
    return [(bids, asks) for bids, asks in rows]


def _column_types(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'orderbook_snapshots'::regclass AND attname IN ('bids', 'asks')"
    ).fetchall()
    return {row[0] for row in rows}


def test_levels_become_float8_arrays_and_go_back(empty_db: str, tmp_path: Path) -> None:
    with_step = _before_the_step(empty_db, tmp_path)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        assert _column_types(conn) == {"jsonb"}
        _insert_jsonb_books(conn, NOW - timedelta(days=1))

    assert migrations.apply(empty_db, source=with_step).migrations == [STEP]
    with psycopg.connect(empty_db, autocommit=True) as conn:
        assert _column_types(conn) == {"double precision[]"}
        assert _sides(conn) == [(bids, asks) for bids, asks in SIDES]  # every double exact
        best = conn.execute(
            "SELECT bids[1][1], cardinality(bids) / 2 FROM orderbook_snapshots ORDER BY ts"
        ).fetchall()
        assert best == [(b[0][0] if b else None, len(b)) for b, _ in SIDES]
        conn.execute("INSERT INTO orderbook_snapshots (ts, token_id) VALUES (now(), %s)", (TOKEN,))
        assert conn.execute(
            "SELECT bids, asks FROM orderbook_snapshots WHERE ts > %s", (NOW,)
        ).fetchall() == [([], [])]  # the defaults: empty sides
        for bad in ("{0.5,1.0}", "{{0.5,1.0,2.0}}"):  # not [n][2]
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(
                    "INSERT INTO orderbook_snapshots (ts, token_id, bids) VALUES (now(), %s, %s)",
                    (TOKEN, bad),
                )

    assert migrations.rollback(empty_db, 1).migrations == [STEP]
    with psycopg.connect(empty_db, autocommit=True) as conn:
        assert _column_types(conn) == {"jsonb"}
        back = _sides(conn)
        assert back[: len(SIDES)] == [(bids, asks) for bids, asks in SIDES]
        assert back[len(SIDES) :] == [([], [])]


def test_compressed_books_are_converted_and_compressed_again(
    community_server: TestServer, tmp_path: Path
) -> None:
    dsn = community_server.create_database("t_levels_migration_compressed")
    try:
        with_step = _before_the_step(dsn, tmp_path)
        with psycopg.connect(dsn, autocommit=True) as conn:
            _insert_jsonb_books(conn, NOW - timedelta(days=30))
            compressed = conn.execute(
                "SELECT count(compress_chunk(c)) FROM show_chunks('orderbook_snapshots') c"
            ).fetchone()
            assert compressed is not None and compressed[0] >= 1

        assert migrations.apply(dsn, source=with_step).migrations == [STEP]
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert _column_types(conn) == {"double precision[]"}
            assert _sides(conn) == [(bids, asks) for bids, asks in SIDES]
            settings = conn.execute(
                "SELECT compression_enabled FROM timescaledb_information.hypertables "
                "WHERE hypertable_name = 'orderbook_snapshots'"
            ).fetchone()
            assert settings == (True,)
            policy = conn.execute(
                "SELECT config ->> 'compress_after' FROM timescaledb_information.jobs "
                "WHERE proc_name = 'policy_compression' "
                "AND hypertable_name = 'orderbook_snapshots'"
            ).fetchall()
            assert policy == [("7 days",)]
            again = conn.execute(  # the float8[] chunks compress, and read back the same
                "SELECT count(compress_chunk(c, if_not_compressed => true)) "
                "FROM show_chunks('orderbook_snapshots') c"
            ).fetchone()
            assert again is not None and again[0] >= 1
            assert _sides(conn) == [(bids, asks) for bids, asks in SIDES]
    finally:
        community_server.drop_database("t_levels_migration_compressed")
