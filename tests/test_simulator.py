"""The Polymarket simulator (``pmstore.simulator``, ``pmstore simulate``) over real sockets.

Every protocol rule, payload shape and fault switch is checked with an aiohttp
client against a running simulator. Nothing sleeps: a test waits on the
simulator's facts, or on a PING/PONG barrier (frames on a socket are written
in order, so every frame queued before the PONG arrives before it).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest
from conftest import polymarket_fixture

from pmstore.errors import ConfigurationError, WaitTimeoutError
from pmstore.polymarket import convert, detect_kind, gamma_market_to_resolution
from pmstore.polymarket.columnar import Columns, append_hot_line, convert_line
from pmstore.simulator import Chaos, Connection, Faults, Simulator, SimulatorConfig

aio = pytest.mark.asyncio

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TOKEN_RE = re.compile(r"[1-9][0-9]{73,77}")
CONDITION_RE = re.compile(r"0x[0-9a-f]{64}")
HASH_RE = re.compile(r"[0-9a-f]{40}")


class FakeClock:
    """A clock that moves only when told (Unix ms)."""

    def __init__(self, now: int = START_MS) -> None:
        self.now = now

    def __call__(self) -> int:
        self.now += 1  # every reading a distinct millisecond
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1000)


def config(**overrides: Any) -> SimulatorConfig:
    base: dict[str, Any] = {"markets": 12, "closed_markets": 3, "seed": 5, "clock": FakeClock()}
    base.update(overrides)
    return SimulatorConfig(**base)


@asynccontextmanager
async def running(**overrides: Any) -> AsyncIterator[Simulator]:
    async with Simulator(config(**overrides)) as sim:
        yield sim


class Client:
    """A market-channel client: the socket and what it received."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, message: Any) -> None:
        await self.ws.send_str(message if isinstance(message, str) else json.dumps(message))

    async def subscribe(
        self, assets: Iterable[str], *, dump: bool | None = True, custom: bool = True
    ) -> None:
        message: dict[str, Any] = {"assets_ids": list(assets), "type": "market"}
        if dump is not None:
            message["initial_dump"] = dump
        message["custom_feature_enabled"] = custom
        await self.send(message)

    async def receive(self) -> aiohttp.WSMessage:
        return await self.ws.receive(timeout=10)

    async def text(self) -> str:
        msg = await self.receive()
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        assert isinstance(msg.data, str)
        return msg.data

    async def until_pong(self) -> list[str]:
        """Every frame received before the answer to a PING sent now."""
        await self.send("PING")
        got = []
        while (text := await self.text()) != "PONG":
            got.append(text)
        return got

    async def closed(self) -> aiohttp.WSMessage:
        """The message that ends the socket (CLOSE, CLOSED or ERROR), skipping data."""
        while True:
            msg = await self.receive()
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                return msg


@asynccontextmanager
async def client(sim: Simulator, **ws_options: Any) -> AsyncIterator[Client]:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(sim.ws_url, max_msg_size=1 << 24, **ws_options) as ws,
    ):
        yield Client(ws)


def events(texts: Iterable[str]) -> list[dict[str, Any]]:
    """The event objects of data frames (arrays flattened)."""
    out: list[dict[str, Any]] = []
    for text in texts:
        parsed = json.loads(text)
        out.extend(parsed if isinstance(parsed, list) else [parsed])
    return out


async def get_json(url: str, **params: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as r:
        return r.status, await r.json()


async def post_books(sim: Simulator, body: Any) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sim.clob_url}/books", data=json.dumps(body)) as r,
    ):
        return r.status, await r.json()


def fixture_json(rel: str) -> Any:
    return json.loads(polymarket_fixture(rel).read_text())


# -- Gamma keyset discovery ----------------------------------------------------------------


@aio
async def test_keyset_pages_through_every_open_market_once() -> None:
    async with running(markets=57) as sim:
        url = f"{sim.gamma_url}/markets/keyset"
        seen: list[str] = []
        cursor: str | None = None
        pages = []
        while True:
            params = {"limit": "20", "closed": "false"}
            if cursor:
                params["after_cursor"] = cursor
            status, body = await get_json(url, **params)
            assert status == 200
            pages.append(len(body["markets"]))
            seen += [m["conditionId"] for m in body["markets"]]
            cursor = body.get("next_cursor")
            if cursor is None:
                break
        assert pages == [20, 20, 17]
        assert seen == [m.condition_id for m in sim.markets(closed=False)]
        # A market listed after the scan started comes after the last cursor.
        status, body = await get_json(url, limit="20", after_cursor=cursor_after(sim, 56))
        assert body == {"markets": []}
        info = await sim.list_market()
        status, body = await get_json(url, limit="20", after_cursor=cursor_after(sim, 56))
        assert [m["conditionId"] for m in body["markets"]] == [info.condition_id]
        assert "next_cursor" not in body


def cursor_after(sim: Simulator, index: int) -> str:
    from pmstore.simulator._gamma import encode_cursor

    return encode_cursor(int(sim.markets()[index].gamma_id))


@aio
async def test_keyset_caps_limit_and_refuses_offset_and_bad_values() -> None:
    async with running(markets=130) as sim:
        url = f"{sim.gamma_url}/markets/keyset"
        status, body = await get_json(url, limit="500")
        assert status == 200 and len(body["markets"]) == 100 and body["next_cursor"]
        status, body = await get_json(url)
        assert status == 200 and len(body["markets"]) == 20  # the default page
        for bad in (
            {"offset": "0"},
            {"limit": "ten"},
            {"limit": "0"},
            {"closed": "maybe"},
            {"after_cursor": "not-a-cursor"},
            {"condition_ids": ",".join(m.condition_id for m in sim.markets()[:101])},
        ):
            status, body = await get_json(url, **bad)
            assert status == 422, bad
            assert isinstance(body["error"], str) and body["error"]
        # Every request is ground truth, the refused ones too.
        assert [r.status for r in sim.requests] == [200, 200] + [422] * 6
        assert sim.requests[0].items == 100 and sim.requests[0].body is not None


