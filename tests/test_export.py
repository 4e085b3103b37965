"""``pmstore export``: Parquet per UTC day, read back by pyarrow, polars and DuckDB.

Rows go in with the Writer; the files are compared with the server's own rows
(ORDER BY), re-runs byte for byte, and a failure injected mid-day must leave the
previous file in place.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import psycopg
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from pmstore import ConfigurationError, Writer
from pmstore.cli import main
from pmstore.export import EXPORT_SQL, export_table

Conn = psycopg.Connection[tuple[Any, ...]]

DAY0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=4)
TOKENS = [str(10**76 + i * 7919) for i in range(20)]


def write_data(conn: Conn, n: int = 30_000) -> None:
    """Prices over ~2.5 days from DAY0 06:00, trades and books over the same span."""
    rng = np.random.default_rng(5)
    start = np.datetime64((DAY0 + timedelta(hours=6)).replace(tzinfo=None), "us")
    span = int(2.5 * 86_400e6)
    volume = rng.uniform(0, 1e5, n)
    volume[rng.random(n) < 0.3] = np.nan
    prices = {
        "ts": start + rng.integers(0, span, n),
        "token_id": np.array(TOKENS, dtype=object)[rng.integers(0, len(TOKENS), n)],
        "price": rng.uniform(0, 1, n),
        "volume_24h": volume,
    }
    m = 2_000
    trades = {
        "ts": start + rng.integers(0, span, m),
        "token_id": np.array(TOKENS, dtype=object)[rng.integers(0, len(TOKENS), m)],
        "side": np.where(rng.random(m) < 0.5, "BUY", "SELL").astype(object),
        "price": rng.uniform(0, 1, m),
        "size": rng.uniform(0, 10, m),
    }
    books = {
        "ts": start + rng.integers(0, span, 300),
        "token_id": np.array(TOKENS, dtype=object)[rng.integers(0, len(TOKENS), 300)],
        "bids": [  # Polymarket's strings: stored and exported with their own digits
            [{"price": "0.001", "size": "2.5"}, {"price": "0.40", "size": f"{i}.10"}]
            for i in range(300)
        ],
        "asks": [[(0.6, 1.0)] if i % 3 else [] for i in range(300)],
    }
    with Writer(conn) as writer:
        writer.copy_prices(prices)
        writer.copy_trades(trades)
        writer.copy_orderbooks(books)


def server_rows(conn: Conn, table: str, start: datetime, end: datetime) -> list[tuple[Any, ...]]:
    return conn.execute(EXPORT_SQL[table], {"start": start, "end": end}).fetchall()


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("table", ["price_snapshots", "trades", "orderbook_snapshots"])
def test_export_is_read_back_by_pyarrow_polars_and_duckdb(
    conn: Conn, tmp_path: Path, table: str
) -> None:
    write_data(conn)
    start, end = DAY0 + timedelta(hours=12), DAY0 + timedelta(days=2, hours=20)
    result = export_table(conn, table, start, end, tmp_path, batch_rows=4_000)
    expected = server_rows(conn, table, start, end)
    assert result.rows == len(expected) > 0
    days = [d.day for d in result.days]
    assert days == [(DAY0 + timedelta(days=i)).date() for i in range(3)]
    root = tmp_path / table
    assert sorted(p.parent.name for p in root.rglob("part.parquet")) == [
        f"date={d.isoformat()}" for d in days
    ]
    for day in result.days:  # streamed: one row group per decoded batch
        assert day.path is not None
        meta = pq.ParquetFile(day.path).metadata
        assert meta.num_rows == day.rows
        assert meta.num_row_groups == -(-day.rows // 4_000)
        assert meta.row_group(0).column(0).compression == "ZSTD"

    columns = [c for c in pq.read_schema(result.days[0].path).names]
    by_arrow = ds.dataset(root, format="parquet", partitioning="hive").to_table()
    arrow_rows = sorted(zip(*(by_arrow.column(c).to_pylist() for c in columns), strict=True))
    assert by_arrow.column("date").to_pylist()[0] is not None  # from the folder names

    by_polars = pl.scan_parquet(root / "**/*.parquet", hive_partitioning=True).collect()
    polars_rows = sorted(by_polars.select(columns).rows())

    with duckdb.connect() as duck:
        duck.execute("SET TimeZone = 'UTC'")
        by_duckdb = duck.execute(
            f"SELECT {', '.join(columns)} FROM read_parquet(?, hive_partitioning = true)",
            [str(root / "*" / "*.parquet")],
        ).fetchall()
    duck_rows = sorted(by_duckdb)

    assert len(arrow_rows) == len(polars_rows) == len(duck_rows) == len(expected)
    assert arrow_rows == polars_rows == duck_rows == sorted(expected)
    assert by_polars.schema["ts"] == pl.Datetime("us", "UTC")


def test_exported_levels_are_the_stored_json_with_the_source_digits(
    conn: Conn, tmp_path: Path
) -> None:
    write_data(conn)
    result = export_table(conn, "orderbook_snapshots", DAY0, DAY0 + timedelta(days=4), tmp_path)
    table = ds.dataset(tmp_path / "orderbook_snapshots", format="parquet").to_table()
    assert result.rows == table.num_rows == 300
    assert table.schema.field("bids").type == pa.string()
    bids = sorted(table.column("bids").to_pylist())
    assert bids[0] == "[[0.40, 0.10], [0.001, 2.5]]"  # best-first, "0.40" and "0.10" kept
    assert set(table.column("asks").to_pylist()) == {"[]", "[[0.6, 1.0]]"}


def test_a_rerun_writes_the_same_bytes_and_follows_the_database(conn: Conn, tmp_path: Path) -> None:
    write_data(conn)
    start, end = DAY0, DAY0 + timedelta(days=4)
    first = export_table(conn, "price_snapshots", start, end, tmp_path, batch_rows=5_000)
    before = digests(tmp_path)
    assert len(before) == 3  # DAY0 .. DAY0+2; the fourth day has no rows: no file
    assert [d.path is None for d in first.days] == [False, False, False, True]
    # A different heap order (rows deleted and written again) changes nothing.
    moved = conn.execute(
        "DELETE FROM price_snapshots WHERE ts < %s RETURNING ts, token_id, price, volume_24h",
        (DAY0 + timedelta(hours=18),),
    ).fetchall()
    with Writer(conn) as writer:
        writer.copy_prices(list(reversed(moved)), batch_id="moved")
    export_table(conn, "price_snapshots", start, end, tmp_path, batch_rows=5_000)
    assert digests(tmp_path) == before
    # A day whose rows are gone loses its file; other days keep theirs.
    conn.execute("DELETE FROM price_snapshots WHERE ts < %s", (DAY0 + timedelta(days=1),))
    export_table(conn, "price_snapshots", start, end, tmp_path, batch_rows=5_000)
    after = digests(tmp_path)
    assert sorted(after) == sorted(before)[1:]
    assert all(after[k] == before[k] for k in after)


def test_a_failure_mid_day_keeps_the_previous_file(
    conn: Conn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_data(conn)
    start, end = DAY0, DAY0 + timedelta(days=3)
    export_table(conn, "price_snapshots", start, end, tmp_path, batch_rows=3_000)
    before = digests(tmp_path)
    conn.execute("DELETE FROM price_snapshots WHERE token_id = %s", (TOKENS[0],))
    calls = 0
    real = pq.ParquetWriter.write_batch

    def failing(self: Any, batch: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # the first day's second row group
            raise OSError("disk full (injected)")
        real(self, batch, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_batch", failing)
    with pytest.raises(OSError, match="injected"):
        export_table(conn, "price_snapshots", start, end, tmp_path, batch_rows=3_000)
    assert digests(tmp_path) == before  # old files intact, no temporary left
    # the batch failed in the writing thread: that thread is gone, the COPY cancelled
    assert not [t for t in threading.enumerate() if t.name.startswith("pmstore-export-write")]
    assert conn.execute("SELECT count(*) FROM price_snapshots").fetchone() is not None


def test_export_command(conn: Conn, db: str, tmp_path: Path, capsys: Any) -> None:
    write_data(conn)
    out = tmp_path / "out"
    args = ["export", "trades", "--dsn", db, "--out", str(out), "--no-progress"]
    start = DAY0.date().isoformat()
    end = (DAY0 + timedelta(days=3)).isoformat()
    assert main([*args, "--start", start, "--end", end]) == 0
    printed = capsys.readouterr().out
    expected = server_rows(conn, "trades", DAY0, DAY0 + timedelta(days=3))
    assert f"exported {len(expected)} row(s) of trades" in printed
    table = pa.concat_tables(pq.read_table(p) for p in sorted(out.rglob("*.parquet")))
    assert table.num_rows == len(expected)
    assert main([*args, "--start", "2026-01-01T00:00", "--end", end]) == 1
    assert "give a zone" in capsys.readouterr().err
    with pytest.raises(ConfigurationError, match="cannot export"):
        export_table(conn, "markets", DAY0, DAY0 + timedelta(days=1), out)
