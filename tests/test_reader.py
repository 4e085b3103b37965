"""Reader against a real TimescaleDB: every read checked against values computed here.

Data goes in with the Writer; expectations come from the generated numpy
columns, never from the database. Hourly candles and trade volume are checked
on both TimescaleDB editions (live computation on Apache-2, continuous
aggregates on Community), and the single-token queries' plans are checked on
a few hundred thousand rows for sequential scans of the hypertables' chunks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import TestServer
from numpy.typing import NDArray

from pmstore import (
    ConfigurationError,
    FeatureUnavailableError,
    MarketRecord,
    OrderbookSnapshot,
    PriceSnapshot,
    ResolutionRecord,
    Writer,
)
from pmstore._read import queries as rd
from pmstore.edition import features
from pmstore.reader import Candle, PricePoint, Reader, TradeVolume

Conn = psycopg.Connection[tuple[Any, ...]]
Columns = dict[str, Any]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR_US = 3_600_000_000
# Recent past: clear of the Community edition's retention (90 days), compression
# (7 days) and refresh (last 3 hours) policies, which may run during the tests.
DAY0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
TOKENS = [str(10**76 + i * 7919) for i in range(4)]


def to_dt(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))


def to_us(value: datetime) -> int:
    return (value - EPOCH) // timedelta(microseconds=1)


def as_ts(us: NDArray[np.int64]) -> NDArray[np.datetime64]:
    return us.astype("datetime64[us]")


def opt(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def unique_times(rng: np.random.Generator, n: int, start: datetime, span: timedelta) -> Any:
    """``n`` distinct instants (microseconds since the epoch) in [start, start + span)."""
    span_us = span // timedelta(microseconds=1)
    drawn = np.unique(rng.integers(0, span_us, n * 2))
    return rng.permutation(drawn)[:n] + to_us(start)


def price_data(
    rng: np.random.Generator, n: int, tokens: list[str], start: datetime, span: timedelta
) -> Columns:
    """Price columns (``ts`` as int64 µs); the last token's volumes are all NULL."""
    token = np.array(tokens, dtype=object)[rng.integers(0, len(tokens), n)]
    volume = rng.uniform(0, 1e6, n)
    volume[rng.random(n) < 0.3] = np.nan
    volume[token == tokens[-1]] = np.nan
    return {
        "ts": unique_times(rng, n, start, span),
        "token_id": token,
        "price": rng.uniform(0, 1, n),
        "volume_24h": volume,
    }


def trade_data(
    rng: np.random.Generator, n: int, tokens: list[str], start: datetime, span: timedelta, tag: str
) -> Columns:
    return {
        "ts": unique_times(rng, n, start, span),
        "token_id": np.array(tokens, dtype=object)[rng.integers(0, len(tokens), n)],
        "side": np.where(rng.random(n) < 0.5, "BUY", "SELL").astype(object),
        "price": rng.uniform(0, 1, n),
        "size": rng.uniform(0, 500, n),
        "trade_id": np.array([f"{tag}-{i}" for i in range(n)], dtype=object),
    }


def concat(*parts: Columns) -> Columns:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def write_prices(target: str | Conn, cols: Columns) -> None:
    with Writer(target) as writer:
        writer.copy_prices({**cols, "ts": as_ts(cols["ts"])})


def write_trades(target: str | Conn, cols: Columns) -> None:
    with Writer(target) as writer:
        writer.copy_trades({**cols, "ts": as_ts(cols["ts"])})


# -- expectations, from the generated columns -----------------------------------


