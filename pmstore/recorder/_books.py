"""One token's kept order book: price -> size per side, with the best levels at hand.

Levels come as Polymarket's decimal strings and are kept as floats (the
value a decimal string parses to; "0.480" and "0.48" are one level). A size
of 0 removes the level (``price_change`` sends the new total at a price).
The best bid and ask are kept up to date as levels change (a removal of
the best level rescans its side: O(levels)).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Book", "LevelList"]

LevelList = list[tuple[float, float]]
"""(price, size) pairs."""


class Book:
    """Bids and asks of one token; ``best_bid``/``best_ask`` are None for an empty side."""

    __slots__ = ("asks", "best_ask", "best_bid", "bids")

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.best_bid: float | None = None
        self.best_ask: float | None = None

    @classmethod
    def from_levels(cls, bids: LevelList, asks: LevelList) -> Book:
        """A book from (price, size) pairs in any order (zero sizes dropped)."""
        book = cls()
        book.bids = {p: s for p, s in bids if s > 0}
        book.asks = {p: s for p, s in asks if s > 0}
        book.best_bid = max(book.bids) if book.bids else None
        book.best_ask = min(book.asks) if book.asks else None
        return book

    def set_bid(self, price: float, size: float) -> None:
        """Set the bid level at ``price`` to ``size`` (0 removes it)."""
        if size > 0:
            self.bids[price] = size
            if self.best_bid is None or price > self.best_bid:
                self.best_bid = price
        elif self.bids.pop(price, None) is not None and price == self.best_bid:
            self.best_bid = max(self.bids) if self.bids else None

    def set_ask(self, price: float, size: float) -> None:
        """Set the ask level at ``price`` to ``size`` (0 removes it)."""
        if size > 0:
            self.asks[price] = size
            if self.best_ask is None or price < self.best_ask:
                self.best_ask = price
        elif self.asks.pop(price, None) is not None and price == self.best_ask:
            self.best_ask = min(self.asks) if self.asks else None

    def sorted_bids(self) -> LevelList:
        """Bids best-first (descending price)."""
        return sorted(self.bids.items(), reverse=True)

    def sorted_asks(self) -> LevelList:
        """Asks best-first (ascending price)."""
        return sorted(self.asks.items())

    def midpoint(self) -> float | None:
        """(best bid + best ask) / 2, None when a side is empty."""
        if self.best_bid is None or self.best_ask is None:
            return None
        return (self.best_bid + self.best_ask) / 2

    def to_json(self) -> list[Any]:
        """[bids, asks] as lists of [price, size] (for the deriver's state)."""
        return [[[p, s] for p, s in self.bids.items()], [[p, s] for p, s in self.asks.items()]]

    @classmethod
    def from_json(cls, obj: Any) -> Book:
        """The book ``to_json`` gave."""
        bids, asks = obj
        return cls.from_levels([(float(p), float(s)) for p, s in bids],
                               [(float(p), float(s)) for p, s in asks])  # fmt: skip
