"""A seeded generator of recorded Polymarket market-channel WebSocket messages.

Used by ``bench_ingest.py`` and by the ingest tests (loaded by path). The
mix: 80% ``price_change`` in the current shape (1-5 entries, each with
``best_bid``/``best_ask``), 15% ``book`` snapshots of 50-70 levels sent
worst-first, 5% ``last_trade_price`` (half with a transaction hash). Token
ids are distinct 74-78-digit strings, two per market; condition ids ``0x`` +
64 hex digits; prices and sizes are strings as Polymarket sends them;
timestamps are strings of Unix milliseconds.
"""

from __future__ import annotations

import random
import time
from itertools import accumulate
from typing import IO, Any

import orjson


class Archive:
    """A seeded generator of recorded market-channel WebSocket messages."""

    def __init__(self, seed: int = 12, markets: int = 3_000) -> None:
        self.rng = random.Random(seed)
        self.markets = [(self._condition(), self._token(), self._token()) for _ in range(markets)]
        self.mids = [self.rng.randint(5, 95) for _ in range(markets)]
        # Messages start at midnight UTC yesterday (ms): recent, as a recorder's archive
        # is, so inside every retention horizon.
        self.ts = (int(time.time()) // 86_400 - 1) * 86_400_000

    def _token(self) -> str:
        n = self.rng.randint(74, 78)
        return str(self.rng.randint(1, 9)) + "".join(self.rng.choices("0123456789", k=n - 1))

    def _condition(self) -> str:
        return "0x" + "".join(self.rng.choices("0123456789abcdef", k=64))

    def _hash(self) -> str:
        return "".join(self.rng.choices("0123456789abcdef", k=40))

    def _depths(self, levels: int) -> list[int]:
        """Ticks from the best level of each of ``levels`` levels: 0, then 1-3 more each."""
        return [0, *accumulate(self.rng.randint(1, 3) for _ in range(levels - 1))]

    def message(self) -> dict[str, Any]:
        """The next message: 80% price_change, 15% book, 5% last_trade_price."""
        rng = self.rng
        self.ts += rng.randint(0, 12)
        i = rng.randrange(len(self.markets))
        cid, yes, no = self.markets[i]
        self.mids[i] = min(97, max(3, self.mids[i] + rng.choice((-1, 0, 0, 1))))
        mid = self.mids[i]
        roll = rng.random()
        if roll < 0.80:
            entries = []
            for _ in range(rng.choice((1, 2, 2, 2, 3, 4, 5))):
                token, m = (yes, mid) if rng.random() < 0.5 else (no, 100 - mid)
                bid, ask = m - rng.randint(0, 1), m + rng.randint(1, 2)
                entries.append(
                    {
                        "asset_id": token,
                        "price": f"0.{rng.randint(bid - 2, ask + 2):02d}",
                        "size": f"{rng.randint(0, 50_000) / 10:g}",
                        "side": rng.choice(("BUY", "SELL")),
                        "hash": self._hash(),
                        "best_bid": f"0.{bid:02d}",
                        "best_ask": f"0.{ask:02d}",
                    }
                )
            return {
                "market": cid,
                "price_changes": entries,
                "timestamp": str(self.ts),
                "event_type": "price_change",
            }
        token = yes if rng.random() < 0.5 else no
        if roll < 0.95:
            best_bid = (mid if token == yes else 100 - mid) * 10 - rng.randint(0, 5)
            levels = rng.randint(50, 70)
            n_bids = levels // 2
            # Each side strictly ordered from its best level (1-3 ticks apart), as an order
            # book is, and sent worst-first, as Polymarket sends it.
            bids = [best_bid - depth for depth in self._depths(n_bids)][::-1]
            asks = [best_bid + 10 + depth for depth in self._depths(levels - n_bids)][::-1]
            return {
                "market": cid,
                "asset_id": token,
                "timestamp": str(self.ts),
                "hash": self._hash(),
                "bids": [
                    {"price": f"{max(p, 1) / 1000:g}", "size": f"{rng.randint(1, 90_000) / 100:g}"}
                    for p in bids
                ],
                "asks": [
                    {
                        "price": f"{min(p, 999) / 1000:g}",
                        "size": f"{rng.randint(1, 90_000) / 100:g}",
                    }
                    for p in asks
                ],
                "event_type": "book",
                "last_trade_price": f"0.{mid:02d}",
            }
        trade = {
            "asset_id": token,
            "event_type": "last_trade_price",
            "fee_rate_bps": "0",
            "market": cid,
            "price": f"0.{mid:02d}",
            "side": rng.choice(("BUY", "SELL")),
            "size": f"{rng.randint(1, 100_000) / 100:g}",
            "timestamp": str(self.ts),
        }
        if rng.random() < 0.5:
            trade["transaction_hash"] = "0x" + "".join(rng.choices("0123456789abcdef", k=64))
        return trade

    def write(self, out: IO[bytes], *, messages: int = 0, max_bytes: int = 0) -> int:
        """Write JSON lines until ``messages`` or ``max_bytes``; return the messages written."""
        written = size = 0
        while (messages and written < messages) or (max_bytes and size < max_bytes):
            line = orjson.dumps(self.message()) + b"\n"
            out.write(line)
            written += 1
            size += len(line)
        return written