def hours_in(start: datetime, end: datetime) -> tuple[int, int]:
    """Hour numbers (since the epoch) whose start lies in [start, end)."""
    return -(-to_us(start) // HOUR_US), -(-to_us(end) // HOUR_US)


def expected_candles(cols: Columns, token: str, start: datetime, end: datetime) -> list[Candle]:
    first, stop = hours_in(start, end)
    mine = cols["token_id"] == token
    ts, price, volume = cols["ts"][mine], cols["price"][mine], cols["volume_24h"][mine]
    hour = ts // HOUR_US
    out = []
    for h in range(first, stop):
        rows = np.flatnonzero(hour == h)
        if not rows.size:
            continue
        vol = volume[rows]
        out.append(
            Candle(
                bucket=to_dt(h * HOUR_US),
                token_id=token,
                open=float(price[rows[np.argmin(ts[rows])]]),
                high=float(price[rows].max()),
                low=float(price[rows].min()),
                close=float(price[rows[np.argmax(ts[rows])]]),
                avg_volume=None if np.isnan(vol).all() else float(np.nanmean(vol)),
            )
        )
    return out


def expected_volume(cols: Columns, token: str, start: datetime, end: datetime) -> list[TradeVolume]:
    first, stop = hours_in(start, end)
    mine = cols["token_id"] == token
    hour, price, size = cols["ts"][mine] // HOUR_US, cols["price"][mine], cols["size"][mine]
    out = []
    for h in range(first, stop):
        rows = np.flatnonzero(hour == h)
        if rows.size:
            out.append(
                TradeVolume(
                    bucket=to_dt(h * HOUR_US),
                    token_id=token,
                    trade_count=int(rows.size),
                    total_size=float(size[rows].sum()),
                    total_value=float((price[rows] * size[rows]).sum()),
                    avg_price=float(price[rows].mean()),
                )
            )
    return out


def expected_latest(
    cols: Columns, at: datetime, tokens: list[str] | None = None, since: datetime | None = None
) -> list[PriceSnapshot]:
    ok = cols["ts"] <= to_us(at)
    if since is not None:
        ok &= cols["ts"] > to_us(since)
    if tokens is not None:
        ok &= np.isin(cols["token_id"], np.array(tokens, dtype=object))
    rows = np.flatnonzero(ok)
    token = cols["token_id"][rows].astype(str)
    rows = rows[np.lexsort((cols["ts"][rows], token))]  # by token, then time
    token = cols["token_id"][rows].astype(str)
    last = np.flatnonzero(np.append(token[1:] != token[:-1], True))  # each token's last row
    return [
        PriceSnapshot(
            ts=to_dt(cols["ts"][i]),
            token_id=cols["token_id"][i],
            price=float(cols["price"][i]),
            volume_24h=opt(cols["volume_24h"][i]),
        )
        for i in rows[last]
    ]


def status(conn: Conn) -> str:
    return conn.info.transaction_status.name


def assert_same(got: list[Any], want: list[Any], inexact: tuple[str, ...]) -> None:
    """Equal models; the fields in ``inexact`` (floating-point sums) to 1e-12 relative."""
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want, strict=True):
        gd, wd = g.model_dump(), w.model_dump()
        for name in inexact:
            got_value, want_value = gd.pop(name), wd.pop(name)
            if want_value is None:  # e.g. avg_volume of an hour without volumes
                assert got_value is None, (g, w)
            else:
                assert got_value == pytest.approx(want_value, rel=1e-12), (g, w)
        assert gd == wd


def check_hourly(
    reader: Reader, prices: Columns, trades: Columns, start: datetime, end: datetime
) -> None:
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


# -- latest prices and history ----------------------------------------------------


def test_latest_prices_of_every_token_and_of_given_tokens(db: str, conn: Conn) -> None:
    reader = Reader(conn)
    assert reader.latest_prices() == [] and reader.latest_prices(token_ids=TOKENS) == []
    rng = np.random.default_rng(11)
    cols = price_data(rng, 3_000, TOKENS[:3], DAY0, timedelta(days=2))
    # A token that starts late, a future snapshot, one exactly at `at`.
    at = DAY0 + timedelta(hours=30)
    late = {
        "ts": np.array([to_us(at) + 1, to_us(datetime.now(UTC) + timedelta(days=1)), to_us(at)]),
        "token_id": np.array([TOKENS[3], TOKENS[0], TOKENS[1]], dtype=object),
        "price": np.array([0.25, 0.5, 0.75]),
        "volume_24h": np.array([1.0, np.nan, 2.0]),
    }
    cols = concat(cols, late)
    write_prices(conn, cols)

    got = reader.latest_prices(at)
    assert got == expected_latest(cols, at)
    assert [p.token_id for p in got] == TOKENS[:3]  # TOKENS[3] only has rows after `at`
    assert got[1].ts == at and got[1].price == 0.75  # at or before: inclusive
    # Default `at` is now: the future snapshot is left out.
    now_latest = reader.latest_prices()
    assert now_latest == expected_latest(cols, datetime.now(UTC))
    assert [p.token_id for p in now_latest] == TOKENS
    assert now_latest[0].ts < datetime.now(UTC) and now_latest[3].price == 0.25

    wanted = [TOKENS[2], TOKENS[0], TOKENS[2], "no-such-token", TOKENS[3]]
    assert reader.latest_prices(at, wanted) == expected_latest(cols, at, wanted)
    assert reader.latest_prices(at, []) == []

    # lookback: only snapshots after at - lookback.
    last_of = {p.token_id: p.ts for p in got}
    cut = sorted(last_of.values())[1]  # leaves out the token with the oldest last snapshot
    lookback = at - cut + timedelta(microseconds=1)
    bounded = reader.latest_prices(at, lookback=lookback)
    assert bounded == expected_latest(cols, at, since=at - lookback)
    assert len(bounded) == 2
    assert reader.latest_prices(at, TOKENS, lookback=lookback) == bounded

    # In a caller's transaction: left open, its settings as they were.
    with psycopg.connect(db) as tx:
        in_tx = Reader(tx)
        assert in_tx.latest_prices(at) == got  # outside a transaction: its own, committed
        assert status(tx) == "IDLE"
        tx.execute("SET LOCAL enable_sort = on")
        tx.execute("SET LOCAL jit = on")
        assert in_tx.latest_prices(at) == got
        assert status(tx) == "INTRANS"
        settings = tx.execute("SELECT current_setting('enable_sort'), current_setting('jit')")
        assert settings.fetchone() == ("on", "on")
        assert in_tx.latest_prices(at, as_="arrow").num_rows == len(got)  # the COPY path
        settings = tx.execute("SELECT current_setting('enable_sort'), current_setting('jit')")
        assert settings.fetchone() == ("on", "on")
        tx.rollback()


