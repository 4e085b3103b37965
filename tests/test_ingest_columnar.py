"""The columnar fast path gives exactly what the pydantic adapters give, payload by payload.

Both paths run over the same payloads: the real captures in the shared
folder and in tests/, a seeded realistic WebSocket mix, and edge cases of
the three hot kinds (one-sided and crossed tops, odd types, bad values,
timestamps in seconds, ISO and out of range...). Rows, values, their order
and the rejects (kind, reason, ident) must be identical, and so must the
batches built from them.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from conftest import polymarket_fixture_files

from pmstore.batches import OrderbookBatch, PriceBatch, TradeBatch
from pmstore.ingest._sources import open_source
from pmstore.polymarket import convert
from pmstore.polymarket._columnar import Columns, convert_into, convert_line
from pmstore.polymarket._hot_events import HOT_KINDS

ROOT = Path(__file__).resolve().parent.parent


def load_archive() -> Any:
    spec = importlib.util.spec_from_file_location("ws_archive", ROOT / "benchmarks/ws_archive.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Archive


def realistic(n: int, seed: int = 3) -> list[Any]:
    archive = load_archive()(seed=seed, markets=200)
    return [orjson.loads(orjson.dumps(archive.message())) for _ in range(n)]


def slow(payload: Any) -> Columns:
    out = Columns()
    out.add_converted(convert(payload))
    return out


def fast(payload: Any) -> Columns:
    out = Columns()
    convert_into(payload, out)
    return out


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN and float/tuple types checked."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


LEVEL_LISTS = ("book_bid_prices", "book_bid_sizes", "book_ask_prices", "book_ask_sizes")
TOP_OF_BOOK = ("book_spread", "book_midpoint")  # the fast path leaves them to the batch
RECORDS = [name for name in Columns.__dataclass_fields__ if name != "general_path"]


def assert_same(payload: Any) -> Columns:
    want, got = slow(payload), fast(payload)
    for name in RECORDS:
        if name in LEVEL_LISTS or name in TOP_OF_BOOK:  # compared as batches below
            assert len(getattr(got, name)) == len(getattr(want, name)), (name, payload)
        elif name == "rejects":
            assert [(r.kind, r.reason, r.ident) for r in got.rejects] == [
                (r.kind, r.reason, r.ident) for r in want.rejects
            ], payload
            assert [r.payload for r in got.rejects] == [r.payload for r in want.rejects]
        else:
            assert same(getattr(got, name), getattr(want, name)), (name, payload)
    got_books, want_books = got.orderbook_batch(), want.orderbook_batch()
    for side in ("bids", "asks"):
        assert same(getattr(got_books, side).tolist(), getattr(want_books, side).tolist()), payload
    for column in ("spread", "midpoint"):
        assert same(getattr(got_books, column).tolist(), getattr(want_books, column).tolist())
    assert got_books.content_digest() == want_books.content_digest()
    return got


def edge_cases() -> list[Any]:
    base = realistic(60, seed=5)
    change = next(m for m in base if m["event_type"] == "price_change")
    book = next(m for m in base if m["event_type"] == "book")
    trade = next(m for m in base if m["event_type"] == "last_trade_price")
    cases: list[Any] = []

    def variant(message: dict[str, Any], edit: Any) -> None:
        m = copy.deepcopy(message)
        edit(m)
        cases.append(m)

    def entry(**values: Any) -> Any:
        def edit(m: dict[str, Any]) -> None:
            m["price_changes"][0].update(values)

        return edit

    for bid, ask in [
        ("0", "0.5"), ("0.5", "1"), ("", "0.5"), ("0.5", ""), (None, None), ("0.7", "0.3"),
        ("1.5", "0.9"), (0.4, 0.6), (0.4, "0.6"), (1, "0.5"), (True, "0.5"), ("nan", "0.5"),
        ("0.4", "inf"), ("1e400", "0.5"), (" 0.4 ", "0.6"), ("0.4_0", "0.6"), ("abc", "0.5"),
        ("-0.1", "0.5"), (".41", ".43"), ("4E-1", "0.6"), ("0.3333333333333333333", "0.5"),
    ]:  # fmt: skip
        variant(change, entry(best_bid=bid, best_ask=ask))
    for asset in [123, "", "12a", "１２３", None, True, " 123"]:
        variant(change, entry(asset_id=asset))
    for ts in ["1729084877", 1729084877448, "1729084877.5", "2025-10-01T12:00:00Z", "0", "-5",
               "99999999999999", "", None, 1.7e12, "１７２９"]:  # fmt: skip
        variant(change, lambda m, ts=ts: m.update(timestamp=ts))
        variant(book, lambda m, ts=ts: m.update(timestamp=ts))
        variant(trade, lambda m, ts=ts: m.update(timestamp=ts))
    variant(change, lambda m: m.update(price_changes=[]))
    variant(change, lambda m: m.update(price_changes="x"))
    variant(change, lambda m: m["price_changes"].append(copy.deepcopy(m["price_changes"][0])))
    variant(change, lambda m: m["price_changes"].append("not an object"))
    variant(change, lambda m: m.pop("price_changes"))
    variant(change, lambda m: m.update(changes=[{"price": "0.5"}], price_changes=None))

    def level(side: str, k: int, **values: Any) -> Any:
        def edit(m: dict[str, Any]) -> None:
            m[side][k].update(values)

        return edit

    level_edits: list[dict[str, Any]] = [
            {"price": "1.5"}, {"price": "-0.1"}, {"size": "-1"}, {"size": "nan"},
            {"price": 0.5}, {"price": 1}, {"size": 10}, {"price": ""}, {"price": None},
            {"size": True}, {"price": "0.5", "size": "1e400"}, {"price": " 0.5"},
            {"price": "0"}, {"price": "-0"}, {"size": "0"}, {"size": "-0"}, {"price": "1"},
            {"price": "1.0000000000000002"}, {"size": "1.7976931348623157e308"},
            {"size": "inf"}, {"size": "Infinity"}, {"price": "5e-324"},
    ]  # fmt: skip
    for side in ("bids", "asks"):
        for values in level_edits:
            variant(book, level(side, 0, **values))
        variant(book, lambda m, side=side: m.update({side: []}))
        variant(book, lambda m, side=side: m.update({side: "x"}))
        variant(book, lambda m, side=side: m.pop(side))
        variant(book, lambda m, side=side: m[side].append(["0.5", "1"]))
        variant(book, lambda m, side=side: m[side][0].pop("size"))
        variant(book, lambda m, side=side: m[side].append(dict(m[side][-1])))  # equal prices
    variant(book, lambda m: m.update(bids=[], asks=[]))
    variant(book, lambda m: m.update(asset_id=5))
    trade_edits: list[dict[str, Any]] = [
        {"side": "buy"}, {"side": " BUY"}, {"side": ""}, {"side": None}, {"side": "HOLD"},
        {"price": "1.2"}, {"price": 0.5}, {"size": "-3"}, {"size": 7}, {"transaction_hash": ""},
        {"transaction_hash": 5}, {"transactionHash": "0xABC"}, {"price": "0.50000"},
        {"asset_id": "x"}, {"size": "5E+2"},
    ]  # fmt: skip
    for values in trade_edits:
        variant(trade, lambda m, values=values: m.update(values))
    variant(trade, lambda m: m.pop("price"))
    cases.append({"event_type": "book"})
    cases.append({"event_type": "price_change"})
    cases.append([change, book, trade])
    cases.append({"data": [change, book]})
    cases.append("text")
    return cases


def test_edge_cases_take_the_same_path_to_the_same_result() -> None:
    cases = edge_cases()
    assert len(cases) > 120
    results = [assert_same(c) for c in cases]
    rejected = sum(bool(r.rejects) for r in results)
    assert rejected > 50  # the edge cases do reach the reject reasons
    hot = [isinstance(c, dict) and c.get("event_type") in HOT_KINDS for c in cases]
    slow = [r.general_path for r in results]
    assert set(slow) <= {0, 1} and sum(slow) > 60  # counted once per hot payload that fell back
    assert not any(n for n, h in zip(slow, hot, strict=True) if not h)  # others are not counted


def test_realistic_mix_and_real_captures_give_identical_columns_and_batches() -> None:
    payloads = realistic(3_000)
    for path in polymarket_fixture_files() + sorted((ROOT / "tests").rglob("*.json")):
        with open_source(path) as source:
            payloads.extend(item.payload for item in source.items())
    assert any(isinstance(p, dict) and p.get("event_type") == "book" for p in payloads[3000:])
    together = Columns()
    records = {"prices": [], "orderbooks": [], "trades": []}  # type: dict[str, list[Any]]
    for payload in payloads:
        assert_same(payload)
        convert_into(payload, together)
        got = convert(payload)
        for name in records:
            records[name].extend(getattr(got, name))
    assert len(together.price_ts) > 3_000 and len(together.book_ts) > 300
    for fast_batch, slow_batch in [
        (together.price_batch(), PriceBatch.from_rows(records["prices"])),
        (together.orderbook_batch(), OrderbookBatch.from_rows(records["orderbooks"])),
        (together.trade_batch(), TradeBatch.from_rows(records["trades"])),
    ]:
        fast_batch.validated()
        for column in fast_batch.COLUMNS:
            a, b = getattr(fast_batch, column), getattr(slow_batch, column)
            assert a.dtype == b.dtype, column
            if a.dtype == object:
                assert same(a.tolist(), b.tolist()), column
            else:
                np.testing.assert_array_equal(a, b, err_msg=column)
        assert fast_batch.content_digest() == slow_batch.content_digest()


@pytest.mark.parametrize("kind", ["price_change", "book", "last_trade_price"])
def test_hot_kinds_do_not_fall_back(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The realistic messages are converted without the slow path at all."""
    import pmstore.polymarket._columnar as columnar

    def refuse(payload: Any) -> Any:
        raise AssertionError(f"fell back for {json.dumps(payload)[:200]}")

    monkeypatch.setattr(columnar, "convert", refuse)
    out = Columns()
    for message in realistic(500):
        if message["event_type"] == kind:
            convert_into(message, out)
    assert out.record_count() > 10