@aio
async def test_keyset_filters_closed_condition_ids_slug_and_tag() -> None:
    async with running() as sim:
        url = f"{sim.gamma_url}/markets/keyset"
        _, body = await get_json(url, closed="true", limit="100")
        closed = body["markets"]
        assert [m["conditionId"] for m in closed] == [
            m.condition_id for m in sim.markets(closed=True)
        ]
        assert len(closed) == 3 and all(m["closed"] for m in closed)
        wanted = sim.markets()[2:5]
        _, body = await get_json(url, condition_ids=",".join(m.condition_id for m in wanted[:2]))
        assert [m["conditionId"] for m in body["markets"]] == [m.condition_id for m in wanted[:2]]
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                url, params=[("condition_ids", m.condition_id) for m in wanted]
            ) as response,
        ):
            repeated = await response.json()
        assert [m["conditionId"] for m in repeated["markets"]] == [m.condition_id for m in wanted]
        _, body = await get_json(url, slug=wanted[0].slug)
        assert [m["slug"] for m in body["markets"]] == [wanted[0].slug]
        tag = next(t for m in body["markets"] for t in m["events"][0]["tags"])
        _, body = await get_json(url, tag_id=tag["id"], limit="100")
        assert body["markets"] and all(
            any(t["id"] == tag["id"] for t in m["events"][0]["tags"]) for m in body["markets"]
        )
        expected = [m.condition_id for m in sim.markets(closed=False) if tag["slug"] in m.tags]
        assert [m["conditionId"] for m in body["markets"]] == expected


@aio
async def test_gamma_markets_have_gammas_shape_and_convert_like_real_ones() -> None:
    real = fixture_json("nautilus_trader/rs_gamma_market.json")
    real_closed = fixture_json("nautilus_trader/rs_gamma_market_closed_binary_accepting_false.json")
    async with running() as sim:
        _, body = await get_json(f"{sim.gamma_url}/markets/keyset", limit="100")
        _, closed = await get_json(f"{sim.gamma_url}/markets/keyset", limit="100", closed="true")
    markets = body["markets"] + closed["markets"]
    assert len(markets) == 15
    for market in markets:
        # Every field both have holds the same JSON type as in the real capture.
        reference = real_closed if market["closed"] else real
        shared = (set(market) & set(reference)) - {"feeType"}
        assert len(shared) >= 60
        for key in shared:
            assert type(market[key]) is type(reference[key]), key
        for key in ("outcomes", "outcomePrices", "clobTokenIds"):
            assert isinstance(market[key], str) and isinstance(json.loads(market[key]), list)
        tokens = json.loads(market["clobTokenIds"])
        assert len(tokens) == 2 and all(TOKEN_RE.fullmatch(t) for t in tokens)
        assert CONDITION_RE.fullmatch(market["conditionId"])
        assert detect_kind(market) == "gamma_market" == detect_kind(reference)
        got = convert(market)
        assert not got.rejects and len(got.markets) == 1
        assert got.markets[0].clob_token_ids == tokens
    for market in closed["markets"]:
        assert market["umaResolutionStatus"] == "resolved"
        assert sorted(json.loads(market["outcomePrices"])) == ["0", "1"]
        resolution = gamma_market_to_resolution(market)
        assert resolution is not None and resolution.status == "resolved"
        winner = json.loads(market["outcomePrices"]).index("1")
        assert resolution.winner_token_id == json.loads(market["clobTokenIds"])[winner]
    # The real closed capture converts the same way.
    assert gamma_market_to_resolution(real_closed) is not None


# -- CLOB books -----------------------------------------------------------------------------


def assert_worst_first(book: dict[str, Any]) -> None:
    bids = [Decimal(level["price"]) for level in book["bids"]]
    asks = [Decimal(level["price"]) for level in book["asks"]]
    assert bids == sorted(bids) and asks == sorted(asks, reverse=True)
    if bids and asks:
        assert bids[-1] < asks[-1]  # the best levels are the last ones, never crossed
    for level in book["bids"] + book["asks"]:
        assert set(level) == {"price", "size"}
        assert isinstance(level["price"], str) and isinstance(level["size"], str)
        assert Decimal(level["size"]) > 0


@aio
async def test_post_books_returns_real_shaped_books_in_request_order() -> None:
    real = fixture_json("nautilus_trader/rs_clob_book_response_empty_ask.json")
    async with running() as sim:
        tokens = sim.token_ids()
        wanted = [tokens[5], "1" * 77, tokens[0], tokens[1]]
        status, books = await post_books(sim, [{"token_id": t} for t in wanted])
        assert status == 200
        assert [b["asset_id"] for b in books] == [tokens[5], tokens[0], tokens[1]]
        for book in books:
            assert list(book) == list(real)  # the same keys, in the same order
            for key in real:
                assert type(book[key]) is type(real[key]), key
            assert HASH_RE.fullmatch(book["hash"]) and book["timestamp"].isdigit()
            assert book["tick_size"] in ("0.01", "0.001")
            assert_worst_first(book)
            assert {k: v for k, v in book.items() if k not in ("timestamp", "hash")} == {
                k: v
                for k, v in sim.book(book["asset_id"]).items()
                if k not in ("timestamp", "hash")
            }
            got = convert(book)
            assert detect_kind(book) == "clob_book" and not got.rejects
            assert len(got.orderbooks) == 1 and got.orderbooks[0].token_id == book["asset_id"]
        # The two tokens of a market mirror each other: a YES bid at p is a NO ask at 1 - p.
        yes, no = books[1], books[2]
        assert [(Decimal(1) - Decimal(x["price"]), x["size"]) for x in yes["bids"]] == [
            (Decimal(x["price"]), x["size"]) for x in no["asks"]
        ]
        status, one = await get_json(f"{sim.clob_url}/book", token_id=tokens[5])
        assert status == 200 and one["bids"] == books[0]["bids"]
        status, body = await get_json(f"{sim.clob_url}/book", token_id="1" * 77)
        assert status == 404 and body == {"error": "No orderbook exists for the requested token id"}
        assert (await post_books(sim, {"token_id": tokens[0]}))[0] == 400
        assert (await post_books(sim, [{"token": tokens[0]}]))[0] == 400


