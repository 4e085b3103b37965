"""Writer against a real TimescaleDB: round trips, bad input, idempotence, failures, concurrency.

The poisoned-row, dead-given-connection and retries-run-out tests run for
both Writer and AsyncWriter from one body in tests/test_async_writer.py.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import numpy as np
import psycopg
import psycopg.copy
import pytest
from conftest import RECENT_DAY, polymarket_fixture
from psycopg.abc import Buffer, Params, Query

from pmstore import (
    BatchValidationError,
    ConfigurationError,
    MarketRecord,
    OrderbookBatch,
    OrderbookSnapshot,
    PriceBatch,
    PriceSnapshot,
    ResolutionRecord,
    TradeRecord,
    Writer,
    record_to_model,
)
from pmstore.dsn import describe, redact
from pmstore.polymarket import convert

TOKEN_78 = "1" * 78
TOKEN_74 = "9" * 74
TOKEN_77 = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
T0 = RECENT_DAY.replace(hour=12, microsecond=123456)
Conn = psycopg.Connection[tuple[Any, ...]]


def count(conn: Conn, table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def price_columns(n: int, *, tokens: int = 50, seed: int = 1) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    ids = np.array([str(10**76 + i * 7919) for i in range(tokens)], dtype=object)
    base = np.datetime64(RECENT_DAY.replace(tzinfo=None), "us")
    volume = rng.uniform(0, 1e6, n)
    volume[rng.random(n) < 0.5] = np.nan
    return {
        "ts": base + np.arange(n).astype("timedelta64[ms]") * 37,
        "token_id": ids[rng.integers(0, tokens, n)],
        "price": rng.uniform(0, 1, n),
        "volume_24h": volume,
    }


# -- round trips -------------------------------------------------------------


def test_prices_round_trip_every_column(db: str, conn: Conn) -> None:
    east = timezone(timedelta(hours=5, minutes=30))
    records = [
        PriceSnapshot(ts=T0, token_id=TOKEN_78, price=0.0, volume_24h=None),
        PriceSnapshot(ts=T0.astimezone(east), token_id=TOKEN_74, price=1.0, volume_24h=0.0),
        PriceSnapshot(
            ts=T0 + timedelta(microseconds=1), token_id=TOKEN_77, price=0.5, volume_24h=12.75
        ),
        PriceSnapshot(
            ts=datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            token_id="t",
            price=0.123456789,
        ),
    ]
    # The 1999 row (before PostgreSQL's 2000 epoch) is beyond any retention horizon.
    with Writer(db, beyond_retention="write") as writer:
        result = writer.copy_prices(records)
    assert result.rows_written == 4 and not result.already_written
    rows = conn.execute(
        "SELECT ts, token_id, price, volume_24h FROM price_snapshots ORDER BY ts, token_id"
    ).fetchall()
    got = sorted(
        (record_to_model(r, PriceSnapshot) for r in rows), key=lambda r: (r.ts, r.token_id)
    )
    assert got == sorted(records, key=lambda r: (r.ts, r.token_id))
    # Microseconds survive; the +05:30 timestamp is the same instant as T0.
    assert rows[1][0] == T0 or rows[2][0] == T0
    logged = conn.execute("SELECT table_name, rows_written FROM pmstore_ingest_log").fetchall()
    assert logged == [("price_snapshots", 4)]


def test_prices_from_numpy_columns_and_aware_datetimes(db: str, conn: Conn) -> None:
    columns = price_columns(10_000)
    with Writer(db) as writer:
        writer.copy_prices(columns)
        aware = [
            T0.astimezone(timezone(timedelta(hours=-7))) + timedelta(seconds=i) for i in range(3)
        ]
        writer.copy_prices({"ts": aware, "token_id": [TOKEN_77] * 3, "price": [0.1, 0.2, 0.3]})
    assert count(conn, "price_snapshots") == 10_003
    stats = conn.execute(
        "SELECT sum(price), count(volume_24h), sum(volume_24h) FROM price_snapshots "
        "WHERE token_id <> %s",
        (TOKEN_77,),
    ).fetchone()
    assert stats is not None
    assert stats[0] == pytest.approx(float(np.sum(columns["price"])), rel=1e-12)
    assert stats[1] == int(np.sum(~np.isnan(columns["volume_24h"])))
    assert stats[2] == pytest.approx(float(np.nansum(columns["volume_24h"])), rel=1e-12)
    first = conn.execute(
        "SELECT ts FROM price_snapshots WHERE token_id = %s ORDER BY ts LIMIT 1", (TOKEN_77,)
    ).fetchone()
    assert first is not None and first[0] == T0


def test_large_batch_is_streamed_in_chunks(db: str, conn: Conn) -> None:
    """What reaches libpq is recorded on the way (a cursor whose COPY writer counts)."""
    sent: list[int] = []

    class RecordingWriter(psycopg.copy.Writer):
        def __init__(self, inner: psycopg.copy.Writer) -> None:
            self.inner = inner

        def write(self, data: Buffer) -> None:
            sent.append(len(data))
            self.inner.write(data)

        def finish(self, exc: BaseException | None = None) -> None:
            self.inner.finish(exc)

    class RecordingCursor(psycopg.Cursor[Any]):
        @contextmanager
        def copy(
            self,
            statement: Query,
            params: Params | None = None,
            *,
            writer: psycopg.copy.Writer | None = None,
        ) -> Iterator[psycopg.Copy]:
            inner = writer or psycopg.copy.LibpqWriter(self)
            with super().copy(statement, params, writer=RecordingWriter(inner)) as copy:
                yield copy

    with (
        psycopg.connect(db, cursor_factory=RecordingCursor) as own,
        Writer(own, chunk_rows=1_000) as writer,
    ):
        result = writer.copy_prices(price_columns(25_000))
    assert result.rows_written == 25_000 == count(conn, "price_snapshots")
    # 25 chunks of 1,000 rows (plus, maybe, header and trailer): never the batch at once.
    assert len(sent) >= 25, sent
    assert max(sent) <= sum(sent) / 20, sent


def test_orderbooks_round_trip(db: str, conn: Conn) -> None:
    books = [
        # Worst-first, as Polymarket sends them: stored best-first.
        OrderbookSnapshot(
            ts=T0,
            token_id=TOKEN_78,
            bids=[(0.01, 100.0), (0.47, 5.5), (0.48, 1234.5)],
            asks=[(0.99, 10.0), (0.53, 3.0), (0.52, 7.25)],
        ),
        OrderbookSnapshot(ts=T0, token_id=TOKEN_74, bids=[], asks=[]),
        OrderbookSnapshot(ts=T0, token_id=TOKEN_77, bids=[(0.3, 1.0)], asks=[]),
        OrderbookSnapshot(
            ts=T0, token_id="x", bids=[(0.0, 1.0)], asks=[(1.0, 2.0)], spread=0.9, midpoint=0.45
        ),
    ]
    with Writer(db) as writer:
        assert writer.copy_orderbooks(books).rows_written == 4
    rows = conn.execute(
        "SELECT ts, token_id, bids, asks, spread, midpoint FROM orderbook_snapshots"
    ).fetchall()
    got = {r[1]: record_to_model(r, OrderbookSnapshot) for r in rows}
    for book in books:
        assert got[book.token_id] == book
    full = next(r for r in rows if r[1] == TOKEN_78)
    assert full[2][0] == [0.48, 1234.5] and full[3][0] == [0.52, 7.25]
    assert full[4] == pytest.approx(0.04) and full[5] == pytest.approx(0.5)
    for empty in (TOKEN_74, TOKEN_77):
        row = next(r for r in rows if r[1] == empty)
        assert row[4] is None and row[5] is None
    given = next(r for r in rows if r[1] == "x")
    assert (given[4], given[5]) == (0.9, 0.45)


def test_orderbooks_from_columns_with_string_levels(db: str, conn: Conn) -> None:
    with Writer(db) as writer:
        writer.copy_orderbooks(
            {
                "ts": [T0, T0],
                "token_id": [TOKEN_77, TOKEN_78],
                "bids": [[("0.40", "10"), ("0.45", "2")], []],
                "asks": [[("0.60", "1"), ("0.55", "3")], [("0.7", "1")]],
            }
        )
    row = conn.execute(
        "SELECT bids, asks, spread, midpoint FROM orderbook_snapshots WHERE token_id = %s",
        (TOKEN_77,),
    ).fetchone()
    assert row is not None
    assert row[0] == [[0.45, 2.0], [0.4, 10.0]] and row[1] == [[0.55, 3.0], [0.6, 1.0]]
    assert row[2] == pytest.approx(0.10) and row[3] == pytest.approx(0.50)


def test_trades_round_trip_and_duplicates(db: str, conn: Conn) -> None:
    trades = [
        TradeRecord(ts=T0, token_id=TOKEN_78, side="BUY", price=0.0, size=0.0, trade_id="a"),
        TradeRecord(ts=T0, token_id=TOKEN_78, side="SELL", price=1.0, size=10.5),
        TradeRecord(
            ts=T0 + timedelta(microseconds=7), token_id=TOKEN_74, side="BUY", price=0.5, size=1.0
        ),
    ]
    with Writer(db) as writer:
        first = writer.copy_trades(trades)
        assert (first.rows_written, first.duplicates_skipped) == (3, 0)
        # The same trades in another batch (another id): all three are duplicates.
        again = writer.copy_trades([*trades, trades[0]], batch_id="other")
        assert (again.rows_written, again.duplicates_skipped) == (0, 4)
    rows = conn.execute("SELECT ts, token_id, side, price, size, trade_id FROM trades").fetchall()
    assert len(rows) == 3
    stored = {r[5]: r for r in rows}
    assert stored["a"][1:5] == (TOKEN_78, "BUY", 0.0, 0.0)
    derived = [k for k in stored if k != "a"]
    assert len(derived) == 2 and all(k.startswith("sha1:") for k in derived)


def test_trades_with_duplicates_inside_one_batch(db: str, conn: Conn) -> None:
    trade = (T0, TOKEN_77, "BUY", 0.25, 4.0, "dup")
    with Writer(db) as writer:
        result = writer.copy_trades([trade, trade, trade])
    assert (result.rows_written, result.duplicates_skipped) == (1, 2)
    assert count(conn, "trades") == 1


def test_markets_upsert_inserts_then_updates(db: str, conn: Conn) -> None:
    market = MarketRecord(
        condition_id="0x" + "ab" * 32,
        question="Will the Élysée 🇫🇷 say « oui » before 2027?",
        slug="elysee",
        market_type="binary",
        outcomes=["Yes", "No"],
        clob_token_ids=[TOKEN_77, TOKEN_78],
        end_date_iso="2026-12-31",
    )
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    with Writer(db) as writer:
        assert writer.upsert_markets([market]).rows_written == 1
        first = conn.execute("SELECT created_at, updated_at FROM markets").fetchone()
        assert first is not None and first[0] == first[1]  # one transaction's now()
        # Backdated, so the update must set updated_at again: no race with the clock.
        conn.execute("UPDATE markets SET updated_at = %s", (long_ago,))
        changed = market.model_copy(update={"active": False, "closed": True})
        assert writer.upsert_markets([changed]).rows_written == 1
        refreshed = conn.execute("SELECT updated_at FROM markets").fetchone()
        assert refreshed is not None and refreshed[0] > long_ago
        # The same values again: not rewritten, updated_at left alone.
        assert writer.upsert_markets([changed]).rows_written == 0
    assert count(conn, "markets") == 1
    got = record_to_model(conn.execute("SELECT * FROM markets").fetchone(), MarketRecord)
    assert got.question == market.question and got.outcomes == ["Yes", "No"]
    assert got.clob_token_ids == [TOKEN_77, TOKEN_78]
    assert (got.active, got.closed) == (False, True)
    assert got.created_at == first[0] and got.updated_at == refreshed[0]


def test_resolutions_change_over_time_but_never_back_from_resolved(db: str, conn: Conn) -> None:
    cid = "0x" + "cd" * 32
    proposed = ResolutionRecord(
        condition_id=cid,
        outcome="Yes",
        winner_token_id=TOKEN_77,
        payout_price=1.0,
        detection_method="data_api",
        status="proposed",
    )
    disputed = proposed.model_copy(update={"status": "disputed"})
    resolved = proposed.model_copy(update={"status": "resolved", "resolved_at": T0})
    fifty = ResolutionRecord(
        condition_id="0x" + "ee" * 32,
        outcome="50/50",
        winner_token_id=None,
        payout_price=0.5,
        detection_method="gamma",
        status="resolved",
    )
    with Writer(db) as writer:
        writer.upsert_resolutions([proposed, fifty])
        writer.upsert_resolutions([disputed])
        assert conn.execute(
            "SELECT status FROM resolutions WHERE condition_id=%s", (cid,)
        ).fetchone() == ("disputed",)
        writer.upsert_resolutions([resolved])
        stale = writer.upsert_resolutions([proposed])
        assert stale.rows_written == 0
    got = record_to_model(
        conn.execute("SELECT * FROM resolutions WHERE condition_id=%s", (cid,)).fetchone(),
        ResolutionRecord,
    )
    assert (got.status, got.resolved_at, got.winner_token_id) == ("resolved", T0, TOKEN_77)
    half = conn.execute(
        "SELECT winner_token_id, payout_price FROM resolutions WHERE outcome='50/50'"
    ).fetchone()
    assert half == (None, 0.5)


LIFECYCLE = [
    ["pending", "initialized", "active"],  # nothing proposed yet
    ["posed"],
    ["proposed"],
    ["challenged"],
    ["reproposed"],
    ["disputed"],
    ["arbitration"],
    ["resolved"],
]
"""The data API v2's statuses in lifecycle order (docs: "Get resolution state"; "pending"
from issue 23), those of one stage together. A status not listed stands before all."""


def _stage(status: str) -> int:
    return next((i + 1 for i, group in enumerate(LIFECYCLE) if status in group), 0)


def test_a_resolution_never_goes_back_in_its_lifecycle(db: str, conn: Conn) -> None:
    """Every status written after every other one, on a real server: the later write is
    kept unless it is less far along (a stale message), whatever the order."""
    statuses = [s for group in LIFECYCLE for s in group] + ["something-new"]
    pairs = [(a, b) for a in statuses for b in statuses]

    def record(k: int, status: str) -> ResolutionRecord:
        return ResolutionRecord(
            condition_id=f"0x{k:064x}", detection_method="data_api_resolutions", status=status
        )

    with Writer(db) as writer:
        writer.upsert_resolutions([record(k, a) for k, (a, _) in enumerate(pairs)])
        writer.upsert_resolutions([record(k, b) for k, (_, b) in enumerate(pairs)])
    stored: dict[Any, Any] = dict(
        conn.execute("SELECT condition_id, status FROM resolutions").fetchall()
    )
    for k, (a, b) in enumerate(pairs):
        want = b if _stage(b) >= _stage(a) else a
        assert stored[f"0x{k:064x}"] == want, (a, b)
    # and within one call, in order
    cid = "0x" + "ab" * 32
    with Writer(db) as writer:
        writer.upsert_resolutions(
            [record(0, s).model_copy(update={"condition_id": cid}) for s in statuses[::-1]]
        )
    assert conn.execute(
        "SELECT status FROM resolutions WHERE condition_id = %s", (cid,)
    ).fetchone() == ("resolved",)


def test_a_resolved_row_keeps_what_a_later_one_does_not_know(db: str, conn: Conn) -> None:
    """A data-API v2 row (payout per outcome index, no token ids) after a WebSocket
    market_resolved (the winner token): the winner stays. A payout-less resolved row
    never replaces one with a payout; a full result (another winner, a 50/50) does."""
    cid = "0x" + "c1" * 32
    ws = ResolutionRecord(
        condition_id=cid,
        outcome="Yes",
        winner_token_id=TOKEN_77,
        resolved_at=T0,
        payout_price=1.0,
        detection_method="ws_market_resolved",
        status="resolved",
    )
    v2_paid = ResolutionRecord(
        condition_id=cid,
        resolved_at=T0 + timedelta(seconds=2),
        payout_price=1.0,
        detection_method="data_api_resolutions",
        status="resolved",
    )
    v2_bare = v2_paid.model_copy(update={"payout_price": None})
    fifty = v2_paid.model_copy(update={"payout_price": 0.5})

    def row() -> tuple[Any, ...]:
        got = conn.execute(
            "SELECT winner_token_id, payout_price, detection_method FROM resolutions "
            "WHERE condition_id = %s",
            (cid,),
        ).fetchone()
        assert got is not None
        return tuple(got)

    with Writer(db) as writer:
        writer.upsert_resolutions([ws])
        assert writer.upsert_resolutions([v2_paid, v2_bare]).rows_written == 0
        assert row() == (TOKEN_77, 1.0, "ws_market_resolved")
        writer.upsert_resolutions([fifty])
        assert row() == (None, 0.5, "data_api_resolutions")
    conn.execute("DELETE FROM resolutions WHERE condition_id = %s", (cid,))
    with Writer(db) as writer:
        writer.upsert_resolutions([v2_bare])
        writer.upsert_resolutions([v2_paid])  # a payout, still no winner: more than before
        assert row() == (None, 1.0, "data_api_resolutions")
        writer.upsert_resolutions([ws])
        assert row() == (TOKEN_77, 1.0, "ws_market_resolved")


def test_data_api_v2_lifecycle_through_the_writer(db: str, conn: Conn) -> None:
    """The hand-written v2 lifecycle, one poll's records per call in arrival order: the
    stored status after each poll is the furthest one seen so far."""
    pages = json.loads(
        polymarket_fixture("data_api_v2/resolution_lifecycle_one_condition.json").read_text()
    )
    seen: list[str] = []
    with Writer(db) as writer:
        for page in pages:
            (record,) = convert(page).resolutions
            writer.upsert_resolutions([record])
            seen.append(record.status or "")
            furthest = max(seen, key=_stage)
            got = conn.execute(
                "SELECT status, payout_price FROM resolutions WHERE condition_id = %s",
                (record.condition_id,),
            ).fetchone()
            assert got is not None and got[0] == furthest, seen
            assert got[1] == (1.0 if furthest == "resolved" else None)
    assert seen[-2:] == ["disputed", "proposed"] and "challenged" in seen[seen.index("disputed") :]


# -- bad input -----------------------------------------------------------------

GOOD = {"ts": [T0, T0, T0], "token_id": ["a", "b", "c"], "price": [0.1, 0.2, 0.3]}


@pytest.mark.parametrize(
    ("change", "row", "column"),
    [
        ({"price": [0.1, float("nan"), 0.3]}, 1, "price"),
        ({"price": [0.1, 0.2, float("inf")]}, 2, "price"),
        ({"price": [1.5, 0.2, 0.3]}, 0, "price"),
        ({"price": [0.1, -0.01, 0.3]}, 1, "price"),
        ({"volume_24h": [1.0, -1.0, 2.0]}, 1, "volume_24h"),
        ({"volume_24h": [1.0, 2.0, float("inf")]}, 2, "volume_24h"),
        ({"token_id": ["a", "", "c"]}, 1, "token_id"),
        ({"token_id": ["a", "b", None]}, 2, "token_id"),
        ({"ts": [T0, T0.replace(tzinfo=None), T0]}, 1, "ts"),
    ],
)
def test_bad_price_values_name_row_and_column(
    db: str, conn: Conn, change: dict[str, Any], row: int, column: str
) -> None:
    with Writer(db) as writer, pytest.raises(BatchValidationError) as info:
        writer.copy_prices({**GOOD, **change})
    first = info.value.problems[0]
    assert (first.row, first.column) == (row, column)
    assert f"row {row}" in str(info.value) and column in str(info.value)
    assert count(conn, "price_snapshots") == 0 and count(conn, "pmstore_ingest_log") == 0


@pytest.mark.parametrize(
    ("columns", "column"),
    [
        ({"ts": [T0], "token_id": ["a"]}, "price"),
        ({**GOOD, "colour": [1, 2, 3]}, "colour"),
        ({**GOOD, "price": ["0.1", "x", "0.3"]}, "price"),
        ({**GOOD, "ts": ["2026-01-01", "b", "c"]}, "ts"),
        ({**GOOD, "token_id": ["a", "b"]}, "token_id"),
    ],
)
def test_bad_price_columns_name_the_column(
    db: str, conn: Conn, columns: dict[str, Any], column: str
) -> None:
    with Writer(db) as writer, pytest.raises(BatchValidationError) as info:
        writer.copy_prices(columns)
    assert any(p.column == column for p in info.value.problems), info.value.problems
    assert count(conn, "price_snapshots") == 0


def test_bad_trades_and_books_are_refused(db: str, conn: Conn) -> None:
    with Writer(db) as writer:
        with pytest.raises(BatchValidationError) as info:
            writer.copy_trades([(T0, "a", "BUY", 0.5, 1.0), (T0, "a", "HOLD", 0.5, 1.0)])
        assert (info.value.problems[0].row, info.value.problems[0].column) == (1, "side")
        with pytest.raises(BatchValidationError) as info:
            writer.copy_trades([(T0, "a", "SELL", 0.5, -3.0)])
        assert info.value.problems[0].column == "size"
        with pytest.raises(BatchValidationError) as info:
            writer.copy_orderbooks(
                {
                    "ts": [T0, T0],
                    "token_id": ["a", "b"],
                    "bids": [[], [{"price": "0.4"}]],
                    "asks": [[], []],
                }
            )
        assert (info.value.problems[0].row, info.value.problems[0].column) == (1, "bids")
        with pytest.raises(BatchValidationError):
            writer.copy_orderbooks({"ts": [T0], "token_id": ["a"], "bids": ["0.4"], "asks": [[]]})
        with pytest.raises(BatchValidationError) as info:
            writer.upsert_markets([{"condition_id": "0x1", "question": None}])
        assert (info.value.problems[0].row, info.value.problems[0].column) == (0, "question")
        with pytest.raises(BatchValidationError) as info:
            writer.upsert_resolutions([{"condition_id": "0x1", "payout_price": 2}])
        assert info.value.problems[0].column == "payout_price"
    for table in ("trades", "orderbook_snapshots", "markets", "resolutions", "pmstore_ingest_log"):
        assert count(conn, table) == 0


def string_books(n: int, *, bad_row: int | None = None) -> dict[str, Any]:
    """``n`` books with Polymarket's string levels (worst-first), texts with trailing zeros."""
    bids, asks = [], []
    for i in range(n):
        levels = 3 + i % 30
        bids.append([{"price": f"0.{10 + k:02d}0", "size": f"{i}.{k:02d}"} for k in range(levels)])
        asks.append([{"price": f"0.{99 - k}", "size": "1000"} for k in range(levels)])
    if bad_row is not None:
        bids[bad_row] = [*bids[bad_row], {"price": "0.5", "size": "-1"}]
    return {
        "ts": [T0 + timedelta(seconds=i) for i in range(n)],
        "token_id": [str(10**77 + i % 13) for i in range(n)],
        "bids": bids,
        "asks": asks,
    }


