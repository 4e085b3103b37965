"""The deriver: archive records in, database rows out, deterministically.

The live recorder feeds it each record as it is archived; ``pmstore
ingest`` of the archive feeds it the same records from disk. Its output
depends only on the records (and the parameters in the file's header), so
the rows a run wrote live and the rows an ingest of its archive writes are
the same. Time is archive time: the records' receive times ``t``.

Rules (docs/recorder.md states them for users):

- **Books.** A token's book is kept from its ``book`` events (and accepted
  ``POST /books`` reseeds) plus the ``price_change`` deltas since, on the
  connection that subscribed it (the pre-2025-09-15 ``changes[]`` shape is
  applied too, unchecked; a ``price_change`` of any other shape invalidates
  the book). After each message the last entry's
  ``best_bid``/``best_ask`` of each asset are checked against the kept book;
  a disagreement, a ``tick_size_change`` (to another tick size), the
  connection closing or going silent, or a clean stop make it invalid
  until a fresh book arrives. A reseed is taken only for an invalid book on
  an open connection that has sent data since the token's subscription (a
  socket that sends nothing would leave the reseeded book unchanged
  forever), and only when its timestamp is not older than the token's last
  event.
- **Gaps** (``feed_gaps``). Continuity is lost when a valid book becomes
  invalid: the gap starts at the record that broke it, or for a lost
  connection at its last data frame (never before the book became valid).
  A token subscribed that has no book ``no_snapshot_after`` seconds later
  gets a ``no_snapshot`` gap from its subscription. A run's ``start``
  record opens ``not_running`` gaps, from the previous run's last record,
  for every token still valid in the state it inherits. A fresh book closes
  the gap at its record's time; dropping a token (``unsub``) closes it too.
- **Prices.** Every ``price_every`` seconds (60), on the boundary, each
  valid book gives one snapshot at the boundary's time: its midpoint, or,
  for a one-sided or empty book, the last trade price seen since it became
  valid, else nothing (the adapters' price rule applied to the kept book).
- **Order books.** Every ``snapshot_every`` seconds, on the boundary, and
  at a clean stop, each valid book is written at that time.
- **Trades, markets, resolutions.** ``last_trade_price``, ``new_market`` and
  ``market_resolved`` events, Gamma pages and the closed-markets poll go
  through ``pmstore.polymarket.convert`` (the adapters' rules).

Cost per record: an ``orjson.loads`` of a frame and a dict update per
level changed; per boundary a pass over the tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from pmstore.models import MarketRecord, ResolutionRecord, TradeRecord
from pmstore.polymarket import convert
from pmstore.recorder._books import Book, LevelList

__all__ = [
    "GAP_REASONS",
    "TABLES",
    "DeriveParams",
    "Deriver",
    "Rows",
]

NS: Final = 1_000_000_000

TABLES: Final = (
    "price_snapshots",
    "orderbook_snapshots",
    "trades",
    "markets",
    "resolutions",
    "feed_gaps",
)
"""The tables the deriver writes, in the order a batch writes them."""

GAP_REASONS: Final = (
    "disconnect",
    "silence",
    "book_mismatch",
    "tick_size_change",
    "no_snapshot",
    "shutdown",
    "not_running",
)
"""Why a gap opened (``feed_gaps.reason``)."""

_ADAPTED: Final = frozenset({"last_trade_price", "new_market", "market_resolved"})
"""Events whose rows the adapters make (``convert``)."""


@dataclass(frozen=True, slots=True)
class DeriveParams:
    """The deriver's parameters, in seconds; written into every archive file's header."""

    snapshot_every: float = 60.0
    price_every: float = 60.0
    no_snapshot_after: float = 30.0

    def to_json(self) -> dict[str, float]:
        return {
            "snapshot_every": self.snapshot_every,
            "price_every": self.price_every,
            "no_snapshot_after": self.no_snapshot_after,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, float]) -> DeriveParams:
        return cls(
            snapshot_every=float(obj["snapshot_every"]),
            price_every=float(obj["price_every"]),
            no_snapshot_after=float(obj["no_snapshot_after"]),
        )


class Rows:
    """Rows derived from a range of records, per table, in columns or records.

    ``keep_from`` maps a table to the first record index whose rows are kept
    (a table's cursor when catching up: rows of earlier records are
    committed already); ``index`` is the record being fed.
    """

    def __init__(self, keep_from: Mapping[str, int] | None = None) -> None:
        self.keep_from = dict(keep_from or {})
        self.index = 0
        self.price_ts: list[int] = []
        self.price_token: list[str] = []
        self.price_value: list[float] = []
        self.book_ts: list[int] = []
        self.book_token: list[str] = []
        self.book_bids: list[LevelList] = []
        self.book_asks: list[LevelList] = []
        self.trades: list[TradeRecord] = []
        self.markets: list[MarketRecord] = []
        self.resolutions: list[ResolutionRecord] = []
        self.gaps: list[tuple[str, int, int | None, str]] = []
        """(token_id, started_at ns, ended_at ns or None, reason), in order."""

    def wants(self, table: str) -> bool:
        """Whether rows of ``table`` from the current record are kept."""
        return self.index >= self.keep_from.get(table, 0)

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        return {
            "price_snapshots": len(self.price_ts),
            "orderbook_snapshots": len(self.book_ts),
            "trades": len(self.trades),
            "markets": len(self.markets),
            "resolutions": len(self.resolutions),
            "feed_gaps": len(self.gaps),
        }

    def __len__(self) -> int:
        return sum(self.counts().values())


@dataclass(slots=True)
class _Conn:
    epoch: int
    open: bool
    last_data: int


@dataclass(slots=True)
class _Token:
    conn: int | None
    sub_at: int
    """When it was last subscribed (the initial frame of its socket, or an operation)."""
    valid_since: int | None = None
    book: Book | None = None
    gap: tuple[int, str] | None = None
    """The open gap: (started_at ns, reason)."""
    invalid_at: int = 0
    market: str | None = None
    last_trade: float | None = None
    last_event_ms: int = 0

    def to_json(self) -> list[Any]:
        book = self.book.to_json() if self.book is not None else None
        gap = list(self.gap) if self.gap is not None else None
        return [
            self.conn, self.sub_at, self.valid_since, book, gap, self.invalid_at,
            self.market, self.last_trade, self.last_event_ms,
        ]  # fmt: skip

    @classmethod
    def from_json(cls, obj: list[Any]) -> _Token:
        conn, sub_at, valid_since, book, gap, invalid_at, market, last_trade, last_ms = obj
        return cls(
            conn=conn,
            sub_at=sub_at,
            valid_since=valid_since,
            book=Book.from_json(book) if book is not None else None,
            gap=(int(gap[0]), str(gap[1])) if gap is not None else None,
            invalid_at=invalid_at,
            market=market,
            last_trade=last_trade,
            last_event_ms=last_ms,
        )


def _ms(value: object) -> int:
    """A Polymarket millisecond timestamp (a string of digits) as an int; 0 if not one."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return 0


