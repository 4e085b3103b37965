"""Realistic synthetic Polymarket data: seeded, numpy-vectorized, shaped like the real feeds.

Used by the benchmarks and by ``pmstore demo``::

    from pmstore.synthetic import MarketSimulator, token_ids

    sim = MarketSimulator(8_000, seed=1)        # 4,000 markets, 2 tokens each
    minute = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    prices = sim.prices(minute)                 # PriceBatch: one row per token
    books = sim.orderbooks(minute, 500)         # OrderbookBatch: 500 books
    raw = sim.orderbook_columns(minute, 500)    # the same as Polymarket sends them (strings)
    trades = sim.trades(minute, 2_000)          # TradeBatch: 5% repeated fills
    markets, resolutions = sim.markets(), sim.resolutions(10)

What is realistic about it (see tests/fixtures/polymarket/README.md, facts about the real data):

- token ids are 74-78 decimal digits, distributed like uniform 256-bit
  integers (the real ids are): ~78% have 77 digits, ~14% 78, ~8% 76, ~1% 75,
  ~0.1% 74; condition ids are ``0x`` + 64 hex digits;
- the two tokens of a market are priced p and 1 - p; p is a random walk in
  logit space (with rare jumps), many markets sit near 0 or 1, prices stay in
  [0.001, 0.999] at 4 decimals;
- a minute's price snapshots sweep the tokens in a fixed polling order, so
  ``ts`` rises through the minute (microsecond precision) while token ids are
  in no sorted order; ``volume_24h`` is NULL (NaN) for ~90% of tokens, as
  there is no per-token 24h volume in the public API;
- order books are given as Polymarket sends them: string prices and sizes
  (``("0.48", "1234.5")``), worst-first (bids ascending, asks descending),
  1 to 160 levels a side on a 0.01 or 0.001 tick; ~3% are empty and ~8%
  one-sided;
- trades are fills keyed ``0x<tx hash>:<fill index>`` (several fills share a
  transaction's hash and timestamp), concentrated on a few active tokens;
  a fraction of the rows repeat earlier fills exactly, as overlapping polls do.

Every method draws from its own seeded stream, so a given call sequence
always yields the same data.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from pmstore.batches import OrderbookBatch, PriceBatch, TradeBatch
from pmstore.errors import ConfigurationError
from pmstore.models import FIFTY_FIFTY_PAYOUT, MarketRecord, ResolutionRecord

__all__ = [
    "MAX_LEVELS",
    "PRICE_MAX",
    "PRICE_MIN",
    "MarketSimulator",
    "condition_ids",
    "price_minute",
    "token_ids",
]

PRICE_MIN: Final = 0.001
"""The lowest price a synthetic snapshot takes."""
PRICE_MAX: Final = 0.999
"""The highest price a synthetic snapshot takes."""
MAX_LEVELS: Final = 160
"""The most levels a side of a synthetic order book has."""

_TOKEN_LENGTHS: Final = np.arange(74, 79)
_MINUTE_US: Final = 60_000_000
_LOGIT_MAX: Final = math.log(PRICE_MAX / PRICE_MIN)  # logit(0.999) = -logit(0.001)
_HEX: Final = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_DIGIT_0: Final = ord("0")
_SIZE_VOCABULARY: Final = 1 << 16


def _token_length_probabilities() -> NDArray[np.float64]:
    """P(a uniform 256-bit integer has 74..78 digits); the rare shorter ones count as 74."""
    top = 2**256
    counts = [min(10**length, top) - 10 ** (length - 1) for length in _TOKEN_LENGTHS.tolist()]
    counts[0] = 10**74  # every integer below 10**74 too
    return np.array([c / top for c in counts])


_TOKEN_LENGTH_P: Final = _token_length_probabilities()


def _digits(rng: np.random.Generator, lengths: NDArray[np.int64]) -> NDArray[np.object_]:
    """Random decimal strings of the given lengths (no leading zero), below 2**256 at 78."""
    n, width = len(lengths), int(_TOKEN_LENGTHS[-1])
    digits = rng.integers(0, 10, size=(n, width), dtype=np.uint8)
    digits[:, 0] = rng.integers(1, 10, size=n, dtype=np.uint8)
    longest = lengths == width
    # 2**256 is 1.158e77: a 78-digit id starts with 10 or 11, then 0-4 after 11.
    digits[longest, 0] = 1
    digits[longest, 1] = rng.integers(0, 2, size=int(longest.sum()), dtype=np.uint8)
    eleven = longest & (digits[:, 1] == 1)
    digits[eleven, 2] = rng.integers(0, 5, size=int(eleven.sum()), dtype=np.uint8)
    inside = np.arange(width) < lengths[:, None]
    chars = np.where(inside, digits + _DIGIT_0, 0).astype(np.uint8)
    return np.ascontiguousarray(chars).view(f"S{width}").ravel().astype(str).astype(object)


def token_ids(n: int, seed: int = 0) -> NDArray[np.object_]:
    """Return ``n`` distinct Polymarket-like token ids (object array of str, 74-78 digits).

    Lengths follow uniform 256-bit integers: mostly 77 digits, then 78 and
    76. The same ``(n, seed)`` always gives the same ids. Raises ConfigurationError
    for a negative ``n``.
    """
    if n < 0:
        raise ConfigurationError(f"n must be >= 0, not {n}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x70CE]))
    out = _digits(rng, rng.choice(_TOKEN_LENGTHS, size=n, p=_TOKEN_LENGTH_P))
    while len(set(out.tolist())) < n:  # ~1e-70 per pair: never in practice
        _, first = np.unique(out, return_index=True)
        again = np.setdiff1d(np.arange(n), first)
        out[again] = _digits(rng, np.full(len(again), 77))
    return out


def _hex_ids(rng: np.random.Generator, n: int, nbytes: int = 32) -> NDArray[np.object_]:
    """``n`` random ``0x``-prefixed lowercase hex strings of ``2 * nbytes`` digits."""
    raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    chars = np.empty((n, 2 + 2 * nbytes), dtype=np.uint8)
    chars[:, 0], chars[:, 1] = _DIGIT_0, ord("x")
    chars[:, 2::2] = _HEX[raw >> 4]
    chars[:, 3::2] = _HEX[raw & 15]
    return chars.view(f"S{2 + 2 * nbytes}").ravel().astype(str).astype(object)


def condition_ids(n: int, seed: int = 0) -> NDArray[np.object_]:
    """Return ``n`` Polymarket-like condition ids: ``0x`` + 64 lowercase hex digits."""
    if n < 0:
        raise ConfigurationError(f"n must be >= 0, not {n}")
    return _hex_ids(np.random.default_rng(np.random.SeedSequence([seed, 0xC0D1])), n)


def _as_utc_us(minute: datetime) -> np.datetime64:
    """An aware datetime as a naive UTC ``datetime64[us]``; ConfigurationError for a naive one."""
    if not isinstance(minute, datetime) or minute.utcoffset() is None:
        raise ConfigurationError(f"minute must be a timezone-aware datetime, not {minute!r}")
    return np.datetime64(minute.astimezone(UTC).replace(tzinfo=None), "us")


def _sweep(rng: np.random.Generator, minute: datetime, n: int) -> NDArray[np.datetime64]:
    """``n`` rising timestamps spread over the minute starting at ``minute``."""
    offsets = np.sort(rng.integers(0, _MINUTE_US, size=n))
    return _as_utc_us(minute) + offsets.astype("timedelta64[us]")


def _initial_probabilities(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    """U-shaped: many markets are near-certain, some are close calls."""
    return np.clip(rng.beta(0.5, 0.5, size=n), 0.002, 0.998)


def _rounded_price(p: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.clip(np.round(p, 4), PRICE_MIN, PRICE_MAX)


def price_minute(
    tokens: NDArray[np.object_], minute: datetime, rng: np.random.Generator
) -> PriceBatch:
    """One price snapshot per token in the minute starting at ``minute`` (aware datetime).

    Stateless: each price is drawn afresh (U-shaped, in [0.001, 0.999]); for
    prices that follow a random walk from minute to minute use
    ``MarketSimulator.prices``. ``ts`` rises through the minute in token
    order; ``volume_24h`` is NaN (NULL) for ~90% of rows. Raises ConfigurationError
    for a naive ``minute``.
    """
    n = len(tokens)
    volume = np.round(rng.lognormal(10.0, 2.0, size=n), 2)
    volume[rng.random(n) >= 0.1] = np.nan
    return PriceBatch.from_columns(
        {
            "ts": _sweep(rng, minute, n),
            "token_id": np.asarray(tokens, dtype=object),
            "price": _rounded_price(_initial_probabilities(rng, n)),
            "volume_24h": volume,
        }
    )


def _segment_offsets(counts: NDArray[np.int64], gaps: NDArray[np.int64]) -> NDArray[np.int64]:
    """Within each run of ``counts[i]`` items, the running sum of ``gaps`` after the run's first."""
    used = counts > 0
    starts = (np.cumsum(counts) - counts)[used]
    total: NDArray[np.int64] = np.cumsum(gaps)
    first: NDArray[np.int64] = np.repeat(total[starts], counts[used])
    return total - first