def test_string_levels_over_many_chunks_are_stored_as_sent_all_or_nothing(
    db: str, conn: Conn
) -> None:
    """A mapping of string levels is parsed chunk by chunk in the stream's worker: a bad
    level in a late chunk still refuses the batch (row and column named, nothing written);
    the good batch stores every text unchanged, and its digest is the built batch's."""
    n = 600
    with Writer(db, chunk_bytes=16_384) as writer:
        with pytest.raises(BatchValidationError) as info:
            writer.copy_orderbooks(string_books(n, bad_row=n - 5), batch_id="books")
        assert [(p.row, p.column) for p in info.value.problems] == [(n - 5, "bids")]
        assert count(conn, "orderbook_snapshots") == 0
        books = string_books(n)
        result = writer.copy_orderbooks(books, batch_id="books")
        assert result.rows_written == n
        again = writer.copy_orderbooks(OrderbookBatch.from_columns(books), batch_id="books")
        assert again.already_written
    stored = conn.execute(
        "SELECT bids::text, asks::text, spread FROM orderbook_snapshots ORDER BY ts"
    ).fetchall()
    assert len(stored) == n
    for (bid_text, ask_text, spread), bid, ask in zip(
        stored, books["bids"], books["asks"], strict=True
    ):
        best_bids = ", ".join(f"[{v['price']}, {v['size']}]" for v in reversed(bid))
        best_asks = ", ".join(f"[{v['price']}, {v['size']}]" for v in reversed(ask))
        assert bid_text == f"[{best_bids}]" and ask_text == f"[{best_asks}]"
        assert spread == pytest.approx(float(ask[-1]["price"]) - float(bid[-1]["price"]))