def _levels(raw: object) -> LevelList | None:
    """``[{"price": "0.48", "size": "10"}, ...]`` as (price, size) floats; None if malformed."""
    if not isinstance(raw, list):
        return None
    out: LevelList = []
    try:
        for level in raw:
            out.append((float(level["price"]), float(level["size"])))
    except (TypeError, KeyError, ValueError):
        return None
    return out


def _num(raw: object) -> float | None:
    """A decimal string (or number) as a float; None when absent, empty or not a number."""
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value


class Deriver:
    """Turns archive records into rows (see the module docstring for the rules).

    ``feed(record, index, rows)`` applies one record and appends the rows it
    yields to ``rows``. ``checkpoint()`` is the whole state as JSON-able data
    (line 1 and the last line of each archive file); ``Deriver(params,
    state)`` resumes from it, so each archive file can be derived alone.
    """

    def __init__(self, params: DeriveParams, state: Mapping[str, Any] | None = None) -> None:
        self.params = params
        self._price_every = round(params.price_every * NS)
        self._snapshot_every = round(params.snapshot_every * NS)
        self._no_snapshot_after = round(params.no_snapshot_after * NS)
        self.now = 0
        self.next_price = 0
        self.next_snapshot = 0
        self.conns: dict[int, _Conn] = {}
        self.tokens: dict[str, _Token] = {}
        self.awaiting: dict[str, int] = {}
        """Tokens subscribed without a book or a gap yet: token -> subscribed at."""
        self.adapter_rejects = 0
        """Adapter rejects (counted, not stored: the raw frame is in the archive)."""
        self.notices: list[dict[str, Any]] = []
        """``new_market`` and ``market_resolved`` events seen, for the live recorder to act
        on (it empties the list); not part of the state."""
        if state:
            self._load(state)

    # -- state ---------------------------------------------------------------

    def checkpoint(self) -> dict[str, Any]:
        """The deriver's whole state as JSON-able data."""
        return {
            "now": self.now,
            "next_price": self.next_price,
            "next_snapshot": self.next_snapshot,
            "conns": [[c, s.epoch, s.open, s.last_data] for c, s in self.conns.items()],
            "tokens": {t: s.to_json() for t, s in self.tokens.items()},
        }

    def _load(self, state: Mapping[str, Any]) -> None:
        self.now = int(state["now"])
        self.next_price = int(state["next_price"])
        self.next_snapshot = int(state["next_snapshot"])
        self.conns = {int(c): _Conn(int(e), bool(o), int(d)) for c, e, o, d in state["conns"]}
        self.tokens = {str(t): _Token.from_json(v) for t, v in state["tokens"].items()}
        self.awaiting = {  # subscribed, never valid, no gap: since their first subscription
            t: s.invalid_at
            for t, s in self.tokens.items()
            if s.valid_since is None and s.gap is None
        }

    # -- questions the recorder asks -----------------------------------------

    @property
    def open_gaps(self) -> int:
        """Tokens whose gap is open."""
        return sum(1 for s in self.tokens.values() if s.gap is not None)

    def is_valid(self, token: str) -> bool:
        """Whether ``token``'s book is valid (continuity)."""
        s = self.tokens.get(token)
        return s is not None and s.valid_since is not None

    def invalid_tokens(self, older_than_ns: int) -> list[str]:
        """Tracked tokens whose book has been invalid (or missing) since at least
        ``older_than_ns`` (and subscribed since then), on an open connection that sent data
        since their subscription: the reseed candidates."""
        out = []
        for token, s in self.tokens.items():
            if s.valid_since is not None or s.conn is None:
                continue
            conn = self.conns.get(s.conn)
            if conn is None or not conn.open or conn.last_data < s.sub_at:
                continue  # a socket that sent nothing since the subscription: no reseed
            if max(s.sub_at, s.invalid_at) <= older_than_ns:
                out.append(token)
        return out

    def market_of(self, token: str) -> str | None:
        """The condition id ``token`` was seen with (from its book events), if any."""
        s = self.tokens.get(token)
        return s.market if s is not None else None

    def tracked(self) -> list[str]:
        """The tokens tracked (subscribed, or inherited from the previous run)."""
        return list(self.tokens)

    # -- feeding -------------------------------------------------------------

    def feed(self, record: Mapping[str, Any], index: int, rows: Rows) -> None:
        """Apply one archive record; append the rows it yields to ``rows``.

        ``index`` is the record's place in its file (rows of a record before
        ``rows.keep_from[table]`` are not kept). Unknown record kinds are
        ignored (a newer recorder's). Raises nothing for bad frames: a frame
        that is not JSON or an event that is malformed changes nothing.
        """
        rows.index = index
        kind = record.get("k")
        t = int(record.get("t", 0))
        if kind == "state":
            self._load(record["s"])
            return
        if kind == "start":
            self._start(t, rows)
            return
        self._advance(t, rows)
        if kind == "frame":
            self._frame(record, t, rows)
        elif kind == "tick":
            self._tick(t, rows)
        elif kind == "rest":
            self._rest(record, t, rows)
        elif kind == "sub":
            self._sub(record, t)
        elif kind == "unsub":
            self._unsub(record, t, rows)
        elif kind == "open":
            self.conns[int(record["c"])] = _Conn(int(record["e"]), True, 0)  # no data yet
        elif kind == "silence":
            self._conn_lost(int(record["c"]), t, "silence", rows)
        elif kind == "close":
            self._conn_lost(int(record["c"]), t, "disconnect", rows)
        elif kind == "stop":
            self._stop(t, rows)

    # -- time ----------------------------------------------------------------

    def _advance(self, t: int, rows: Rows) -> None:
        """Move archive time to ``t``: write the price and book snapshots of every boundary
        passed (with the state before the record at ``t``)."""
        if t <= self.now:
            return
        self.now = t
        while self.next_price and t >= self.next_price:
            self._prices(self.next_price, rows)
            self.next_price += self._price_every
        while self.next_snapshot and t >= self.next_snapshot:
            self._books(self.next_snapshot, rows)
            self.next_snapshot += self._snapshot_every

    def _prices(self, at: int, rows: Rows) -> None:
        if not rows.wants("price_snapshots"):
            return
        for token, s in self.tokens.items():
            if s.valid_since is None or s.book is None:
                continue
            price = s.book.midpoint()
            if price is None:
                price = s.last_trade
            if price is not None and 0.0 <= price <= 1.0:
                rows.price_ts.append(at)
                rows.price_token.append(token)
                rows.price_value.append(price)

    def _books(self, at: int, rows: Rows) -> None:
        if not rows.wants("orderbook_snapshots"):
            return
        for token, s in self.tokens.items():
            if s.valid_since is None or s.book is None:
                continue
            rows.book_ts.append(at)
            rows.book_token.append(token)
            rows.book_bids.append(s.book.sorted_bids())
            rows.book_asks.append(s.book.sorted_asks())

    def _next_boundary(self, t: int, every: int) -> int:
        return (t // every + 1) * every

    def _tick(self, t: int, rows: Rows) -> None:
        if not self.awaiting:
            return
        due = [tok for tok, at in self.awaiting.items() if t - at >= self._no_snapshot_after]
        for token in due:
            s = self.tokens[token]
            self._open_gap(token, s, self.awaiting[token], "no_snapshot", rows)

    # -- gaps ----------------------------------------------------------------

    def _open_gap(self, token: str, s: _Token, start: int, reason: str, rows: Rows) -> None:
        """Continuity of ``token`` lost at ``start``: invalid book, an open gap (unless one is)."""
        s.valid_since = None
        s.book = None
        s.last_trade = None
        s.invalid_at = max(s.invalid_at, self.now)
        self.awaiting.pop(token, None)
        if s.gap is not None:
            return
        s.gap = (start, reason)
        if rows.wants("feed_gaps"):
            rows.gaps.append((token, start, None, reason))

    def _close_gap(self, token: str, s: _Token, t: int, rows: Rows) -> None:
        if s.gap is None:
            return
        start, reason = s.gap
        s.gap = None
        if rows.wants("feed_gaps"):
            rows.gaps.append((token, start, max(t, start), reason))

    def _lose(self, token: str, s: _Token, t: int, reason: str, rows: Rows) -> None:
        """A valid book becomes invalid at ``t``."""
        if s.valid_since is not None:
            self._open_gap(token, s, max(t, s.valid_since), reason, rows)

    def _fresh(self, token: str, s: _Token, book: Book, t: int, rows: Rows) -> None:
        """A fresh book: continuity (re-)established at ``t``."""
        self._close_gap(token, s, t, rows)
        self.awaiting.pop(token, None)
        if s.valid_since is None:
            s.valid_since = t
            s.last_trade = None
        s.book = book

    # -- records -------------------------------------------------------------

    def _start(self, t: int, rows: Rows) -> None:
        """A run starts: what the previous run kept valid is lost from its last record."""
        last = self.now
        for token, s in self.tokens.items():
            if s.valid_since is not None:
                self._open_gap(token, s, max(last, s.valid_since), "not_running", rows)
            s.conn = None
        self.conns.clear()
        self.now = max(self.now, t)
        self.next_price = self._next_boundary(t, self._price_every)
        self.next_snapshot = self._next_boundary(t, self._snapshot_every)

    def _stop(self, t: int, rows: Rows) -> None:
        """A clean stop: the valid books are written at ``t``, then their gaps open."""
        self._books(t, rows)
        for token, s in self.tokens.items():
            self._lose(token, s, t, "shutdown", rows)
            s.conn = None
        for conn in self.conns.values():
            conn.open = False

    def _sub(self, record: Mapping[str, Any], t: int) -> None:
        c = int(record["c"])
        for token in record["a"]:
            s = self.tokens.get(token)
            if s is None:
                self.tokens[token] = _Token(conn=c, sub_at=t, invalid_at=t)
                self.awaiting[token] = t
                continue
            s.conn = c
            s.sub_at = t

    def _unsub(self, record: Mapping[str, Any], t: int, rows: Rows) -> None:
        for token in record["a"]:
            s = self.tokens.pop(token, None)
            if s is not None:
                self._close_gap(token, s, t, rows)
                self.awaiting.pop(token, None)

    def _conn_lost(self, c: int, t: int, reason: str, rows: Rows) -> None:
        conn = self.conns.get(c)
        if conn is None:
            return
        was_open, conn.open = conn.open, False
        if not was_open:
            return
        for token, s in self.tokens.items():
            if s.conn == c and s.valid_since is not None:
                self._open_gap(token, s, max(conn.last_data, s.valid_since), reason, rows)

    def _frame(self, record: Mapping[str, Any], t: int, rows: Rows) -> None:
        try:
            payload = orjson.loads(record["d"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return  # PONG, NO NEW ASSETS, INVALID OPERATION: not data
        c = int(record.get("c", -1))
        conn = self.conns.get(c)
        if conn is not None and conn.open:
            conn.last_data = t
        events: Iterable[Any] = payload if isinstance(payload, list) else (payload,)
        adapted: list[Any] = []
        for event in events:
            if not isinstance(event, dict):
                continue
            kind = event.get("event_type")
            if kind == "price_change":
                self._price_change(event, c, t, rows)
            elif kind == "book":
                self._ws_book(event, c, t, rows)
            elif kind == "tick_size_change":
                self._tick_size(event, c, t, rows)
            elif kind in _ADAPTED:
                adapted.append(event)
                if kind == "last_trade_price":
                    self._last_trade(event)
                else:
                    self.notices.append(event)
        if adapted:
            self._adapt(adapted, rows)

    def _mine(self, event: Mapping[str, Any], c: int) -> tuple[str, _Token] | None:
        """The token an event is about, when it is tracked on connection ``c``."""
        token = event.get("asset_id")
        if not isinstance(token, str):
            return None
        s = self.tokens.get(token)
        if s is None or s.conn != c:
            return None
        return token, s

    def _ws_book(self, event: Mapping[str, Any], c: int, t: int, rows: Rows) -> None:
        mine = self._mine(event, c)
        if mine is None:
            return
        token, s = mine
        bids, asks = _levels(event.get("bids")), _levels(event.get("asks"))
        if bids is None or asks is None:
            return
        market = event.get("market")
        if isinstance(market, str) and market:
            s.market = market
        s.last_event_ms = max(s.last_event_ms, _ms(event.get("timestamp")))
        self._fresh(token, s, Book.from_levels(bids, asks), t, rows)

    def _price_change(self, event: Mapping[str, Any], c: int, t: int, rows: Rows) -> None:
        changes = event.get("price_changes")
        if not isinstance(changes, list):
            changes = _legacy_changes(event)
            if changes is None:  # a shape not known: the book can no longer be trusted
                mine = self._mine(event, c)
                if mine is not None:
                    self._lose(mine[0], mine[1], t, "book_mismatch", rows)
                return
        ms = _ms(event.get("timestamp"))
        last: dict[str, Mapping[str, Any]] = {}
        for entry in changes:
            if not isinstance(entry, dict):
                continue
            token = entry.get("asset_id")
            if not isinstance(token, str):
                continue
            s = self.tokens.get(token)
            if s is None or s.conn != c:
                continue
            s.last_event_ms = max(s.last_event_ms, ms)
            book = s.book
            if s.valid_since is None or book is None:
                continue
            try:
                price, size = float(entry["price"]), float(entry["size"])
            except (KeyError, TypeError, ValueError):
                self._lose(token, s, t, "book_mismatch", rows)
                continue
            side = entry.get("side")
            if side == "BUY":
                book.set_bid(price, size)
            elif side == "SELL":
                book.set_ask(price, size)
            else:
                self._lose(token, s, t, "book_mismatch", rows)
                continue
            last[token] = entry
        for token, entry in last.items():
            s = self.tokens[token]
            book = s.book
            if s.valid_since is None or book is None:
                continue
            if not _agrees(book, entry):
                self._lose(token, s, t, "book_mismatch", rows)

    def _tick_size(self, event: Mapping[str, Any], c: int, t: int, rows: Rows) -> None:
        mine = self._mine(event, c)
        if mine is None:
            return
        token, s = mine
        old, new = _num(event.get("old_tick_size")), _num(event.get("new_tick_size"))
        if old is not None and old == new:
            return  # no change: the book stays as it is
        self._lose(token, s, t, "tick_size_change", rows)

    def _last_trade(self, event: Mapping[str, Any]) -> None:
        token = event.get("asset_id")
        s = self.tokens.get(token) if isinstance(token, str) else None
        if s is None or s.valid_since is None:
            return
        try:
            price = float(event["price"])
        except (KeyError, TypeError, ValueError):
            return
        if 0.0 <= price <= 1.0:
            s.last_trade = price

    def _adapt(self, payload: Any, rows: Rows) -> None:
        got = convert(payload)
        self.adapter_rejects += len(got.rejects)
        if got.trades and rows.wants("trades"):
            rows.trades.extend(got.trades)
        if got.markets and rows.wants("markets"):
            rows.markets.extend(got.markets)
        if got.resolutions and rows.wants("resolutions"):
            rows.resolutions.extend(got.resolutions)

    def _rest(self, record: Mapping[str, Any], t: int, rows: Rows) -> None:
        try:
            body = orjson.loads(record["d"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        what = record.get("what")
        if what == "books":
            if isinstance(body, list):
                for book in body:
                    if isinstance(book, dict):
                        self._rest_book(book, t, rows)
            return
        if what in ("gamma_markets", "gamma_closed"):
            markets = body.get("markets") if isinstance(body, dict) else body
            if isinstance(markets, list):
                self._adapt(markets, rows)

    def _rest_book(self, event: Mapping[str, Any], t: int, rows: Rows) -> None:
        token = event.get("asset_id")
        s = self.tokens.get(token) if isinstance(token, str) else None
        if s is None or s.valid_since is not None or s.conn is None:
            return
        assert isinstance(token, str)
        conn = self.conns.get(s.conn)
        if conn is None or not conn.open or conn.last_data < s.sub_at:
            return  # its socket sent nothing since the subscription: nothing would follow
        ms = _ms(event.get("timestamp"))
        if ms < s.last_event_ms:
            return  # older than what the socket said since: stale
        bids, asks = _levels(event.get("bids")), _levels(event.get("asks"))
        if bids is None or asks is None:
            return
        market = event.get("market")
        if isinstance(market, str) and market:
            s.market = market
        s.last_event_ms = max(s.last_event_ms, ms)
        self._fresh(token, s, Book.from_levels(bids, asks), t, rows)


def _legacy_changes(event: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The entries of a ``price_change`` in its late-2024 to 2025-09-15 shape (top-level
    ``asset_id``, ``changes[]`` of price/side/size, no best bid/ask: applied unchecked);
    None for any other shape."""
    token, changes = event.get("asset_id"), event.get("changes")
    if not isinstance(token, str) or not isinstance(changes, list):
        return None
    return [{**ch, "asset_id": token} for ch in changes if isinstance(ch, dict)]


def _agrees(book: Book, entry: Mapping[str, Any]) -> bool:
    """Whether the kept book's best levels are the ones ``entry`` states (an absent value
    is not checked; ``"0"`` is an empty bid side, ``"0"`` or ``"1"`` an empty ask side)."""
    bid = _num(entry.get("best_bid"))
    if bid is not None:
        kept = book.best_bid
        if kept is None:
            if bid != 0.0:
                return False
        elif kept != bid:
            return False
    ask = _num(entry.get("best_ask"))
    if ask is not None:
        kept = book.best_ask
        if kept is None:
            if ask not in (0.0, 1.0):
                return False
        elif kept != ask:
            return False
    return True
