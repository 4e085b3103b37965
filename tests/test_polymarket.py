"""Pure tests of pmstore.polymarket (no database).

Every payload fixture (``tests/fixtures/polymarket``, listed in its
``SHA256SUMS``) goes through :func:`convert` and is checked against values
computed here, independently, from the raw JSON. A new file without an entry
in ``EXPECTATIONS`` fails, and so does a missing, changed or unlisted file.

Payloads written inline below are hand-made for shapes that have no file in
the fixtures (older ``price_change`` shapes, data-API resolutions,
snake_case data-API trades, 50/50 Gamma markets...); their field names follow
the API docs and the captures, their values are invented.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from conftest import POLYMARKET_FIXTURES, polymarket_fixture, polymarket_manifest

from pmstore.errors import PayloadError
from pmstore.models import MarketRecord, OrderbookSnapshot, ResolutionRecord, TradeRecord
from pmstore.polymarket import (
    KINDS,
    NO_TOP_OF_BOOK,
    Converted,
    Reject,
    book_to_snapshot,
    clob_market_to_resolution,
    convert,
    data_resolution_to_record,
    derive_fill_id,
    detect_kind,
    gamma_market_to_record,
    gamma_market_to_resolution,
    parse_timestamp,
    price_change_to_snapshots,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- payload fixtures


FILES = sorted(polymarket_manifest())


def load(rel: str) -> Any:
    return json.loads(polymarket_fixture(rel).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- helpers


def millis(ts: datetime) -> int:
    return (ts - EPOCH) // timedelta(milliseconds=1)


def iso(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def canon(value: Any) -> str:
    text = format(Decimal(str(value)).normalize(), "f")
    return "0" if text in ("-0", "") else text


def expected_fill_id(
    tx: str | None,
    token: str,
    side: str,
    price: Any,
    size: Any,
    wallet: str | None,
    ts_ms: int | None = None,
) -> str:
    """The documented trade-id rule, re-implemented from the module docstring."""
    fields = ["pm-fill-v1", (tx or "").lower(), token, side, canon(price), canon(size)]
    fields.append((wallet or "").lower())
    if not tx:
        fields.append(str(ts_ms))
    return "pmf1_" + hashlib.sha256("|".join(fields).encode()).hexdigest()[:32]


def only(conv: Converted, **counts: int) -> None:
    """Assert the number of records per table (absent names mean zero)."""
    actual = {
        "markets": len(conv.markets),
        "prices": len(conv.prices),
        "orderbooks": len(conv.orderbooks),
        "trades": len(conv.trades),
        "resolutions": len(conv.resolutions),
        "rejects": len(conv.rejects),
    }
    expected = {name: counts.get(name, 0) for name in actual}
    assert actual == expected, [str(r) for r in conv.rejects][:5]


def is_token(value: str | None) -> bool:
    return isinstance(value, str) and value.isdigit()


# --------------------------------------------------------------------------- checkers


def check_book(raw: dict[str, Any], snap: OrderbookSnapshot, *, worst_first: bool) -> None:
    assert snap.token_id == raw["asset_id"]
    assert millis(snap.ts) == int(raw["timestamp"])
    bids = [(float(lv["price"]), float(lv["size"])) for lv in raw["bids"]]
    asks = [(float(lv["price"]), float(lv["size"])) for lv in raw["asks"]]
    assert snap.bids == sorted(bids, key=lambda lv: lv[0], reverse=True)
    assert snap.asks == sorted(asks, key=lambda lv: lv[0])
    if worst_first:  # real captures: the best level is the LAST one
        if bids:
            assert float(raw["bids"][-1]["price"]) == max(p for p, _ in bids)
        if asks:
            assert float(raw["asks"][-1]["price"]) == min(p for p, _ in asks)
    if bids:
        assert snap.bids[0][0] == max(float(lv["price"]) for lv in raw["bids"])
    if asks:
        assert snap.asks[0][0] == min(float(lv["price"]) for lv in raw["asks"])
    if bids and asks:
        best_bid = max(p for p, _ in bids)
        best_ask = min(p for p, _ in asks)
        assert snap.midpoint == pytest.approx((best_bid + best_ask) / 2)
        assert snap.spread == pytest.approx(best_ask - best_bid)
    else:
        assert snap.midpoint is None and snap.spread is None


def book_file(*, worst_first: bool, kind: str) -> Callable[[Any], None]:
    def check(raw: Any) -> None:
        assert detect_kind(raw) == kind
        conv = convert(raw)
        only(conv, orderbooks=1)
        check_book(raw, conv.orderbooks[0], worst_first=worst_first)

    return check


def expected_gamma_resolution(raw: dict[str, Any]) -> tuple[str, Any] | None:
    """('winner', (token, outcome)) / ('5050', None) / ('reject', None) / None (open)."""
    if not raw["closed"]:
        return None
    if "outcomePrices" not in raw:
        return ("reject", None)
    prices = [Decimal(p) for p in json.loads(raw["outcomePrices"])]
    ones = [i for i, p in enumerate(prices) if p == 1]
    if len(ones) == 1 and all(p == 0 for i, p in enumerate(prices) if i != ones[0]):
        tokens = json.loads(raw["clobTokenIds"])
        outcomes = json.loads(raw["outcomes"])
        return ("winner", (tokens[ones[0]], outcomes[ones[0]]))
    if len(prices) == 2 and all(p == Decimal("0.5") for p in prices):
        return ("5050", None)
    return ("reject", None)


def check_gamma_market(raw: dict[str, Any], rec: MarketRecord) -> None:
    assert rec.condition_id == raw["conditionId"]
    assert rec.question == raw["question"]
    assert rec.slug == raw.get("slug")
    assert rec.market_type == raw.get("marketType")
    assert rec.active is raw["active"] and rec.closed is raw["closed"]
    if "outcomes" in raw:
        assert rec.outcomes == json.loads(raw["outcomes"])
    else:
        assert rec.outcomes is None
    tokens = raw.get("clobTokenIds")
    if isinstance(tokens, str):  # the wire format: a JSON string inside the JSON
        assert rec.clob_token_ids == json.loads(tokens)
    else:  # hand-edited fixture with a real array
        assert rec.clob_token_ids == tokens
    assert rec.clob_token_ids is None or all(is_token(t) for t in rec.clob_token_ids)
    expected_end = raw.get("endDateIso") or (raw["endDate"][:10] if "endDate" in raw else None)
    assert rec.end_date_iso == expected_end
    assert rec.created_at == (iso(raw["createdAt"]) if "createdAt" in raw else None)
    assert rec.updated_at == (iso(raw["updatedAt"]) if "updatedAt" in raw else None)


def check_gamma_markets(markets: list[dict[str, Any]], conv: Converted) -> None:
    """Markets are Gamma markets; resolutions/rejects follow the documented rule."""
    assert [m.condition_id for m in conv.markets] == [m["conditionId"] for m in markets]
    for raw, rec in zip(markets, conv.markets, strict=True):
        check_gamma_market(raw, rec)
    expected_res = []
    expected_rejects = []
    for raw in markets:
        exp = expected_gamma_resolution(raw)
        if exp is None:
            continue
        if exp[0] == "reject":
            expected_rejects.append(raw["conditionId"])
        else:
            expected_res.append((raw, exp))
    assert [r.payload["conditionId"] for r in conv.rejects] == expected_rejects
    assert all(r.kind == "gamma_market" for r in conv.rejects)
    assert all(r.reason.startswith("resolution:") for r in conv.rejects)
    assert len(conv.resolutions) == len(expected_res)
    for res, (raw, exp) in zip(conv.resolutions, expected_res, strict=True):
        assert res.condition_id == raw["conditionId"]
        assert res.detection_method == "gamma_outcome_prices"
        if exp[0] == "winner":
            assert (res.winner_token_id, res.outcome) == exp[1]
            assert res.payout_price == 1.0
        else:
            assert res.winner_token_id is None and res.payout_price == 0.5
        closed_time = raw.get("closedTime") or raw.get("umaEndDate")
        assert res.resolved_at == (iso(closed_time) if closed_time else None)
        assert res.status == raw.get("umaResolutionStatus", "resolved")


def gamma_market_file(raw: Any) -> None:
    assert detect_kind(raw) == "gamma_market"
    check_gamma_markets([raw], convert(raw))


def gamma_event_file(raw: Any) -> None:
    events = raw if isinstance(raw, list) else [raw]
    assert detect_kind(raw) == ("list" if isinstance(raw, list) else "gamma_event")
    assert all(detect_kind(e) == "gamma_event" for e in events)
    conv = convert(raw)
    check_gamma_markets([m for e in events for m in e["markets"]], conv)


def check_clob_markets(items: list[dict[str, Any]], conv: Converted) -> None:
    good = [m for m in items if m["condition_id"]]
    assert [m.condition_id for m in conv.markets] == [m["condition_id"] for m in good]
    for raw, rec in zip(good, conv.markets, strict=True):
        real = [t for t in raw["tokens"] if t["token_id"]]
        assert rec.question == raw["question"]
        assert rec.slug == (raw["market_slug"] or None)
        assert rec.clob_token_ids == ([t["token_id"] for t in real] or None)
        assert rec.outcomes == ([t["outcome"] for t in real] or None)
        assert rec.active is raw["active"] and rec.closed is raw["closed"]
        assert rec.end_date_iso == (raw["end_date_iso"][:10] if raw["end_date_iso"] else None)
    expected_res: list[tuple[str, str | None, float]] = []
    no_winner: list[str] = []
    for raw in good:
        if not raw["closed"]:
            continue
        winners = [t for t in raw["tokens"] if t["winner"]]
        if len(winners) == 1:
            expected_res.append((raw["condition_id"], winners[0]["token_id"], 1.0))
        elif raw["is_50_50_outcome"]:
            expected_res.append((raw["condition_id"], None, 0.5))
        else:
            no_winner.append(raw["condition_id"])
    got = [(r.condition_id, r.winner_token_id, r.payout_price) for r in conv.resolutions]
    assert got == expected_res
    for res in conv.resolutions:
        assert res.detection_method in ("clob_tokens_winner", "clob_is_50_50_outcome")
        if res.winner_token_id is None:  # 50/50
            assert res.outcome is None and res.payout_price == 0.5
    empty_ids = [r for r in conv.rejects if r.reason == "field 'condition_id' is empty"]
    assert len(empty_ids) == len(items) - len(good)
    unresolved = [r for r in conv.rejects if r.reason.startswith("resolution:")]
    assert [r.payload["condition_id"] for r in unresolved] == no_winner
    assert len(conv.rejects) == len(empty_ids) + len(unresolved)
    assert all(r.kind == "clob_market" for r in conv.rejects)


def clob_market_file(raw: Any) -> None:
    assert detect_kind(raw) == "clob_market"
    check_clob_markets([raw], convert(raw))


def clob_markets_page_file(raw: Any) -> None:
    assert detect_kind(raw) == "page"
    items = raw["data"]
    assert all(detect_kind(m) == "clob_market" for m in items)
    conv = convert(raw)
    check_clob_markets(items, conv)
    # the quirks this page must exercise
    assert any(not t["token_id"] for m in items for t in m["tokens"])
    assert any(m.clob_token_ids is None for m in conv.markets)


def clob_markets_page_with_5050(raw: Any) -> None:
    clob_markets_page_file(raw)
    conv = convert(raw)
    fifty = [r for r in conv.resolutions if r.payout_price == 0.5]
    assert len(fifty) == sum(1 for m in raw["data"] if m["closed"] and m["is_50_50_outcome"])
    assert fifty and all(r.winner_token_id is None for r in fifty)
    assert any(not m["condition_id"] for m in raw["data"])


def data_trades_file(raw: Any) -> None:
    items = raw if isinstance(raw, list) else raw["data"]
    assert all(detect_kind(t) == "data_trade" for t in items)
    conv = convert(raw)
    only(conv, trades=len(items))
    for item, trade in zip(items, conv.trades, strict=True):
        token = item.get("asset", item.get("token_id"))
        assert trade.token_id == token
        assert trade.side == item["side"]
        assert trade.price == float(item["price"])
        assert trade.size == float(item["size"])
        assert millis(trade.ts) == int(item["timestamp"]) * 1000  # seconds on the wire
        tx = item.get("transactionHash", item.get("transaction_hash"))
        wallet = item.get("proxyWallet", item.get("proxy_wallet"))
        expected = expected_fill_id(tx, token, item["side"], item["price"], item["size"], wallet)
        assert trade.trade_id == expected
    assert len({t.trade_id for t in conv.trades}) == len(items)
    assert [t.trade_id for t in convert(copy.deepcopy(raw)).trades] == [
        t.trade_id for t in conv.trades
    ]


def clob_trade_file(raw: Any) -> None:
    items = raw.get("data", [raw])
    assert all(detect_kind(t) == "clob_trade" for t in items)
    conv = convert(raw)
    only(conv, trades=len(items))
    for item, trade in zip(items, conv.trades, strict=True):
        assert trade.trade_id == item["id"]  # a real id is used verbatim
        assert trade.token_id == item["asset_id"]
        assert trade.side == item["side"]
        assert trade.price == float(item["price"])
        assert trade.size == float(item["size"])
        match_time = item["match_time"]
        if match_time.isdigit():
            assert millis(trade.ts) == int(match_time) * 1000
        else:
            assert trade.ts == iso(match_time)


def ws_last_trade_price_file(raw: Any) -> None:
    assert detect_kind(raw) == "ws_last_trade_price"
    conv = convert(raw)
    only(conv, prices=1, trades=1)
    price, trade = conv.prices[0], conv.trades[0]
    assert price.token_id == trade.token_id == raw["asset_id"]
    assert price.price == float(raw["price"])  # the trade price
    assert millis(price.ts) == millis(trade.ts) == int(raw["timestamp"])
    assert (trade.side, trade.price, trade.size) == (
        raw["side"],
        float(raw["price"]),
        float(raw["size"]),
    )
    assert trade.trade_id == expected_fill_id(
        None, raw["asset_id"], raw["side"], raw["price"], raw["size"], None, int(raw["timestamp"])
    )


def ws_price_change_new_file(raw: Any) -> None:
    assert detect_kind(raw) == "ws_price_change"
    conv = convert(raw)
    last: dict[str, dict[str, Any]] = {}
    for entry in raw["price_changes"]:
        last[entry["asset_id"]] = entry
    only(conv, prices=len(last))
    for snap, (asset, entry) in zip(conv.prices, last.items(), strict=True):
        assert snap.token_id == asset
        assert millis(snap.ts) == int(raw["timestamp"])
        mid = (float(entry["best_bid"]) + float(entry["best_ask"])) / 2
        assert snap.price == pytest.approx(mid)


def ws_price_change_flat_file(raw: Any) -> None:
    assert detect_kind(raw) == "ws_price_change"
    assert "price_changes" not in raw and "best_bid" not in raw
    conv = convert(raw)
    only(conv, rejects=1)
    assert conv.rejects[0].kind == "ws_price_change"
    assert conv.rejects[0].reason.startswith(NO_TOP_OF_BOOK)
    assert conv.rejects[0].payload is raw


def ws_best_bid_ask_file(raw: Any) -> None:
    assert detect_kind(raw) == "ws_best_bid_ask"
    conv = convert(raw)
    only(conv, prices=1)
    snap = conv.prices[0]
    assert snap.token_id == raw["asset_id"]
    assert millis(snap.ts) == int(raw["timestamp"])
    assert snap.price == pytest.approx((float(raw["best_bid"]) + float(raw["best_ask"])) / 2)
    assert snap.volume_24h is None


def ws_tick_size_file(raw: Any) -> None:
    assert detect_kind(raw) == "ws_tick_size_change"
    conv = convert(raw)
    only(conv, rejects=1)
    assert conv.rejects[0].kind == "ws_tick_size_change"
    assert "stores no tick sizes" in conv.rejects[0].reason


def ws_new_market_file(raw: Any) -> None:
    assert detect_kind(raw) == "ws_new_market"
    conv = convert(raw)
    only(conv, markets=1)
    rec = conv.markets[0]
    assert rec.condition_id == raw["condition_id"] == raw["market"]
    assert rec.question == raw["question"]
    assert rec.slug == raw["slug"]
    assert rec.outcomes == raw["outcomes"]
    assert rec.clob_token_ids == raw["clob_token_ids"] == raw["assets_ids"]
    assert rec.active is raw["active"] and rec.closed is False


def ws_market_resolved_file(raw: Any) -> None:
    assert detect_kind(raw) == "ws_market_resolved"
    conv = convert(raw)
    only(conv, resolutions=1)
    res = conv.resolutions[0]
    assert res.condition_id == raw["market"]
    assert res.winner_token_id == raw["winning_asset_id"]
    assert res.outcome == raw["winning_outcome"]
    assert res.payout_price == 1.0
    assert millis(res.resolved_at) == int(raw["timestamp"])  # type: ignore[arg-type]
    assert res.detection_method == "ws_market_resolved"
    assert res.status == "resolved"


def zero_zero_legacy_file(raw: Any) -> None:
    assert json.loads(raw["outcomePrices"]) == ["0", "0"] and raw["closed"]
    gamma_market_file(raw)
    conv = convert(raw)
    only(conv, markets=1, rejects=1)
    assert '["0","0"]' in conv.rejects[0].reason
    assert "not a resolution" in conv.rejects[0].reason


def scalar_legacy_file(raw: Any) -> None:
    gamma_market_file(raw)
    conv = convert(raw)
    only(conv, markets=1, rejects=1)
    assert "no single-winner resolution" in conv.rejects[0].reason
    assert "scalar" in conv.rejects[0].reason


def closed_binary_file(raw: Any) -> None:
    gamma_market_file(raw)
    only(convert(raw), markets=1, resolutions=1)


def past_end_date_file(raw: Any) -> None:
    assert "endDateIso" not in raw and raw["active"] and not raw["closed"]
    gamma_market_file(raw)
    rec = convert(raw).markets[0]
    assert rec.end_date_iso == raw["endDate"][:10]


def market_slug_file(raw: Any) -> None:
    # hand-edited fixture: clobTokenIds is a real array here, not a JSON string
    assert isinstance(raw["clobTokenIds"], list)
    gamma_market_file(raw)


def closed_clob_market_file(raw: Any) -> None:
    clob_market_file(raw)
    conv = convert(raw)
    only(conv, markets=1, resolutions=1)
    winner = next(t for t in raw["tokens"] if t["winner"])
    assert conv.resolutions[0].winner_token_id == winner["token_id"]
    assert conv.resolutions[0].outcome == winner["outcome"]


V2_UNRESOLVED = {
    "initialized",
    "posed",
    "proposed",
    "challenged",
    "reproposed",
    "disputed",
    "active",
    "arbitration",
}
"""The documented v2 statuses before ``resolved`` (docs: "Get resolution state")."""


def check_v2_row(row: dict[str, Any], res: ResolutionRecord) -> None:
    """One data-API v2 row against its record, from the documented schema: status kept
    (lower-case), a payout only from payouts in micro-USDC, never a winner token (the
    row has no token ids), ``resolved_at`` from the RFC3339 field."""
    assert detect_kind(row) == "data_resolution"
    assert res.condition_id == row["condition_id"] and res.status == row["status"]
    assert res.detection_method == "data_api_resolutions"
    assert res.winner_token_id is None and res.outcome is None
    payouts = row.get("payouts")
    if row["status"] in V2_UNRESOLVED:
        assert payouts is None and res.payout_price is None and res.resolved_at is None
        return
    assert row["status"] == "resolved"
    if payouts is None:
        assert res.payout_price is None
    elif sorted(payouts) == [0, 1_000_000]:
        assert res.payout_price == 1.0
    else:
        assert payouts == [500_000, 500_000] and res.payout_price == 0.5
    assert res.resolved_at == iso(row["resolved_at"])


def v2_by_condition_file(raw: Any) -> None:
    assert detect_kind(raw) == "page"
    rows = raw["data"]
    conv = convert(raw)
    only(conv, resolutions=len(rows))
    for row, res in zip(rows, conv.resolutions, strict=True):
        check_v2_row(row, res)
    # every documented condition-keyed status is there, each with and without the
    # optional fields around it
    assert {r["status"] for r in rows} == V2_UNRESOLVED | {"resolved"}
    paid = [r for r in conv.resolutions if r.payout_price is not None]
    assert sorted(r.payout_price for r in paid) == [0.5, 1.0, 1.0]  # type: ignore[type-var]


def v2_by_question_file(raw: Any) -> None:
    rows = raw["data"]
    conv = convert(raw)
    only(conv, rejects=len(rows))
    for row, reject in zip(rows, conv.rejects, strict=True):
        assert detect_kind(row) == "data_resolution" and "condition_id" not in row
        assert reject.kind == "data_resolution"
        assert reject.reason.startswith(f"question-keyed row (question_id {row['question_id']})")
        assert "stored by condition" in reject.reason


def v2_lifecycle_file(raw: Any) -> None:
    rows = [page["data"][0] for page in raw]
    conv = convert(raw)
    only(conv, resolutions=len(rows))
    assert {r.condition_id for r in conv.resolutions} == {rows[0]["condition_id"]}
    for row, res in zip(rows, conv.resolutions, strict=True):
        check_v2_row(row, res)
    statuses = [r.status for r in conv.resolutions]  # what arrived, stale polls too
    assert statuses[statuses.index("disputed") + 1 :] == [
        "challenged",
        "resolved",
        "disputed",
        "proposed",
    ]


EXPECTATIONS: dict[str, Callable[[Any], None]] = {
    # CLOB /book (real) and WebSocket book events (real): worst-first levels
    "nautilus_trader/py_http_responses__book.json": book_file(worst_first=True, kind="clob_book"),
    "nautilus_trader/py_ws_messages__book.json": book_file(worst_first=True, kind="ws_book"),
    "nautilus_trader/rs_ws_book_snapshot_captured.json": book_file(
        worst_first=True, kind="ws_book"
    ),
    "polymarket-client-sdk-ext/orderbook.json": book_file(worst_first=True, kind="clob_book"),
    "polymarket-client-sdk-ext/orderbook_response.json": book_file(
        worst_first=True, kind="clob_book"
    ),
    # one-sided (no asks), last_trade_price "" (real capture)
    "nautilus_trader/rs_clob_book_response_empty_ask.json": book_file(
        worst_first=True, kind="clob_book"
    ),
    # synthetic book (short token id, best-first asks): still sorted correctly
    "nautilus_trader/rs_clob_book_response.json": book_file(worst_first=False, kind="clob_book"),
    # CLOB /markets
    "nautilus_trader/py_http_responses__market.json": clob_market_file,
    "polymarket-client-sdk-ext/market.json": clob_market_file,
    "nautilus_trader/py_http_responses__markets.json": clob_markets_page_file,
    "polymarket-client-sdk-ext/markets_response.json": clob_markets_page_with_5050,
    "nautilus_trader/rs_clob_market_closed_binary_accepting_false.json": closed_clob_market_file,
    "nautilus_trader/rs_clob_market_closed_binary_accepting_true.json": closed_clob_market_file,
    # Gamma markets and events
    "nautilus_trader/rs_gamma_market.json": gamma_market_file,
    "nautilus_trader/py_http_responses__market_slug.json": market_slug_file,
    "nautilus_trader/rs_gamma_market_past_end_date_open.json": past_end_date_file,
    "nautilus_trader/rs_gamma_market_closed_binary_accepting_false.json": closed_binary_file,
    "nautilus_trader/rs_gamma_market_closed_binary_accepting_true.json": closed_binary_file,
    "nautilus_trader/rs_gamma_market_closed_nonbinary_legacy.json": scalar_legacy_file,
    "nautilus_trader/rs_gamma_market_closed_zero_zero_legacy.json": zero_zero_legacy_file,
    "nautilus_trader/rs_gamma_event.json": gamma_event_file,
    "polymarket-client-sdk-ext/another-us-strike-on-venezuela-by.json": gamma_event_file,
    "polymarket-client-sdk-ext/nobel-peace-prize-winner-2026-139.json": gamma_event_file,
    # trades
    "nautilus_trader/py_http_responses__trades.json": data_trades_file,
    "nautilus_trader/rs_data_api_trades_response.json": data_trades_file,
    "nautilus_trader/py_ws_messages__trades.json": clob_trade_file,
    "nautilus_trader/rs_http_trades_page.json": clob_trade_file,
    # WebSocket market channel
    "nautilus_trader/py_ws_messages__last_trade_price.json": ws_last_trade_price_file,
    "nautilus_trader/py_ws_messages__price_change.json": ws_price_change_flat_file,
    "nautilus_trader/py_ws_messages__price_change_v2.json": ws_price_change_new_file,
    "nautilus_trader/rs_ws_market_price_change_msg.json": ws_price_change_new_file,
    "nautilus_trader/rs_ws_market_best_bid_ask_msg.json": ws_best_bid_ask_file,
    "nautilus_trader/py_ws_messages__tick_size_change.json": ws_tick_size_file,
    "nautilus_trader/rs_ws_market_new_market_msg.json": ws_new_market_file,
    "nautilus_trader/rs_ws_market_resolved_msg.json": ws_market_resolved_file,
    # data API v2 /v2/resolutions (hand-written from the documented schema)
    "data_api_v2/resolutions_by_condition.json": v2_by_condition_file,
    "data_api_v2/resolutions_by_question.json": v2_by_question_file,
    "data_api_v2/resolution_lifecycle_one_condition.json": v2_lifecycle_file,
}


# --------------------------------------------------------------------------- per-file tests


def test_fixtures_are_the_listed_files_unchanged() -> None:
    on_disk = sorted(
        p.relative_to(POLYMARKET_FIXTURES).as_posix() for p in POLYMARKET_FIXTURES.rglob("*.json")
    )
    assert on_disk == FILES, "add new payload files to tests/fixtures/polymarket/SHA256SUMS"
    for rel, digest in polymarket_manifest().items():
        assert hashlib.sha256(polymarket_fixture(rel).read_bytes()).hexdigest() == digest, rel
    for folder in {POLYMARKET_FIXTURES / rel.split("/")[0] for rel in FILES}:
        assert (folder / "PROVENANCE.txt").is_file(), folder


@pytest.mark.parametrize("rel", FILES)
def test_shared_file(rel: str) -> None:
    check = EXPECTATIONS.get(rel)
    if check is None:
        pytest.fail(f"no test expectation for shared payload file {rel}: add one to EXPECTATIONS")
    check(load(rel))


def test_every_expectation_has_its_file() -> None:
    assert sorted(set(EXPECTATIONS) - set(FILES)) == []


@pytest.mark.parametrize("rel", FILES)
def test_shared_file_invariants(rel: str) -> None:
    """Whatever a file yields: token ids are digit strings, times are UTC, rejects explain."""
    conv = convert(load(rel))
    token_ids = (
        [p.token_id for p in conv.prices]
        + [b.token_id for b in conv.orderbooks]
        + [t.token_id for t in conv.trades]
        + [r.winner_token_id for r in conv.resolutions if r.winner_token_id is not None]
        + [t for m in conv.markets for t in (m.clob_token_ids or [])]
    )
    assert all(is_token(t) for t in token_ids)
    stamps = [p.ts for p in conv.prices] + [b.ts for b in conv.orderbooks]
    stamps += [t.ts for t in conv.trades]
    assert all(ts.utcoffset() == timedelta(0) for ts in stamps)
    assert all(isinstance(r, Reject) and r.reason and r.kind in KINDS for r in conv.rejects)
    assert conv.record_count + len(conv.rejects) > 0  # nothing vanishes silently


# --------------------------------------------------------------------------- timestamps


def test_timestamp_seconds_and_millis_by_magnitude() -> None:
    secs = parse_timestamp(1729000180)
    assert secs == datetime(2024, 10, 15, 13, 49, 40, tzinfo=UTC)
    assert parse_timestamp("1729000180") == secs
    assert parse_timestamp(1729000180000) == secs
    assert parse_timestamp("1729000180000") == secs
    assert parse_timestamp("2024-10-15T13:49:40Z") == secs
    assert millis(parse_timestamp("1728799418260")) == 1728799418260  # exact, no float drift
    assert parse_timestamp(99_999_999_999).year == 5138  # just below 1e11: seconds
    assert parse_timestamp(100_000_000_000) == datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC)


def test_timestamp_iso_forms() -> None:
    assert parse_timestamp("2026-03-19 23:20:15+00") == datetime(
        2026, 3, 19, 23, 20, 15, tzinfo=UTC
    )
    naive = parse_timestamp("2026-05-15 22:16:02.633047")
    assert naive == datetime(2026, 5, 15, 22, 16, 2, 633047, tzinfo=UTC)
    assert parse_timestamp("2024-01-01T02:00:00+02:00") == datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("bad", [0, -5, "", "  ", "soon", 10**14, True, None, "nan", [1]])
def test_timestamp_rejects(bad: object) -> None:
    with pytest.raises(PayloadError) as info:
        parse_timestamp(bad, "match_time")
    assert "'match_time'" in info.value.reason


# --------------------------------------------------------------------------- prices


def _v3(*entries: dict[str, str]) -> dict[str, Any]:
    return {
        "event_type": "price_change",
        "market": "0x" + "ab" * 32,
        "timestamp": "1760000000123",
        "price_changes": list(entries),
    }


A1 = "1" * 77
A2 = "2" * 76


def test_price_change_changes_shape_rejected() -> None:
    # late 2024 to mid-September 2025: top-level asset_id + changes[] (hand-made)
    msg = {
        "event_type": "price_change",
        "asset_id": A1,
        "market": "0x" + "cd" * 32,
        "changes": [{"price": "0.4", "side": "BUY", "size": "10"}],
        "timestamp": "1730000000000",
        "hash": "ab" * 20,
    }
    conv = convert(msg)
    only(conv, rejects=1)
    assert conv.rejects[0].reason.startswith(NO_TOP_OF_BOOK)
    assert "changes[]" in conv.rejects[0].reason
    with pytest.raises(PayloadError, match="no top-of-book price"):
        price_change_to_snapshots(msg)


def test_price_change_last_entry_per_asset_and_one_sided() -> None:
    msg = _v3(
        {
            "asset_id": A1,
            "price": "0.4",
            "side": "BUY",
            "size": "5",
            "best_bid": "0.4",
            "best_ask": "0.6",
        },
        {
            "asset_id": A2,
            "price": "0.5",
            "side": "BUY",
            "size": "5",
            "best_bid": "0.5",
            "best_ask": "1",
        },
        {
            "asset_id": A1,
            "price": "0.45",
            "side": "BUY",
            "size": "5",
            "best_bid": "0.45",
            "best_ask": "0.5",
        },
    )
    conv = convert(msg)
    only(conv, prices=1, rejects=1)
    assert conv.prices[0].token_id == A1
    assert conv.prices[0].price == pytest.approx((0.45 + 0.5) / 2)  # last entry of A1
    assert millis(conv.prices[0].ts) == 1760000000123
    assert A2 in conv.rejects[0].reason and "no asks" in conv.rejects[0].reason
    with pytest.raises(PayloadError, match="one-sided"):
        price_change_to_snapshots(msg)


def test_price_change_new_shape_without_best_rejected() -> None:
    conv = convert(_v3({"asset_id": A1, "price": "0.4", "side": "BUY", "size": "5"}))
    only(conv, rejects=1)
    assert NO_TOP_OF_BOOK in conv.rejects[0].reason


@pytest.mark.parametrize(
    ("bid", "ask", "words"),
    [
        ("", "0.5", "best_bid is missing"),
        ("0.4", "", "best_ask is missing"),
        ("0", "0.3", "no bids"),
    ],
)
def test_best_bid_ask_one_sided_rejected(bid: str, ask: str, words: str) -> None:
    msg = {"event_type": "best_bid_ask", "asset_id": A1, "best_bid": bid, "best_ask": ask}
    msg["timestamp"] = "1766789469958"
    conv = convert(msg)
    only(conv, rejects=1)
    assert words in conv.rejects[0].reason


# --------------------------------------------------------------------------- trades


def test_data_trade_snake_case_matches_camel_case() -> None:
    # snake_case shape as in nautilus' data_api_trades_captured_response.json (no fixture)
    snake = {
        "data": [
            {
                "proxy_wallet": "0x1111111111111111111111111111111111111111",
                "side": "BUY",
                "token_id": A1,
                "condition_id": "0x" + "cc" * 32,
                "size": 244,
                "price": 0.2972581967,
                "timestamp": 1786179726,
                "outcome_index": 1,
                "transaction_hash": "0x" + "CC" * 32,
            }
        ],
        "pagination": {"limit": 500, "offset": 0, "has_more": False, "next_cursor": None},
    }
    camel = {
        "proxyWallet": "0x1111111111111111111111111111111111111111",
        "side": "BUY",
        "asset": A1,
        "conditionId": "0x" + "cc" * 32,
        "size": "244.0",
        "price": "0.29725819670",
        "timestamp": 1786179726000,  # milliseconds this time
        "outcomeIndex": 1,
        "transactionHash": "0x" + "cc" * 32,
    }
    assert detect_kind(snake) == "page"
    data_trades_file(snake)
    a, b = convert(snake).trades[0], convert(camel).trades[0]
    assert a == b  # same fill: same id, time, price, size, whatever the casing and units


def test_identical_fills_in_one_payload_get_distinct_ids() -> None:
    wallet, tx = "0x" + "22" * 20, "0x" + "ee" * 32
    fill: dict[str, Any] = {
        "proxyWallet": wallet,
        "side": "SELL",
        "asset": A2,
        "conditionId": "0x" + "dd" * 32,
        "size": 10,
        "price": 0.5,
        "timestamp": 1729000000,
        "transactionHash": tx,
    }
    conv = convert([fill, dict(fill), dict(fill, size=11)])
    ids = [t.trade_id for t in conv.trades]
    base = expected_fill_id(tx, A2, "SELL", 0.5, 10, wallet)
    assert ids[0] == base and ids[1] == base + "-2" and ids[2] != base
    assert [t.trade_id for t in convert([fill, dict(fill)]).trades] == ids[:2]  # deterministic


def test_derive_fill_id_canonical_numbers() -> None:
    kwargs: dict[str, Any] = {"transaction_hash": "0xAB", "token_id": A1, "side": "BUY"}
    one = derive_fill_id(price="0.5000", size="100.0", **kwargs)
    assert one == derive_fill_id(price=0.5, size=100, **kwargs)
    assert one == derive_fill_id(price="5E-1", size="1E+2", **kwargs)
    assert one != derive_fill_id(price="0.5", size="100", **{**kwargs, "side": "SELL"})
    with pytest.raises(PayloadError, match="transaction hash or a timestamp"):
        derive_fill_id(transaction_hash=None, token_id=A1, side="BUY", price=1, size=1)


def test_clob_trade_failed_rejected_and_missing_id_derived() -> None:
    raw = load("nautilus_trader/py_ws_messages__trades.json")
    failed = dict(raw, status="FAILED")
    conv = convert(failed)
    only(conv, rejects=1)
    assert "FAILED" in conv.rejects[0].reason
    no_id = {k: v for k, v in raw.items() if k != "id"}
    trade = convert(no_id).trades[0]
    assert trade.trade_id == expected_fill_id(
        raw["transaction_hash"], raw["asset_id"], raw["side"], raw["price"], raw["size"], None
    )
    ws = dict(raw, event_type="trade", type="TRADE")
    assert detect_kind(ws) == "ws_trade"
    assert convert(ws).trades == convert(raw).trades


# --------------------------------------------------------------------------- resolutions


def test_gamma_fifty_fifty() -> None:
    raw = copy.deepcopy(load("nautilus_trader/rs_gamma_market_closed_binary_accepting_true.json"))
    raw["outcomePrices"] = '["0.5", "0.5"]'
    res = gamma_market_to_resolution(raw)
    assert isinstance(res, ResolutionRecord)
    assert res.winner_token_id is None and res.outcome is None and res.payout_price == 0.5
    conv = convert(raw)
    only(conv, markets=1, resolutions=1)


def test_gamma_closed_without_outcome_prices_and_open_market() -> None:
    raw = copy.deepcopy(load("nautilus_trader/rs_gamma_market_closed_binary_accepting_false.json"))
    del raw["outcomePrices"]
    with pytest.raises(PayloadError, match="without 'outcomePrices'"):
        gamma_market_to_resolution(raw)
    assert gamma_market_to_resolution(load("nautilus_trader/rs_gamma_market.json")) is None


def test_clob_market_closed_without_winner() -> None:
    raw = copy.deepcopy(load("nautilus_trader/rs_clob_market_closed_binary_accepting_true.json"))
    for token in raw["tokens"]:
        token["winner"] = False
    with pytest.raises(PayloadError) as info:
        clob_market_to_resolution(raw)
    assert info.value.kind == "clob_market" and "no token has winner=true" in info.value.reason
    raw["is_50_50_outcome"] = True
    res = clob_market_to_resolution(raw)
    assert res is not None and res.payout_price == 0.5 and res.winner_token_id is None


def _row(**fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "condition_id": "0x" + "ef" * 32,
        "outcomes": ["Yes", "No"],
        "clob_token_ids": [A1, A2],
        "resolved_at": "1778883350000",
    }
    row.update(fields)
    return row


def test_data_resolutions() -> None:
    # hand-made rows: no real capture of the data-API resolutions endpoint exists
    resolved = data_resolution_to_record(_row(status="resolved", payouts=["0", "1"]))
    assert (resolved.winner_token_id, resolved.outcome, resolved.payout_price) == (A2, "No", 1.0)
    assert resolved.status == "resolved" and resolved.detection_method == "data_api_resolutions"
    assert millis(resolved.resolved_at) == 1778883350000  # type: ignore[arg-type]
    fifty = data_resolution_to_record(_row(status="RESOLVED", payout_numerators=[1, 1]))
    assert (
        fifty.winner_token_id is None and fifty.payout_price == 0.5 and fifty.status == "resolved"
    )
    proposed = data_resolution_to_record(_row(status="proposed", payouts=None))
    assert proposed.status == "proposed" and proposed.payout_price is None
    disputed = data_resolution_to_record(_row(status="disputed", payouts='["1", "0"]'))
    assert disputed.status == "disputed" and disputed.winner_token_id == A1
    with pytest.raises(PayloadError, match="no single winner"):
        data_resolution_to_record(_row(status="resolved", payouts=[0.3, 0.7]))
    conv = convert({"data": [_row(payouts=[1, 0])]})
    only(conv, rejects=1)
    assert conv.rejects[0].kind == "data_resolution"
    assert conv.rejects[0].reason == "missing required field 'status'"


def _v2(**fields: Any) -> dict[str, Any]:
    """A condition-keyed data-API v2 row with the documented required fields."""
    row: dict[str, Any] = {
        "condition_id": "0x" + "5a" * 32,
        "status": "proposed",
        "extended_review": False,
        "was_disputed": False,
        "new_version_q": False,
        "transaction_hash": "0x" + "77" * 32,
        "log_index": "12",
        "last_update_timestamp": "2026-06-03T07:41:33Z",
    }
    row.update(fields)
    return row


@pytest.mark.parametrize("status", ["pending", "initialized", "proposed", "Disputed"])
def test_data_resolutions_v2_without_payouts_are_their_status(status: str) -> None:
    # Issue 23: these were "unrecognised object" rejects (no payouts key to go by).
    for row in (_v2(status=status), _v2(status=status, payouts=None)):
        assert detect_kind(row) == "data_resolution"
        conv = convert({"data": [row]})
        only(conv, resolutions=1)
        res = conv.resolutions[0]
        assert res.status == status.lower() and res.condition_id == row["condition_id"]
        assert (res.payout_price, res.winner_token_id, res.outcome, res.resolved_at) == (
            None,
            None,
            None,
            None,
        )


def test_data_resolutions_v2_pay_in_micro_usdc() -> None:
    won = data_resolution_to_record(_v2(status="resolved", payouts=[0, 1_000_000]))
    assert (won.payout_price, won.winner_token_id, won.status) == (1.0, None, "resolved")
    fifty = data_resolution_to_record(_v2(status="resolved", payouts=[500_000, 500_000]))
    assert fifty.payout_price == 0.5 and fifty.winner_token_id is None
    # numerators that are not micro-USDC are not read as a winner (an older row's
    # [1, 0] is: it has no v2 fields, see test_data_resolutions)
    with pytest.raises(PayloadError, match="micro-USDC per share") as info:
        data_resolution_to_record(_v2(status="resolved", payouts=[1, 0]))
    assert info.value.kind == "data_resolution"
    missing = convert(_v2(condition_id=None, question_id="0x" + "9b" * 32))
    only(missing, rejects=1)
    assert missing.rejects[0].reason.startswith("question-keyed row (question_id 0x9b9b")
    only(convert({"data": []}))  # a documented miss: nothing, and nothing rejected


# --------------------------------------------------------------------------- dispatch and errors


def test_detect_kind_covers_all_kinds() -> None:
    samples = {
        "gamma_market": load("nautilus_trader/rs_gamma_market.json"),
        "gamma_event": load("nautilus_trader/rs_gamma_event.json")[0],
        "clob_market": load("polymarket-client-sdk-ext/market.json"),
        "clob_book": load("polymarket-client-sdk-ext/orderbook.json"),
        "ws_book": load("nautilus_trader/py_ws_messages__book.json"),
        "ws_price_change": load("nautilus_trader/py_ws_messages__price_change_v2.json"),
        "ws_best_bid_ask": load("nautilus_trader/rs_ws_market_best_bid_ask_msg.json"),
        "ws_last_trade_price": load("nautilus_trader/py_ws_messages__last_trade_price.json"),
        "ws_market_resolved": load("nautilus_trader/rs_ws_market_resolved_msg.json"),
        "ws_new_market": load("nautilus_trader/rs_ws_market_new_market_msg.json"),
        "ws_tick_size_change": load("nautilus_trader/py_ws_messages__tick_size_change.json"),
        "ws_trade": {"event_type": "trade"},
        "ws_order": {"event_type": "order"},
        "clob_trade": load("nautilus_trader/py_ws_messages__trades.json"),
        "data_trade": load("nautilus_trader/py_http_responses__trades.json")[0],
        "data_resolution": _row(status="resolved", payouts=[1, 0]),
        "page": {"data": []},
        "list": [],
        "unknown": {"foo": 1},
    }
    assert set(samples) == KINDS
    for kind, payload in samples.items():
        assert detect_kind(payload) == kind, kind


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"foo": 1, "bar": 2}, "unrecognised object with keys [bar, foo]"),
        ({"event_type": "mystery"}, "unknown event_type 'mystery'"),
        ("PONG", "got str text"),
        (42, "got int"),
        (None, "got NoneType"),
    ],
)
def test_unknown_payload_rejected(payload: object, words: str) -> None:
    conv = convert(payload)
    only(conv, rejects=1)
    assert conv.rejects[0].kind == "unknown"
    assert words in conv.rejects[0].reason


def test_list_converted_item_by_item() -> None:
    book = load("nautilus_trader/py_http_responses__book.json")
    tick = load("nautilus_trader/py_ws_messages__tick_size_change.json")
    conv = convert([book, tick, {"nope": True}, [book]])
    only(conv, orderbooks=2, rejects=2)
    assert conv.rejects[0].payload is tick
    assert conv.rejects[1].payload == {"nope": True}
    assert convert({"data": None}) == Converted()  # documented miss


def test_missing_required_field_is_named() -> None:
    book = {k: v for k, v in load("nautilus_trader/py_http_responses__book.json").items()}
    del book["asset_id"]
    with pytest.raises(PayloadError) as info:
        book_to_snapshot(book)
    assert info.value.kind == "clob_book"
    assert info.value.reason == "missing required field 'asset_id'"
    market = dict(load("nautilus_trader/rs_gamma_market.json"))
    del market["question"]
    conv = convert(market)
    only(conv, rejects=1)
    assert conv.rejects[0].reason == "missing required field 'question'"
    assert conv.rejects[0].ident.startswith("conditionId=0x78443f96")


def test_validation_error_becomes_payload_error() -> None:
    book = copy.deepcopy(load("nautilus_trader/py_http_responses__book.json"))
    book["bids"][0]["price"] = "1.5"
    with pytest.raises(PayloadError) as info:
        book_to_snapshot(book)
    assert info.value.reason.startswith("invalid OrderbookSnapshot: bids[0][0]:")
    assert "less than or equal to 1" in info.value.reason
    book["bids"][0]["price"] = ""
    with pytest.raises(PayloadError, match="field 'price' is empty"):
        book_to_snapshot(book)
    market = dict(load("nautilus_trader/rs_gamma_market.json"), clobTokenIds='["0xnotdigits"]')
    with pytest.raises(PayloadError, match=r"clobTokenIds\[0\]"):
        gamma_market_to_record(market)


def test_extra_fields_ignored_and_token_ids_exact() -> None:
    book = dict(load("nautilus_trader/rs_ws_book_snapshot_captured.json"), brand_new_field={"x": 1})
    snap = convert(book).orderbooks[0]
    assert snap.token_id == book["asset_id"] and len(snap.token_id) == 75
    trade = dict(load("nautilus_trader/py_ws_messages__trades.json"), asset_id=int(A1))
    assert convert(trade).trades[0].token_id == A1  # an int id is written out exactly


def test_records_are_pmstore_models() -> None:
    conv = convert(
        [
            load("nautilus_trader/py_ws_messages__last_trade_price.json"),
            load("polymarket-client-sdk-ext/market.json"),
        ]
    )
    assert isinstance(conv.trades[0], TradeRecord)
    assert isinstance(conv.markets[0], MarketRecord)
    assert conv.record_count == 3