def skip_books(token: str) -> dict[str, Any]:
    """Four books of string levels (trailing zeros, more digits than a double holds); row 1's
    bids has a level without a size (malformed: the row-by-row parse)."""
    long_size = "1234.123456789012345678901"
    bids: list[Any] = [
        [{"price": "0.40", "size": "1234.50"}, {"price": "0.45", "size": long_size}],
        [{"price": "0.5"}],
        [{"price": "0.30", "size": "10"}],
        [],
    ]
    asks = [
        [{"price": "0.60", "size": "2.500"}, {"price": "0.55", "size": "3"}],
        [{"price": "0.7", "size": "1"}],
        [{"price": "0.900", "size": long_size}],
        [{"price": "0.99", "size": "0.010"}],
    ]
    return {
        "ts": [T0 + timedelta(seconds=i) for i in range(4)],
        "token_id": [token] * 4,
        "bids": bids,
        "asks": asks,
    }


def kept_rows(columns: dict[str, Any], rows: list[int], token: str) -> dict[str, Any]:
    return {
        "ts": [columns["ts"][i] for i in rows],
        "token_id": [token] * len(rows),
        "bids": [columns["bids"][i] for i in rows],
        "asks": [columns["asks"][i] for i in rows],
    }


def stored_sides(conn: Conn, token: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT ts, bids::text, asks::text, spread, midpoint FROM orderbook_snapshots"
        " WHERE token_id = %s ORDER BY ts",
        (token,),
    ).fetchall()


