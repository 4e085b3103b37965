"""AsyncWriter against a real TimescaleDB: the Writer's guarantees, on an event loop.

The tests taking ``kind`` run once on Writer and once on AsyncWriter, with
one body (tests/async_adapter.py). The asyncio tests run several
AsyncWriters concurrently, kill a connection in the middle of a COPY, and
check that the event loop runs other tasks while a batch is prepared and
encoded.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from datetime import timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from async_adapter import Kind, kind
from conftest import RECENT_DAY

from pmstore import (
    AsyncWriter,
    BatchValidationError,
    ConnectionLostError,
    MarketRecord,
    OrderbookSnapshot,
    PriceSnapshot,
    ResolutionRecord,
    TradeRecord,
    WriteError,
    record_to_model,
)
from pmstore._twins import offload

__all__ = ["kind"]  # the fixture, imported

T0 = RECENT_DAY.replace(hour=12, microsecond=123456)
TOKENS = [str(10**76 + i * 7919) for i in range(50)]
Conn = psycopg.Connection[tuple[Any, ...]]


def count(conn: Conn, table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def price_columns(n: int, *, seed: int = 1, tokens: int = 50) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    ids = np.array([str(10**76 + i * 7919) for i in range(tokens)], dtype=object)
    volume = rng.uniform(0, 1e6, n)
    volume[rng.random(n) < 0.5] = np.nan
    return {
        "ts": np.datetime64(RECENT_DAY.replace(tzinfo=None), "us")
        + np.arange(n).astype("timedelta64[ms]") * 37
        + np.timedelta64(seed, "h"),
        "token_id": ids[rng.integers(0, tokens, n)],
        "price": rng.uniform(0, 1, n),
        "volume_24h": volume,
    }


# -- one body, both writers ----------------------------------------------------------


def test_prices_round_trip_and_never_twice(kind: Kind, db: str, conn: Conn) -> None:
    records = [
        PriceSnapshot(ts=T0, token_id="8" * 78, price=0.0, volume_24h=None),
        PriceSnapshot(ts=T0 + timedelta(microseconds=1), token_id="9" * 74, price=1.0),
        PriceSnapshot(ts=T0, token_id="t", price=0.123456789, volume_24h=12.75),
    ]
    columns = price_columns(25_000)
    with kind.writer(db, chunk_rows=1_000) as writer:
        first = writer.copy_prices(records)
        assert (first.rows_written, first.already_written) == (3, False)
        big = writer.copy_prices(columns)
        again = writer.copy_prices(columns)
        other_id = writer.copy_prices(columns, batch_id="explicit")
        reused_id = writer.copy_prices(price_columns(10, seed=2), batch_id="explicit")
    assert big.rows_written == 25_000 and big.batch_id == again.batch_id
    assert again.already_written and again.rows_written == 0
    assert other_id.rows_written == 25_000 and reused_id.already_written
    assert count(conn, "price_snapshots") == 3 + 2 * 25_000
    assert count(conn, "pmstore_ingest_log") == 3
    mine = tuple(r.token_id for r in records)
    rows = conn.execute(
        "SELECT ts, token_id, price, volume_24h FROM price_snapshots WHERE token_id = ANY(%s)",
        (list(mine),),
    ).fetchall()
    got = sorted((record_to_model(r, PriceSnapshot) for r in rows), key=lambda r: r.token_id)
    assert got == sorted(records, key=lambda r: r.token_id)
    stats = conn.execute(
        "SELECT sum(price), count(volume_24h) FROM price_snapshots WHERE token_id <> ALL(%s)",
        (list(mine),),
    ).fetchone()
    assert stats is not None
    assert stats[0] == pytest.approx(2 * float(np.sum(columns["price"])), rel=1e-12)
    assert stats[1] == 2 * int(np.sum(~np.isnan(columns["volume_24h"])))


def test_orderbooks_trades_and_upserts(kind: Kind, db: str, conn: Conn) -> None:
    book = OrderbookSnapshot(
        ts=T0,
        token_id=TOKENS[1],
        bids=[(0.01, 100.0), (0.48, 1234.5)],
        asks=[(0.99, 10.0), (0.52, 7.25)],
    )
    trades = [
        TradeRecord(ts=T0, token_id=TOKENS[2], side="BUY", price=0.5, size=1.0, trade_id="a"),
        TradeRecord(ts=T0, token_id=TOKENS[2], side="SELL", price=0.25, size=10.5),
    ]
    market = MarketRecord(
        condition_id="0x" + "ab" * 32,
        question="Will it?",
        outcomes=["Yes", "No"],
        clob_token_ids=TOKENS[:2],
    )
    resolution = ResolutionRecord(
        condition_id=market.condition_id,
        outcome="Yes",
        winner_token_id=TOKENS[0],
        payout_price=1.0,
        detection_method="gamma",
        status="resolved",
    )
    with kind.writer(db) as writer:
        assert writer.copy_orderbooks([book]).rows_written == 1
        first = writer.copy_trades(trades)
        again = writer.copy_trades([*trades, trades[0]], batch_id="other")
        assert writer.upsert_markets([market]).rows_written == 1
        assert writer.upsert_markets([market]).rows_written == 0  # unchanged: not rewritten
        assert writer.upsert_resolutions([resolution]).rows_written == 1
        stale = writer.upsert_resolutions([resolution.model_copy(update={"status": "proposed"})])
    assert (first.rows_written, first.duplicates_skipped) == (2, 0)
    assert (again.rows_written, again.duplicates_skipped) == (0, 3)
    assert stale.rows_written == 0
    stored = conn.execute(
        "SELECT ts, token_id, bids, asks, spread, midpoint FROM orderbook_snapshots"
    )
    got = record_to_model(stored.fetchone(), OrderbookSnapshot)
    assert got == book and got.bids[0] == (0.48, 1234.5)
    assert count(conn, "trades") == 2 and count(conn, "markets") == 1
    status = conn.execute("SELECT status FROM resolutions").fetchone()
    assert status == ("resolved",)


@pytest.mark.parametrize(
    ("change", "row", "column"),
    [
        ({"price": [0.1, float("nan"), 0.3]}, 1, "price"),
        ({"token_id": ["a", "", "c"]}, 1, "token_id"),
        ({"ts": [T0, T0, T0.replace(tzinfo=None)]}, 2, "ts"),
    ],
)
def test_bad_input_names_row_and_column_and_writes_nothing(
    kind: Kind, db: str, conn: Conn, change: dict[str, Any], row: int, column: str
) -> None:
    good = {"ts": [T0, T0, T0], "token_id": ["a", "b", "c"], "price": [0.1, 0.2, 0.3]}
    with kind.writer(db) as writer:
        with pytest.raises(BatchValidationError) as info:
            writer.copy_prices({**good, **change})
        assert (info.value.problems[0].row, info.value.problems[0].column) == (row, column)
        with pytest.raises(BatchValidationError) as bad_trade:
            writer.copy_trades([(T0, "a", "BUY", 0.5, 1.0), (T0, "a", "HOLD", 0.5, 1.0)])
        assert (bad_trade.value.problems[0].row, bad_trade.value.problems[0].column) == (1, "side")
        with pytest.raises(BatchValidationError) as bad_market:
            writer.upsert_markets([{"condition_id": "0x1", "question": None}])
        assert bad_market.value.problems[0].column == "question"
        skipped = writer.copy_prices({**good, **change}, on_invalid="skip")
    assert skipped.rows_written == 2 and [(p.row, p.column) for p in skipped.rejected] == [
        (row, column)
    ]
    assert count(conn, "price_snapshots") == 2 and count(conn, "pmstore_ingest_log") == 1
    assert count(conn, "trades") == 0 and count(conn, "markets") == 0


def test_failure_in_the_middle_of_a_batch_leaves_tables_unchanged(
    kind: Kind, db: str, conn: Conn
) -> None:
    conn.execute(
        """
        CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.token_id = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER poison BEFORE INSERT ON price_snapshots
            FOR EACH ROW EXECUTE FUNCTION poison();
        """
    )
    try:
        columns = price_columns(20_000)
        columns["token_id"] = columns["token_id"].copy()
        columns["token_id"][10_000] = "poison"
        with kind.writer(db, chunk_rows=2_000) as writer:
            writer.copy_prices(price_columns(100, seed=9))
            with pytest.raises(WriteError, match="poisoned row"):
                writer.copy_prices(columns)
            assert writer.copy_prices(price_columns(5, seed=3)).rows_written == 5
        assert count(conn, "price_snapshots") == 105
        assert count(conn, "pmstore_ingest_log") == 2
    finally:
        conn.execute("DROP TRIGGER poison ON price_snapshots; DROP FUNCTION poison()")


def test_given_connection_that_dies_raises_connection_lost(kind: Kind, db: str, conn: Conn) -> None:
    own = kind.connect(db)
    try:
        writer = kind.writer(own)
        assert writer.backend_pid == own.info.backend_pid
        conn.execute("SELECT pg_terminate_backend(%s, 10000)", (own.info.backend_pid,))
        with pytest.raises(ConnectionLostError, match="cannot replace"):
            writer.copy_prices(price_columns(10))
    finally:
        kind.close(own)
    assert count(conn, "price_snapshots") == 0


def test_retries_run_out_with_a_clear_error(kind: Kind) -> None:
    dead = "postgresql://pmstore:s3cret-pass@127.0.0.1:1/nowhere?connect_timeout=1"
    writer = kind.writer(dead, retries=1, backoff=0)
    assert "s3cret" not in repr(writer)
    with pytest.raises(ConnectionLostError) as info:
        writer.copy_prices(price_columns(3))
    assert "s3cret" not in str(info.value) and "127.0.0.1:1" in str(info.value)
    assert "gave up after 2 attempt(s)" in str(info.value)


class KillAfterFirstChunk:
    """A ``progress`` hook: terminates the writer's backend once, after its first COPY chunk.

    ``pg_terminate_backend(pid, timeout)`` returns once the backend has
    exited, so the rest of the COPY meets a dead connection: no race.
    """

    def __init__(self, db: str) -> None:
        self.db = db
        self.pid: int | None = None
        self.killed_at: int | None = None
        self.calls: list[int] = []

    def __call__(self, table: str, sent: int, total: int) -> None:
        self.calls.append(sent)
        if self.killed_at is None and self.pid is not None:
            with psycopg.connect(self.db, autocommit=True) as admin:
                done = admin.execute("SELECT pg_terminate_backend(%s, 10000)", (self.pid,))
                assert done.fetchone() == (True,)
            self.killed_at = sent


def test_connection_killed_mid_copy_then_retry_writes_once(kind: Kind, db: str, conn: Conn) -> None:
    columns = price_columns(60_000, tokens=8_000)
    hook = KillAfterFirstChunk(db)
    with kind.writer(db, backoff=0, chunk_rows=5_000, chunk_bytes=1 << 30, progress=hook) as writer:
        hook.pid = writer.backend_pid
        result = writer.copy_prices(columns)
    assert hook.killed_at == 5_000
    assert result.attempts == 2 and result.rows_written == 60_000
    # The second attempt sent every chunk, from the start.
    assert hook.calls[-12:] == [5_000 * k for k in range(1, 13)]
    assert count(conn, "price_snapshots") == 60_000
    assert count(conn, "pmstore_ingest_log") == 1


def test_given_connection_killed_mid_copy_writes_nothing(kind: Kind, db: str, conn: Conn) -> None:
    own = kind.connect(db)
    hook = KillAfterFirstChunk(db)
    try:
        with kind.writer(own, chunk_rows=5_000, chunk_bytes=1 << 30, progress=hook) as writer:
            hook.pid = writer.backend_pid
            with pytest.raises(ConnectionLostError, match="cannot replace"):
                writer.copy_prices(price_columns(60_000, tokens=8_000))
    finally:
        kind.close(own)
    assert hook.killed_at == 5_000
    assert count(conn, "price_snapshots") == 0 and count(conn, "pmstore_ingest_log") == 0


# -- asyncio -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_four_concurrent_async_writers_lose_and_duplicate_nothing(
    db: str, conn: Conn
) -> None:
    batches = [price_columns(20_000, seed=seed) for seed in range(8)]

    async def work(index: int) -> list[bool]:
        already = []
        async with AsyncWriter(db, chunk_rows=4_000) as writer:
            # Each writer sends every batch, in another order: same content ->
            # same id, so each batch is written once across the four.
            for k in range(len(batches)):
                result = await writer.copy_prices(batches[(k + index * 2) % len(batches)])
                already.append(result.already_written)
                await writer.copy_trades(
                    [(T0 + timedelta(seconds=k), f"tok{k}", "BUY", 0.5, 1.0 + index)],
                    batch_id=f"trade-{index}-{k}",
                )
        return already

    outcomes = await asyncio.gather(*(work(i) for i in range(4)))
    assert sum(not already for run in outcomes for already in run) == 8  # each batch once
    assert count(conn, "price_snapshots") == 8 * 20_000
    assert count(conn, "trades") == 4 * 8
    assert count(conn, "pmstore_ingest_log") == 8 + 32


@pytest.mark.asyncio
async def test_the_event_loop_runs_other_tasks_between_chunks(db: str, conn: Conn) -> None:
    """Preparing and encoding run in worker threads: another task runs between chunks."""
    events: list[str] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            events.append("tick")
            await asyncio.sleep(0)

    def progress(table: str, sent: int, total: int) -> None:
        events.append("chunk")

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    async with AsyncWriter(db, chunk_rows=2_000, progress=progress) as writer:
        result = await writer.copy_prices(price_columns(20_000))
    stop.set()
    await ticking
    assert result.rows_written == 20_000
    chunks = [i for i, e in enumerate(events) if e == "chunk"]
    assert len(chunks) == 10
    # Before the first chunk (the batch's preparation) and between any two, the ticker ran.
    assert "tick" in events[: chunks[0]]
    for before, after in itertools.pairwise(chunks):
        assert "tick" in events[before:after], events[before : after + 1]


@pytest.mark.asyncio
async def test_offload_runs_in_a_worker_thread() -> None:
    assert await offload(threading.get_ident) != threading.get_ident()
    with pytest.raises(ZeroDivisionError):
        await offload(divmod, 1, 0)


@pytest.mark.asyncio
async def test_a_write_cancelled_mid_copy_writes_nothing_and_the_writer_goes_on(
    db: str, conn: Conn
) -> None:
    """A task cancelled between COPY chunks (from the progress hook): rolled back, no rows."""
    sent: list[int] = []
    task: asyncio.Task[Any] | None = None

    def cancel_after_first_chunk(table: str, rows: int, total: int) -> None:
        sent.append(rows)
        if len(sent) == 1 and task is not None:
            task.cancel()

    async with AsyncWriter(db, chunk_rows=5_000, progress=cancel_after_first_chunk) as writer:
        task = asyncio.ensure_future(writer.copy_prices(price_columns(60_000, tokens=8_000)))
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sent == [5_000]
        assert count(conn, "price_snapshots") == 0 and count(conn, "pmstore_ingest_log") == 0
        writer.progress = None
        result = await writer.copy_prices(price_columns(1_000, seed=5))
    assert result.rows_written == 1_000 and result.attempts == 1
    assert count(conn, "price_snapshots") == 1_000


def test_extra_statements_commit_with_the_batch_also_when_already_written(
    kind: Kind, db: str, conn: Conn
) -> None:
    conn.execute("DROP TABLE IF EXISTS t_extra")
    conn.execute("CREATE TABLE t_extra (n int)")
    conn.commit()
    note = [("INSERT INTO t_extra VALUES (%s)", (1,))]
    columns = price_columns(2_000)
    with kind.writer(db) as writer:
        first = writer.copy_prices(columns, extra_statements=note)
        # The same content again: its digest (logged at the end) conflicts, the
        # COPY is rolled back, and the statements still commit once.
        again = writer.copy_prices(columns, extra_statements=note)
        empty = writer.copy_prices(price_columns(0), extra_statements=note)
        bad = [("INSERT INTO t_extra VALUES (%s)", ("not a number",))]
        with pytest.raises(WriteError):
            writer.copy_prices(price_columns(10, seed=9), extra_statements=bad)
    assert first.rows_written == 2_000 and not first.already_written
    assert again.already_written and again.rows_written == 0
    assert again.batch_id == first.batch_id
    assert empty.rows_written == 0
    assert count(conn, "t_extra") == 3
    assert count(conn, "price_snapshots") == 2_000  # the failed call wrote nothing
