"""Aggregates stay true under late and historical data: backfill, catch-up, compression, retention.

The Community-edition tests need the ``community_server`` fixture (elsewhere they
skip, naming what is missing). Test servers run no job scheduler
(``timescaledb.max_background_workers=0``), so nothing happens behind a
test's back: the tests run the refresh policies and pmstore's drain job
themselves with ``CALL run_job(...)`` (or ``CALL pmstore_refresh_pending()``),
where a deployment's scheduler would run them every hour / 30 seconds.
Every check compares ``Reader.candles()`` / ``Reader.trade_volume()`` with the
same aggregates computed here in SQL from the raw rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import TestServer

from pmstore._write.touched import touched_ranges
from pmstore.errors import BatchValidationError, ConfigurationError
from pmstore.reader import Candle, Reader, TradeVolume
from pmstore.refresh import drain, pending, refresh_range
from pmstore.status import partially_compressed_chunks
from pmstore.writer import Writer

Conn = psycopg.Connection[Any]
HOUR = timedelta(hours=1)
TOKENS = [str(10**76 + 7919 * i * 10**40 + 104729 * i) for i in range(1, 6)]  # 77-digit ids

RAW_CANDLES_SQL = """
    SELECT time_bucket(INTERVAL '1 hour', ts) AS bucket, token_id,
           first(price, ts), max(price), min(price), last(price, ts), avg(volume_24h)
    FROM price_snapshots
    WHERE token_id = %(token)s AND ts >= %(start)s AND ts < %(end)s
    GROUP BY 1, 2 ORDER BY 1
"""

RAW_VOLUME_SQL = """
    SELECT time_bucket(INTERVAL '1 hour', ts) AS bucket, token_id,
           count(*), sum(size), sum(price * size), avg(price)
    FROM trades
    WHERE token_id = %(token)s AND ts >= %(start)s AND ts < %(end)s
    GROUP BY 1, 2 ORDER BY 1
"""


# -- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def cdb(community_server: TestServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh migrated database on the Community edition, for one test."""
    name = f"t_agg_{request.node.name[:30].lower()}".replace("[", "_").replace("]", "")
    yield community_server.migrated_database(name)
    community_server.drop_database(name)


@pytest.fixture
def cconn(cdb: str) -> Iterator[Conn]:
    with psycopg.connect(cdb, autocommit=True) as conn:
        yield conn


def hour_now(conn: Conn) -> datetime:
    """The start of the server's current hour."""
    row = conn.execute("SELECT time_bucket(INTERVAL '1 hour', now())").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value.astimezone(UTC)


def prices(start: datetime, minutes: int, step: int = 5, seed: int = 1) -> dict[str, Any]:
    """Snapshots of every token every ``step`` minutes from ``start``, float prices in (0, 1)."""
    rng = np.random.default_rng(seed)
    times = [start + timedelta(minutes=m) for m in range(0, minutes, step)]
    ts = np.array(
        [np.datetime64(t.replace(tzinfo=None), "us") for t in times for _ in TOKENS],
        dtype="datetime64[us]",
    )
    tokens = np.array([str(t) for _ in times for t in TOKENS], dtype=object)
    return {
        "ts": ts,
        "token_id": tokens,
        "price": np.round(rng.uniform(0.01, 0.99, len(ts)), 4),
        "volume_24h": np.round(rng.uniform(0, 1e5, len(ts)), 2),
    }


def trades(start: datetime, minutes: int, prefix: str, seed: int = 2) -> list[tuple[Any, ...]]:
    rng = np.random.default_rng(seed)
    out = []
    for m in range(0, minutes, 7):
        for k, token in enumerate(TOKENS):
            out.append(
                (
                    start + timedelta(minutes=m, seconds=k),
                    token,
                    "BUY" if (m + k) % 2 else "SELL",
                    float(np.round(rng.uniform(0.01, 0.99), 3)),
                    float(np.round(rng.uniform(1, 500), 2)),
                    f"{prefix}-{m}-{k}",
                )
            )
    return out