@pytest.mark.parametrize("given", ["mapping", "batch", "deferred"])
def test_skip_mode_stores_kept_string_levels_as_the_rows_alone_do(
    db: str, conn: Conn, given: str
) -> None:
    """A malformed side puts its column on the row-by-row parse: the kept rows of a skip
    batch, in both columns, still store their texts unchanged, exactly as those rows
    written alone (a mapping, a built batch or a deferred one)."""
    token, alone = f"skip-{given}", f"alone-{given}"
    columns = skip_books(token)
    data: Any = columns
    if given == "batch":
        data = OrderbookBatch.from_columns(columns)
    elif given == "deferred":
        data = OrderbookBatch.from_columns_deferred(columns)
    with Writer(db) as writer:
        result = writer.copy_orderbooks(data, on_invalid="skip")
        assert [(p.row, p.column) for p in result.rejected] == [(1, "bids")]
        assert result.rows_written == 3
        writer.copy_orderbooks(kept_rows(columns, [0, 2, 3], alone))
    stored, reference = stored_sides(conn, token), stored_sides(conn, alone)
    assert len(stored) == 3 and stored == reference
    assert stored[0][1:3] == (
        "[[0.45, 1234.123456789012345678901], [0.40, 1234.50]]",
        "[[0.55, 3], [0.60, 2.500]]",
    )
    assert stored[1][2] == "[[0.900, 1234.123456789012345678901]]"
    assert stored[2][1:3] == ("[]", "[[0.99, 0.010]]")