def test_price_history_raw_and_bucketed(conn: Conn) -> None:
    rng = np.random.default_rng(12)
    cols = price_data(rng, 4_000, TOKENS, DAY0, timedelta(hours=20))
    write_prices(conn, cols)
    reader = Reader(conn)
    token = TOKENS[0]
    mine = np.flatnonzero(cols["token_id"] == token)
    mine = mine[np.argsort(cols["ts"][mine])]
    # start at a snapshot (inclusive), end at another (exclusive).
    start, end = to_dt(cols["ts"][mine[10]]), to_dt(cols["ts"][mine[-10]])

    raw = reader.price_history(token, start, end)
    want = [
        PricePoint(
            ts=to_dt(cols["ts"][i]),
            token_id=token,
            price=float(cols["price"][i]),
            volume_24h=opt(cols["volume_24h"][i]),
        )
        for i in mine[10:-10]
    ]
    assert raw == want and raw[0].ts == start and raw[-1].ts < end

    origin = to_us(datetime(2000, 1, 3, tzinfo=UTC))  # time_bucket's default origin
    for width in (timedelta(minutes=15), timedelta(hours=1), timedelta(days=7)):
        w_us = width // timedelta(microseconds=1)
        rows = mine[10:-10]
        bucket = (cols["ts"][rows] - origin) // w_us * w_us + origin
        expect = []
        for b in np.unique(bucket):
            inside = rows[bucket == b]
            last = inside[np.argmax(cols["ts"][inside])]
            expect.append(
                PricePoint(
                    ts=to_dt(b),
                    token_id=token,
                    price=float(cols["price"][last]),
                    volume_24h=opt(cols["volume_24h"][last]),
                    samples=int(inside.size),
                )
            )
        assert reader.price_history(token, start, end, width) == expect, width
    assert reader.price_history("no-such-token", start, end) == []


# -- hourly candles and trade volume, on both editions -------------------------------


@pytest.mark.parametrize(
    "edition", ["apache", pytest.param("community", marks=pytest.mark.community)]
)
def test_candles_and_trade_volume_are_equal_on_both_editions(
    edition: str, request: pytest.FixtureRequest
) -> None:
    srv: TestServer = request.getfixturevalue(f"{edition}_server")
    name = f"t_reader_hourly_{edition}"
    dsn = srv.migrated_database(name)
    try:
        rng = np.random.default_rng(13)  # the same data on both editions
        span = timedelta(hours=10)
        prices = price_data(rng, 1_500, TOKENS, DAY0, span)
        trades = trade_data(rng, 1_000, TOKENS, DAY0, span, "a")
        # Inside hours (buckets from DAY0+2h to DAY0+8h), and everything.
        ranges = [
            (DAY0 + timedelta(hours=1, minutes=30), DAY0 + timedelta(hours=8, minutes=15)),
            (DAY0 - timedelta(days=1), DAY0 + timedelta(days=1)),
        ]
        with psycopg.connect(dsn, autocommit=True) as conn:
            write_prices(conn, prices)
            write_trades(conn, trades)
            reader, live = Reader(conn), Reader(conn, aggregates=False)
            for start, end in ranges:
                check_hourly(live, prices, trades, start, end)
                check_hourly(reader, prices, trades, start, end)
            assert (
                reader.candles(TOKENS[0], DAY0 + timedelta(minutes=1), DAY0 + timedelta(minutes=59))
                == []
            )
            if edition == "apache":
                assert not reader.uses_aggregates
                with pytest.raises(FeatureUnavailableError, match="Apache-2"):
                    Reader(conn, aggregates=True).candles(TOKENS[0], *ranges[0])
                return

            assert reader.uses_aggregates
            check_aggregates(conn, prices, trades, ranges, reader, live, rng)
    finally:
        srv.drop_database(name)


