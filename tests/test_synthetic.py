"""pmstore.synthetic: shapes and validity of the generated Polymarket-like data (no database)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from pmstore import ConfigurationError, OrderbookBatch, PriceBatch, TradeBatch
from pmstore.synthetic import (
    MAX_LEVELS,
    PRICE_MAX,
    PRICE_MIN,
    MarketSimulator,
    condition_ids,
    price_minute,
    token_ids,
)

MINUTE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CONDITION = re.compile(r"0x[0-9a-f]{64}")
TRADE_ID = re.compile(r"0x[0-9a-f]{64}:\d+")
NUMBER_TEXT = re.compile(r"(0|[1-9]\d*)(\.\d*[1-9])?")


def minute_bounds(minute: datetime) -> tuple[np.datetime64, np.datetime64]:
    start = np.datetime64(minute.replace(tzinfo=None), "us")
    return start, start + np.timedelta64(60, "s")


# -- token ids ----------------------------------------------------------------------------


def test_token_ids_are_distinct_decimal_strings_of_74_to_78_digits() -> None:
    ids = token_ids(20_000, seed=3)
    assert ids.dtype == object and len(ids) == 20_000
    assert all(type(t) is str and t.isdigit() and t[0] != "0" for t in ids)
    lengths = np.array([len(t) for t in ids])
    assert lengths.min() >= 74 and lengths.max() <= 78
    assert len(set(ids.tolist())) == len(ids)
    share = {n: float(np.mean(lengths == n)) for n in range(74, 79)}
    assert share[76] + share[77] > 0.8  # mostly 76-77 digits, as real ids
    assert share[77] > share[78] > share[76] > share[75]
    assert all(int(t) < 2**256 for t in ids if len(t) == 78)


def test_token_ids_depend_only_on_n_and_seed() -> None:
    assert token_ids(100, seed=1).tolist() == token_ids(100, seed=1).tolist()
    assert token_ids(100, seed=1).tolist() != token_ids(100, seed=2).tolist()
    assert len(token_ids(0)) == 0
    with pytest.raises(ConfigurationError):
        token_ids(-1)


def test_condition_ids_are_0x_and_64_hex_digits() -> None:
    ids = condition_ids(500, seed=4)
    assert all(CONDITION.fullmatch(c) for c in ids)
    assert len(set(ids.tolist())) == 500


# -- prices -------------------------------------------------------------------------------


def check_price_batch(batch: PriceBatch, tokens: np.ndarray, minute: datetime) -> None:
    assert isinstance(batch, PriceBatch)
    assert batch.validated() is batch
    assert len(batch) == len(tokens)
    assert batch.token_id.tolist() == tokens.tolist()
    start, end = minute_bounds(minute)
    assert (batch.ts >= start).all() and (batch.ts < end).all()
    assert (np.diff(batch.ts.view(np.int64)) >= 0).all()  # a polling sweep through the minute
    assert (batch.price >= PRICE_MIN).all() and (batch.price <= PRICE_MAX).all()
    missing = np.isnan(batch.volume_24h)
    assert 0.75 < missing.mean() < 1.0  # NULL for most rows
    assert (batch.volume_24h[~missing] >= 0).all()


def test_price_minute_gives_one_valid_snapshot_per_token() -> None:
    tokens = token_ids(2_000, seed=5)
    batch = price_minute(tokens, MINUTE, np.random.default_rng(0))
    check_price_batch(batch, tokens, MINUTE)
    assert batch.ts.dtype == np.dtype("datetime64[us]")
    assert (batch.ts.view(np.int64) % 1_000_000 != 0).any()  # microsecond precision


def test_price_minute_takes_any_aware_zone_and_refuses_naive() -> None:
    tokens = token_ids(10)
    east = MINUTE.astimezone(timezone(timedelta(hours=5, minutes=30)))
    batch = price_minute(tokens, east, np.random.default_rng(0))
    check_price_batch(batch, tokens, MINUTE)
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        price_minute(tokens, MINUTE.replace(tzinfo=None), np.random.default_rng(0))


def test_simulator_prices_are_a_bounded_random_walk_with_complementary_tokens() -> None:
    sim = MarketSimulator(4_000, seed=7)
    previous = None
    for k in range(30):
        minute = MINUTE + timedelta(minutes=k)
        batch = sim.prices(minute)
        check_price_batch(batch, sim.tokens, minute)
        yes, no = batch.price[0::2], batch.price[1::2]
        assert np.allclose(yes + no, 1.0, atol=2e-4)  # the two outcomes of a market
        if previous is not None:
            moved = np.abs(batch.price - previous)
            assert np.median(moved) < 0.02  # a walk, not fresh draws
            assert (moved > 0).mean() > 0.5
        previous = batch.price.copy()


def test_simulator_is_reproducible_from_its_seed() -> None:
    a, b = MarketSimulator(200, seed=11), MarketSimulator(200, seed=11)
    for k in range(3):
        minute = MINUTE + timedelta(minutes=k)
        assert a.prices(minute).content_digest() == b.prices(minute).content_digest()
    assert a.orderbooks(MINUTE, 50).content_digest() == b.orderbooks(MINUTE, 50).content_digest()
    assert a.trades(MINUTE, 100).content_digest() == b.trades(MINUTE, 100).content_digest()
    other = MarketSimulator(200, seed=12)
    assert other.prices(MINUTE).content_digest() != a.prices(MINUTE).content_digest()


def test_simulator_takes_token_ids_and_refuses_an_odd_or_empty_set() -> None:
    tokens = token_ids(10, seed=1)
    assert MarketSimulator(tokens).tokens.tolist() == tokens.tolist()
    for bad in (tokens[:3], tokens[:0]):
        with pytest.raises(ConfigurationError):
            MarketSimulator(bad)
    with pytest.raises(ConfigurationError):
        MarketSimulator(7)


# -- order books --------------------------------------------------------------------------


def test_orderbook_columns_are_shaped_like_polymarket_books() -> None:
    sim = MarketSimulator(4_000, seed=8)
    raw = sim.orderbook_columns(MINUTE, 3_000)
    assert len(raw["ts"]) == len(raw["token_id"]) == len(raw["bids"]) == len(raw["asks"]) == 3_000
    assert len(set(raw["token_id"].tolist())) == 3_000
    n_bids = np.array([len(side) for side in raw["bids"]])
    n_asks = np.array([len(side) for side in raw["asks"]])
    for counts in (n_bids, n_asks):
        assert counts.max() <= MAX_LEVELS
        assert counts.max() > 100  # deep books exist
    empty = (n_bids == 0) & (n_asks == 0)
    one_sided = (n_bids == 0) ^ (n_asks == 0)
    assert 0.01 < empty.mean() < 0.08
    assert 0.04 < one_sided.mean() < 0.2
    for bids, asks in zip(raw["bids"], raw["asks"], strict=True):
        for price, size in [*bids, *asks]:
            assert type(price) is str and type(size) is str
            assert NUMBER_TEXT.fullmatch(price) and NUMBER_TEXT.fullmatch(size)
            assert PRICE_MIN <= float(price) <= PRICE_MAX and float(size) > 0
        bid_prices = [float(p) for p, _ in bids]
        ask_prices = [float(p) for p, _ in asks]
        assert bid_prices == sorted(bid_prices)  # worst-first: best bid last
        assert ask_prices == sorted(ask_prices, reverse=True)  # best ask last
        assert len(set(bid_prices)) == len(bid_prices) and len(set(ask_prices)) == len(ask_prices)
        if bids and asks:
            assert bid_prices[-1] < ask_prices[-1]  # not crossed


def test_orderbooks_pass_validation_with_derived_spread_and_midpoint() -> None:
    sim = MarketSimulator(1_000, seed=9)
    batch = sim.orderbooks(MINUTE, 800)
    assert isinstance(batch, OrderbookBatch)
    assert batch.validated() is batch and len(batch) == 800
    start, end = minute_bounds(MINUTE)
    assert (batch.ts >= start).all() and (batch.ts < end).all()
    two_sided = np.array([bool(b) and bool(a) for b, a in zip(batch.bids, batch.asks, strict=True)])
    assert not np.isnan(batch.midpoint[two_sided]).any()
    assert (batch.spread[two_sided] > 0).all()
    assert np.isnan(batch.spread[~two_sided]).all()
    with pytest.raises(ConfigurationError):
        sim.orderbooks(MINUTE, 1_001)


# -- trades -------------------------------------------------------------------------------


def test_trades_pass_validation_and_repeat_the_asked_fraction() -> None:
    sim = MarketSimulator(2_000, seed=10)
    batches = [sim.trades(MINUTE + timedelta(minutes=k), 4_000) for k in range(3)]
    seen: set[tuple[str, int]] = set()
    for k, batch in enumerate(batches):
        assert isinstance(batch, TradeBatch)
        assert batch.validated() is batch and len(batch) == 4_000
        assert set(batch.side.tolist()) == {"BUY", "SELL"}
        assert all(TRADE_ID.fullmatch(t) for t in batch.trade_id)
        assert (np.diff(batch.ts.view(np.int64)) >= 0).all()
        assert (batch.size > 0).all()
        keys = list(zip(batch.trade_id.tolist(), batch.ts.view(np.int64).tolist(), strict=True))
        fresh = set(keys) - seen
        assert len(fresh) == 4_000 - 200  # 5%: exact copies of earlier fills
        start, _ = minute_bounds(MINUTE + timedelta(minutes=k))
        assert all(ts >= start.astype(np.int64) for _, ts in fresh)
        seen |= fresh
    # fills of one transaction share its hash and its timestamp
    first = batches[0]
    by_hash: dict[str, set[int]] = {}
    for trade_id, ts in zip(first.trade_id.tolist(), first.ts.view(np.int64).tolist(), strict=True):
        by_hash.setdefault(trade_id.split(":")[0], set()).add(ts)
    assert all(len(stamps) == 1 for stamps in by_hash.values())
    assert any(t.endswith(":1") for t in first.trade_id)


def test_trades_edge_cases() -> None:
    sim = MarketSimulator(10, seed=1)
    assert len(sim.trades(MINUTE, 0)) == 0
    assert len(sim.trades(MINUTE, 1, duplicate_fraction=0.9)) == 1
    no_repeats = sim.trades(MINUTE, 500, duplicate_fraction=0.0)
    assert len(set(no_repeats.trade_id.tolist())) == 500
    for bad in (-0.1, 1.0):
        with pytest.raises(ConfigurationError):
            sim.trades(MINUTE, 10, duplicate_fraction=bad)


# -- markets and resolutions --------------------------------------------------------------


def test_markets_pair_every_token_once() -> None:
    sim = MarketSimulator(400, seed=2)
    markets = sim.markets()
    assert len(markets) == sim.n_markets == 200
    assert all(CONDITION.fullmatch(m.condition_id) for m in markets)
    assert len({m.condition_id for m in markets}) == 200
    paired = [t for m in markets for t in (m.clob_token_ids or [])]
    assert paired == sim.tokens.tolist()
    assert all(m.outcomes and len(m.outcomes) == 2 for m in markets)
    assert any(m.outcomes != ["Yes", "No"] for m in markets)
    assert [m.model_dump() for m in markets] == [m.model_dump() for m in sim.markets()]


def test_resolutions_include_one_50_50() -> None:
    sim = MarketSimulator(400, seed=3)
    markets = {m.condition_id: m for m in sim.markets()}
    resolutions = sim.resolutions(30)
    assert len(resolutions) == 30
    assert len({r.condition_id for r in resolutions}) == 30
    fifty = [r for r in resolutions if r.winner_token_id is None]
    assert len(fifty) == 1 and fifty[0].payout_price == 0.5
    for r in resolutions:
        assert r.condition_id in markets and r.resolved_at is not None
        assert r.status in ("resolved", "proposed", "disputed")
        if r.winner_token_id is not None:
            market = markets[r.condition_id]
            assert r.winner_token_id in (market.clob_token_ids or [])
            assert r.outcome in (market.outcomes or [])
            assert r.payout_price == 1.0
    assert sim.resolutions(0) == []
    with pytest.raises(ConfigurationError):
        sim.resolutions(201)