def test_empty_and_all_rejected_batches_write_nothing(db: str, conn: Conn) -> None:
    with Writer(db) as writer:
        empty = writer.copy_prices({"ts": [], "token_id": [], "price": []})
        assert empty.rows_written == 0 and not empty.already_written
        bad = writer.copy_prices({"ts": [T0], "token_id": [""], "price": [0.5]}, on_invalid="skip")
        assert bad.rows_written == 0 and [(p.row, p.column) for p in bad.rejected] == [
            (0, "token_id")
        ]
    assert count(conn, "price_snapshots") == 0 and count(conn, "pmstore_ingest_log") == 0


def test_skip_mode_writes_the_valid_rows_and_returns_the_rejected(db: str, conn: Conn) -> None:
    columns = {"ts": [T0] * 4, "token_id": ["a", "", "c", "d"], "price": [0.1, 0.2, 7.0, 0.4]}
    with Writer(db) as writer:
        result = writer.copy_prices(columns, on_invalid="skip")
    assert result.rows_written == 2
    assert {(p.row, p.column) for p in result.rejected} == {(1, "token_id"), (2, "price")}
    tokens = {r[0] for r in conn.execute("SELECT token_id FROM price_snapshots").fetchall()}
    assert tokens == {"a", "d"}


# -- all or nothing, never twice -------------------------------------------------