def run_job(conn: Conn, proc: str, target: str | None = None) -> None:
    sql = "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = %s"
    params: list[Any] = [proc]
    if target is not None:
        sql += " AND hypertable_name = %s"
        params.append(target)
    rows = conn.execute(sql, params).fetchall()
    assert len(rows) == 1, (proc, target, rows)
    conn.execute("CALL run_job(%s)", (rows[0][0],))


def run_policies(conn: Conn) -> None:
    """The hourly refresh policies of both aggregates, as the scheduler would run them now."""
    for view in ("price_candles_1h", "trade_volume_1h"):
        run_job(conn, "policy_refresh_continuous_aggregate", view)


def run_drain_job(conn: Conn) -> None:
    run_job(conn, "pmstore_refresh_pending")


def collector_running(conn: Conn, dsn: str, now: datetime) -> None:
    """Two hours of live data, then the hourly policies: the watermark is at now - 1 h."""
    with Writer(dsn) as w:
        w.copy_prices(prices(now - 2 * HOUR, 120, seed=99))
        w.copy_trades(trades(now - 2 * HOUR, 120, "live"))
    run_policies(conn)
    drain(conn)
    row = conn.execute("SELECT pmstore_cagg_watermark('price_candles_1h')").fetchone()
    assert row is not None and row[0] == now - HOUR


def raw_candles(conn: Conn, token: str, start: datetime, end: datetime) -> list[Candle]:
    rows = conn.execute(RAW_CANDLES_SQL, {"token": token, "start": start, "end": end}).fetchall()
    names = ("bucket", "token_id", "open", "high", "low", "close", "avg_volume")
    return [Candle(**dict(zip(names, r, strict=True))) for r in rows]


def raw_volume(conn: Conn, token: str, start: datetime, end: datetime) -> list[TradeVolume]:
    rows = conn.execute(RAW_VOLUME_SQL, {"token": token, "start": start, "end": end}).fetchall()
    names = ("bucket", "token_id", "trade_count", "total_size", "total_value", "avg_price")
    return [TradeVolume(**dict(zip(names, r, strict=True))) for r in rows]


def same(got: list[Any], want: list[Any]) -> bool:
    """Equal rows, floats equal but for the last bits (sums in another order)."""
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        for name in type(w).model_fields:
            a, b = getattr(g, name), getattr(w, name)
            if isinstance(b, float) and isinstance(a, float):
                if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9):
                    return False
            elif a != b:
                return False
    return True


def aggregates_true(conn: Conn, start: datetime, end: datetime) -> bool:
    """Whether every token's candles and volume from the Reader equal the raw rows' in range."""
    reader = Reader(conn)
    assert reader.uses_aggregates
    return all(
        same(reader.candles(t, start, end), raw_candles(conn, t, start, end))
        and same(reader.trade_volume(t, start, end), raw_volume(conn, t, start, end))
        for t in TOKENS
    )


def materialized_hours(conn: Conn, view: str) -> int:
    row = conn.execute(
        "SELECT count(DISTINCT bucket) FROM "
        f"{view} WHERE bucket < pmstore_cagg_watermark(%s::regclass)",
        (view,),
    ).fetchone()
    assert row is not None
    return int(row[0])


# -- touched hours (pure) ---------------------------------------------------------------------


def test_touched_ranges_merge_adjacent_hours_and_cap_the_count() -> None:
    base = np.datetime64("2026-11-01T10:00:00", "us")
    ts = base + np.array([5, 65, 70, 190, 60 * 24 + 1], dtype="timedelta64[m]").astype(
        "timedelta64[us]"
    )
    starts, ends = touched_ranges(ts)
    h = datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert list(zip(starts, ends, strict=True)) == [
        (h, h + 2 * HOUR),
        (h + 3 * HOUR, h + 4 * HOUR),
        (h + 24 * HOUR, h + 25 * HOUR),
    ]
    # Capped at two ranges: the smallest gap (1 hour, between the first two runs) is merged.
    starts, ends = touched_ranges(ts, max_ranges=2)
    assert list(zip(starts, ends, strict=True)) == [
        (h, h + 4 * HOUR),
        (h + 24 * HOUR, h + 25 * HOUR),
    ]
    assert touched_ranges(ts[:0]) == ([], [])