@aio
async def test_post_books_rate_limit_gives_429() -> None:
    async with running(books_rate_limit=(3, 600.0)) as sim:
        body = [{"token_id": sim.token_ids()[0]}]
        statuses = [(await post_books(sim, body))[0] for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        assert [r.status for r in sim.requests] == statuses


# -- the market channel: protocol rules -----------------------------------------------------


@aio
@pytest.mark.parametrize(
    "first",
    [
        "PING",
        "not json",
        json.dumps({"operation": "subscribe", "assets_ids": []}),
        json.dumps({"assets_ids": [], "type": "user"}),
        json.dumps({"asset_ids": [], "type": "market"}),
        json.dumps({"assets_ids": "123", "type": "market"}),
        json.dumps(["PING"]),
    ],
)
async def test_anything_but_a_subscription_first_is_closed_1008(first: str) -> None:
    async with running() as sim, client(sim) as c:
        await c.send(first)
        msg = await c.closed()
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert (msg.data, msg.extra) == (1008, "invalid subscription payload")
        await sim.wait_for(lambda: sim.connections[0].state == "closed")
        conn = sim.connections[0]
        assert conn.close_code == 1008 and conn.closed_by == "server"
        assert [f.kind for f in sim.facts if f.connection_id == 0] == [
            "connected",
            "invalid_subscription",
            "closed",
        ]
        assert [r.text for r in conn.received] == [first]


@aio
async def test_a_binary_first_frame_is_closed_1008() -> None:
    async with running() as sim, client(sim) as c:
        await c.ws.send_bytes(b'{"assets_ids": [], "type": "market"}')
        msg = await c.closed()
        assert (msg.data, msg.extra) == (1008, "invalid subscription payload")


@aio
async def test_no_first_frame_within_the_timeout_closes_the_socket() -> None:
    async with running(subscribe_timeout=0.2) as sim, client(sim) as c:
        msg = await c.closed()
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1008
        await sim.wait_for(lambda: sim.connections[0].state == "closed")
        assert sim.connections[0].state == "closed" and not sim.connections[0].subscribed.is_set()


@aio
async def test_initial_dump_sends_the_books_in_arrays_equal_to_rest_books() -> None:
    async with running(books_per_frame=3) as sim, client(sim) as c:
        tokens = sim.token_ids()[:7]
        await c.subscribe([*tokens, "9" * 76])  # an unknown asset: no book, no error
        frames = await c.until_pong()
        assert len(frames) == 3
        parsed = [json.loads(f) for f in frames]
        assert [len(p) for p in parsed] == [3, 3, 1] and all(isinstance(p, list) for p in parsed)
        books = events(frames)
        assert [b["asset_id"] for b in books] == tokens
        real = fixture_json("nautilus_trader/rs_ws_book_snapshot_captured.json")
        for book in books:
            assert list(book) == list(real)  # keys and order of a captured snapshot
            assert book["event_type"] == "book" and HASH_RE.fullmatch(book["hash"])
            assert_worst_first(book)
            rest = sim.book(book["asset_id"])
            for key in ("market", "bids", "asks", "tick_size", "last_trade_price"):
                assert book[key] == rest[key], key
        [conn] = sim.connections
        assert conn.asset_ids == (*tokens, "9" * 76) and conn.initial_dump is True
        assert conn.texts() == [*frames, "PONG"]


@aio
async def test_books_per_frame_1_sends_objects() -> None:
    async with running(books_per_frame=1) as sim, client(sim) as c:
        await c.subscribe(sim.token_ids()[:2])
        frames = await c.until_pong()
        assert [type(json.loads(f)) for f in frames] == [dict, dict]


@aio
@pytest.mark.parametrize(("dump", "books"), [(None, 0), (False, 0), (True, 4)])
async def test_snapshots_need_initial_dump_true(dump: bool | None, books: int) -> None:
    async with running() as sim, client(sim) as c:
        await c.subscribe(sim.token_ids()[:4], dump=dump)
        assert len(events(await c.until_pong())) == books
        assert sim.connections[0].initial_dump is dump


@aio
async def test_dump_without_flag_can_be_switched_on() -> None:
    async with running(dump_without_flag=True) as sim, client(sim) as c:
        await c.subscribe(sim.token_ids()[:4], dump=None)
        assert len(events(await c.until_pong())) == 4


@aio
async def test_second_initial_frame_gets_invalid_operation_and_ping_gets_pong() -> None:
    async with running() as sim, client(sim) as c:
        await c.subscribe([], dump=True)
        assert await c.until_pong() == []
        await c.subscribe(sim.token_ids()[:2])  # a second type frame
        assert await c.text() == "INVALID OPERATION"
        await c.send("hello")
        assert await c.text() == "INVALID OPERATION"
        await c.send({"operation": "resubscribe", "assets_ids": []})
        assert await c.text() == "INVALID OPERATION"
        assert await c.until_pong() == []
        conn = sim.connections[0]
        assert conn.asset_ids == () and conn.pings == 2 and conn.state == "subscribed"
        assert [f.kind for f in sim.facts].count("invalid_operation") == 3


@aio
async def test_operations_add_and_remove_assets_without_acknowledgement() -> None:
    async with running() as sim, client(sim) as c:
        a, b, d = sim.token_ids()[:3]
        await c.subscribe([a])
        assert [e["asset_id"] for e in events(await c.until_pong())] == [a]
        await c.send({"operation": "subscribe", "assets_ids": [b, a]})
        got = await c.until_pong()
        assert [e["asset_id"] for e in events(got)] == [b]  # a book of the new one, no ack
        await c.send({"operation": "subscribe", "assets_ids": [a, b]})
        assert await c.until_pong() == ["NO NEW ASSETS"]
        await c.send({"operation": "unsubscribe", "assets_ids": [a, d]})
        assert await c.until_pong() == []
        conn = sim.connections[0]
        assert conn.asset_ids == (b,)
        # From now on only b's events arrive: b's own market moves, a's is not sent here.
        market_a = sim.market_of(a)
        await sim.set_level(a, "BUY", bid_below_ask(sim, a), "10")
        await sim.trade(market_a.token_ids[0], "BUY", "1")
        got_after = events(await c.until_pong())
        assert all(e.get("asset_id", b) == b for e in got_after if "asset_id" in e)
        assert all(
            entry["asset_id"] == b for e in got_after for entry in e.get("price_changes", [])
        )


def bid_below_ask(sim: Simulator, token: str) -> str:
    """A price one tick below the token's best ask (a new best bid unless it is the bid)."""
    ask = Decimal(sim.best(token)[1])
    assert ask < 1
    price = ask - Decimal(str(sim.market_of(token).tick_size))
    assert price > 0
    return str(price)


@aio
async def test_snapshot_on_subscribe_can_be_switched_off() -> None:
    async with running(snapshot_on_subscribe=False) as sim, client(sim) as c:
        a, b = sim.token_ids()[:2]
        await c.subscribe([a])
        assert len(await c.until_pong()) == 1
        await c.send({"operation": "subscribe", "assets_ids": [b]})
        assert await c.until_pong() == []
        assert sim.connections[0].asset_ids == (a, b)


@aio
async def test_custom_feature_flag_of_an_operation_applies_first() -> None:
    async with running() as sim, client(sim) as c:
        a = sim.token_ids()[0]
        await c.subscribe([a], custom=False)
        await c.until_pong()
        assert not sim.connections[0].custom_features
        await c.send({"operation": "subscribe", "assets_ids": [a], "custom_feature_enabled": True})
        assert await c.until_pong() == ["NO NEW ASSETS"]
        assert sim.connections[0].custom_features


@aio
async def test_a_socket_that_sends_no_ping_is_dropped() -> None:
    async with running(keepalive_timeout=0.3) as sim, client(sim) as c:
        await c.subscribe(sim.token_ids()[:1])
        await c.until_pong()  # a PING resets the deadline
        msg = await c.closed()
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001
        await sim.wait_for(lambda: sim.connections[0].state == "closed")
        conn = sim.connections[0]
        assert conn.pings == 1 and conn.close_reason == "keepalive timeout: no PING"


@aio
async def test_the_server_sends_protocol_pings() -> None:
    async with running(ping_interval=0.1) as sim, client(sim, autoping=False) as c:
        await c.subscribe([])
        msg = await c.receive()
        assert msg.type == aiohttp.WSMsgType.PING
        await c.ws.pong(msg.data)
        assert sim.connections[0].state == "subscribed"


# -- events: consistency with the books, shapes, pmstore's adapters -------------------------


def best_text(levels: dict[str, str], bid: bool) -> str:
    if not levels:
        return "0" if bid else "1"
    prices = [Decimal(p) for p in levels]
    best = max(prices) if bid else min(prices)
    return next(p for p in levels if Decimal(p) == best)


class Books:
    """Books rebuilt from the channel's events, checked against every delta's best prices."""

    def __init__(self) -> None:
        self.books: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        self.checked = 0

    def apply(self, event: dict[str, Any]) -> None:
        kind = event["event_type"]
        if kind == "book":
            assert_worst_first(event)
            self.books[event["asset_id"]] = (
                {lv["price"]: lv["size"] for lv in event["bids"]},
                {lv["price"]: lv["size"] for lv in event["asks"]},
            )
        elif kind == "price_change":
            for entry in event["price_changes"]:
                bids, asks = self.books[entry["asset_id"]]
                side = bids if entry["side"] == "BUY" else asks
                if entry["size"] == "0":
                    side.pop(entry["price"], None)
                else:
                    side[entry["price"]] = entry["size"]
                assert entry["best_bid"] == best_text(bids, True), entry
                assert entry["best_ask"] == best_text(asks, False), entry
                self.checked += 1

    def rest_shape(self, token: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        bids, asks = self.books[token]
        return (
            [{"price": p, "size": bids[p]} for p in sorted(bids, key=Decimal)],
            [{"price": p, "size": asks[p]} for p in sorted(asks, key=Decimal, reverse=True)],
        )


@aio
async def test_price_change_best_prices_equal_the_books_and_books_follow_trades() -> None:
    async with running(markets=6) as sim, client(sim) as c:
        tokens = sim.token_ids()
        await c.subscribe(tokens)
        frames = await c.until_pong()  # the snapshots: the subscription is in place
        emitted = await sim.step(400)
        frames += await c.until_pong()
        got = events(frames)
        kinds = {e["event_type"] for e in got}
        assert kinds >= {"book", "price_change", "last_trade_price", "best_bid_ask"}
        books = Books()
        for event in got:
            books.apply(event)
        assert books.checked > 400
        for token in tokens:  # what the client rebuilt is the simulator's book, digit for digit
            rest = sim.book(token)
            assert books.rest_shape(token) == (rest["bids"], rest["asks"])
        # The socket got exactly the emitted events, after the snapshots, in order.
        assert got[len(tokens) :] == emitted
        assert [t for t in sim.connections[0].texts() if t != "PONG"] == frames


@aio
async def test_a_price_change_carries_both_tokens_and_is_cut_to_each_sockets_assets() -> None:
    async with running() as sim, client(sim) as both, client(sim) as only_yes:
        yes, no = sim.token_ids()[:2]
        await both.subscribe([yes, no])
        await only_yes.subscribe([yes])
        await both.until_pong()
        await only_yes.until_pong()
        price = bid_below_ask(sim, yes)
        [change, *_] = await sim.set_level(yes, "BUY", price, "123.45")
        assert [
            (e["asset_id"], e["side"], e["price"], e["size"]) for e in change["price_changes"]
        ] == [
            (yes, "BUY", price.rstrip("0"), "123.45"),
            (no, "SELL", str(1 - Decimal(price)).rstrip("0"), "123.45"),
        ]
        [full] = [e for e in events(await both.until_pong()) if e["event_type"] == "price_change"]
        [cut] = [
            e for e in events(await only_yes.until_pong()) if e["event_type"] == "price_change"
        ]
        assert full == change
        assert cut["price_changes"] == change["price_changes"][:1]
        assert {k: v for k, v in cut.items() if k != "price_changes"} == {
            k: v for k, v in change.items() if k != "price_changes"
        }
        real = fixture_json("nautilus_trader/py_ws_messages__price_change_v2.json")
        assert set(change) == set(real)
        assert list(change["price_changes"][0]) == [
            "asset_id",
            "price",
            "size",
            "side",
            "hash",
            "best_bid",
            "best_ask",
        ]
        assert set(change["price_changes"][0]) == set(real["price_changes"][0])


def fast_and_slow(event: dict[str, Any]) -> tuple[Columns, Columns, bool]:
    line = orjson.dumps(event)
    fast = Columns()
    hot = append_hot_line(line, fast)
    general = Columns()
    convert_line(line, general)
    slow = Columns()
    slow.add_converted(convert(event))
    return fast, slow if not hot else general, hot


def same_records(a: Columns, b: Columns) -> bool:
    names = ("price_token", "price_value", "price_ts", "trade_id", "trade_price", "book_token")
    return all(getattr(a, n) == getattr(b, n) for n in names) and a.counts() == b.counts()


@aio
async def test_events_convert_with_pmstores_adapters_as_the_real_captures_do() -> None:
    # The real captures: the hot kinds take the fast path and equal the adapters' result.
    for rel in (
        "nautilus_trader/py_ws_messages__price_change_v2.json",
        "nautilus_trader/py_ws_messages__book.json",
        "nautilus_trader/py_ws_messages__last_trade_price.json",
    ):
        fast, slow, hot = fast_and_slow(fixture_json(rel))
        assert hot and same_records(fast, slow) and fast.record_count() > 0
    expected_kind = {
        "book": "ws_book",
        "price_change": "ws_price_change",
        "last_trade_price": "ws_last_trade_price",
        "best_bid_ask": "ws_best_bid_ask",
        "tick_size_change": "ws_tick_size_change",
        "new_market": "ws_new_market",
        "market_resolved": "ws_market_resolved",
    }
    async with (
        running(markets=8, faults=Faults(tick_size_change_rate=0.05)) as sim,
        client(sim) as c,
    ):
        tokens = sim.token_ids()
        await c.subscribe(tokens)
        got = events(await c.until_pong())
        await sim.step(300)
        await sim.list_market()
        await sim.resolve_market(sim.markets()[0].condition_id, winner=1)
        got += events(await c.until_pong())
    seen: dict[str, int] = {}
    for event in got:
        kind = event["event_type"]
        seen[kind] = seen.get(kind, 0) + 1
        assert detect_kind(event) == expected_kind[kind]
        assert event["timestamp"].isdigit() and len(event["timestamp"]) == 13
        for key in ("asset_id", "winning_asset_id"):
            if key in event:
                assert TOKEN_RE.fullmatch(event[key])
        if "market" in event:
            assert CONDITION_RE.fullmatch(event["market"])
        converted = convert(event)
        if kind == "tick_size_change":  # recognised, never stored (as for the real capture)
            assert [r.kind for r in converted.rejects] == ["ws_tick_size_change"]
            continue
        one_sided = [r for r in converted.rejects if "one-sided" in r.reason]
        assert converted.rejects == one_sided, converted.rejects
        if kind in ("book", "price_change", "last_trade_price"):
            fast, slow, hot = fast_and_slow(event)
            assert hot == (not one_sided), event
            if hot:
                assert same_records(fast, slow)
    assert set(seen) == set(expected_kind), seen


# -- custom features, listing, resolution ---------------------------------------------------


@aio
async def test_custom_features_go_only_to_sockets_that_enabled_them() -> None:
    async with (
        running() as sim,
        client(sim) as custom,
        client(sim) as plain,
        client(sim) as watcher,
    ):
        yes, no = sim.token_ids()[:2]
        await custom.subscribe([yes, no], custom=True)
        await plain.subscribe([yes, no], custom=False)
        await watcher.subscribe([], custom=True)  # new markets only
        for c in (custom, plain, watcher):
            await c.until_pong()
        await sim.set_level(yes, "BUY", bid_below_ask(sim, yes), "50")
        custom_kinds = [e["event_type"] for e in events(await custom.until_pong())]
        plain_kinds = [e["event_type"] for e in events(await plain.until_pong())]
        assert custom_kinds == ["price_change", "best_bid_ask", "best_bid_ask"]
        assert plain_kinds == ["price_change"]
        assert await watcher.until_pong() == []
        info = await sim.list_market()
        real = fixture_json("nautilus_trader/rs_ws_market_new_market_msg.json")
        for c in (custom, watcher):
            [announced] = events(await c.until_pong())
            assert announced["event_type"] == "new_market" and set(announced) == set(real)
            assert announced["assets_ids"] == list(info.token_ids)
            record = convert(announced).markets[0]
            assert record.condition_id == info.condition_id and not record.closed
        assert await plain.until_pong() == []
        condition_id = sim.market_of(yes).condition_id
        [resolved] = await sim.resolve_market(condition_id, winner=0)
        assert set(resolved) == set(
            fixture_json("nautilus_trader/rs_ws_market_resolved_msg.json")
        ) | {
            "question",
            "slug",
            "description",
            "outcomes",
            "event_message",
        }
        assert events(await custom.until_pong()) == [resolved]
        assert await plain.until_pong() == [] and await watcher.until_pong() == []
        resolution = convert(resolved).resolutions[0]
        assert resolution.winner_token_id == yes and resolution.condition_id == condition_id
        # Gamma shows it closed and resolved; its books are gone.
        _, body = await get_json(
            f"{sim.gamma_url}/markets/keyset", closed="true", condition_ids=condition_id
        )
        [market] = body["markets"]
        assert json.loads(market["outcomePrices"]) == ["1", "0"]
        assert gamma_market_to_resolution(market).winner_token_id == yes  # type: ignore[union-attr]
        assert (await post_books(sim, [{"token_id": yes}])) == (200, [])
        with pytest.raises(ConfigurationError, match="already closed"):
            await sim.resolve_market(condition_id)


@aio
async def test_a_new_market_is_on_gamma_at_once_and_bookable_after_its_delay() -> None:
    clock = FakeClock()
    async with running(clock=clock, bookable_delay=120.0) as sim, client(sim) as c:
        await c.subscribe([], custom=True)
        await c.until_pong()
        info = await sim.list_market()
        yes, no = info.token_ids
        [announced] = events(await c.until_pong())
        assert announced["event_type"] == "new_market"
        _, body = await get_json(f"{sim.gamma_url}/markets/keyset", condition_ids=info.condition_id)
        [market] = body["markets"]
        assert market["active"] and not market["closed"] and not market["acceptingOrders"]
        await c.send({"operation": "subscribe", "assets_ids": [yes, no]})
        assert await c.until_pong() == []  # not bookable yet: no snapshot
        assert (await post_books(sim, [{"token_id": yes}])) == (200, [])
        assert await sim.step(5) == []  # the only subscribed market is not trading yet
        clock.advance(120)
        opened = await sim.open_books()
        assert [e["asset_id"] for e in opened] == [yes, no]
        assert events(await c.until_pong()) == opened
        status, books = await post_books(sim, [{"token_id": yes}])
        assert status == 200 and books[0]["bids"] == opened[0]["bids"]
        assert sim.market(info.condition_id).booked
        stepped = await sim.step(5)  # now it trades
        assert stepped and events(await c.until_pong()) == stepped
        # A CLOB request (or a subscription) opens books that are due, too.
        later = await sim.list_market(bookable_delay=1.0)
        await c.send({"operation": "subscribe", "assets_ids": list(later.token_ids)})
        assert [e["event_type"] for e in events(await c.until_pong())] == ["new_market"]
        clock.advance(1)
        status, books = await post_books(sim, [{"token_id": later.token_ids[1]}])
        assert status == 200 and [b["asset_id"] for b in books] == [later.token_ids[1]]
        opened = events(await c.until_pong())
        assert [e["asset_id"] for e in opened] == list(later.token_ids)
        assert opened[1]["bids"] == books[0]["bids"]


# -- faults ---------------------------------------------------------------------------------


@aio
async def test_a_frozen_socket_gets_no_data_but_still_pong() -> None:
    async with running() as sim, client(sim) as frozen, client(sim) as live:
        tokens = sim.token_ids()
        await frozen.subscribe(tokens)
        await live.subscribe(tokens)
        await frozen.until_pong()
        await live.until_pong()
        conn = sim.connections[0]
        conn.freeze()
        emitted = await sim.step(30)
        assert await frozen.until_pong() == []
        assert events(await live.until_pong()) == emitted
        assert conn.suppressed > 0
        conn.unfreeze()
        emitted = await sim.step(3)
        assert events(await frozen.until_pong()) == emitted  # what was lost stays lost
        assert events(await live.until_pong()) == emitted
        sim.faults.freeze_all = True
        await sim.step(3)
        assert await frozen.until_pong() == [] and await live.until_pong() == []


@aio
async def test_drop_closes_without_a_close_frame() -> None:
    async with running() as sim, client(sim) as c:
        await c.subscribe(sim.token_ids()[:2])
        await c.until_pong()
        await sim.connections[0].drop()
        msg = await c.closed()
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        assert c.ws.close_code == 1006
        conn = sim.connections[0]
        assert conn.state == "closed" and conn.closed_by == "dropped" and conn.close_code == 1006
        assert sim.subscribed_assets() == set()


async def handshake(sim: Simulator) -> int:
    """The HTTP status of a WebSocket handshake (101 when it succeeds)."""
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(sim.ws_url):
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


@aio
async def test_handshakes_get_429_for_the_next_n_and_above_the_connect_rate() -> None:
    async with running(faults=Faults(reject_handshakes=2)) as sim:
        assert [await handshake(sim) for _ in range(3)] == [429, 429, 101]
        sim.faults.connect_limit = (2, 600.0)
        assert [await handshake(sim) for _ in range(4)] == [101, 101, 429, 429]
        assert [f.kind for f in sim.facts].count("handshake_rejected") == 4
        assert len(sim.connections) == 3


@aio
async def test_a_socket_above_the_asset_limit_gets_no_snapshot_and_no_data() -> None:
    async with (
        running(faults=Faults(max_assets_per_socket=4)) as sim,
        client(sim) as small,
        client(sim) as big,
    ):
        tokens = sim.token_ids()
        await small.subscribe(tokens[:4])
        await big.subscribe(tokens[:5])
        assert len(events(await small.until_pong())) == 4
        assert await big.until_pong() == []
        await sim.step(40)
        assert len(await small.until_pong()) > 0
        assert await big.until_pong() == []
        assert sim.connections[1].suppressed > 0


@aio
async def test_market_resolved_can_be_dropped() -> None:
    async with running(faults=Faults(drop_market_resolved=True)) as sim, client(sim) as c:
        yes, no = sim.token_ids()[:2]
        await c.subscribe([yes, no])
        await c.until_pong()
        condition_id = sim.market_of(yes).condition_id
        assert await sim.resolve_market(condition_id) == []
        assert await c.until_pong() == []
        assert sim.market(condition_id).closed  # Gamma still tells


@aio
async def test_duplicate_frames() -> None:
    async with running(faults=Faults(duplicate_rate=1.0)) as sim, client(sim) as c:
        await c.subscribe(sim.token_ids()[:2])
        frames = await c.until_pong()
        assert len(frames) == 2 and frames[0] == frames[1]
        await sim.step(5)
        frames = await c.until_pong()
        assert frames[0::2] == frames[1::2]
        sent = sim.connections[0].data_frames()
        assert [f.duplicate for f in sent] == [False, True] * (len(sent) // 2)


@aio
async def test_empty_books() -> None:
    async with running(empty_book_fraction=1.0) as sim, client(sim) as c:
        tokens = sim.token_ids()[:2]
        await c.subscribe(tokens)
        books = events(await c.until_pong())
        assert all(b["bids"] == [] and b["asks"] == [] for b in books)
        assert all(not convert(b).rejects for b in books)  # valid, as real empty books are
    async with running() as sim, client(sim) as c:
        yes, no = sim.token_ids()[:2]
        await c.subscribe([yes, no])
        await c.until_pong()
        cleared = await sim.clear_book(sim.market_of(yes).condition_id)
        got = events(await c.until_pong())
        assert got == cleared
        assert [(e["event_type"], e.get("bids"), e.get("asks")) for e in got[:2]] == [
            ("book", [], []),
            ("book", [], []),
        ]
        assert {(e["best_bid"], e["best_ask"]) for e in got[2:]} == {("0", "1")}


@aio
async def test_tick_size_changes() -> None:
    async with running() as sim, client(sim) as c:
        coarse = next(m for m in sim.markets() if m.tick_size == 0.01)
        await c.subscribe(coarse.token_ids)
        snapshots = events(await c.until_pong())
        refined = await sim.change_tick_size(coarse.condition_id, "0.001")
        assert [(e["event_type"], e["old_tick_size"], e["new_tick_size"]) for e in refined] == [
            ("tick_size_change", "0.01", "0.001")
        ] * 2
        real = fixture_json("nautilus_trader/py_ws_messages__tick_size_change.json")
        assert all(set(e) == set(real) for e in refined)
        yes = coarse.token_ids[0]
        # An off-grid level, then back to 0.01: it is dropped and fresh books follow.
        bid, ask = (round(Decimal(p) * 1000) for p in sim.best(yes))
        assert 0 < bid < ask < 1000
        off_grid = next(p for p in range(bid + 1, ask) if p % 10)
        await sim.set_level(yes, "BUY", str(Decimal(off_grid) / 1000), "7")
        coarsened = await sim.change_tick_size(coarse.condition_id, "0.01")
        assert [e["event_type"] for e in coarsened[:4]] == ["tick_size_change"] * 2 + ["book"] * 2
        assert all(int(Decimal(lv["price"]) * 1000) % 10 == 0 for lv in coarsened[2]["bids"])
        books = Books()
        for event in snapshots + events(await c.until_pong()):
            books.apply(event)
        assert books.rest_shape(yes) == (sim.book(yes)["bids"], sim.book(yes)["asks"])
        with pytest.raises(ConfigurationError, match="off the tick"):
            await sim.set_level(yes, "BUY", "0.005", "1")


@aio
async def test_a_top_beyond_096_refines_the_tick_by_itself() -> None:
    async with running() as sim, client(sim) as c:
        coarse = next(
            m for m in sim.markets() if m.tick_size == 0.01 and sim.best(m.token_ids[0])[1] != "1"
        )
        yes = coarse.token_ids[0]
        await c.subscribe([yes])
        await c.until_pong()
        for level in sim.book(yes)["asks"]:  # clear the asks, then bid 0.97
            await sim.set_level(yes, "SELL", level["price"], "0")
        out = await sim.set_level(yes, "BUY", "0.97", "10")
        kinds = [e["event_type"] for e in out]
        assert "tick_size_change" in kinds and sim.market(coarse.condition_id).tick_size == 0.001


@aio
async def test_the_tick_size_change_rate_fault() -> None:
    async with running(faults=Faults(tick_size_change_rate=1.0)) as sim, client(sim) as c:
        await c.subscribe(sim.token_ids())
        await c.until_pong()
        out = await sim.step(4)
        assert {e["event_type"] for e in out} <= {"tick_size_change", "book"}
        assert sum(e["event_type"] == "tick_size_change" for e in out) == 8


@aio
async def test_maintenance_silence() -> None:
    async with running() as sim, client(sim) as c:
        await c.subscribe(sim.token_ids())
        await c.until_pong()
        sim.maintenance(600)
        assert await sim.step(10) == []
        assert await c.until_pong() == []  # quiet, but PING still answered
        sim.end_maintenance()
        assert await sim.step(2)
        assert await c.until_pong()
        assert [f.detail for f in sim.facts if f.kind == "maintenance"] == [
            "begins for 600 s",
            "ends",
        ]
        sim.maintenance(0.05)  # ends by itself
        await sim.wait_for(lambda: not sim.faults.maintenance, what="the end of maintenance")


@aio
async def test_legacy_price_change_shape() -> None:
    async with running(faults=Faults(legacy_price_change=True)) as sim, client(sim) as c:
        yes, no = sim.token_ids()[:2]
        await c.subscribe([yes, no], custom=False)
        await c.until_pong()
        out = await sim.set_level(yes, "BUY", bid_below_ask(sim, yes), "5")
        out = [e for e in out if e["event_type"] == "price_change"]
        assert [e["asset_id"] for e in out] == [yes, no]
        for event in out:
            assert set(event) == {
                "asset_id",
                "changes",
                "event_type",
                "hash",
                "market",
                "timestamp",
            }
            [change] = event["changes"]
            assert set(change) == {"price", "side", "size"}
            [reject] = convert(event).rejects
            assert "old changes[] shape" in reject.reason
        assert events(await c.until_pong()) == out


# -- control, determinism, ground truth -----------------------------------------------------


@aio
async def test_the_same_seed_and_calls_give_the_same_frames() -> None:
    texts = []
    for _ in range(2):
        async with running(clock=FakeClock()) as sim, client(sim) as c:
            await c.subscribe(sim.token_ids())
            await c.until_pong()
            await sim.step(150)
            await c.until_pong()
            texts.append(sim.connections[0].texts())
    assert texts[0] == texts[1] and len(texts[0]) > 150
    async with running(clock=FakeClock(), seed=6) as sim, client(sim) as c:
        await c.subscribe(sim.token_ids())
        await c.until_pong()
        await sim.step(150)
        await c.until_pong()
        assert sim.connections[0].texts() != texts[0]


@aio
async def test_ground_truth_facts_listeners_and_waiting() -> None:
    async with running() as sim:
        seen: list[str] = []
        sim.add_listener(lambda fact: seen.append(fact.kind))
        async with client(sim) as c:
            await c.subscribe(sim.token_ids()[:2])
            [conn] = await sim.wait_connections(1)
            assert isinstance(conn, Connection) and conn.subscribed.is_set()
            await c.until_pong()
            await c.send({"operation": "subscribe", "assets_ids": sim.token_ids()[2:4]})
            await sim.wait_for(lambda: len(conn.asset_ids) == 4, what="four assets")
            await c.until_pong()
            assert [r.text for r in conn.received] == [r.text for r in conn.received] and len(
                conn.received
            ) == 4
        await sim.wait_for(lambda: conn.state == "closed")
        assert conn.closed_by == "client" and conn.close_code == 1000
        assert seen == ["connected", "subscribed", "ping", "operation", "ping", "closed"]
        with pytest.raises(WaitTimeoutError, match=r"never did not come true within 0\.05 s"):
            await sim.wait_for(lambda: False, timeout=0.05, what="never")


@aio
async def test_emit_and_send_text_go_verbatim() -> None:
    async with running() as sim, client(sim) as c:
        a = sim.token_ids()[0]
        await c.subscribe([a])
        await c.until_pong()
        await sim.emit({"event_type": "brand_new", "asset_id": a})
        await sim.emit('{"raw": true}', asset_id=a)
        await sim.send_text("NO NEW ASSETS")
        assert await c.until_pong() == [
            '{"event_type":"brand_new","asset_id":"' + a + '"}',
            '{"raw": true}',
            "NO NEW ASSETS",
        ]
        sim.connections[0].freeze()
        await sim.emit({"x": 1})
        await sim.send_text("NO NEW ASSETS")  # control text ignores the freeze
        assert await c.until_pong() == ["NO NEW ASSETS"]


@aio
async def test_rate_mode_emits_in_the_background() -> None:
    async with running(markets=40) as sim, client(sim) as c:
        await c.subscribe(sim.token_ids())
        snapshots = events(await c.until_pong())
        sim.start_rate(2000)
        conn = sim.connections[0]
        await sim.wait_for(lambda: conn.frames_sent > 200, what="200 frames")
        await sim.stop_rate()
        assert sim.rate == 0.0
        books = Books()
        for event in snapshots + events(await c.until_pong()):
            books.apply(event)
        assert books.checked > 100
        for token in sim.token_ids():
            rest = sim.book(token)
            assert books.rest_shape(token) == (rest["bids"], rest["asks"])


@aio
async def test_bad_arguments_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        Simulator(config(markets=-1))
    with pytest.raises(ConfigurationError):
        Simulator(config(faults=Faults(duplicate_rate=2.0)))
    async with running() as sim:
        yes = sim.token_ids()[0]
        with pytest.raises(ConfigurationError, match="no simulated token"):
            sim.book("123")
        with pytest.raises(ConfigurationError, match="cross"):
            await sim.set_level(yes, "BUY", "0.999", "1")
        with pytest.raises(ConfigurationError, match="side"):
            await sim.trade(yes, "HOLD", "1")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="tick_size"):
            await sim.change_tick_size(sim.markets()[0].condition_id, "0.1")


@aio
async def test_chaos_freezes_drops_lists_resolves_and_pauses_on_a_timer() -> None:
    chaos = Chaos(freeze_every=0.05, maintenance_every=0.05, maintenance_seconds=0.05)
    async with running(chaos=chaos) as sim, client(sim) as c:
        await c.subscribe(sim.token_ids())
        [conn] = await sim.wait_connections(1)
        await sim.wait_for(lambda: conn.frozen, what="a chaos freeze")
        await sim.wait_for(
            lambda: [f.detail for f in sim.facts if f.kind == "maintenance"][-1:] == ["ends"],
            what="a chaos maintenance",
        )
        assert await c.until_pong() != []  # the snapshots; the socket still answers PING
    chaos = Chaos(drop_every=0.05, new_market_every=0.05, resolve_every=0.05)
    async with running(chaos=chaos) as sim, client(sim) as c:
        await c.subscribe(sim.token_ids())
        [conn] = await sim.wait_connections(1)
        await sim.wait_for(lambda: conn.state == "closed", what="a chaos drop")
        assert conn.closed_by == "dropped"
        await sim.wait_for(
            lambda: len(sim.markets()) > 15 and len(sim.markets(closed=True)) > 3,
            what="a chaos listing and resolution",
        )


@aio
async def test_closing_the_simulator_closes_every_socket_with_1001() -> None:
    sim = Simulator(config())
    await sim.start()
    async with client(sim) as c:
        await c.subscribe([])
        await c.until_pong()
        closing = asyncio.create_task(sim.close())
        msg = await c.closed()
        assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 1001, "server shutdown")
        await closing
    assert sim.connections[0].state == "closed" and sim.connections[0].closed_by == "server"


# -- the command line -----------------------------------------------------------------------


def test_pmstore_simulate_serves_until_sigterm() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PMSTORE_DSN"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-P",
            "-m",
            "pmstore",
            "simulate",
            "--port",
            "0",
            "--markets",
            "3",
            "--rate",
            "0",
            "--seed",
            "2",
            "--reject-handshakes",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("pmstore simulate: 3 markets (6 tokens)"), first
        second = proc.stdout.readline()
        urls = dict(re.findall(r"--(gamma-url|clob-url|ws-url) (\S+)", second))
        assert set(urls) == {"gamma-url", "clob-url", "ws-url"}
        assert urls["ws-url"].startswith("ws://127.0.0.1:") and urls["ws-url"].endswith(
            "/ws/market"
        )

        async def use() -> list[Any]:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{urls['gamma-url']}/markets/keyset") as r:
                    markets = (await r.json())["markets"]
                tokens = [t for m in markets for t in json.loads(m["clobTokenIds"])]
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(urls["ws-url"])
                assert refused.value.status == 429  # the fault flag reached the simulator
                async with session.ws_connect(urls["ws-url"]) as ws:
                    await ws.send_str(
                        json.dumps(
                            {
                                "assets_ids": tokens,
                                "type": "market",
                                "initial_dump": True,
                                "custom_feature_enabled": True,
                            }
                        )
                    )
                    return events([(await ws.receive(timeout=10)).data])

        books = asyncio.run(use())
        assert len(books) == 6 and {b["event_type"] for b in books} == {"book"}
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopped after 1 connection(s)" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_pmstore_simulate_help() -> None:
    done = subprocess.run(
        [sys.executable, "-P", "-m", "pmstore", "simulate", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "--max-assets-per-socket" in done.stdout