def check_aggregates(
    conn: Conn,
    prices: Columns,
    trades: Columns,
    ranges: list[tuple[datetime, datetime]],
    reader: Reader,
    live: Reader,
    rng: np.random.Generator,
) -> None:
    """Community: materialized, materialized + real-time, and late rows."""
    for view in ("price_candles_1h", "trade_volume_1h"):
        conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
    stored = conn.execute(
        "SELECT materialization_hypertable_schema, materialization_hypertable_name"
        " FROM timescaledb_information.continuous_aggregates"
        " WHERE view_name = 'price_candles_1h'"
    ).fetchone()
    assert stored is not None
    materialized = conn.execute(f'SELECT count(*) FROM "{stored[0]}"."{stored[1]}"').fetchone()
    assert materialized is not None and materialized[0] > 0
    for start, end in ranges:
        check_hourly(reader, prices, trades, start, end)

    # New hours after the refresh: read from the raw rows by real-time aggregation.
    later = DAY0 + timedelta(hours=11)
    more_prices = price_data(rng, 300, TOKENS, later, timedelta(hours=3))
    more_trades = trade_data(rng, 200, TOKENS, later, timedelta(hours=3), "b")
    write_prices(conn, more_prices)
    write_trades(conn, more_trades)
    prices, trades = concat(prices, more_prices), concat(trades, more_trades)
    for start, end in [*ranges, (DAY0 + timedelta(hours=9), later + timedelta(hours=2))]:
        check_hourly(reader, prices, trades, start, end)
        check_hourly(live, prices, trades, start, end)

    # A late row in an hour already materialized shows in the aggregate after a refresh.
    token, hour = TOKENS[0], DAY0 + timedelta(hours=3)
    late = {
        "ts": np.array([to_us(hour)]),
        "token_id": np.array([token], dtype=object),
        "price": np.array([1.0]),
        "volume_24h": np.array([np.nan]),
    }
    write_prices(conn, late)
    prices = concat(prices, late)
    one = (hour, hour + timedelta(hours=1))
    assert_same(live.candles(token, *one), expected_candles(prices, token, *one), ("avg_volume",))
    assert reader.candles(token, *one)[0].open != 1.0  # stale, as the docstring warns
    conn.execute("CALL refresh_continuous_aggregate('price_candles_1h', NULL, NULL)")
    assert_same(reader.candles(token, *one), expected_candles(prices, token, *one), ("avg_volume",))


# -- order books, markets, resolutions -------------------------------------------------


def test_orderbook_at_returns_the_latest_book_at_or_before(conn: Conn) -> None:
    reader = Reader(conn)
    token, other = TOKENS[0], TOKENS[1]
    t1, t2 = DAY0 + timedelta(hours=1), DAY0 + timedelta(days=8)  # two 7-day chunks
    books = [
        OrderbookSnapshot(
            ts=t1, token_id=token, bids=[(0.40, 10.0), (0.45, 2.0)], asks=[(0.6, 1.0)]
        ),
        OrderbookSnapshot(ts=t2, token_id=token, bids=[(0.5, 3.0)], asks=[(0.7, 1.0), (0.55, 4.0)]),
        OrderbookSnapshot(ts=t1 + timedelta(seconds=1), token_id=other, bids=[], asks=[]),
    ]
    with Writer(conn) as writer:
        writer.copy_orderbooks(books)
    assert reader.orderbook_at(token, t1 - timedelta(microseconds=1)) is None
    first = reader.orderbook_at(token, t1)
    assert first == books[0]
    assert first is not None and first.bids == [(0.45, 2.0), (0.40, 10.0)]
    assert first.spread == pytest.approx(0.15) and first.midpoint == pytest.approx(0.525)
    assert reader.orderbook_at(token, t2 - timedelta(microseconds=1)) == books[0]
    second = reader.orderbook_at(token, t2 + timedelta(days=30))
    assert second == books[1] and second is not None and second.asks == [(0.55, 4.0), (0.7, 1.0)]
    # Default `at` is now: t1 is in the past, t2 (DAY0 + 8 days) days ahead.
    assert t1 < datetime.now(UTC) < t2
    assert reader.orderbook_at(token) == books[0]
    empty = reader.orderbook_at(other, t2)
    assert empty == books[2] and empty is not None and empty.spread is None
    assert reader.orderbook_at("no-such-token", t2) is None


