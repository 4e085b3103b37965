"""The record models: what real Polymarket data needs, and clear refusals of invalid values."""

from __future__ import annotations

import math
from collections import namedtuple
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from pydantic import BaseModel, ValidationError

from pmstore.batches import ColumnBatch, OrderbookBatch, PriceBatch, TradeBatch
from pmstore.errors import ConfigurationError
from pmstore.models import (
    MarketRecord,
    OrderbookSnapshot,
    PriceSnapshot,
    ResolutionRecord,
    TradeRecord,
    record_to_model,
)

TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
T = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def field_errors(exc: ValidationError) -> set[str]:
    return {str(e["loc"][0]) for e in exc.errors()}


def test_timestamps_are_normalised_to_utc_and_naive_ones_refused() -> None:
    tokyo = timezone(timedelta(hours=9))
    snap = PriceSnapshot(ts=T.astimezone(tokyo), token_id=TOKEN, price=0.5)
    assert snap.ts == T and snap.ts.tzinfo == UTC and snap.ts.microsecond == 678901
    with pytest.raises(ValidationError) as info:
        PriceSnapshot(ts=T.replace(tzinfo=None), token_id=TOKEN, price=0.5)
    assert field_errors(info.value) == {"ts"}


@pytest.mark.parametrize("price", [-0.0001, 1.0001, math.nan, math.inf, -math.inf])
def test_prices_outside_unit_interval_or_not_finite_are_refused(price: float) -> None:
    with pytest.raises(ValidationError) as info:
        PriceSnapshot(ts=T, token_id=TOKEN, price=price)
    assert field_errors(info.value) == {"price"}


def test_edges_and_long_token_ids_are_kept_exactly() -> None:
    for price in (0.0, 1.0):
        assert PriceSnapshot(ts=T, token_id=TOKEN, price=price).price == price
    assert PriceSnapshot(ts=T, token_id=TOKEN, price=0.5).token_id == TOKEN
    assert PriceSnapshot(ts=T, token_id=TOKEN, price=0.5).volume_24h is None
    with pytest.raises(ValidationError) as info:
        PriceSnapshot(ts=T, token_id="", price=0.5)
    assert field_errors(info.value) == {"token_id"}


@pytest.mark.parametrize("size", [-1.0, math.nan, math.inf])
def test_sizes_and_volumes_must_be_finite_and_not_negative(size: float) -> None:
    with pytest.raises(ValidationError) as info:
        TradeRecord(ts=T, token_id=TOKEN, side="BUY", price=0.5, size=size)
    assert field_errors(info.value) == {"size"}
    with pytest.raises(ValidationError) as info:
        PriceSnapshot(ts=T, token_id=TOKEN, price=0.5, volume_24h=size)
    assert field_errors(info.value) == {"volume_24h"}


def test_trade_side_is_buy_or_sell() -> None:
    assert TradeRecord(ts=T, token_id=TOKEN, side="SELL", price=0.5, size=1).side == "SELL"
    with pytest.raises(ValidationError) as info:
        TradeRecord(ts=T, token_id=TOKEN, side="buy ", price=0.5, size=1)
    assert field_errors(info.value) == {"side"}


def test_books_are_pairs_sorted_best_first_with_spread_and_midpoint() -> None:
    # Worst-first as Polymarket sends them; string values as in the API.
    book = OrderbookSnapshot(
        ts=T,
        token_id=TOKEN,
        bids=[("0.01", "500"), ("0.30", "20"), ("0.35", "7")],
        asks=[("0.99", "1"), ("0.45", "2"), ("0.40", "3")],
    )
    assert book.bids[0] == (0.35, 7.0) and book.asks[0] == (0.40, 3.0)
    assert book.spread == pytest.approx(0.05) and book.midpoint == pytest.approx(0.375)
    one_sided = OrderbookSnapshot(ts=T, token_id=TOKEN, bids=[(0.2, 1.0)], asks=[])
    assert (one_sided.spread, one_sided.midpoint) == (None, None)
    empty = OrderbookSnapshot(ts=T, token_id=TOKEN)
    assert (empty.bids, empty.asks, empty.spread, empty.midpoint) == ([], [], None, None)
    # Polymarket's own level shape (/book, the WebSocket book event), worst-first.
    polymarket = OrderbookSnapshot(
        ts=T,
        token_id=TOKEN,
        bids=[{"price": "0.01", "size": "500"}, {"price": "0.35", "size": "7"}],
        asks=[{"price": "0.99", "size": "1"}, {"price": "0.40", "size": "3"}],
    )
    assert polymarket.bids == [(0.35, 7.0), (0.01, 500.0)]
    assert polymarket.asks == [(0.40, 3.0), (0.99, 1.0)]
    with pytest.raises(ValidationError) as info:
        OrderbookSnapshot(ts=T, token_id=TOKEN, bids=[{"price": "0.4"}])
    assert field_errors(info.value) == {"bids"} and "'price' and 'size'" in str(info.value)
    with pytest.raises(ValidationError):
        OrderbookSnapshot(ts=T, token_id=TOKEN, asks=[(1.5, 1.0)])