def test_same_batch_twice_is_written_once(db: str, conn: Conn) -> None:
    columns = price_columns(2_000)
    with Writer(db) as writer:
        first = writer.copy_prices(columns)
        second = writer.copy_prices(PriceBatch.from_columns(columns))
        third = writer.copy_prices(columns, batch_id="explicit-id")
        fourth = writer.copy_prices(price_columns(10), batch_id="explicit-id")
    assert first.batch_id == second.batch_id and second.already_written
    assert second.rows_written == 0 and third.rows_written == 2_000
    assert fourth.already_written and fourth.rows_written == 0
    assert count(conn, "price_snapshots") == 4_000


KILL_AT_ROW = 12_345


def test_connection_killed_mid_copy_then_retry_leaves_one_copy(db: str, conn: Conn) -> None:
    """The server ends the Writer's backend at row 12,345 of the COPY stream, once.

    A row trigger counts rows in a sequence (which a rollback does not undo)
    and, at that row, terminates its own backend: the first attempt always
    dies in the middle of the stream, the retry never does.
    """
    conn.execute(
        f"""
        CREATE SEQUENCE copied_rows;
        CREATE FUNCTION die_mid_copy() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF nextval('copied_rows') = {KILL_AT_ROW} THEN
                PERFORM pg_terminate_backend(pg_backend_pid());
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER die_mid_copy BEFORE INSERT ON price_snapshots
            FOR EACH ROW EXECUTE FUNCTION die_mid_copy();
        """
    )
    try:
        with Writer(db, backoff=0, chunk_rows=1_000) as writer:
            first_pid = writer.backend_pid
            result = writer.copy_prices(price_columns(20_000, tokens=500))
            assert writer.backend_pid != first_pid  # a new connection wrote it
        assert result.attempts == 2 and result.rows_written == 20_000
        assert count(conn, "price_snapshots") == 20_000
        assert count(conn, "pmstore_ingest_log") == 1
        counted = conn.execute("SELECT last_value FROM copied_rows").fetchone()
        # The first attempt reached the kill row, the retry copied every row.
        assert counted is not None and counted[0] >= KILL_AT_ROW + 20_000
    finally:
        conn.execute(
            "DROP TRIGGER die_mid_copy ON price_snapshots;"
            " DROP FUNCTION die_mid_copy(); DROP SEQUENCE copied_rows"
        )