def test_orderbook_levels_read_back_as_the_source_decimals(conn: Conn) -> None:
    """Polymarket's string levels are stored with their digits (jsonb numeric); the Reader
    gives each as the float of that decimal ("0.001" -> 0.001, not a rounded neighbour)."""
    token = TOKENS[2]
    side = [{"price": "0.001", "size": "1234567.891"}, {"price": "0.0100", "size": "0.1"}]
    books = {"ts": [DAY0], "token_id": [token], "bids": [side], "asks": [[]]}
    with Writer(conn) as writer:
        writer.copy_orderbooks(books)
    book = Reader(conn).orderbook_at(token, DAY0)
    assert book is not None
    assert book.bids == [(0.01, 0.1), (0.001, 1234567.891)]
    assert [repr(v) for level in book.bids for v in level] == [
        "0.01",
        "0.1",
        "0.001",
        "1234567.891",
    ]
    stored = conn.execute(
        "SELECT (bids->0->>0)::numeric, (bids->1->>0)::numeric FROM orderbook_snapshots "
        "WHERE token_id = %s",
        (token,),
    ).fetchone()
    assert stored == (Decimal("0.0100"), Decimal("0.001"))


def test_markets_market_and_resolution(conn: Conn) -> None:
    reader = Reader(conn)
    assert reader.markets() == [] and reader.market("0x00") is None
    records = [
        MarketRecord(
            condition_id=f"0x{i:02x}",
            question=f"Question {i}?",
            outcomes=["Yes", "No"],
            clob_token_ids=[str(10**76 + 2 * i), str(10**76 + 2 * i + 1)],
            active=i % 2 == 0,
            closed=i % 3 == 0,
            created_at=DAY0,
        )
        for i in range(9)
    ]
    resolution = ResolutionRecord(
        condition_id="0x03",
        outcome="Yes",
        winner_token_id=str(10**76 + 6),
        resolved_at=DAY0 + timedelta(hours=5),
        payout_price=1.0,
        detection_method="gamma",
        status="resolved",
    )
    with Writer(conn) as writer:
        writer.upsert_markets(list(reversed(records)))
        writer.upsert_resolutions([resolution])

    def fields(found: list[MarketRecord]) -> list[dict[str, Any]]:
        return [m.model_dump(exclude={"updated_at"}) for m in found]

    assert fields(reader.markets()) == fields(records)  # by condition_id
    for active in (None, True, False):
        for closed in (None, True, False):
            want = [
                m
                for m in records
                if (active is None or m.active == active) and (closed is None or m.closed == closed)
            ]
            assert fields(reader.markets(active, closed)) == fields(want), (active, closed)
    assert fields(reader.markets(active=True, limit=2)) == fields(
        [m for m in records if m.active][:2]
    )
    assert reader.markets(limit=0) == []
    got = reader.market("0x04")
    assert got is not None and fields([got]) == fields([records[4]])
    assert got.updated_at is not None and got.created_at == DAY0
    assert reader.market("0xff") is None

    stored = reader.resolution("0x03")
    assert stored is not None
    assert stored.model_dump(exclude={"created_at", "updated_at"}) == resolution.model_dump(
        exclude={"created_at", "updated_at"}
    )
    assert reader.resolution("0x04") is None


# -- bad arguments -----------------------------------------------------------------