def test_fifty_fifty_resolution_has_no_winner() -> None:
    res = ResolutionRecord(condition_id="0x" + "1" * 64, payout_price=0.5, detection_method="gamma")
    assert res.winner_token_id is None and res.payout_price == 0.5
    with pytest.raises(ValidationError) as info:
        ResolutionRecord(condition_id="0x1", payout_price=1.5)
    assert field_errors(info.value) == {"payout_price"}


def test_markets_keep_non_ascii_and_refuse_unknown_fields() -> None:
    market = MarketRecord(condition_id="0xab", question="Qui gagnera l'élection ? 🗳️")
    assert market.active is True and market.closed is False and market.outcomes is None
    with pytest.raises(ValidationError) as info:
        MarketRecord(condition_id="0xab", question="q", colour="red")
    assert field_errors(info.value) == {"colour"}


def test_record_to_model_accepts_dict_namedtuple_and_tuple_rows() -> None:
    as_dict: dict[str, Any] = {
        "ts": T,
        "token_id": TOKEN,
        "price": 0.25,
        "volume_24h": None,
        "x": 1,
    }
    Row = namedtuple("Row", ["ts", "token_id", "price", "volume_24h"])
    expected = PriceSnapshot(ts=T, token_id=TOKEN, price=0.25)
    assert record_to_model(as_dict, PriceSnapshot) == expected
    assert record_to_model(Row(T, TOKEN, 0.25, None), PriceSnapshot) == expected
    assert record_to_model((T, TOKEN, 0.25, None), PriceSnapshot) == expected
    with pytest.raises(ConfigurationError, match="5 values"):
        record_to_model((T, TOKEN, 0.25, None, "extra"), PriceSnapshot)
    with pytest.raises(ConfigurationError, match="from int"):
        record_to_model(7, PriceSnapshot)
    with pytest.raises(ValidationError):
        record_to_model({"ts": T, "token_id": TOKEN, "price": 2.0}, PriceSnapshot)


# --------------------------------------------------------------------------- one column list


TABLE_OF_MODEL: dict[str, type[BaseModel]] = {
    "markets": MarketRecord,
    "price_snapshots": PriceSnapshot,
    "orderbook_snapshots": OrderbookSnapshot,
    "trades": TradeRecord,
    "resolutions": ResolutionRecord,
}


@pytest.mark.parametrize("table", sorted(TABLE_OF_MODEL))
def test_each_models_fields_are_its_tables_columns_in_order(
    conn: psycopg.Connection[tuple[object, ...]], table: str
) -> None:
    """The models' fields are the one column list the batches, the encoders and the
    upsert SQL are derived from: they must be the migrated table's columns, in order."""
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    assert tuple(TABLE_OF_MODEL[table].model_fields) == tuple(r[0] for r in rows)


@pytest.mark.parametrize("batch_type", [PriceBatch, OrderbookBatch, TradeBatch])
def test_each_batchs_columns_are_its_records_fields(batch_type: type[ColumnBatch]) -> None:
    assert tuple(batch_type.RECORD.model_fields) == batch_type.COLUMNS
    assert batch_type.RECORD is TABLE_OF_MODEL[batch_type.TABLE]
    assert [c.name for c in batch_type.SPEC] == list(batch_type.COLUMNS)