# -- 1. every committed batch reaches the aggregates ------------------------------------------


def test_backfill_two_days_back_shows_after_the_drain_job(cconn: Conn, cdb: str) -> None:
    now = hour_now(cconn)
    with Writer(cdb) as w:
        w.copy_prices(prices(now - 2 * HOUR, 60))
        w.copy_trades(trades(now - 2 * HOUR, 60, "recent"))
        run_policies(cconn)  # the hourly policy materializes [now - 3 h, now - 1 h]
        backfill = w.copy_prices(prices(now - 48 * HOUR, 60, seed=3))
        volume = w.copy_trades(trades(now - 48 * HOUR, 60, "old"))
    assert backfill.refresh_ranges == 1 and volume.refresh_ranges == 1
    run_policies(cconn)
    start, end = now - 72 * HOUR, now + HOUR
    # The problem this fixes: the policy's window leaves the backfilled hour out.
    assert not aggregates_true(cconn, start, end)
    run_drain_job(cconn)
    assert aggregates_true(cconn, start, end)
    assert materialized_hours(cconn, "price_candles_1h") == 2
    assert pending(cconn).ranges == 0


def test_a_crash_before_the_drain_loses_nothing(cconn: Conn, cdb: str) -> None:
    now = hour_now(cconn)
    collector_running(cconn, cdb, now)
    with psycopg.connect(cdb) as own:
        w = Writer(own)
        w.copy_prices(prices(now - 30 * HOUR, 120))
        w.copy_trades(trades(now - 30 * HOUR, 120, "a"))
    # "Crash": the Writer's process is gone and nothing was drained. The queue
    # holds the committed batches' hours, merged per batch.
    queued = cconn.execute(
        "SELECT hypertable, range_start, range_end FROM pmstore_refresh_queue "
        "WHERE range_end < %s ORDER BY 1",
        (now,),
    ).fetchall()
    assert [(r[0], r[2] - r[1]) for r in queued] == [
        ("price_snapshots", 2 * HOUR),
        ("trades", 2 * HOUR),
    ]
    assert not aggregates_true(cconn, now - 48 * HOUR, now)
    # Later, another session drains: everything is there.
    cconn.execute("CALL pmstore_refresh_pending()")
    assert aggregates_true(cconn, now - 48 * HOUR, now)
    assert pending(cconn).start == now - HOUR  # only the hours above the watermark are left


def test_catch_up_after_a_six_hour_gap(cconn: Conn, cdb: str) -> None:
    now = hour_now(cconn)
    with Writer(cdb) as w:
        # The collector ran until 9 hours ago (10-minute batches) ...
        for m in range(0, 180, 10):
            w.copy_prices(prices(now - 12 * HOUR + timedelta(minutes=m), 10, seed=m))
        w.copy_trades(trades(now - 12 * HOUR, 180, "before"))
        run_policies(cconn)
        run_drain_job(cconn)
        # ... then stopped for six hours, and catches up the missing hours up to now.
        for m in range(0, 9 * 60, 30):
            w.copy_prices(prices(now - 9 * HOUR + timedelta(minutes=m), 30, seed=1000 + m))
        w.copy_trades(trades(now - 9 * HOUR, 9 * 60, "after"))
    run_policies(cconn)
    assert not aggregates_true(cconn, now - 13 * HOUR, now + HOUR)
    run_drain_job(cconn)
    assert aggregates_true(cconn, now - 13 * HOUR, now + HOUR)
    # The current hour is above the watermark (computed live): it stays queued.
    left = pending(cconn)
    assert left.ranges == 2 and left.start == now - HOUR


def test_a_replayed_archive_is_refreshed_within_the_run_budget(cconn: Conn, cdb: str) -> None:
    now = hour_now(cconn)
    collector_running(cconn, cdb, now)
    cconn.execute("TRUNCATE pmstore_refresh_queue")
    with Writer(cdb) as w:  # a replay: ten days, one 100-minute batch per day, oldest first
        for day in range(10, 0, -1):
            w.copy_prices(prices(now - day * 24 * HOUR, 100, seed=day))
    assert pending(cconn).ranges == 10
    left = drain(cconn, max_hours=12)  # the newest 12 hours' worth: six days of two hours
    assert left.ranges == 4
    assert not aggregates_true(cconn, now - 11 * 24 * HOUR, now)
    drain(cconn)
    assert aggregates_true(cconn, now - 11 * 24 * HOUR, now)
    assert pending(cconn).ranges == 0