def test_naive_datetimes_and_bad_ranges_are_refused(conn: Conn) -> None:
    reader = Reader(conn)
    aware = DAY0
    naive = datetime(2026, 3, 1, 12)
    calls: dict[str, Callable[[], object]] = {
        "latest_prices": lambda: reader.latest_prices(naive),
        "latest_prices tokens": lambda: reader.latest_prices(naive, TOKENS),
        "price_history start": lambda: reader.price_history("t", naive, aware),
        "price_history end": lambda: reader.price_history("t", aware, naive),
        "candles": lambda: reader.candles("t", naive, aware),
        "trade_volume": lambda: reader.trade_volume("t", aware, naive),
        "orderbook_at": lambda: reader.orderbook_at("t", naive),
    }
    for what, call in calls.items():
        with pytest.raises(ConfigurationError, match="naive datetime") as caught:
            call()
        assert "timezone-aware" in str(caught.value), what

    for method in (reader.price_history, reader.candles, reader.trade_volume):
        with pytest.raises(ConfigurationError, match=r"start .* must be before end"):
            method("t", aware, aware)
        with pytest.raises(ConfigurationError, match="must be before end"):
            method("t", aware + timedelta(hours=1), aware)

    bad: list[Callable[[], object]] = [
        lambda: reader.price_history("t", aware, aware + timedelta(1), timedelta(0)),
        lambda: reader.price_history("t", aware, aware + timedelta(1), timedelta(seconds=-1)),
        lambda: reader.latest_prices(aware, TOKENS[0]),  # a str is not a list of ids
        lambda: reader.latest_prices(aware, lookback=timedelta(0)),
        lambda: reader.candles("", aware, aware + timedelta(1)),
        lambda: reader.orderbook_at(None, aware),  # type: ignore[arg-type]
        lambda: reader.markets(limit=-1),
        lambda: reader.markets(active="yes"),  # type: ignore[arg-type]
        lambda: reader.market(""),
        lambda: reader.price_history("t", aware.date(), aware),  # type: ignore[call-overload]
        lambda: Reader("dbname=x"),  # type: ignore[arg-type]
    ]
    for call in bad:
        with pytest.raises(ConfigurationError):
            call()
    # The last hour has no hour after it: refused, the OverflowError chained.
    last = datetime.max.replace(minute=30, tzinfo=UTC)
    with pytest.raises(ConfigurationError, match="out of range") as overflow:
        reader.candles("t", aware, last)
    assert isinstance(overflow.value.__cause__, OverflowError)
    # Nothing was sent to the server: the connection is still usable.
    assert conn.execute("SELECT 1").fetchone() == (1,)


# -- query plans on a few hundred thousand rows ------------------------------------------


Log = list[tuple[Any, Any]]


def recorded_queries(conn: Conn) -> Log:
    """Make ``conn``'s cursors log what they execute (the Reader's exact SQL and parameters)."""
    log: Log = []

    class Recording(psycopg.Cursor[Any]):
        def execute(
            self,
            query: Any,
            params: Any = None,
            *,
            prepare: bool | None = None,
            binary: bool | None = None,
        ) -> Any:
            log.append((query, params))
            return super().execute(query, params, prepare=prepare, binary=binary)

    conn.cursor_factory = Recording
    return log


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def explain(conn: Conn, log: Log, sql: str, *, analyze: bool = False) -> dict[str, Any]:
    """The plan of ``sql`` as the Reader ran it (logged), after the statements it ran first.

    Replayed in a transaction that is rolled back: the transaction-local
    settings the Reader makes for a query apply to its EXPLAIN too.
    """
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    with psycopg.Cursor(conn) as cur:
        cur.execute("BEGIN")
        try:
            for query, params in log:
                if query is sql:
                    row = cur.execute(f"EXPLAIN ({options}) {query!s}", params).fetchone()
                    assert row is not None
                    return dict(row[0][0]["Plan"])
                cur.execute(query, params)
        finally:
            cur.execute("ROLLBACK")
    raise AssertionError(f"the Reader did not run:\n{sql}")


def seq_scans(plan: dict[str, Any], relations: set[str]) -> list[str]:
    return [
        n["Relation Name"]
        for n in plan_nodes(plan)
        if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in relations
    ]


def blocks(plan: dict[str, Any]) -> int:
    """Buffers an EXPLAIN ANALYZE plan touched (its top node counts its children's)."""
    return int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"])


@dataclass
class PlanData:
    """A few hundred thousand rows over several chunks, and where the queries look."""

    tokens: list[str]
    prices: Columns
    protected: set[str]  # the hypertables and their chunks: no sequential scans of these
    token: str
    start: datetime
    at: datetime
    lo: datetime
    hi: datetime


