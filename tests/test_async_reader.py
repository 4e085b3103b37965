"""AsyncReader against a real TimescaleDB: the Reader's reads, on an event loop.

The tests taking ``kind`` run once on Reader and once on AsyncReader with
one body (tests/async_adapter.py); expectations come from the generated
columns (tests/test_reader.py's helpers), never from the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from async_adapter import Kind, kind
from conftest import TestServer
from test_reader import (
    DAY0,
    TOKENS,
    as_ts,
    assert_same,
    concat,
    expected_candles,
    expected_latest,
    expected_volume,
    opt,
    price_data,
    to_dt,
    to_us,
    trade_data,
)

from pmstore import (
    AsyncReader,
    ConfigurationError,
    FeatureUnavailableError,
    MarketRecord,
    OrderbookSnapshot,
    ResolutionRecord,
    Writer,
)
from pmstore.reader import PricePoint, Reader

__all__ = ["kind"]  # the fixture, imported

Conn = psycopg.Connection[tuple[Any, ...]]


@pytest.fixture
def reading(kind: Kind, db: str, conn: Conn) -> Iterator[Any]:
    """A Reader or an AsyncReader on an autocommit connection of its kind (emptied tables)."""
    own = kind.connect(db, autocommit=True)
    try:
        yield kind.reader(own)
    finally:
        kind.close(own)


def write(conn: Conn, prices: dict[str, Any] | None = None, trades: Any = None) -> None:
    with Writer(conn) as writer:
        if prices is not None:
            writer.copy_prices({**prices, "ts": as_ts(prices["ts"])})
        if trades is not None:
            writer.copy_trades({**trades, "ts": as_ts(trades["ts"])})


def test_latest_prices_of_every_token_and_of_given_tokens(reading: Any, conn: Conn) -> None:
    assert reading.latest_prices() == [] and reading.latest_prices(token_ids=TOKENS) == []
    rng = np.random.default_rng(21)
    at = DAY0 + timedelta(hours=30)
    cols = concat(
        price_data(rng, 3_000, TOKENS[:3], DAY0, timedelta(days=2)),
        {
            "ts": np.array([to_us(at) + 1, to_us(at)]),
            "token_id": np.array([TOKENS[3], TOKENS[1]], dtype=object),
            "price": np.array([0.25, 0.75]),
            "volume_24h": np.array([1.0, np.nan]),
        },
    )
    write(conn, cols)
    got = reading.latest_prices(at)
    assert got == expected_latest(cols, at) and len(got) == 3
    assert got[1].ts == at and got[1].price == 0.75
    assert [p.token_id for p in reading.latest_prices()] == TOKENS
    wanted = [TOKENS[2], TOKENS[0], TOKENS[2], "no-such-token", TOKENS[3]]
    assert reading.latest_prices(at, wanted) == expected_latest(cols, at, wanted)
    lookback = timedelta(hours=1)
    assert reading.latest_prices(at, lookback=lookback) == expected_latest(
        cols, at, since=at - lookback
    )


def test_price_history_raw_and_bucketed(reading: Any, conn: Conn) -> None:
    rng = np.random.default_rng(22)
    cols = price_data(rng, 4_000, TOKENS, DAY0, timedelta(hours=20))
    write(conn, cols)
    token = TOKENS[0]
    mine = np.flatnonzero(cols["token_id"] == token)
    mine = mine[np.argsort(cols["ts"][mine])]
    start, end = to_dt(cols["ts"][mine[10]]), to_dt(cols["ts"][mine[-10]])
    want = [
        PricePoint(
            ts=to_dt(cols["ts"][i]),
            token_id=token,
            price=float(cols["price"][i]),
            volume_24h=opt(cols["volume_24h"][i]),
        )
        for i in mine[10:-10]
    ]
    assert reading.price_history(token, start, end) == want
    hourly = reading.price_history(token, start, end, timedelta(hours=1))
    assert sum(p.samples for p in hourly) == len(want)
    last_of_hour = {to_us(p.ts) // 3_600_000_000: p for p in want}  # want is oldest first
    assert [(p.price, p.volume_24h) for p in hourly] == [
        (last_of_hour[h].price, last_of_hour[h].volume_24h) for h in sorted(last_of_hour)
    ]


@pytest.mark.parametrize(
    "edition", ["apache", pytest.param("community", marks=pytest.mark.community)]
)
def test_candles_and_trade_volume_on_both_editions(
    kind: Kind, edition: str, request: pytest.FixtureRequest
) -> None:
    srv: TestServer = request.getfixturevalue(f"{edition}_server")
    name = f"t_async_reader_hourly_{edition}_{kind.name}"
    dsn = srv.migrated_database(name)
    try:
        rng = np.random.default_rng(23)
        prices = price_data(rng, 1_500, TOKENS, DAY0, timedelta(hours=10))
        trades = trade_data(rng, 1_000, TOKENS, DAY0, timedelta(hours=10), "a")
        start, end = DAY0 + timedelta(hours=1, minutes=30), DAY0 + timedelta(hours=8, minutes=15)
        with psycopg.connect(dsn, autocommit=True) as conn:
            write(conn, prices, trades)
        own = kind.connect(dsn, autocommit=True)
        try:
            reader = kind.reader(own)
            for token in TOKENS:
                assert_same(
                    reader.candles(token, start, end),
                    expected_candles(prices, token, start, end),
                    ("avg_volume",),
                )
                assert_same(
                    reader.trade_volume(token, start, end),
                    expected_volume(trades, token, start, end),
                    ("total_size", "total_value", "avg_price"),
                )
            assert reader.uses_aggregates == (edition == "community")
            if edition == "apache":
                with pytest.raises(FeatureUnavailableError, match="Apache-2"):
                    kind.reader(own, aggregates=True).candles(TOKENS[0], start, end)
        finally:
            kind.close(own)
    finally:
        srv.drop_database(name)


def test_orderbooks_markets_and_resolutions(reading: Any, conn: Conn) -> None:
    t1 = DAY0 + timedelta(hours=1)
    books = [
        OrderbookSnapshot(ts=t1, token_id=TOKENS[0], bids=[(0.45, 2.0)], asks=[(0.6, 1.0)]),
        OrderbookSnapshot(ts=t1 + timedelta(hours=1), token_id=TOKENS[0], bids=[], asks=[]),
    ]
    markets = [
        MarketRecord(
            condition_id=f"0x{i:02x}",
            question=f"Question {i}?",
            outcomes=["Yes", "No"],
            clob_token_ids=TOKENS[:2],
            active=i % 2 == 0,
            created_at=DAY0,
        )
        for i in range(5)
    ]
    resolution = ResolutionRecord(
        condition_id="0x03",
        outcome="Yes",
        winner_token_id=TOKENS[0],
        payout_price=1.0,
        detection_method="gamma",
        status="resolved",
    )
    with Writer(conn) as writer:
        writer.copy_orderbooks(books)
        writer.upsert_markets(markets)
        writer.upsert_resolutions([resolution])
    assert reading.orderbook_at(TOKENS[0], t1 - timedelta(microseconds=1)) is None
    assert reading.orderbook_at(TOKENS[0], t1 + timedelta(minutes=59)) == books[0]
    assert reading.orderbook_at(TOKENS[0]) == books[1]
    assert [m.condition_id for m in reading.markets()] == [m.condition_id for m in markets]
    assert [m.condition_id for m in reading.markets(active=True, limit=2)] == ["0x00", "0x02"]
    found = reading.market("0x04")
    assert found is not None and found.question == "Question 4?" and found.created_at == DAY0
    assert reading.market("0xff") is None and reading.resolution("0x04") is None
    stored = reading.resolution("0x03")
    assert stored is not None and (stored.status, stored.winner_token_id) == ("resolved", TOKENS[0])


def test_bad_arguments_are_refused_before_any_query(reading: Any) -> None:
    naive = datetime(2026, 3, 1, 12)
    calls: tuple[Callable[[], object], ...] = (
        lambda: reading.latest_prices(naive),
        lambda: reading.price_history("t", naive, DAY0),
        lambda: reading.candles("t", DAY0, naive),
        lambda: reading.orderbook_at("t", naive),
    )
    for call in calls:
        with pytest.raises(ConfigurationError, match="naive datetime"):
            call()
    refused: tuple[Callable[[], object], ...] = (
        lambda: reading.trade_volume("t", DAY0, DAY0),
        lambda: reading.latest_prices(DAY0, TOKENS[0]),
        lambda: reading.markets(limit=-1),
        lambda: reading.market(""),
    )
    for call in refused:
        with pytest.raises(ConfigurationError):
            call()


def test_each_reader_takes_only_its_own_kind_of_connection(kind: Kind, db: str) -> None:
    other = Kind("sync" if kind.is_async else "async", kind.runner)
    wrong = other.connect(db)
    try:
        with pytest.raises(ConfigurationError, match="psycopg"):
            kind.reader(wrong)
    finally:
        other.close(wrong)


@pytest.mark.asyncio
async def test_concurrent_async_readers_agree_with_the_reader(db: str, conn: Conn) -> None:
    rng = np.random.default_rng(24)
    cols = price_data(rng, 20_000, TOKENS, DAY0, timedelta(hours=6))
    write(conn, cols)
    start, end = DAY0, DAY0 + timedelta(hours=6)
    sync = Reader(conn)
    want = {token: sync.price_history(token, start, end) for token in TOKENS}
    assert sum(map(len, want.values())) == 20_000

    async def history(token: str) -> list[PricePoint]:
        async with await psycopg.AsyncConnection.connect(db, autocommit=True) as aconn:
            return await AsyncReader(aconn).price_history(token, start, end)

    got = await asyncio.gather(*(history(token) for token in TOKENS))
    assert dict(zip(TOKENS, got, strict=True)) == want
    now = datetime.now(UTC)
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as aconn:
        assert await AsyncReader(aconn).latest_prices(now) == sync.latest_prices(now)
        assert await AsyncReader(aconn).uses_aggregates() == sync.uses_aggregates
        # Frames and coverage, awaited straight (the Blocking adapter aside).
        table = await AsyncReader(aconn).price_history(TOKENS[1], start, end, as_="arrow")
        assert table.num_rows == len(want[TOKENS[1]])
        assert table.equals(sync.price_history(TOKENS[1], start, end, as_="arrow"))
        step = timedelta(seconds=10)
        report = await AsyncReader(aconn).coverage(TOKENS, start, end, step)
        assert report == sync.coverage(TOKENS, start, end, step) and report.gaps