def test_hours_above_the_watermark_wait_as_one_row(cconn: Conn, cdb: str) -> None:
    now = hour_now(cconn)
    collector_running(cconn, cdb, now)
    cconn.execute("TRUNCATE pmstore_refresh_queue")
    with Writer(cdb) as w:  # five minute batches of the current hour, as a collector writes
        for m in range(5):
            assert w.copy_prices(prices(now + timedelta(minutes=m), 1, seed=m)).refresh_ranges == 1
    assert pending(cconn).ranges == 5
    left = drain(cconn)
    assert (left.ranges, left.start, left.end) == (1, now, now + HOUR)
    assert materialized_hours(cconn, "price_candles_1h") == 1  # the current hour is live
    assert aggregates_true(cconn, now - 3 * HOUR, now + HOUR)


# -- 2. retention never eats candles ----------------------------------------------------------


def test_stored_candles_older_than_90_days_survive_a_backfill_near_the_horizon(
    cconn: Conn, cdb: str
) -> None:
    now = hour_now(cconn)
    old = now - 100 * 24 * HOUR
    with Writer(cdb, beyond_retention="write") as w:
        w.copy_prices(prices(old, 120))
    # The candles of 100 days ago were stored while their rows were in retention ...
    cconn.execute(
        "CALL refresh_continuous_aggregate('price_candles_1h', %s::timestamptz, %s::timestamptz)",
        (old, old + 2 * HOUR),
    )
    stored = Reader(cconn).candles(TOKENS[0], old, old + 2 * HOUR)
    assert len(stored) == 2
    # ... then retention dropped the raw chunks.
    run_job(cconn, "policy_retention", "price_snapshots")
    assert raw_candles(cconn, TOKENS[0], old, old + 2 * HOUR) == []
    # A backfill lands just inside the horizon (89 days back), and an old batch's
    # queued hours (written with beyond_retention="write") are still pending.
    near = now - 89 * 24 * HOUR
    collector_running(cconn, cdb, now)
    with Writer(cdb) as w:
        w.copy_prices(prices(near, 60, seed=5))
    cconn.execute(
        "INSERT INTO pmstore_refresh_queue (hypertable, range_start, range_end) "
        "VALUES ('price_snapshots', %s, %s)",
        (old - 24 * HOUR, near + HOUR),
    )
    run_drain_job(cconn)
    report = refresh_range(cconn, old - 30 * 24 * HOUR, now, force=True)
    assert report.clamped["price_candles_1h"] > old + 24 * HOUR
    assert Reader(cconn).candles(TOKENS[0], old, old + 2 * HOUR) == stored
    for token in TOKENS:
        assert len(Reader(cconn).candles(token, old, old + 2 * HOUR)) == 2
        assert same(
            Reader(cconn).candles(token, near, near + HOUR),
            raw_candles(cconn, token, near, near + HOUR),
        )
    assert pending(cconn).start == now - HOUR


def test_the_refresh_floor_follows_the_retention_policy(cconn: Conn) -> None:
    row = cconn.execute(
        "SELECT pmstore_refresh_floor('price_snapshots'), now() - INTERVAL '90 days', "
        "pmstore_retention_horizon('orderbook_snapshots')"
    ).fetchone()
    assert row is not None
    floor, horizon, books = row
    assert horizon + HOUR <= floor < horizon + 2 * HOUR
    assert floor.minute == floor.second == 0
    assert books is None  # no retention policy on order books
    cconn.execute("SELECT remove_retention_policy('price_snapshots')")
    cconn.execute("SELECT add_retention_policy('price_snapshots', INTERVAL '30 days')")
    row = cconn.execute(
        "SELECT pmstore_refresh_floor('price_snapshots') - (now() - INTERVAL '30 days')"
    ).fetchone()
    assert row is not None and HOUR <= row[0] < 2 * HOUR