def load_plan_data(conn: Conn) -> PlanData:
    rng = np.random.default_rng(14)
    tokens = [str(10**76 + i * 7919) for i in range(2_000)]
    span = timedelta(days=5)  # five 1-day chunks of prices and trades, up to 2 days ago
    start = DAY0 - timedelta(days=3)
    prices = price_data(rng, 300_000, tokens, start, span)
    trades = trade_data(rng, 60_000, tokens, start, span, "x")
    n_books = 30_000
    books = {  # over 15 days: at least two 7-day chunks
        "ts": as_ts(unique_times(rng, n_books, start - timedelta(days=10), span * 3)),
        "token_id": np.array(tokens, dtype=object)[rng.integers(0, len(tokens), n_books)],
        "bids": [[(0.4, 1.0)]] * n_books,
        "asks": [[(0.6, 2.0), (0.7, 5.0)]] * n_books,
    }
    write_prices(conn, prices)
    write_trades(conn, trades)
    with Writer(conn) as writer:
        writer.copy_orderbooks(books)
    conn.execute("ANALYZE price_snapshots, orderbook_snapshots, trades")
    chunks = conn.execute(
        "SELECT hypertable_name, chunk_name FROM timescaledb_information.chunks"
        " WHERE hypertable_name IN ('price_snapshots', 'orderbook_snapshots', 'trades')"
    ).fetchall()
    per_table = {t: sum(1 for c in chunks if c[0] == t) for t in ("price_snapshots", "trades")}
    assert per_table == {"price_snapshots": 5, "trades": 5}
    assert sum(1 for c in chunks if c[0] == "orderbook_snapshots") >= 2
    return PlanData(
        tokens=tokens,
        prices=prices,
        protected={str(c[1]) for c in chunks}
        | {"price_snapshots", "orderbook_snapshots", "trades"},
        token=tokens[7],
        start=start,
        at=start + timedelta(days=3, hours=5),
        lo=start + timedelta(days=1, hours=3),
        hi=start + timedelta(days=2, hours=7),
    )


def check_plans(
    conn: Conn, log: Log, data: PlanData, reader: Reader, relations: set[str], index: str
) -> None:
    """Each single-token query the Reader runs: no sequential scan, and ``index`` used."""
    token, at, lo, hi = data.token, data.at, data.lo, data.hi
    calls: list[tuple[str, Callable[[Reader], object], str | None]] = [
        (rd.LATEST_PRICES_OF_TOKENS_SQL, lambda r: r.latest_prices(at, data.tokens[:20]), None),
        (rd.LATEST_PRICES_ALL_SQL, lambda r: r.latest_prices(at), None),
        (rd.PRICE_HISTORY_RAW_SQL, lambda r: r.price_history(token, lo, hi), None),
        (
            rd.PRICE_HISTORY_BUCKETED_SQL,
            lambda r: r.price_history(token, lo, hi, timedelta(minutes=30)),
            None,
        ),
        (rd.CANDLES_LIVE_SQL, lambda r: r.candles(token, lo, hi), rd.CANDLES_AGGREGATE_SQL),
        (
            rd.TRADE_VOLUME_LIVE_SQL,
            lambda r: r.trade_volume(token, lo, hi),
            rd.TRADE_VOLUME_AGGREGATE_SQL,
        ),
        (rd.ORDERBOOK_AT_SQL, lambda r: r.orderbook_at(token, at), None),
    ]
    checked = 0
    for live_sql, call, aggregate_sql in calls:
        sql = live_sql
        if reader.uses_aggregates:
            if aggregate_sql is None:
                continue
            sql = aggregate_sql
        log.clear()
        assert call(reader), f"no rows: the query was not exercised: {sql}"
        plan = explain(conn, log, sql)
        seq = seq_scans(plan, relations)
        assert not seq, f"sequential scan of {seq} in the plan of:\n{sql}"
        indexes = {n.get("Index Name", "") for n in plan_nodes(plan)}
        assert any(index in i for i in indexes), (sql, indexes)
        checked += 1
    assert checked == (2 if reader.uses_aggregates else len(calls))


def check_latest_of_all(
    conn: Conn, log: Log, data: PlanData, at: datetime, chunks_in_span: int
) -> None:
    """Right answer, at a cost of index descents: about tokens x chunks, not rows."""
    log.clear()
    assert Reader(conn).latest_prices(at) == expected_latest(data.prices, at)
    plan = explain(conn, log, rd.LATEST_PRICES_ALL_SQL, analyze=True)
    assert not seq_scans(plan, data.protected)
    # ~20 blocks a token here; a bound inside a chunk costs 1.3M blocks at a chunk start.
    n = len(data.tokens)
    assert blocks(plan) < 80 * n + 10 * n * chunks_in_span, blocks(plan)


