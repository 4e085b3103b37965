"""The simulated exchange: every market, its book, and the events its changes produce.

Each action (a level set, a trade, a tick-size change, a listing, a
resolution, or a random one of these) mutates the state and returns the
market-channel events it causes, in order, as :class:`Emission` s. Nothing
here does I/O or reads a clock: the caller passes ``now_ms``. Random choices
come from one seeded ``random.Random``, so the same seed and the same calls
give the same events.

The event rules (Polymarket's):
- a level change is a ``price_change`` carrying both tokens of the market
  (a YES bid at ``p`` is a NO ask at ``1 - p``), each entry with the new total
  ``size`` at that price and the asset's best bid and ask right after it;
  several changes may share one frame; then a ``best_bid_ask`` (custom
  feature) for each asset whose top moved;
- a trade consumes the best opposite level: ``last_trade_price``, then a
  ``book`` of each token;
- when a top of book goes beyond 0.96 or below 0.04 on the 0.01 tick, the
  tick becomes 0.001: a ``tick_size_change`` per token (levels stay valid);
  coarsening (explicit or by the fault rate) drops levels off the new grid and
  sends a fresh ``book`` of each token after the ``tick_size_change``.
"""

from __future__ import annotations

import random
from typing import Final

from pmstore.errors import ConfigurationError
from pmstore.simulator._book import (
    BUY,
    COARSE_TICK,
    FINE_TICK,
    HIGH_PRICE,
    LOW_PRICE,
    ONE,
    SELL,
    Side,
)
from pmstore.simulator._market import (
    FIRST_MARKET_ID,
    Market,
    draw_market,
    fill_book,
    initial_tokens,
    new_token_pair,
    random_size,
)
from pmstore.simulator._payloads import (
    Emission,
    Payload,
    best_bid_ask,
    last_trade_price,
    legacy_price_change,
    market_resolved,
    new_market,
    price_change,
    price_change_entry,
    tick_size_change,
    ws_book,
)

__all__ = ["Exchange", "opposite"]

_TRADE_SHARE: Final = 0.1
"""Share of random events that are trades (the rest are level changes)."""


def opposite(side: Side) -> Side:
    """BUY <-> SELL."""
    return SELL if side == BUY else BUY


