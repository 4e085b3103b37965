"""The Writer's pipelined COPY against a real TimescaleDB: row order decided by the table's
indexes, the digest logged at the end of the COPY, Polymarket's level shape."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import RECENT_DAY
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pmstore import BatchValidationError, OrderbookSnapshot, PriceBatch, Writer

Conn = psycopg.Connection[tuple[Any, ...]]
T0 = RECENT_DAY.replace(hour=12)


def columns(n: int, seed: int = 1) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    ids = np.array([str(10**76 + i * 7919) for i in range(40)], dtype=object)
    return {
        "ts": np.datetime64(RECENT_DAY.replace(tzinfo=None), "us") + np.arange(n).astype("m8[ms]"),
        "token_id": ids[rng.integers(0, 40, n)],
        "price": rng.uniform(0, 1, n),
    }


def in_search_path(dsn: str, schema: str) -> str:
    params = {k: v for k, v in conninfo_to_dict(dsn).items() if v is not None}
    params["options"] = f"-c search_path={schema},public"
    return make_conninfo("", **params)


def stored_tokens(conn: Conn, table: str) -> list[str]:
    """Token ids in physical (insertion) order."""
    rows = conn.execute(f"SELECT token_id FROM {table} ORDER BY ctid").fetchall()  # one chunk
    return [str(r[0]) for r in rows]


def test_rows_are_sorted_only_for_a_table_with_an_index_led_by_token_id(
    db: str, conn: Conn
) -> None:
    data = columns(5_000)
    given = data["token_id"].tolist()
    conn.execute("DROP SCHEMA IF EXISTS bare CASCADE; CREATE SCHEMA bare")
    conn.execute("CREATE TABLE bare.price_snapshots (LIKE public.price_snapshots)")
    try:
        with Writer(in_search_path(db, "bare"), chunk_bytes=64 * 1024) as writer:
            assert writer.copy_prices(data).rows_written == 5_000
        assert stored_tokens(conn, "bare.price_snapshots") == given  # no index: as given
        with Writer(db, chunk_bytes=64 * 1024) as writer:  # same rows: another batch id
            assert writer.copy_prices(data, batch_id="again").rows_written == 5_000
        stored = stored_tokens(conn, "public.price_snapshots")
        assert stored == sorted(given) != given  # (token_id, ts DESC) index: index order
    finally:
        conn.execute("DROP SCHEMA bare CASCADE")


def test_the_digest_batch_id_is_the_content_digest_logged_with_the_rows(
    db: str, conn: Conn
) -> None:
    data = columns(20_000)
    with Writer(db, chunk_bytes=32 * 1024) as writer:
        result = writer.copy_prices(data)
    assert result.batch_id == f"price_snapshots:{PriceBatch.from_columns(data).content_digest()}"
    logged = conn.execute("SELECT batch_id, rows_written FROM pmstore_ingest_log").fetchall()
    assert logged == [(result.batch_id, 20_000)]


def test_a_batch_logged_meanwhile_rolls_the_copy_back(db: str, conn: Conn) -> None:
    # Another writer holds the same batch id, uncommitted: ours streams its rows, then
    # waits on the log's primary key; when the other commits ours rolls back.
    data = columns(3_000)
    batch_id = f"price_snapshots:{PriceBatch.from_columns(data).content_digest()}"
    other = psycopg.connect(db)
    other.execute(
        "INSERT INTO pmstore_ingest_log (batch_id, table_name, rows_written) VALUES (%s, %s, 0)",
        (batch_id, "price_snapshots"),
    )
    results: list[Any] = []
    with Writer(db) as writer:
        pid = writer.backend_pid
        thread = threading.Thread(target=lambda: results.append(writer.copy_prices(data)))
        thread.start()
        waiting = False
        for _ in range(100_000):  # each probe is a round trip; no sleeping
            row = conn.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            if row and row[0] == "Lock":
                waiting = True
                break
        other.commit()
        thread.join()
    other.close()
    assert waiting, "the writer never waited on the ingest log"
    assert results[0].already_written and results[0].rows_written == 0
    assert conn.execute("SELECT count(*) FROM price_snapshots").fetchone() == (0,)


def test_an_invalid_row_late_in_a_big_batch_writes_nothing(db: str, conn: Conn) -> None:
    data = columns(30_000)
    data["price"] = data["price"].copy()
    data["price"][29_000] = 7.0
    with Writer(db, chunk_bytes=16 * 1024) as writer, pytest.raises(BatchValidationError) as info:
        writer.copy_prices(data)
    assert [(p.row, p.column) for p in info.value.problems] == [(29_000, "price")]
    assert conn.execute("SELECT count(*) FROM price_snapshots").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM pmstore_ingest_log").fetchone() == (0,)


def test_polymarket_book_levels_are_written_best_first(db: str, conn: Conn) -> None:
    book = {  # as /book and the WebSocket book event send it: dicts of strings, worst-first
        "bids": [{"price": "0.46", "size": "50"}, {"price": "0.48", "size": "1234.5"}],
        "asks": [{"price": "0.55", "size": "10"}, {"price": "0.52", "size": "7.25"}],
    }
    ts = [T0, T0 + timedelta(seconds=1)]
    with Writer(db) as writer:
        writer.copy_orderbooks(
            {
                "ts": ts,
                "token_id": ["a", "b"],
                "bids": [book["bids"], []],
                "asks": [book["asks"], []],
            }
        )
        record = OrderbookSnapshot(ts=T0, token_id="c", bids=book["bids"], asks=book["asks"])
        writer.copy_orderbooks([record])
    rows = conn.execute(
        "SELECT token_id, bids, asks, spread, midpoint FROM orderbook_snapshots ORDER BY token_id"
    ).fetchall()
    best_first = ([[0.48, 1234.5], [0.46, 50.0]], [[0.52, 7.25], [0.55, 10.0]])
    assert rows[0][1:3] == best_first and rows[2][1:3] == best_first
    assert rows[0][3] == pytest.approx(0.04) and rows[0][4] == pytest.approx(0.50)
    assert rows[1][1:] == ([], [], None, None)