# -- 3. nothing written that retention will silently drop -------------------------------------


def test_rows_beyond_retention_are_refused_written_or_skipped(cconn: Conn, cdb: str) -> None:
    now = hour_now(cconn)
    batch = prices(now - 2 * HOUR, 10, step=5)  # 2 times x 5 tokens
    ts = batch["ts"].copy()
    ts[3] = np.datetime64((now - 91 * 24 * HOUR).replace(tzinfo=None), "us")
    ts[7] = np.datetime64((now - 95 * 24 * HOUR).replace(tzinfo=None), "us")
    batch["ts"] = ts
    with Writer(cdb) as w:
        with pytest.raises(BatchValidationError) as caught:
            w.copy_prices(batch)
        err = caught.value
        assert [p.row for p in err.problems] == [3, 7] and err.total == 2
        assert all(p.column == "ts" and "retention horizon" in p.reason for p in err.problems)
        assert "90 days" in str(err)
        assert cconn.execute("SELECT count(*) FROM price_snapshots").fetchone() == (0,)
        assert pending(cconn).ranges == 0

        skipped = w.copy_prices(batch, beyond_retention="skip")
        assert (skipped.rows_written, skipped.beyond_retention_skipped) == (8, 2)
        assert skipped.retention_horizon is not None
        assert skipped.retention_horizon < now - 89 * 24 * HOUR
    with Writer(cdb, beyond_retention="write") as w:
        written = w.copy_prices(batch, batch_id="all-of-it")
        assert (written.rows_written, written.beyond_retention_written) == (10, 2)
        # An invalid row skipped too: row numbers stay the caller's.
        bad = dict(batch)
        price = batch["price"].copy()
        price[0] = 2.0
        bad["price"] = price
        with pytest.raises(BatchValidationError) as caught:
            w.copy_prices(bad, on_invalid="skip", beyond_retention="raise")
        assert [p.row for p in caught.value.problems] == [3, 7]
    assert cconn.execute("SELECT count(*) FROM price_snapshots").fetchone() == (18,)
    with pytest.raises(ConfigurationError):
        Writer(cdb, beyond_retention="keep")  # type: ignore[arg-type]


def test_apache_edition_has_no_horizon_and_queues_nothing(apache_server: TestServer) -> None:
    dsn = apache_server.migrated_database("t_agg_apache")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            long_ago = hour_now(conn) - timedelta(days=400)
            with Writer(dsn) as w:
                r = w.copy_prices(prices(long_ago, 10))
                t = w.copy_trades(trades(long_ago, 10, "x"))
            assert r.rows_written == 10 and t.rows_written == 10
            assert r.retention_horizon is None and r.beyond_retention_written == 0
            assert r.refresh_ranges == 0 and t.refresh_ranges == 0
            assert pending(conn).ranges == 0
            assert drain(conn).ranges == 0
            report = refresh_range(conn)
            assert report.reason is not None and "Apache" in report.reason
            assert report.pieces == 0
            assert partially_compressed_chunks(conn) == []
            reader = Reader(conn)
            assert not reader.uses_aggregates
            assert same(
                reader.candles(TOKENS[0], long_ago, long_ago + 2 * HOUR),
                raw_candles(conn, TOKENS[0], long_ago, long_ago + 2 * HOUR),
            )
    finally:
        apache_server.drop_database("t_agg_apache")


# -- 4. late data into compressed chunks ------------------------------------------------------