def test_commit_outcome_unknown_retry_writes_nothing(db: str, conn: Conn) -> None:
    # The first attempt committed but the client never heard back: the caller
    # retries the same batch (same content, same id) on a new Writer.
    columns = price_columns(1_000)
    with Writer(db) as writer:
        writer.copy_prices(columns)
    with Writer(db) as retry:
        result = retry.copy_prices(columns)
    assert result.already_written and count(conn, "price_snapshots") == 1_000


def test_redact_hides_passwords_everywhere() -> None:
    for text in (
        "postgresql://u:hunter2@h:5432/db",
        "host=h password=hunter2 user=u",
        "host=h password='hunter2 x' user=u",
        "postgresql+psycopg:///?host=h&password=hunter2&user=u",
    ):
        assert "hunter2" not in redact(text)


@pytest.mark.parametrize("secret", ["pa@hunter2", "pa/hunter2@x"])
def test_a_url_password_with_an_unescaped_at_or_slash_is_refused(secret: str) -> None:
    # libpq would read "hunter2..." as part of the host or database name, and
    # every message naming them would show it.
    dsn = f"postgresql://u:{secret}@127.0.0.1:1/db"
    with pytest.raises(ConfigurationError) as info:
        Writer(dsn)
    assert "%40" in str(info.value) and "hunter2" not in str(info.value)
    assert "hunter2" not in describe(dsn)
    escaped = f"postgresql://u:{quote(secret, safe='')}@127.0.0.1:1/db"
    assert "hunter2" not in repr(Writer(escaped))