def test_queries_use_the_token_index_not_sequential_scans(conn: Conn) -> None:
    """The live queries, on either edition (the aggregates' plans: the test after this)."""
    data = load_plan_data(conn)
    log = recorded_queries(conn)
    # The check itself sees a sequential scan where there is one.
    conn.execute("SELECT * FROM price_snapshots WHERE price > %s", (0.99,))
    unindexed = explain(conn, log, log[-1][0])
    assert len(seq_scans(unindexed, data.protected)) == 5

    check_plans(conn, log, data, Reader(conn, aggregates=False), data.protected, "_token_time")
    # `at` in the middle of a chunk, and just after a chunk starts: a time bound
    # inside a chunk in the skip scan would read its entries once per token.
    check_latest_of_all(conn, log, data, data.at, 4)
    check_latest_of_all(conn, log, data, data.start + timedelta(days=3, seconds=1), 4)
    check_latest_of_all(conn, log, data, data.start + timedelta(days=30), 5)

    # The loose index scan's answer, checked on the same data.
    conn.cursor_factory = psycopg.Cursor
    reader = Reader(conn)
    tokens, prices, at, token, lo, hi = (
        data.tokens,
        data.prices,
        data.at,
        data.token,
        data.lo,
        data.hi,
    )
    assert reader.latest_prices(at, tokens[::97]) == expected_latest(prices, at, tokens[::97])
    lookback = timedelta(hours=2)
    assert reader.latest_prices(at, lookback=lookback) == expected_latest(
        prices, at, since=at - lookback
    )
    assert_same(
        reader.candles(token, lo, hi), expected_candles(prices, token, lo, hi), ("avg_volume",)
    )


@pytest.mark.community
def test_aggregate_and_compressed_chunk_plans_use_indexes(community_server: TestServer) -> None:
    """Community edition: continuous aggregates before and after a refresh, compressed chunks."""
    name = "t_reader_plans_community"
    dsn = community_server.migrated_database(name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            check_community_plans(conn)
    finally:
        community_server.drop_database(name)


def check_community_plans(conn: Conn) -> None:
    assert features(conn)["continuous_aggregates"].available, "not the Community edition"
    data = load_plan_data(conn)
    log = recorded_queries(conn)
    # The aggregates before a refresh (real-time: the raw chunks) ...
    check_plans(conn, log, data, Reader(conn, aggregates=True), data.protected, "_token_time")
    # ... and after (the materialized rows, by their (token_id, bucket) index).
    for view in ("price_candles_1h", "trade_volume_1h"):
        conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
    materialized = conn.execute(
        "SELECT c.chunk_name, c.hypertable_name"
        " FROM timescaledb_information.continuous_aggregates a"
        " JOIN timescaledb_information.chunks c"
        " ON c.hypertable_name = a.materialization_hypertable_name"
    ).fetchall()
    assert materialized
    for table in {str(m[1]) for m in materialized}:
        conn.execute(f"ANALYZE _timescaledb_internal.{table}")
    relations = (
        data.protected | {str(m[0]) for m in materialized} | {str(m[1]) for m in materialized}
    )
    # Index names are cut at 63 characters.
    check_plans(conn, log, data, Reader(conn, aggregates=True), relations, "_token_id_bucket_id")

    # Compressed chunks: the latest prices of all tokens still probe indexes.
    conn.execute(
        "SELECT compress_chunk(c) FROM show_chunks('price_snapshots', older_than => %s) c",
        (data.start + timedelta(days=3),),
    )
    conn.execute("ANALYZE price_snapshots")
    check_latest_of_all(conn, log, data, data.at, 4)
    check_latest_of_all(conn, log, data, data.start + timedelta(days=30), 5)
    conn.cursor_factory = psycopg.Cursor
    wanted = data.tokens[::97]
    assert Reader(conn).latest_prices(data.at, wanted) == expected_latest(
        data.prices, data.at, wanted
    )
    # One token's raw rows come from compressed chunks newest first (no ORDER BY in the
    # bulk read's statement): the client sorts them.
    lo, hi = data.start, data.start + timedelta(days=3)
    window = {"token_id": data.token, "start": lo, "end": hi}
    scanned = [r[0] for r in conn.execute(rd.PRICE_HISTORY_RAW_BULK_SQL, window).fetchall()]
    assert len(scanned) > 10 and scanned != sorted(scanned)
    table = Reader(conn).price_history(data.token, lo, hi, as_="arrow")
    assert table.column("ts").to_pylist() == sorted(scanned)
    assert set(table.column("token_id").to_pylist()) == {data.token}