def test_late_rows_into_compressed_chunks(cconn: Conn, cdb: str) -> None:
    now = hour_now(cconn)
    day = now - 10 * 24 * HOUR
    first = trades(day, 60, "t")
    books: dict[str, Any] = {
        "ts": [day + timedelta(minutes=m) for m in range(3)],
        "token_id": TOKENS[:3],
        "bids": [[("0.48", "10")], [("0.40", "5"), ("0.41", "7")], []],
        "asks": [[("0.52", "10")], [("0.45", "3")], [("0.9", "1")]],
    }
    with Writer(cdb) as w:
        w.copy_prices(prices(day, 60))
        w.copy_trades(first)
        w.copy_orderbooks(books)
    collector_running(cconn, cdb, now)
    # The chunks of that day (10 days back, beyond the 7-day compression horizon;
    # order books have 7-day chunks) are compressed, as the policy would.
    compressed = cconn.execute(
        "SELECT compress_chunk(c) "
        "FROM unnest(ARRAY['price_snapshots', 'trades', 'orderbook_snapshots']::regclass[]) h, "
        "show_chunks(h, older_than => INTERVAL '2 days') c"
    ).fetchall()
    assert len(compressed) == 3
    assert partially_compressed_chunks(cconn) == []
    late_books = dict(books, ts=[t + timedelta(seconds=30) for t in books["ts"]])
    with Writer(cdb) as w:
        late_prices = w.copy_prices(prices(day + timedelta(minutes=2), 60, seed=9))
        again = w.copy_trades(first[:10] + trades(day + timedelta(seconds=20), 60, "late"))
        late_ob = w.copy_orderbooks(late_books)
    assert late_prices.rows_written == 12 * len(TOKENS)
    assert (again.rows_written, again.duplicates_skipped) == (len(first), 10)
    assert late_ob.rows_written == 3
    counts = cconn.execute(
        "SELECT (SELECT count(*) FROM price_snapshots WHERE ts < %(t)s), "
        "(SELECT count(*) FROM trades WHERE ts < %(t)s), "
        "(SELECT count(*) FROM orderbook_snapshots WHERE ts < %(t)s), "
        "(SELECT count(DISTINCT (trade_id, ts)) FROM trades WHERE ts < %(t)s)",
        {"t": now - 5 * 24 * HOUR},
    ).fetchone()
    assert counts == (24 * len(TOKENS), 2 * len(first), 6, 2 * len(first))
    partial = partially_compressed_chunks(cconn)
    assert {p.hypertable for p in partial} == {"price_snapshots", "trades", "orderbook_snapshots"}
    assert all(p.range_start <= day < p.range_end for p in partial)
    assert not aggregates_true(cconn, day - HOUR, day + 3 * HOUR)
    run_drain_job(cconn)
    assert aggregates_true(cconn, day - HOUR, day + 3 * HOUR)


# -- 5. pmstore refresh -----------------------------------------------------------------------


def test_refresh_range_clamps_to_retention_and_reports_progress(cconn: Conn, cdb: str) -> None:
    now = hour_now(cconn)
    collector_running(cconn, cdb, now)
    with Writer(cdb) as w:
        w.copy_prices(prices(now - 50 * HOUR, 60))
        w.copy_trades(trades(now - 50 * HOUR, 60, "r"))
    cconn.execute("TRUNCATE pmstore_refresh_queue")  # as if written before pmstore queued hours
    assert not aggregates_true(cconn, now - 60 * HOUR, now)
    calls: list[tuple[int, int]] = []
    report = refresh_range(
        cconn, now - 200 * 24 * HOUR, now + 5 * HOUR, progress=lambda d, t: calls.append((d, t))
    )
    assert aggregates_true(cconn, now - 60 * HOUR, now)
    assert set(report.clamped) == {"price_candles_1h", "trade_volume_1h"}
    lo, hi = report.ranges["price_candles_1h"] or (None, None)
    assert lo is not None and lo > now - 91 * 24 * HOUR and hi == now
    assert calls and calls[-1][0] == calls[-1][1] == report.pieces
    assert report.pieces == 2 * len(
        {(lo + timedelta(hours=h)).date() for h in range(int((hi - lo) / HOUR))}
    )
    with pytest.raises(ConfigurationError):
        refresh_range(cconn, now, now - HOUR)
    with psycopg.connect(cdb) as in_transaction, pytest.raises(ConfigurationError):
        refresh_range(in_transaction)


# -- the migration ----------------------------------------------------------------------------