# -- the line path: JSON text decoded straight into typed structs (msgspec) --------------


def fast_line(line: bytes) -> Columns:
    out = Columns()
    convert_line(line, out)
    return out


def assert_same_line(line: bytes) -> Columns:
    """``convert_line`` gives what the adapters give for ``orjson.loads(line)``."""
    want, got = slow(orjson.loads(line)), fast_line(line)
    for name in RECORDS:
        if name == "rejects":
            assert [(r.kind, r.reason, r.ident, r.payload) for r in got.rejects] == [
                (r.kind, r.reason, r.ident, r.payload) for r in want.rejects
            ], line
        elif name not in LEVEL_LISTS and name not in TOP_OF_BOOK:
            assert same(getattr(got, name), getattr(want, name)), (name, line)
    got_books, want_books = got.orderbook_batch(), want.orderbook_batch()
    for column in ("spread", "midpoint"):
        assert same(getattr(got_books, column).tolist(), getattr(want_books, column).tolist())
    for side in ("bids", "asks"):
        got_side, want_side = getattr(got_books, side).tolist(), getattr(want_books, side).tolist()
        assert same(got_side, want_side), line
        signs = [[math.copysign(1.0, v) for level in row for v in level] for row in got_side]
        assert signs == [
            [math.copysign(1.0, v) for level in row for v in level] for row in want_side
        ]
    assert got_books.content_digest() == want_books.content_digest()
    return got