# -- concurrency -------------------------------------------------------------------


def test_four_concurrent_writers_lose_and_duplicate_nothing(db: str, conn: Conn) -> None:
    batches = [price_columns(20_000, seed=seed) for seed in range(8)]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            with Writer(db) as writer:
                # Each writer sends every batch: same content -> same id,
                # so every batch is written exactly once across the four.
                for k in range(len(batches)):
                    writer.copy_prices(batches[(k + index * 2) % len(batches)])
                    writer.copy_trades(
                        [(T0 + timedelta(seconds=k), f"tok{k}", "BUY", 0.5, 1.0 + index)],
                        batch_id=f"trade-{index}-{k}",
                    )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count(conn, "price_snapshots") == 8 * 20_000
    assert count(conn, "trades") == 4 * 8
    assert count(conn, "pmstore_ingest_log") == 8 + 32


def test_writer_reconnects_when_the_server_comes_back(server: Any) -> None:
    """A server restart between batches: the owning Writer retries until it is back."""
    from pmstore import migrate
    from pmstore.server import EmbeddedServer

    class StartOnRetry(logging.Handler):
        """Starts the server when the Writer says it will retry: after the first attempt."""

        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.retries: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            if "retrying" in record.getMessage():
                self.retries.append(record.getMessage())
                if len(self.retries) == 1:
                    own.start()

    bindir = server.embedded.bindir if server.embedded else None
    hook = StartOnRetry()
    with EmbeddedServer.throwaway(bindir=bindir) as own:
        dsn = own.dsn()
        migrate(dsn)
        logging.getLogger("pmstore").addHandler(hook)
        try:
            with Writer(dsn, retries=8, backoff=0) as writer:
                assert writer.copy_prices(price_columns(100, seed=1)).rows_written == 100
                own.stop()
                result = writer.copy_prices(price_columns(100, seed=2))
        finally:
            logging.getLogger("pmstore").removeHandler(hook)
        # The first attempt found the server gone; the second, after the restart, wrote.
        assert len(hook.retries) == 1 and "attempt 1 of 9" in hook.retries[0]
        assert result.rows_written == 100 and result.attempts == 2
        with psycopg.connect(dsn) as check:
            assert count(check, "price_snapshots") == 200