def test_migration_adds_the_job_and_rolls_back(community_server: TestServer) -> None:
    from pmstore import migrations

    dsn = community_server.create_database("t_agg_migration")
    try:
        migrations.apply(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            jobs = conn.execute(
                "SELECT schedule_interval, config FROM timescaledb_information.jobs "
                "WHERE proc_name = 'pmstore_refresh_pending'"
            ).fetchall()
            assert jobs == [(timedelta(seconds=30), {"max_hours": 168})]
        # Everything after 0010 (0011, 0012 and 0013 are the newest): rolled back together.
        applied = migrations.status(dsn).applied
        migrations.rollback(dsn, len(applied) - applied.index("0011_refresh_queue"))
        with psycopg.connect(dsn, autocommit=True) as conn:
            gone = conn.execute(
                "SELECT (SELECT count(*) FROM timescaledb_information.jobs "
                "        WHERE proc_name = 'pmstore_refresh_pending'), "
                "to_regclass('pmstore_refresh_queue')"
            ).fetchone()
            assert gone == (0, None)
        migrations.apply(dsn)  # and back, once
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM timescaledb_information.jobs "
                "WHERE proc_name = 'pmstore_refresh_pending'"
            ).fetchone()
            assert row == (1,)
    finally:
        community_server.drop_database("t_agg_migration")


# -- the command line -------------------------------------------------------------------------


def test_pmstore_refresh_command(cconn: Conn, cdb: str, capsys: pytest.CaptureFixture[str]) -> None:
    from pmstore.cli import main

    now = hour_now(cconn)
    collector_running(cconn, cdb, now)
    with Writer(cdb) as w:
        w.copy_prices(prices(now - 30 * HOUR, 60))
    cconn.execute("TRUNCATE pmstore_refresh_queue")
    start = (now - 200 * 24 * HOUR).isoformat()
    assert main(["refresh", "--dsn", cdb, "--start", start, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "price_candles_1h   refreshed" in out and "start raised to" in out
    assert aggregates_true(cconn, now - 48 * HOUR, now)
    assert main(["refresh", "--dsn", cdb, "--pending", "--no-progress"]) == 0
    assert "refresh queue:" in capsys.readouterr().out
    assert main(["refresh", "--dsn", cdb, "--start", "2026-11-01T00:00"]) == 1
    assert "--start: give a zone" in capsys.readouterr().err


def test_one_drain_at_a_time(cconn: Conn, cdb: str) -> None:
    now = hour_now(cconn)
    collector_running(cconn, cdb, now)
    with Writer(cdb) as w:
        w.copy_prices(prices(now - 30 * HOUR, 60))
    with psycopg.connect(cdb, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(hashtext('pmstore_refresh_pending'))")
        # A drain (the job's, say) is running: this one leaves the queue to it.
        queued = pending(cconn).ranges  # the live hour's two (prices, trades) and the batch's
        assert queued == 3
        cconn.execute("CALL pmstore_refresh_pending()")
        assert pending(cconn).ranges == queued
        other.execute("SELECT pg_advisory_unlock(hashtext('pmstore_refresh_pending'))")
    assert drain(cconn).ranges == 2  # the live hour's, above the watermark
    assert aggregates_true(cconn, now - 48 * HOUR, now)


def test_async_writer_applies_retention_and_queues_touched_hours(cconn: Conn, cdb: str) -> None:
    """The AsyncWriter shares the Writer's retention and refresh recording (pmstore._write.plan)."""
    import asyncio

    from pmstore.writer_async import AsyncWriter

    now = hour_now(cconn)
    batch = prices(now - 2 * HOUR, 10, step=5)
    ts = batch["ts"].copy()
    ts[3] = np.datetime64((now - 91 * 24 * HOUR).replace(tzinfo=None), "us")
    batch["ts"] = ts

    async def write() -> tuple[list[int | None], Any]:
        async with AsyncWriter(cdb) as w:
            with pytest.raises(BatchValidationError) as caught:
                await w.copy_prices(batch)
            return [p.row for p in caught.value.problems], await w.copy_prices(
                batch, beyond_retention="skip"
            )

    refused_rows, skipped = asyncio.run(write())
    assert refused_rows == [3]
    assert (skipped.rows_written, skipped.beyond_retention_skipped) == (9, 1)
    assert skipped.refresh_ranges >= 1
    assert pending(cconn).ranges >= 1
    assert cconn.execute("SELECT count(*) FROM price_snapshots").fetchone() == (9,)
