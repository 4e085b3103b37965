"""A binary market's order book, kept as integers, and the wire texts of its numbers.

Prices are integer thousandths (``480`` is ``"0.48"``), sizes integer
hundredths (``19230`` is ``"192.3"``): exact, so the levels a client rebuilds
from ``book`` and ``price_change`` frames equal the simulator's to the digit.

One book serves both tokens of a market, as on Polymarket's CLOB: the first
outcome's (YES) bids and asks are stored; the second outcome's (NO) book is
its mirror, a YES bid at ``p`` being a NO ask at ``1 - p`` and the reverse.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final, Literal

from pmstore.errors import ConfigurationError

__all__ = [
    "BUY",
    "COARSE_TICK",
    "FINE_TICK",
    "HIGH_PRICE",
    "LOW_PRICE",
    "ONE",
    "SELL",
    "Book",
    "Side",
    "parse_price",
    "parse_size",
    "price_text",
    "size_text",
]

Side = Literal["BUY", "SELL"]
"""``BUY`` is the bid side, ``SELL`` the ask side (Polymarket's words)."""

BUY: Final[Side] = "BUY"
SELL: Final[Side] = "SELL"

ONE: Final = 1000
"""Price 1 in thousandths: every level price is in (0, ONE)."""
SIZE_SCALE: Final = 100
"""Sizes are kept in hundredths."""
COARSE_TICK: Final = 10
"""The 0.01 tick."""
FINE_TICK: Final = 1
"""The 0.001 tick, used once a price is beyond 0.96 or below 0.04."""
HIGH_PRICE: Final = 960
LOW_PRICE: Final = 40
"""Polymarket's tick-size thresholds: a top of book beyond 0.96 or below 0.04."""


def price_text(milli: int) -> str:
    """A price in thousandths as Polymarket writes it: ``"0.48"``, ``"0.001"``, ``"0"``, ``"1"``."""
    if milli <= 0:
        return "0"
    if milli >= ONE:
        return "1"
    return f"0.{milli:03d}".rstrip("0")


def size_text(hundredths: int) -> str:
    """A size in hundredths as Polymarket writes it: ``"1000"``, ``"192.3"``, ``"667.12"``."""
    whole, frac = divmod(hundredths, SIZE_SCALE)
    if frac == 0:
        return str(whole)
    return f"{whole}.{frac:02d}".rstrip("0")


def _scaled(value: str | float | int, scale: int, what: str) -> int:
    try:
        number = Decimal(str(value)) * scale
    except InvalidOperation:
        raise ConfigurationError(f"{what} must be a decimal number, not {value!r}") from None
    if number != number.to_integral_value():
        raise ConfigurationError(f"{what} {value!r} has more than {len(str(scale)) - 1} decimals")
    return int(number)


def parse_price(value: str | float | int) -> int:
    """A price (``"0.48"``, 0.48) in thousandths; ConfigurationError unless strictly in (0, 1)
    with at most 3 decimals."""
    milli = _scaled(value, ONE, "price")
    if not 0 < milli < ONE:
        raise ConfigurationError(f"price must be strictly between 0 and 1, not {value!r}")
    return milli


def parse_size(value: str | float | int) -> int:
    """A size (``"192.3"``) in hundredths; ConfigurationError for a negative size or more
    than 2 decimals (0 is allowed: it removes a level)."""
    hundredths = _scaled(value, SIZE_SCALE, "size")
    if hundredths < 0:
        raise ConfigurationError(f"size must be >= 0, not {value!r}")
    return hundredths


class Book:
    """The book of a binary market: the first outcome's levels, the second's by mirror.

    ``outcome`` 0 is the first token (YES), 1 the second (NO). Levels map a
    price in thousandths to a size in hundredths; a level is present only
    with a positive size.
    """

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}

    def clear(self) -> None:
        """Remove every level."""
        self.bids.clear()
        self.asks.clear()

    def side_of(self, outcome: int, side: Side) -> tuple[dict[int, int], bool]:
        """The stored levels behind ``outcome``'s ``side`` and whether prices are mirrored."""
        if outcome == 0:
            return (self.bids if side == BUY else self.asks), False
        return (self.asks if side == BUY else self.bids), True

    def levels(self, outcome: int, side: Side) -> dict[int, int]:
        """``outcome``'s levels on ``side``: price -> size (a new dict)."""
        stored, mirrored = self.side_of(outcome, side)
        if not mirrored:
            return dict(stored)
        return {ONE - price: size for price, size in stored.items()}

    def size_at(self, outcome: int, side: Side, price: int) -> int:
        """The size resting at ``price`` on ``outcome``'s ``side`` (0 when none)."""
        stored, mirrored = self.side_of(outcome, side)
        return stored.get(ONE - price if mirrored else price, 0)

    def set(self, outcome: int, side: Side, price: int, size: int) -> None:
        """Set the size at a level of ``outcome``'s book (0 removes the level)."""
        stored, mirrored = self.side_of(outcome, side)
        key = ONE - price if mirrored else price
        if size > 0:
            stored[key] = size
        else:
            stored.pop(key, None)

    def best(self, outcome: int) -> tuple[int | None, int | None]:
        """``outcome``'s best bid and best ask in thousandths (None for an empty side)."""
        bid = max(self.bids) if self.bids else None
        ask = min(self.asks) if self.asks else None
        if outcome == 0:
            return bid, ask
        return (ONE - ask if ask is not None else None), (ONE - bid if bid is not None else None)

    def best_texts(self, outcome: int) -> tuple[str, str]:
        """``outcome``'s best bid and ask as ``price_change`` states them: an empty bid side
        is ``"0"``, an empty ask side ``"1"`` (as in Polymarket's documented example)."""
        bid, ask = self.best(outcome)
        return price_text(bid if bid is not None else 0), price_text(
            ask if ask is not None else ONE
        )

    def worst_first(self, outcome: int) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        """``outcome``'s bids and asks as Polymarket sends them: ``{"price", "size"}`` texts,
        worst first (bids ascending, asks descending: the best level is the LAST)."""
        bids = self.levels(outcome, BUY)
        asks = self.levels(outcome, SELL)
        return (
            [{"price": price_text(p), "size": size_text(bids[p])} for p in sorted(bids)],
            [
                {"price": price_text(p), "size": size_text(asks[p])}
                for p in sorted(asks, reverse=True)
            ],
        )

    def level_count(self) -> int:
        """Levels on both sides."""
        return len(self.bids) + len(self.asks)