def test_lines_give_what_the_parsed_payloads_give() -> None:
    """Every edge case, the realistic mix and the real captures, as JSON lines."""
    payloads = edge_cases() + realistic(2_000, seed=11)
    for path in polymarket_fixture_files():
        with open_source(path) as source:
            payloads.extend(item.payload for item in source.items())
    results = [assert_same_line(orjson.dumps(p)) for p in payloads]
    assert sum(bool(r.rejects) for r in results) > 50
    assert [r.general_path for r in results[:120]] == [
        fast(p).general_path for p in payloads[:120]
    ]  # both paths count the same payloads


def test_line_edge_cases_of_the_typed_decoder() -> None:
    """What msgspec reads differently from orjson is left to the general path."""
    book = next(m for m in realistic(60, seed=5) if m["event_type"] == "book")
    text = orjson.dumps(book)
    level = b'{"price":"%s","size":"%s"}'
    first = orjson.dumps(book["bids"][0])
    lines = [
        text.replace(first, level % (b"-0", b"5")),  # lax mode reads "-0" as 0.0, not -0.0
        text.replace(first, level % (b"0.5", b"-0")),
        text.replace(first, level % (b"0.5", b"0")),
        text.replace(first, level % (b"0.5", b"1e-400")),  # underflows to zero
        text.replace(first, level % (b"0.5", b"-0.0")),
        text.replace(first, b'{"price":"0.1","size":"5","price":"0.5"}'),  # the last one wins
        text.replace(first, b'{"price":0.5,"size":7}'),  # JSON numbers
        text.replace(first, level % (b"1", b"5")),  # the range bounds of hot_events.Level
        text.replace(first, level % (b"1.0000000000000002", b"5")),
        text.replace(first, level % (b"0.5", b"1.7976931348623157e308")),
        text.replace(first, level % (b"0.5", b"Infinity")),
        text.replace(first, level % (b"NaN", b"5")),
        text.replace(b'"hash":', b'"note":"caf\xc3\xa9","hash":'),  # UTF-8, not ASCII
        text.replace(b'"hash":', b' "hash" : '),
        text + b"\r",
        b"  " + text,
    ]
    for line in lines:
        assert orjson.loads(line)  # each is JSON
        assert_same_line(line)
    for broken in [
        text.replace(b'"hash":', b'"note":"\xff","hash":'),  # bad UTF-8 where nobody reads
        text.replace(b'"hash":', b'"note":"\xed\xa0\x80","hash":'),  # a UTF-8 surrogate
        text[:-1],
        text + b"}",
    ]:
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(broken)
        with pytest.raises(orjson.JSONDecodeError):
            fast_line(broken)
    # Documented difference: valid JSON that orjson refuses (a number beyond the double
    # range) in a field nobody reads does not make the line not_json.
    huge = text.replace(b'"hash":', b'"note":1e999,"hash":')
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(huge)
    loaded = fast_line(huge)
    assert len(loaded.book_ts) == 1 and not loaded.rejects
    assert loaded.book_bid_counts == fast_line(text).book_bid_counts


def test_hot_lines_are_decoded_by_the_typed_structs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The realistic hot lines never reach orjson or the adapters."""
    import pmstore.polymarket._columnar as columnar

    def refuse(payload: Any) -> Any:
        raise AssertionError(f"fell back for {str(payload)[:200]}")

    lines = [orjson.dumps(message) for message in realistic(500)]
    monkeypatch.setattr(columnar, "convert", refuse)
    monkeypatch.setattr(orjson, "loads", refuse)
    out = Columns()
    for line in lines:
        convert_line(line, out)
    assert len(out.price_ts) > 300 and len(out.book_ts) > 30 and len(out.trade_ts) > 5
    assert out.general_path == 0
