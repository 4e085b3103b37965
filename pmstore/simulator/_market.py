"""A simulated market: identity, metadata, state, book; and how new ones are drawn.

Identifiers look like Polymarket's: token ids are 74-78-digit decimal strings
(``pmstore.synthetic.token_ids``), condition and question ids ``0x`` + 64 hex
digits, Gamma ids numeric strings. Every draw comes from the seeded RNG the
caller passes, so a seed gives the same markets.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from pmstore.simulator._book import COARSE_TICK, FINE_TICK, HIGH_PRICE, LOW_PRICE, ONE, Book
from pmstore.synthetic import token_ids

__all__ = [
    "FIRST_MARKET_ID",
    "TAGS",
    "Market",
    "MarketInfo",
    "Tag",
    "draw_market",
    "fill_book",
    "initial_tokens",
    "iso_ms",
    "new_token_pair",
    "random_size",
]


@dataclass(frozen=True, slots=True)
class Tag:
    """A Gamma tag (``id`` is a numeric string, as Gamma's ``tag_id`` takes it)."""

    id: str
    label: str
    slug: str


TAGS: Final = (
    Tag("2", "Politics", "politics"),
    Tag("21", "Crypto", "crypto"),
    Tag("100639", "Sports", "sports"),
    Tag("604", "Stocks", "stocks"),
    Tag("100328", "Economy", "economy"),
    Tag("1401", "Tech", "tech"),
)
"""The tags simulated markets carry (one or two each); ids are the simulator's own."""

FIRST_MARKET_ID: Final = 1_500_000
"""Gamma id of the first simulated market; later ones count up (keyset order)."""

_SUBJECTS: Final = (
    ("Bitcoin", "reach $150k", 1),
    ("Ethereum", "reach $8k", 1),
    ("Solana", "flip BNB", 1),
    ("the Fed", "cut rates", 4),
    ("NVIDIA", "close above $240", 3),
    ("Apple", "close above $260", 3),
    ("the Lakers", "win the title", 2),
    ("Real Madrid", "win the league", 2),
    ("the incumbent", "win the election", 0),
    ("a new party", "enter parliament", 0),
    ("OpenAI", "release a new model", 5),
    ("US GDP growth", "exceed 3%", 4),
)
_MONTHS: Final = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def iso_ms(ms: int) -> str:
    """Unix milliseconds as Gamma's timestamps: ``2026-03-11T09:27:51.140Z``."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _hex64(rng: random.Random) -> str:
    return f"0x{rng.getrandbits(256):064x}"


@dataclass(slots=True, eq=False)
class Market:
    """One binary market of the simulation (mutable state; see :class:`MarketInfo`)."""

    gamma_id: int
    condition_id: str
    question_id: str
    question: str
    slug: str
    description: str
    outcomes: tuple[str, str]
    token_ids: tuple[str, str]
    tags: tuple[Tag, ...]
    event_id: int
    neg_risk: bool
    created_ms: int
    end_ms: int
    bookable_ms: int
    tick: int
    book: Book = field(default_factory=Book)
    last_trade: int | None = None
    """Last trade price of the first token, in thousandths (the second's is 1 - it)."""
    volume: int = 0
    """Traded size in hundredths."""
    booked: bool = False
    """True once the books are open (bookable and announced to subscribers)."""
    closed: bool = False
    closed_ms: int | None = None
    winner: int | None = None
    min_order_size: int = 5

    def bookable(self, now_ms: int) -> bool:
        """Whether the CLOB serves this market's books at ``now_ms``."""
        return not self.closed and now_ms >= self.bookable_ms

    def outcome_of(self, token_id: str) -> int:
        """0 for the first token, 1 for the second."""
        return self.token_ids.index(token_id)

    def mid(self) -> float:
        """The first token's price for Gamma's ``outcomePrices``: the midpoint of the book,
        else the last trade, else 0.5 (1 or 0 once resolved)."""
        if self.winner is not None:
            return 1.0 if self.winner == 0 else 0.0
        bid, ask = self.book.best(0)
        if bid is not None and ask is not None:
            return (bid + ask) / (2 * ONE)
        if self.last_trade is not None:
            return self.last_trade / ONE
        return 0.5

    def info(self) -> MarketInfo:
        """A frozen snapshot of the market's identity and state."""
        return MarketInfo(
            condition_id=self.condition_id,
            gamma_id=str(self.gamma_id),
            question=self.question,
            slug=self.slug,
            outcomes=self.outcomes,
            token_ids=self.token_ids,
            tags=tuple(tag.slug for tag in self.tags),
            tick_size=COARSE_TICK / ONE if self.tick == COARSE_TICK else FINE_TICK / ONE,
            bookable_at_ms=self.bookable_ms,
            booked=self.booked,
            closed=self.closed,
            winning_token_id=self.token_ids[self.winner] if self.winner is not None else None,
        )


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """A simulated market as tests see it (a snapshot: ask the simulator again for news)."""

    condition_id: str
    gamma_id: str
    question: str
    slug: str
    outcomes: tuple[str, str]
    token_ids: tuple[str, str]
    tags: tuple[str, ...]
    """Tag slugs."""
    tick_size: float
    bookable_at_ms: int
    """From this clock time on, the CLOB serves the market's books."""
    booked: bool
    """Whether the books are open (bookable, and announced on the channel)."""
    closed: bool
    winning_token_id: str | None


def _initial_price(rng: random.Random) -> int:
    """A first-outcome price in thousandths: many markets sit near 0 or 1, as real ones do."""
    r = rng.random()
    if r < 0.2:
        return rng.randint(3, 45)
    if r < 0.4:
        return rng.randint(955, 997)
    return rng.randint(60, 940)


def random_size(rng: random.Random) -> int:
    """A level or order size in hundredths: log-normal, often a round number."""
    cents = max(int(rng.lognormvariate(8.5, 2.0)), 100)
    if rng.random() < 0.4:
        cents = max(round(cents, -2), 100)
    return min(cents, 1_000_000_000)


def fill_book(book: Book, rng: random.Random, fair: int, tick: int) -> None:
    """Put 1 to ~40 levels a side around ``fair`` (thousandths) on the ``tick`` grid."""
    center = max(tick, min(ONE - 2 * tick, (fair // tick) * tick))
    best_bid = center - tick * (rng.randint(0, 2))
    best_ask = center + tick * rng.randint(1, 3)
    for side, best, step in ((book.bids, best_bid, -1), (book.asks, best_ask, +1)):
        price = best
        for _ in range(min(int(rng.lognormvariate(2.3, 0.8)) + 1, 60)):
            if not 0 < price < ONE:
                break
            side[price] = random_size(rng)
            price += step * tick * rng.choice((1, 1, 1, 2, 3, 5))


def draw_market(
    rng: random.Random,
    gamma_id: int,
    tokens: tuple[str, str],
    now_ms: int,
    bookable_ms: int,
    *,
    empty_book: bool,
    fill: bool,
) -> Market:
    """A new market with Polymarket-like metadata; its book filled around a drawn price
    unless ``empty_book`` or not ``fill`` (a newly listed market starts empty)."""
    subject, goal, tag_index = rng.choice(_SUBJECTS)
    month = rng.choice(_MONTHS)
    year = datetime.fromtimestamp(now_ms / 1000, tz=UTC).year + rng.randint(0, 1)
    question = f"Will {subject} {goal} by {month} {year}?"
    slug_words = f"{subject} {goal} {month} {year}".lower()
    slug = "-".join(
        "".join(ch for ch in word if ch.isalnum()) for word in slug_words.split()
    ).replace("--", "-")
    slug = f"{slug}-{gamma_id}"
    tags = (TAGS[tag_index],) if rng.random() < 0.6 else (TAGS[tag_index], rng.choice(TAGS))
    if len(tags) == 2 and tags[0] == tags[1]:
        tags = tags[:1]
    outcomes = ("Up", "Down") if tag_index == 1 and rng.random() < 0.5 else ("Yes", "No")
    fair = _initial_price(rng)
    tick = (
        FINE_TICK if (fair < LOW_PRICE or fair > HIGH_PRICE or rng.random() < 0.2) else COARSE_TICK
    )
    end = datetime.fromtimestamp(now_ms / 1000, tz=UTC) + timedelta(days=rng.randint(1, 400))
    market = Market(
        gamma_id=gamma_id,
        condition_id=_hex64(rng),
        question_id=_hex64(rng),
        question=question,
        slug=slug,
        description=(
            f'This market will resolve to "{outcomes[0]}" if {subject} {goal} by the end of '
            f'{month} {year}. Otherwise, this market will resolve to "{outcomes[1]}".'
        ),
        outcomes=outcomes,
        token_ids=tokens,
        tags=tags,
        event_id=200_000 + gamma_id - FIRST_MARKET_ID,
        neg_risk=rng.random() < 0.3,
        created_ms=now_ms - rng.randint(0, 90 * 86_400_000) if fill else now_ms,
        end_ms=int(end.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000),
        bookable_ms=bookable_ms,
        tick=tick,
    )
    if fill and not empty_book:
        fill_book(market.book, rng, fair, tick)
    if fill and rng.random() < 0.8:
        market.last_trade = max(tick, min(ONE - tick, (fair // tick) * tick))
    return market


def new_token_pair(seed: int, taken: set[str]) -> tuple[str, str]:
    """Two fresh token ids from ``seed``'s stream that are not in ``taken``."""
    attempt = 0
    while True:
        first, second = (str(t) for t in token_ids(2, seed + attempt).tolist())
        if first not in taken and second not in taken and first != second:
            return first, second
        attempt += 7919


def initial_tokens(n_markets: int, seed: int) -> list[tuple[str, str]]:
    """The token pairs of the markets a simulation starts with."""
    ids = [str(t) for t in token_ids(2 * n_markets, seed).tolist()]
    return [(ids[2 * i], ids[2 * i + 1]) for i in range(n_markets)]