class MarketSimulator:
    """A seeded simulation of Polymarket markets: prices, books, trades, markets, resolutions.

    ``tokens`` is an even number of tokens to generate, or an array of token
    ids (even length): tokens ``2k`` and ``2k+1`` are the two outcomes of
    market ``k``. ``prices`` advances every market's random walk by one step
    (a minute); ``orderbooks`` and ``trades`` read the current prices without
    moving them. Raises ConfigurationError for an odd or empty token set.
    """

    def __init__(self, tokens: NDArray[np.object_] | int, seed: int = 0) -> None:
        ids = (
            token_ids(tokens, seed) if isinstance(tokens, int) else np.asarray(tokens, dtype=object)
        )
        if ids.ndim != 1 or len(ids) == 0 or len(ids) % 2:
            raise ConfigurationError(f"need a non-empty, even number of tokens, got {ids.shape}")
        self.tokens: NDArray[np.object_] = ids
        self.tokens.flags.writeable = False
        self.seed = seed
        streams = np.random.SeedSequence([seed, 0x5EED]).spawn(5)
        self._walk, self._books, self._trades, self._meta, self._setup = (
            np.random.default_rng(s) for s in streams
        )
        n_markets = len(ids) // 2
        self._logit = np.log((p := _initial_probabilities(self._setup, n_markets)) / (1.0 - p))
        self.condition_ids: NDArray[np.object_] = _hex_ids(self._setup, n_markets)
        self._has_volume = self._setup.random(len(ids)) < 0.1
        self._volume = np.round(self._setup.lognormal(10.0, 2.0, size=len(ids)), 2)
        self._fine_tick = self._setup.random(n_markets) < 0.25  # always on a 0.001 tick
        weights = 1.0 / np.arange(1, len(ids) + 1) ** 1.1  # a few tokens trade most
        self._activity = weights[self._setup.permutation(len(ids))] / weights.sum()
        self._sizes = self._size_vocabulary(self._setup)
        self._history: dict[str, NDArray[Any]] | None = None

    @property
    def n_markets(self) -> int:
        """How many markets (half the tokens)."""
        return len(self.tokens) // 2

    # -- prices ----------------------------------------------------------------------

    def token_prices(self) -> NDArray[np.float64]:
        """The current price of every token (market k: p for token 2k, 1 - p for 2k+1)."""
        yes = 1.0 / (1.0 + np.exp(-self._logit))
        return _rounded_price(np.column_stack([yes, 1.0 - yes]).ravel())

    def prices(self, minute: datetime) -> PriceBatch:
        """Advance the walk one step; return one snapshot per token in the minute.

        ``minute`` is an aware datetime (the minute's start). Raises ConfigurationError
        for a naive one.
        """
        ts = _sweep(self._walk, minute, len(self.tokens))
        m = self.n_markets
        step = self._walk.normal(0.0, 0.03, size=m)
        jumps = self._walk.random(m) < 0.002
        step[jumps] += self._walk.normal(0.0, 1.0, size=int(jumps.sum()))
        self._logit = np.clip(self._logit + step, -_LOGIT_MAX, _LOGIT_MAX)
        drift = self._walk.normal(1.0, 0.001, size=len(self.tokens))
        volume = np.where(self._has_volume, np.round(self._volume * drift, 2), np.nan)
        return PriceBatch.from_columns(
            {"ts": ts, "token_id": self.tokens, "price": self.token_prices(), "volume_24h": volume}
        )

    # -- order books -----------------------------------------------------------------

    @staticmethod
    def _size_vocabulary(rng: np.random.Generator) -> NDArray[np.object_]:
        """Size strings as Polymarket writes them: "1000", "192.3", "10004567.57"."""
        cents = np.maximum(np.round(rng.lognormal(8.5, 2.2, size=_SIZE_VOCABULARY)), 1)
        whole = rng.random(_SIZE_VOCABULARY) < 0.4
        cents[whole] = np.maximum(np.round(cents[whole], -2), 100)
        texts = [
            f"{c // 100}" if c % 100 == 0 else f"{c // 100}.{c % 100:02d}".rstrip("0")
            for c in cents.astype(np.int64).tolist()
        ]
        return np.array(texts, dtype=object)

    def orderbooks(self, minute: datetime, n_tokens: int) -> OrderbookBatch:
        """Books of ``n_tokens`` distinct random tokens in the minute (see ``orderbook_columns``).

        The batch holds the levels parsed and best-first, spread and midpoint
        derived (NaN for empty and one-sided books). Raises like
        ``orderbook_columns``.
        """
        return OrderbookBatch.from_columns(self.orderbook_columns(minute, n_tokens))

    def orderbook_columns(self, minute: datetime, n_tokens: int) -> dict[str, Any]:
        """Raw columns of ``n_tokens`` books in the minute, as Polymarket sends them.

        ``ts`` (datetime64[us]), ``token_id`` (object array) and ``bids`` /
        ``asks``: per book a list of ``(price, size)`` string pairs,
        worst-first (bids ascending, asks descending), 1 to 160 a side, around
        the token's current price on its tick (0.01, or 0.001 near 0/1 and on
        a quarter of markets). About 3% of books are empty and 8% one-sided.
        ``OrderbookBatch.from_columns`` accepts the mapping as is. Raises
        ConfigurationError when ``n_tokens`` is negative or more than the tokens there
        are, or for a naive ``minute``.
        """
        n_all = len(self.tokens)
        if not 0 <= n_tokens <= n_all:
            raise ConfigurationError(f"n_tokens must be within [0, {n_all}], not {n_tokens}")
        rng = self._books
        ts = _sweep(rng, minute, n_tokens)
        rows = np.sort(rng.choice(n_all, size=n_tokens, replace=False))
        mid = self.token_prices()[rows]
        fine = self._fine_tick[rows // 2] | (mid < 0.04) | (mid > 0.96)
        per_price = np.where(fine, 1, 10)  # a tick in thousandths
        ticks = 1000 // per_price  # ticks in [0, 1]
        centre = np.floor(mid * ticks).astype(np.int64)
        best_bid = centre - (rng.geometric(0.6, size=n_tokens) - 1)
        best_ask = centre + rng.geometric(0.6, size=n_tokens)
        shape = rng.random(n_tokens)
        no_bids = shape < 0.07  # [0, 0.03): empty book; [0.03, 0.07): asks only
        no_asks = (shape < 0.03) | ((shape >= 0.07) & (shape < 0.11))  # [0.07, 0.11): bids only
        return {
            "ts": ts,
            "token_id": self.tokens[rows],
            "bids": self._side(rng, best_bid, -1, per_price, ticks, no_bids),
            "asks": self._side(rng, best_ask, +1, per_price, ticks, no_asks),
        }

    def _side(
        self,
        rng: np.random.Generator,
        best: NDArray[np.int64],
        direction: int,
        per_price: NDArray[np.int64],
        ticks: NDArray[np.int64],
        empty: NDArray[np.bool_],
    ) -> list[list[tuple[str, str]]]:
        """One side of every book, worst-first: levels move away from ``best`` by ``direction``."""
        n = len(best)
        counts = np.clip(np.round(rng.lognormal(3.0, 1.0, size=n)), 1, MAX_LEVELS).astype(np.int64)
        counts[empty] = 0
        gaps = rng.geometric(0.55, size=int(counts.sum())).astype(np.int64)
        offsets = _segment_offsets(counts, gaps)  # 0 at the best level, then rising
        book = np.repeat(np.arange(n), counts)
        level_ticks = best[book] + direction * offsets
        keep = (level_ticks >= 1) & (level_ticks <= ticks[book] - 1)
        thousandths = (level_ticks * per_price[book])[keep]
        book = book[keep]
        kept = np.bincount(book, minlength=n)
        prices = _PRICE_TEXT[thousandths].tolist()
        sizes = self._sizes[rng.integers(0, _SIZE_VOCABULARY, size=len(thousandths))].tolist()
        out: list[list[tuple[str, str]]] = []
        start = 0
        for count in kept.tolist():
            stop = start + count
            side = list(zip(prices[start:stop], sizes[start:stop], strict=True))
            side.reverse()  # worst-first, as Polymarket sends books
            out.append(side)
            start = stop
        return out

    # -- trades ----------------------------------------------------------------------

    def trades(self, minute: datetime, n: int, duplicate_fraction: float = 0.05) -> TradeBatch:
        """``n`` fills in the minute; ``round(n * duplicate_fraction)`` of them repeat earlier ones.

        A repeated row is an exact copy (same ``trade_id`` and ``ts``) of a
        fill from this call or the previous one, so once every batch is
        written in order the table holds exactly the fresh fills. Fills of one
        transaction share its hash and timestamp; ids are ``<hash>:<index>``.
        Rows are in ``ts`` order. Raises ConfigurationError for a negative ``n`` or a
        fraction outside [0, 1).
        """
        if n < 0 or not 0.0 <= duplicate_fraction < 1.0:
            raise ConfigurationError(
                f"need n >= 0 and duplicate_fraction in [0, 1), got {n}, {duplicate_fraction}"
            )
        rng = self._trades
        n_dup = round(n * duplicate_fraction)
        if n and (self._history is None or not len(self._history["ts"])):
            n_dup = min(n_dup, n - 1)  # keep something to repeat
        fresh = self._fresh_trades(rng, minute, n - n_dup)
        pool = fresh if self._history is None else _concat(self._history, fresh)
        pool_size = len(pool["ts"])
        picked = rng.choice(pool_size, size=n_dup, replace=n_dup > pool_size) if pool_size else None
        rows = fresh if picked is None else _concat(fresh, {k: v[picked] for k, v in pool.items()})
        order = np.argsort(rows["ts"], kind="stable")
        if len(fresh["ts"]):
            self._history = fresh
        return TradeBatch.from_columns({k: v[order] for k, v in rows.items()})

    def _fresh_trades(
        self, rng: np.random.Generator, minute: datetime, n: int
    ) -> dict[str, NDArray[Any]]:
        n_tx = max(1, math.ceil(n / 1.6))
        tx = np.sort(rng.integers(0, n_tx, size=n))
        first = np.searchsorted(tx, tx, side="left")
        fill = np.arange(n) - first
        hashes = _hex_ids(rng, n_tx)[tx]
        trade_id = np.array(
            [f"{h}:{i}" for h, i in zip(hashes.tolist(), fill.tolist(), strict=True)], dtype=object
        )
        tx_ts = _as_utc_us(minute) + np.sort(rng.integers(0, _MINUTE_US, size=n_tx)).astype(
            "timedelta64[us]"
        )
        token_rows = rng.choice(len(self.tokens), size=n_tx, p=self._activity)[tx]
        mid = self.token_prices()[token_rows]
        tick = np.where(self._fine_tick[token_rows // 2] | (mid < 0.04) | (mid > 0.96), 0.001, 0.01)
        price = np.round((np.round(mid / tick) + rng.integers(-2, 3, size=n)) * tick, 3)
        side = np.where(rng.random(n) < 0.5, "BUY", "SELL").astype(object)
        return {
            "ts": tx_ts[tx],
            "token_id": self.tokens[token_rows],
            "side": side,
            "price": np.clip(price, PRICE_MIN, PRICE_MAX),
            "size": np.maximum(np.round(rng.lognormal(3.5, 1.8, size=n), 2), 0.01),
            "trade_id": trade_id,
        }

    # -- markets and resolutions -----------------------------------------------------

    def markets(self) -> list[MarketRecord]:
        """One ``MarketRecord`` per market: its condition id and its two tokens.

        Outcomes are Yes/No for most markets, other pairs (Up/Down, team
        names) for some. The same simulator always returns the same records.
        """
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x3A7]))
        created = datetime(2025, 9, 1, tzinfo=UTC)
        records = []
        for k, condition in enumerate(self.condition_ids.tolist()):
            subject, event = _SUBJECTS[k % len(_SUBJECTS)], _EVENTS[(k // 7) % len(_EVENTS)]
            end = date(2026, 1, 1) + timedelta(days=int(rng.integers(0, 365)))
            question = f"Will {subject} {event} by {end:%B} {end.day}, {end.year}?"
            outcomes = (
                _OUTCOMES[0] if rng.random() < 0.85 else _OUTCOMES[1 + k % (len(_OUTCOMES) - 1)]
            )
            records.append(
                MarketRecord(
                    condition_id=condition,
                    question=question,
                    slug="-".join(
                        [*question.lower().replace("?", "").replace(",", "").split(), str(k)]
                    ),
                    market_type="binary",
                    outcomes=list(outcomes),
                    clob_token_ids=[self.tokens[2 * k], self.tokens[2 * k + 1]],
                    active=True,
                    closed=False,
                    end_date_iso=end.isoformat(),
                    created_at=created + timedelta(minutes=int(rng.integers(0, 200_000))),
                )
            )
        return records

    def resolutions(self, k: int) -> list[ResolutionRecord]:
        """Resolutions of ``k`` distinct markets; the first is a 50/50 (no winner, payout 0.5).

        The others are won by the token priced above 0.5 (payout 1.0), with
        statuses mostly ``resolved`` (some ``proposed`` or ``disputed``) and
        the detection method of one of the sources. Raises ConfigurationError for a
        negative ``k`` or more than there are markets.
        """
        if not 0 <= k <= self.n_markets:
            raise ConfigurationError(f"k must be within [0, {self.n_markets}], not {k}")
        rng = self._meta
        chosen = rng.choice(self.n_markets, size=k, replace=False)
        prices = self.token_prices()
        labels = {r.condition_id: r.outcomes or ["Yes", "No"] for r in self.markets()}
        when = datetime(2026, 3, 1, tzinfo=UTC)
        out = []
        for i, m in enumerate(chosen.tolist()):
            condition = str(self.condition_ids[m])
            resolved_at = when + timedelta(seconds=int(rng.integers(0, 86_400 * 30)))
            method = _DETECTION[int(rng.integers(0, len(_DETECTION)))]
            if i == 0:
                out.append(
                    ResolutionRecord(
                        condition_id=condition,
                        outcome="50-50",
                        winner_token_id=None,
                        resolved_at=resolved_at,
                        payout_price=FIFTY_FIFTY_PAYOUT,
                        detection_method=method,
                        status="resolved",
                    )
                )
                continue
            won = 0 if prices[2 * m] >= 0.5 else 1
            draw = rng.random()
            status = "resolved" if draw < 0.8 else "proposed" if draw < 0.9 else "disputed"
            out.append(
                ResolutionRecord(
                    condition_id=condition,
                    outcome=labels[condition][won],
                    winner_token_id=str(self.tokens[2 * m + won]),
                    resolved_at=resolved_at,
                    payout_price=1.0,
                    detection_method=method,
                    status=status,
                )
            )
        return out


def _concat(a: dict[str, NDArray[Any]], b: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


_PRICE_TEXT: Final = np.array(
    ["0"] + [f"{k / 1000:.3f}".rstrip("0") for k in range(1, 1000)] + ["1"], dtype=object
)
"""Price strings by thousandths, as Polymarket writes them: "0.5", "0.48", "0.001"."""

_SUBJECTS: Final = (
    "Bitcoin",
    "Ethereum",
    "the Fed",
    "the S&P 500",
    "Taylor Swift",
    "SpaceX",
    "OpenAI",
    "the Lakers",
    "Real Madrid",
    "the ECB",
    "Nvidia",
    "Argentina",
)
_EVENTS: Final = (
    "reach a new all-time high",
    "cut rates",
    "announce a deal",
    "win the final",
    "launch a new product",
    "top the charts",
    "be up more than 10%",
)
_OUTCOMES: Final = (
    ("Yes", "No"),
    ("Up", "Down"),
    ("Over", "Under"),
    ("Celtics", "Knicks"),
    ("Long", "Short"),
)
_DETECTION: Final = ("websocket", "gamma", "clob", "data_api")