class Exchange:
    """All markets of a simulation and their books (see the module docstring).

    ``markets`` open markets with filled books and ``closed_markets`` already
    resolved ones are drawn at ``now_ms`` from ``seed``; a share
    ``empty_book_fraction`` of the open ones start with empty books.
    """

    def __init__(
        self,
        *,
        seed: int,
        markets: int,
        closed_markets: int,
        now_ms: int,
        empty_book_fraction: float = 0.0,
    ) -> None:
        if markets < 0 or closed_markets < 0:
            raise ConfigurationError("the numbers of markets must be >= 0")
        self.seed = seed
        self.rng = random.Random(seed)
        self.markets: dict[str, Market] = {}
        self.by_token: dict[str, tuple[Market, int]] = {}
        self.trading: dict[str, Market] = {}
        """The markets whose books are open, in listing order (random events pick from them)."""
        self.pending: dict[str, Market] = {}
        """Listed markets whose books are not open yet."""
        self._serial = 0
        self._listed = 0
        setup = random.Random(seed * 1_000_003 + 17)
        pairs = initial_tokens(markets + closed_markets, seed)
        for i, tokens in enumerate(pairs):
            market = draw_market(
                setup,
                FIRST_MARKET_ID + i,
                tokens,
                now_ms,
                now_ms,
                empty_book=setup.random() < empty_book_fraction,
                fill=True,
            )
            market.bookable_ms = market.created_ms
            if i >= markets:
                market.book.clear()
                market.closed = True
                market.closed_ms = now_ms - setup.randint(60_000, 30 * 86_400_000)
                market.winner = setup.randint(0, 1)
            else:
                market.booked = True
                self.trading[market.condition_id] = market
            self._add(market)

    def _add(self, market: Market) -> None:
        self.markets[market.condition_id] = market
        for outcome, token in enumerate(market.token_ids):
            self.by_token[token] = (market, outcome)

    # -- look-ups --------------------------------------------------------------------

    def market(self, condition_id: str) -> Market:
        """The market of a condition id; ConfigurationError when there is none."""
        try:
            return self.markets[condition_id]
        except KeyError:
            raise ConfigurationError(f"no simulated market {condition_id!r}") from None

    def token(self, token_id: str) -> tuple[Market, int]:
        """The market of a token id and the token's outcome (0 or 1); ConfigurationError
        when there is none."""
        try:
            return self.by_token[token_id]
        except KeyError:
            raise ConfigurationError(f"no simulated token {token_id!r}") from None

    # -- helpers ---------------------------------------------------------------------

    def _next_serial(self) -> int:
        self._serial += 1
        return self._serial

    def _tops(self, market: Market) -> tuple[tuple[int | None, int | None], ...]:
        return market.book.best(0), market.book.best(1)

    def _top_moves(
        self, market: Market, before: tuple[tuple[int | None, int | None], ...], now_ms: int
    ) -> list[Emission]:
        """``best_bid_ask`` events for the tokens whose top moved since ``before``."""
        out = []
        for outcome in (0, 1):
            if market.book.best(outcome) != before[outcome]:
                token = market.token_ids[outcome]
                out.append(Emission(best_bid_ask(market, outcome, now_ms), (token,), custom=True))
        return out

    def _books(self, market: Market, now_ms: int, *, first: bool = False) -> list[Emission]:
        return [
            Emission(ws_book(market, outcome, now_ms, first=first), (token,))
            for outcome, token in enumerate(market.token_ids)
        ]

    def _threshold(self, market: Market, now_ms: int) -> list[Emission]:
        """Refine the tick when a top went beyond 0.96 or below 0.04."""
        if market.tick != COARSE_TICK:
            return []
        bid, ask = market.book.best(0)
        beyond = (bid is not None and (bid > HIGH_PRICE or bid < LOW_PRICE)) or (
            ask is not None and (ask > HIGH_PRICE or ask < LOW_PRICE)
        )
        return self.change_tick(market, FINE_TICK, now_ms) if beyond else []

    # -- actions ---------------------------------------------------------------------

    def set_levels(
        self,
        market: Market,
        changes: list[tuple[int, Side, int, int]],
        now_ms: int,
        *,
        legacy: bool = False,
    ) -> list[Emission]:
        """Set levels (outcome, side, price, new total size; 0 removes) in one frame.

        Each change yields an entry for its own token then the mirrored entry
        of the other token. ``legacy``: the frame is the pre-2025-09-15 shape
        instead (one ``price_change`` per token with ``changes[]``).
        """
        before = self._tops(market)
        entries: list[Payload] = []
        legacy_changes: tuple[list[Payload], list[Payload]] = ([], [])
        for outcome, side, price, size in changes:
            market.book.set(outcome, side, price, size)
            other = 1 - outcome
            for token_outcome, token_side, token_price in (
                (outcome, side, price),
                (other, opposite(side), ONE - price),
            ):
                entry = price_change_entry(
                    market, token_outcome, token_side, token_price, size, self._next_serial()
                )
                entries.append(entry)
                legacy_changes[token_outcome].append(
                    {"price": entry["price"], "side": token_side, "size": entry["size"]}
                )
        if legacy:
            order = [changes[0][0], 1 - changes[0][0]] if changes else [0, 1]
            out = [
                Emission(
                    legacy_price_change(market, outcome, legacy_changes[outcome], now_ms),
                    (market.token_ids[outcome],),
                )
                for outcome in order
            ]
        else:
            out = [Emission(price_change(market, entries, now_ms), market.token_ids)]
        out += self._top_moves(market, before, now_ms)
        out += self._threshold(market, now_ms)
        return out

    def trade(
        self, market: Market, outcome: int, side: Side, size: int, now_ms: int
    ) -> list[Emission]:
        """A taker ``side`` order of ``size`` on ``outcome``'s token against its best opposite
        level (filled up to that level's size). ConfigurationError when that side is empty."""
        resting_side = opposite(side)
        levels = market.book.levels(outcome, resting_side)
        if not levels:
            raise ConfigurationError(
                f"no {resting_side} levels to trade against on token {market.token_ids[outcome]}"
            )
        best = min(levels) if side == BUY else max(levels)
        filled = min(size, levels[best])
        before = self._tops(market)
        market.book.set(outcome, resting_side, best, levels[best] - filled)
        market.last_trade = best if outcome == 0 else ONE - best
        market.volume += filled
        tx = f"0x{self.rng.getrandbits(256):064x}"
        out = [
            Emission(
                last_trade_price(market, outcome, side, best, filled, now_ms, tx),
                (market.token_ids[outcome],),
            )
        ]
        out += self._books(market, now_ms)
        out += self._top_moves(market, before, now_ms)
        out += self._threshold(market, now_ms)
        return out

    def change_tick(self, market: Market, tick: int, now_ms: int) -> list[Emission]:
        """Set the market's tick (``COARSE_TICK`` or ``FINE_TICK``): a ``tick_size_change`` per
        token; when coarsening, levels off the new grid are dropped and a ``book`` of each
        token follows. Nothing when the tick is already ``tick``."""
        if tick not in (COARSE_TICK, FINE_TICK):
            raise ConfigurationError(f"tick must be 0.01 or 0.001, not {tick / ONE}")
        old = market.tick
        if tick == old:
            return []
        market.tick = tick
        out = [
            Emission(tick_size_change(market, outcome, old, tick, now_ms), (token,))
            for outcome, token in enumerate(market.token_ids)
        ]
        if tick > old:
            for levels in (market.book.bids, market.book.asks):
                for price in [p for p in levels if p % tick]:
                    del levels[price]
            out += self._books(market, now_ms)
        return out

    def clear_book(self, market: Market, now_ms: int) -> list[Emission]:
        """Empty both tokens' books (as near resolution): a ``book`` of each, empty."""
        before = self._tops(market)
        market.book.clear()
        return self._books(market, now_ms) + self._top_moves(market, before, now_ms)

    def list_market(self, now_ms: int, bookable_delay_ms: int) -> tuple[Market, list[Emission]]:
        """List a new market: it is on Gamma at once, announced by ``new_market`` (custom
        feature, to every such socket), and its books open ``bookable_delay_ms`` later
        (:meth:`open_due`)."""
        self._listed += 1
        gamma_id = FIRST_MARKET_ID + len(self.markets)
        tokens = new_token_pair(self.seed * 7919 + 1_000_000 + self._listed, set(self.by_token))
        market = draw_market(
            self.rng,
            gamma_id,
            tokens,
            now_ms,
            now_ms + bookable_delay_ms,
            empty_book=True,
            fill=False,
        )
        self._add(market)
        self.pending[market.condition_id] = market
        return market, [Emission(new_market(market, now_ms), market.token_ids, broadcast=True)]

    def open_due(self, now_ms: int) -> list[Emission]:
        """Open the books of listed markets whose delay has passed: market makers quote, and a
        ``book`` of each token goes to its subscribers."""
        out: list[Emission] = []
        for market in list(self.pending.values()):
            if market.closed:
                del self.pending[market.condition_id]
            elif market.bookable(now_ms):
                del self.pending[market.condition_id]
                market.booked = True
                fair = self.rng.randint(100, 900)
                fill_book(market.book, self.rng, fair, market.tick)
                self.trading[market.condition_id] = market
                out += self._books(market, now_ms, first=True)
        return out

    def resolve(self, market: Market, winner: int, now_ms: int) -> list[Emission]:
        """Resolve a market to outcome ``winner``: it closes (Gamma shows it resolved, its books
        are gone) and a ``market_resolved`` (custom feature) goes to its tokens' sockets.
        ConfigurationError when it is already closed."""
        if market.closed:
            raise ConfigurationError(f"market {market.condition_id} is already closed")
        if winner not in (0, 1):
            raise ConfigurationError(f"winner must be outcome 0 or 1, not {winner}")
        market.closed = True
        market.closed_ms = now_ms
        market.winner = winner
        market.book.clear()
        self.trading.pop(market.condition_id, None)
        return [Emission(market_resolved(market, now_ms), market.token_ids, custom=True)]

    # -- random events ---------------------------------------------------------------

    def _random_change(self, market: Market) -> tuple[int, Side, int, int] | None:
        """A plausible level change (outcome, side, price, new size), or None."""
        rng = self.rng
        book, tick = market.book, market.tick
        outcome = rng.randint(0, 1)
        side: Side = rng.choice((BUY, SELL))
        levels = book.levels(outcome, side)
        bid, ask = book.best(outcome)
        if levels and rng.random() < 0.4:
            best = max(levels) if side == BUY else min(levels)
            price = best if rng.random() < 0.5 else rng.choice(sorted(levels))
            old = levels[price]
            new = 0 if rng.random() < 0.7 or old <= 1 else rng.randint(1, old - 1)
            return outcome, side, price, new
        fair = round(market.mid() * ONE) if outcome == 0 else ONE - round(market.mid() * ONE)
        offset = rng.choice((1, 0, 0, -1, -1, -2, -3, -5, -8))
        if side == BUY:
            ref = bid if bid is not None else (ask - tick if ask is not None else fair)
            price = ((ref // tick) + offset) * tick
            if ask is not None:
                price = min(price, ask - tick)
        else:
            ref = ask if ask is not None else (bid + tick if bid is not None else fair)
            price = (-(-ref // tick) - offset) * tick
            if bid is not None:
                price = max(price, bid + tick)
        if not 0 < price < ONE:
            return None
        return outcome, side, price, book.size_at(outcome, side, price) + random_size(rng)

    def random_events(
        self, market: Market, now_ms: int, *, tick_change_rate: float = 0.0, legacy: bool = False
    ) -> list[Emission]:
        """One random event on ``market`` (mostly level changes, some trades; a tick-size
        change with probability ``tick_change_rate``) and the frames it causes."""
        rng = self.rng
        if tick_change_rate and rng.random() < tick_change_rate:
            new = FINE_TICK if market.tick == COARSE_TICK else COARSE_TICK
            return self.change_tick(market, new, now_ms)
        if rng.random() < _TRADE_SHARE:
            outcome = rng.randint(0, 1)
            side: Side = rng.choice((BUY, SELL))
            if market.book.levels(outcome, opposite(side)):
                return self.trade(market, outcome, side, random_size(rng), now_ms)
        count = rng.choice((1, 1, 1, 1, 1, 1, 2, 2, 3))
        changes = []
        for _ in range(count * 2):
            change = self._random_change(market)
            if change is not None:
                changes.append(change)
            if len(changes) == count:
                break
        if not changes:
            return []
        return self.set_levels(market, changes, now_ms, legacy=legacy)
