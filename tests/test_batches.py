"""Columnar batches: construction, structural errors, row checks and digests (no database)."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from pmstore.batches import (
    OrderbookBatch,
    PriceBatch,
    TradeBatch,
    as_batch,
    derive_trade_id,
)
from pmstore.errors import BatchValidationError, PmstoreError, RowProblem
from pmstore.models import OrderbookSnapshot, PriceSnapshot, TradeRecord

TOKEN = "7" * 77
OTHER = "1" * 74
T0 = datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


def prices(**overrides: Any) -> dict[str, Any]:
    columns: dict[str, Any] = {
        "ts": [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)],
        "token_id": [TOKEN, OTHER, TOKEN],
        "price": [0.0, 0.5, 1.0],
        "volume_24h": [None, 10.0, 0.0],
    }
    columns.update(overrides)
    return columns


def trades(**overrides: Any) -> dict[str, Any]:
    columns: dict[str, Any] = {
        "ts": [T0, T0, T0 + timedelta(microseconds=1)],
        "token_id": [TOKEN, OTHER, TOKEN],
        "side": ["BUY", "SELL", "BUY"],
        "price": [0.25, 0.5, 0.75],
        "size": [1.0, 0.0, 1e6],
    }
    columns.update(overrides)
    return columns


def books(**overrides: Any) -> dict[str, Any]:
    columns: dict[str, Any] = {
        "ts": [T0, T0],
        "token_id": [TOKEN, OTHER],
        "bids": [[(0.4, 1.0)], []],
        "asks": [[(0.6, 2.0)], []],
    }
    columns.update(overrides)
    return columns


def where(problems: list[RowProblem]) -> list[tuple[int | None, str]]:
    return [(p.row, p.column) for p in problems]


def structural(exc: pytest.ExceptionInfo[BatchValidationError]) -> set[str]:
    assert all(p.row is None for p in exc.value.problems), exc.value.problems
    return {p.column for p in exc.value.problems}


# -- construction -----------------------------------------------------------------------------


def test_valid_columns_build_a_clean_batch() -> None:
    batch = PriceBatch.from_columns(prices())
    assert len(batch) == 3
    assert batch.ts.dtype == np.dtype("datetime64[us]")
    assert batch.token_id.dtype == object and batch.price.dtype == np.float64
    assert math.isnan(batch.volume_24h[0]) and batch.volume_24h[1] == 10.0
    found, mask = batch.problems()
    assert found == [] and not mask.any()
    assert batch.validated() is batch
    assert PriceBatch.COLUMNS == ("ts", "token_id", "price", "volume_24h")
    assert PriceBatch.REQUIRED == ("ts", "token_id", "price")
    assert TradeBatch.COLUMNS[-1] == "trade_id" and "trade_id" not in TradeBatch.REQUIRED


def test_timestamps_are_utc_microseconds_from_any_zone_or_unit() -> None:
    plus_two = timezone(timedelta(hours=2))
    aware = PriceBatch.from_columns(
        prices(ts=[T0.astimezone(plus_two), T0, datetime(1960, 1, 1, 0, 0, 0, 1, tzinfo=UTC)])
    )
    assert aware.ts[0] == aware.ts[1] == np.datetime64("2024-06-01T12:00:00.123456", "us")
    assert aware.ts[2] == np.datetime64("1960-01-01T00:00:00.000001", "us")
    nanos = np.array(["2024-06-01T12:00:00.123456789"] * 3, dtype="datetime64[ns]")
    assert PriceBatch.from_columns(prices(ts=nanos)).ts[0] == aware.ts[0]
    seconds = np.array(["2024-06-01T12:00:00"] * 3, dtype="datetime64[s]")
    assert PriceBatch.from_columns(prices(ts=seconds)).ts[0] == np.datetime64(
        "2024-06-01T12:00:00", "us"
    )


def test_optional_columns_default_to_null() -> None:
    columns = prices()
    del columns["volume_24h"]
    batch = PriceBatch.from_columns(columns)
    assert np.isnan(batch.volume_24h).all()
    book = OrderbookBatch.from_columns(books())
    assert book.spread[0] == pytest.approx(0.2) and book.midpoint[0] == pytest.approx(0.5)


def test_arrays_are_copied_and_read_only() -> None:
    price = np.array([0.0, 0.5, 1.0])
    batch = PriceBatch.from_columns(prices(price=price))
    price[0] = 0.9
    assert batch.price[0] == 0.0
    assert price.flags.writeable
    with pytest.raises(ValueError):
        batch.price[0] = 0.3


# -- structural problems ----------------------------------------------------------------------


def test_missing_and_unknown_columns_are_named() -> None:
    columns = prices(colour=["red"] * 3)
    del columns["price"]
    with pytest.raises(BatchValidationError) as info:
        PriceBatch.from_columns(columns)
    assert structural(info) == {"price", "colour"}
    assert info.value.table == "price_snapshots"


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("volume_24h", np.array(["a", "b", "c"])),  # a text array where floats are expected
        ("price", np.array([True, False, True])),
        ("ts", np.array([1, 2, 3])),  # not datetimes
        ("token_id", np.array([1, 2, 3])),
        ("token_id", "abc"),  # a string is not a column
        ("price", 0.5),
        ("price", np.zeros((3, 2))),
    ],
)
def test_wrong_column_types_are_named(column: str, value: Any) -> None:
    with pytest.raises(BatchValidationError) as info:
        PriceBatch.from_columns(prices(**{column: value}))
    assert structural(info) == {column}


@pytest.mark.parametrize(
    ("column", "value", "rows"),
    [
        ("price", [0.1, "abc", 0.3], [1]),  # one string among numbers
        ("price", ["0.5", "0.5", "0.5"], [0, 1, 2]),  # numeric text is still text
        ("price", [0.5, True, 0.5], [1]),  # a bool is not a number (not 1.0)
        ("price", [True, False, True], [0, 1, 2]),
        ("volume_24h", [1.0, None, np.bool_(True)], [2]),
        ("price", np.array([0.5, "x", False], dtype=object), [1, 2]),
        ("ts", [T0, "not a time", T0], [1]),  # one unparsable string
        ("ts", ["2024-01-01T00:00:00Z"] * 3, [0, 1, 2]),
        ("ts", [1, 2, 3], [0, 1, 2]),
    ],
)
def test_bad_values_are_named_by_row_and_column(column: str, value: Any, rows: list[int]) -> None:
    with pytest.raises(BatchValidationError) as info:
        PriceBatch.from_columns(prices(**{column: value}))
    assert where(info.value.problems) == [(row, column) for row in rows]
    assert info.value.total == len(rows)
    bad = value[rows[0]]
    assert repr(bad)[:20] in info.value.problems[0].reason


def test_a_bool_price_in_a_row_is_refused_with_its_row() -> None:
    rows = [(T0, TOKEN, 0.5), (T0, TOKEN, True), (T0, OTHER, 1)]
    with pytest.raises(BatchValidationError) as info:
        PriceBatch.from_rows(rows)
    assert where(info.value.problems) == [(1, "price")]
    assert "bool" in info.value.problems[0].reason


def test_numbers_of_every_plain_kind_are_still_accepted() -> None:
    batch = PriceBatch.from_columns(
        prices(price=[0, np.float64(0.5), 1], volume_24h=[None, 2, 3.5])
    )
    assert batch.price.tolist() == [0.0, 0.5, 1.0]
    assert batch.volume_24h[1:].tolist() == [2.0, 3.5] and np.isnan(batch.volume_24h[0])


def test_many_bad_values_name_the_first_rows_and_count_all() -> None:
    n = 1_000
    columns = {
        "ts": [T0] * n,
        "token_id": [TOKEN] * n,
        "price": ["0.5"] * n,
    }
    with pytest.raises(BatchValidationError) as info:
        PriceBatch.from_columns(columns)
    assert where(info.value.problems) == [(row, "price") for row in range(20)]
    assert info.value.total == n
    assert f"{n} problem(s)" in str(info.value)


def test_unequal_lengths_are_named() -> None:
    with pytest.raises(BatchValidationError) as info:
        PriceBatch.from_columns(prices(price=[0.5, 0.5]))
    assert structural(info) == {"price"}
    assert "2" in info.value.problems[0].reason and "3" in info.value.problems[0].reason


def test_not_a_mapping_is_refused() -> None:
    with pytest.raises(BatchValidationError):
        PriceBatch.from_columns([1, 2, 3])  # type: ignore[arg-type]


def test_direct_construction_checks_dtypes() -> None:
    good = PriceBatch.from_columns(prices())
    with pytest.raises(BatchValidationError) as info:
        PriceBatch(
            ts=good.ts.astype("datetime64[ns]"),
            token_id=good.token_id,
            price=good.price.astype(np.float32),
            volume_24h=good.volume_24h[:2],
        )
    assert structural(info) == {"ts", "price", "volume_24h"}


# -- row problems -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "bad"),
    [
        ("price", 1.5),
        ("price", -0.01),
        ("price", math.nan),
        ("price", None),
        ("price", math.inf),
        ("volume_24h", -1.0),
        ("volume_24h", math.inf),
        ("volume_24h", -math.inf),
        ("token_id", ""),
        ("token_id", None),
        ("token_id", 123),
        ("token_id", b"123"),
        ("token_id", "12\x003"),
        ("token_id", "\ud800"),
    ],
)
def test_price_row_problems_name_row_and_column(column: str, bad: Any) -> None:
    columns = prices()
    values = list(columns[column])
    values[1] = bad
    columns[column] = values
    batch = PriceBatch.from_columns(columns)  # value problems do not raise here
    found, mask = batch.problems()
    assert where(found) == [(1, column)]
    assert mask.tolist() == [False, True, False]
    with pytest.raises(BatchValidationError) as info:
        batch.validated()
    assert where(info.value.problems) == [(1, column)] and info.value.total == 1


def test_null_volume_is_not_a_problem() -> None:
    batch = PriceBatch.from_columns(prices(volume_24h=[None, math.nan, np.nan]))
    assert batch.problems()[0] == []


def test_naive_timestamps_are_row_problems() -> None:
    naive = datetime(2024, 6, 1, 12)
    batch = PriceBatch.from_columns(prices(ts=[T0, naive, T0]))
    assert batch.ts[1] == np.datetime64("2024-06-01T12:00:00", "us")  # taken as UTC
    found, mask = batch.problems()
    assert where(found) == [(1, "ts")] and "naive" in found[0].reason
    assert batch.select(~mask).validated().ts.tolist() == [T0.replace(tzinfo=None)] * 2


def test_missing_timestamp_is_a_row_problem() -> None:
    batch = PriceBatch.from_columns(prices(ts=[T0, None, T0]))
    assert where(batch.problems()[0]) == [(1, "ts")]


@pytest.mark.parametrize(
    ("column", "bad"),
    [
        ("side", "HOLD"),
        ("side", "buy"),
        ("side", None),
        ("size", -1.0),
        ("size", math.inf),
        ("size", math.nan),
        ("price", 2.0),
        ("trade_id", ""),
        ("trade_id", 42),
    ],
)
def test_trade_row_problems_name_row_and_column(column: str, bad: Any) -> None:
    columns = trades(trade_id=["a", "b", "c"])
    values = list(columns[column])
    values[2] = bad
    columns[column] = values
    found, mask = TradeBatch.from_columns(columns).problems()
    assert where(found) == [(2, column)]
    assert mask.tolist() == [False, False, True]


@pytest.mark.parametrize(
    ("column", "bad", "reason"),
    [
        ("bids", [{"price": "0.4"}], "has no 'price' and 'size'"),
        ("bids", "0.4,1", "expected a list"),
        ("bids", None, "expected a list"),
        ("bids", [(0.4, 1.0, 3.0)], "not a (price, size) pair"),
        ("bids", [("0.4", "lots")], "not a number"),
        ("asks", [(1.5, 1.0)], "outside [0, 1]"),
        ("asks", [(0.5, -1.0)], "negative or not finite"),
        ("asks", [(0.5, math.inf)], "negative or not finite"),
        ("asks", [(math.nan, 1.0)], "outside [0, 1]"),
        ("midpoint", 1.5, "outside [0, 1]"),
        ("spread", math.inf, "not finite"),
    ],
)
def test_orderbook_row_problems_name_row_and_column(column: str, bad: Any, reason: str) -> None:
    columns = books(spread=[0.2, None], midpoint=[0.5, None])
    values = list(columns[column])
    values[1] = bad
    columns[column] = values
    found, mask = OrderbookBatch.from_columns(columns).problems()
    assert where(found) == [(1, column)]
    assert reason in found[0].reason
    assert mask.tolist() == [False, True]


def test_unnormalised_levels_built_directly_are_problems() -> None:
    good = OrderbookBatch.from_columns(books())
    unsorted = np.empty(2, dtype=object)
    unsorted[:] = [[(0.3, 1.0), (0.4, 1.0)], []]  # bids worst-first
    numpy_floats = np.empty(2, dtype=object)
    numpy_floats[:] = [[(np.float64(0.6), np.float64(2.0))], []]
    batch = OrderbookBatch(
        ts=good.ts,
        token_id=good.token_id,
        bids=unsorted,
        asks=numpy_floats,
        spread=good.spread,
        midpoint=good.midpoint,
    )
    found, _ = batch.problems()
    assert where(found) == [(0, "bids"), (0, "asks")]
    assert "sorted" in found[0].reason and "normalised" in found[1].reason


def test_problems_are_ordered_by_row_limited_and_counted() -> None:
    n = 40
    price = np.full(n, 0.5)
    price[::2] = 2.0  # 20 bad prices
    volume = np.zeros(n)
    volume[::4] = -1.0  # 10 bad volumes, on rows that also have a bad price
    batch = PriceBatch.from_columns(
        {"ts": [T0] * n, "token_id": [TOKEN] * n, "price": price, "volume_24h": volume}
    )
    found, mask = batch.problems(limit=5)
    assert where(found) == [
        (0, "price"),
        (0, "volume_24h"),
        (2, "price"),
        (4, "price"),
        (4, "volume_24h"),
    ]
    assert int(mask.sum()) == 20 and mask[::2].all()
    with pytest.raises(BatchValidationError) as info:
        batch.validated()
    assert info.value.total == 30 and len(info.value.problems) == 20
    clean = batch.select(~mask)
    assert len(clean) == 20 and clean.validated() is clean


def test_select_keeps_order_and_checks_the_mask() -> None:
    batch = TradeBatch.from_columns(trades())
    picked = batch.select(np.array([True, False, True]))
    assert picked.token_id.tolist() == [TOKEN, TOKEN]
    assert picked.price.tolist() == [0.25, 0.75]
    assert picked.trade_id.tolist() == [batch.trade_id[0], batch.trade_id[2]]
    for mask in (np.array([True, False]), np.array([1, 0, 1])):
        with pytest.raises(BatchValidationError) as info:
            batch.select(mask)
        assert isinstance(info.value, PmstoreError)
        assert info.value.table == "trades"
        assert where(info.value.problems) == [(None, "*")]
        assert "mask must be a bool array of shape (3,)" in info.value.problems[0].reason


# -- rows -------------------------------------------------------------------------------------


def test_from_rows_takes_records_and_tuples() -> None:
    records = [
        PriceSnapshot(ts=T0, token_id=TOKEN, price=0.0),
        PriceSnapshot(ts=T0 + timedelta(seconds=1), token_id=OTHER, price=0.5, volume_24h=10.0),
    ]
    tuples = [(T0 + timedelta(seconds=2), TOKEN, 1.0, 0.0)]
    batch = PriceBatch.from_rows([*records, *tuples])
    assert batch.token_id.tolist() == [TOKEN, OTHER, TOKEN]
    assert batch.price.tolist() == [0.0, 0.5, 1.0]
    assert math.isnan(batch.volume_24h[0]) and batch.volume_24h[1:].tolist() == [10.0, 0.0]
    assert batch.content_digest() == PriceBatch.from_columns(prices()).content_digest()


def test_from_rows_short_tuple_omits_trailing_optionals() -> None:
    batch = TradeBatch.from_rows([(T0, TOKEN, "BUY", 0.5, 1.0)])
    assert batch.trade_id[0].startswith("sha1:")
    book = OrderbookBatch.from_rows([(T0, TOKEN, [(0.4, 1.0)], [(0.6, 1.0)], 0.3)])
    assert book.spread[0] == 0.3 and math.isnan(book.midpoint[0])


def test_from_rows_records_match_the_models() -> None:
    record = OrderbookSnapshot(
        ts=T0, token_id=TOKEN, bids=[(0.3, 1.0), (0.4, 2.0)], asks=[(0.7, 1.0), (0.6, 3.0)]
    )
    batch = OrderbookBatch.from_rows([record])
    assert batch.bids[0] == record.bids and batch.asks[0] == record.asks
    assert batch.spread[0] == record.spread and batch.midpoint[0] == record.midpoint
    trade = TradeRecord(ts=T0, token_id=TOKEN, side="SELL", price=0.5, size=2.0, trade_id="x")
    assert TradeBatch.from_rows([trade]).trade_id.tolist() == ["x"]


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ((T0, TOKEN), "price"),  # too short: the first missing column
        ((T0, TOKEN, 0.5, 1.0, "extra"), "*"),
        (TradeRecord(ts=T0, token_id=TOKEN, side="BUY", price=0.5, size=1.0), "*"),
        ("not a row", "*"),
    ],
)
def test_from_rows_bad_rows_are_named(row: Any, column: str) -> None:
    with pytest.raises(BatchValidationError) as info:
        PriceBatch.from_rows([(T0, TOKEN, 0.5), row])
    assert where(info.value.problems) == [(1, column)]


def test_from_rows_value_problems_wait_for_validation() -> None:
    batch = PriceBatch.from_rows([(T0, TOKEN, 0.5), (datetime(2024, 1, 1), "", 3.0)])
    assert where(batch.problems()[0]) == [(1, "ts"), (1, "token_id"), (1, "price")]


# -- order-book normalisation -----------------------------------------------------------------


def test_orderbook_levels_are_normalised_best_first() -> None:
    batch = OrderbookBatch.from_columns(
        {
            "ts": [T0, T0, T0, T0],
            "token_id": [TOKEN] * 4,
            "bids": [
                [("0.46", "5"), ["0.48", "1234.5"], (0.47, 10)],  # worst-first, strings, ints
                [(0.3, 1.0)],
                [],
                np.array([[0.1, 1.0], [0.2, 2.0]]),
            ],
            "asks": [
                [("0.55", "1"), ("0.51", "2"), ("0.52", "3")],
                [],
                [],
                [(0.9, 1.0)],
            ],
        }
    )
    assert batch.bids[0] == [(0.48, 1234.5), (0.47, 10.0), (0.46, 5.0)]
    assert batch.asks[0] == [(0.51, 2.0), (0.52, 3.0), (0.55, 1.0)]
    assert all(type(v) is float for level in batch.bids[0] for v in level)
    assert batch.spread[0] == pytest.approx(0.51 - 0.48)
    assert batch.midpoint[0] == pytest.approx((0.51 + 0.48) / 2)
    assert math.isnan(batch.spread[1]) and math.isnan(batch.midpoint[1])  # one-sided
    assert math.isnan(batch.spread[2]) and math.isnan(batch.midpoint[2])  # empty
    assert batch.bids[3] == [(0.2, 2.0), (0.1, 1.0)]
    assert batch.midpoint[3] == pytest.approx(0.55)
    assert batch.problems()[0] == []


def test_given_spread_or_midpoint_is_kept() -> None:
    batch = OrderbookBatch.from_columns(books(spread=[0.1, None], midpoint=[None, 0.5]))
    assert batch.spread[0] == 0.1 and math.isnan(batch.midpoint[0])
    assert math.isnan(batch.spread[1]) and batch.midpoint[1] == 0.5


# -- identity ---------------------------------------------------------------------------------


def test_content_digest_is_stable_and_sensitive() -> None:
    base = PriceBatch.from_columns(prices())
    digest = base.content_digest()
    assert len(digest) == 32 and int(digest, 16) >= 0
    assert PriceBatch.from_columns(prices()).content_digest() == digest
    assert (
        PriceBatch.from_rows(list(zip(*prices().values(), strict=True))).content_digest() == digest
    )
    changes: list[dict[str, Any]] = [
        {"ts": [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2, microseconds=1)]},
        {"token_id": [TOKEN, OTHER, TOKEN + "7"]},
        {"token_id": [TOKEN + "1", OTHER[1:], TOKEN]},  # same concatenation, other split
        {"price": [0.0, 0.5, 0.9999999999999999]},
        {"volume_24h": [0.0, 10.0, 0.0]},  # a NULL became 0
        {"ts": [T0.replace(tzinfo=None), T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]},
    ]
    digests = {PriceBatch.from_columns(prices(**change)).content_digest() for change in changes}
    assert len(digests) == len(changes) and digest not in digests
    assert base.select(np.array([True, True, False])).content_digest() != digest


def test_content_digest_of_other_tables() -> None:
    book = OrderbookBatch.from_columns(books())
    assert book.content_digest() == OrderbookBatch.from_columns(books()).content_digest()
    moved = books(bids=[[(0.4, 1.5)], []])
    assert OrderbookBatch.from_columns(moved).content_digest() != book.content_digest()
    trade = TradeBatch.from_columns(trades())
    sold = TradeBatch.from_columns(trades(side=["BUY", "SELL", "SELL"]))
    assert trade.content_digest() != sold.content_digest()


def test_trade_ids_are_derived_deterministically() -> None:
    batch = TradeBatch.from_columns(trades(trade_id=[None, "given", None]))
    assert batch.trade_id[1] == "given"
    micros = (T0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    key = f"{TOKEN}|{micros}|BUY|0.25|1.0"
    assert batch.trade_id[0] == "sha1:" + hashlib.sha1(key.encode()).hexdigest()
    assert batch.trade_id[0] == derive_trade_id(TOKEN, micros, "BUY", 0.25, 1.0)
    again = TradeBatch.from_columns(trades())
    assert again.trade_id[0] == batch.trade_id[0] and again.trade_id[2] == batch.trade_id[2]
    assert len(set(again.trade_id.tolist())) == 3
    twin = TradeBatch.from_columns(
        trades(
            token_id=[TOKEN, TOKEN, TOKEN],
            ts=[T0] * 3,
            price=[0.25] * 3,
            size=[1.0] * 3,
            side=["BUY"] * 3,
        )
    )
    assert len(set(twin.trade_id.tolist())) == 1  # identical fills collapse (documented)


# -- dispatch ---------------------------------------------------------------------------------


def test_as_batch_dispatches() -> None:
    batch = PriceBatch.from_columns(prices())
    assert as_batch(PriceBatch, batch) is batch
    assert as_batch(PriceBatch, prices()).content_digest() == batch.content_digest()
    rows = [PriceSnapshot(ts=T0, token_id=TOKEN, price=0.5)]
    assert as_batch(PriceBatch, rows).price.tolist() == [0.5]
    with pytest.raises(BatchValidationError):
        as_batch(TradeBatch, batch)
    with pytest.raises(BatchValidationError):
        as_batch(PriceBatch, 42)  # type: ignore[arg-type]


def test_in_index_order_sorts_by_token_then_time_and_keeps_rows() -> None:
    rng = np.random.default_rng(5)
    tokens = np.array(["9" * 76, "1" * 78, "10" * 38, "é-token", "2"], dtype=object)
    n = 500
    columns = {
        "ts": np.datetime64("2026-01-01", "us")
        + rng.integers(0, 10**9, n).astype("timedelta64[us]"),
        "token_id": tokens[rng.integers(0, len(tokens), n)],
        "price": rng.random(n),
    }
    batch = PriceBatch.from_columns(columns)
    ordered = batch.in_index_order()
    keys = list(zip(ordered.token_id.tolist(), ordered.ts.view(np.int64).tolist(), strict=True))
    # The "C" collation compares UTF-8 bytes.
    assert keys == sorted(keys, key=lambda k: (k[0].encode("utf-8"), k[1]))
    original = sorted(
        zip(batch.token_id.tolist(), batch.ts.tolist(), batch.price.tolist(), strict=True)
    )
    again = sorted(
        zip(ordered.token_id.tolist(), ordered.ts.tolist(), ordered.price.tolist(), strict=True)
    )
    assert original == again
    assert ordered.in_index_order() is ordered


def test_orderbook_digest_sees_every_level_and_survives_malformed_levels() -> None:
    ts = [datetime(2026, 1, 1, tzinfo=UTC)] * 2
    base = {
        "ts": ts,
        "token_id": ["a", "b"],
        "bids": [[(0.4, 1.0)], []],
        "asks": [[], [(0.6, 2.0)]],
    }
    digest = OrderbookBatch.from_columns(base).content_digest()
    assert OrderbookBatch.from_columns(base).content_digest() == digest
    changed = {**base, "asks": [[], [(0.6, 2.5)]]}
    assert OrderbookBatch.from_columns(changed).content_digest() != digest
    moved = {**base, "bids": [[], [(0.4, 1.0)]]}  # same numbers, another row
    assert OrderbookBatch.from_columns(moved).content_digest() != digest
    malformed = {**base, "bids": [[{"price": "0.4"}], []]}
    batch = OrderbookBatch.from_columns(malformed)
    assert batch.content_digest() != digest and batch.problems()[0]
