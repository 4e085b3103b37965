"""The hot WebSocket kinds as typed structs, decoded by msgspec straight from JSON bytes.

``price_change`` (newest shape), ``book`` and ``last_trade_price`` events
make up nearly all of a recorded market stream. msgspec decodes a line of one of them
into these structs in one C-level pass, type checks included, and parses
the book levels' numeric strings into floats on the way (its lax mode:
``"0.48"`` -> 0.48, correctly rounded, the value ``float("0.48")`` gives),
so no Python code touches a level's text, and checks each level's range
there too (price in (0, 1], size positive and finite: ``LevelPrice``,
``LevelSize``). Only the fields the columnar adapters read are declared;
others are skipped.

Anything the structs do not describe (another kind, a missing field, a
number where a token id belongs, a level value that is not a plain JSON
number or numeric string, a level out of range) fails to decode, and the
caller takes the general path (orjson, then the adapters), which words the
reason or accepts the level by its own rules. Known differences from orjson:
a line that is not pure ASCII is never decoded here (msgspec does not check
the UTF-8 of the fields it skips), and a level value of zero is left to the
adapters (lax mode reads the text ``"-0"`` as 0.0, not -0.0; the ranges
exclude zero); both then take the general path. One is kept: a number
beyond the double range in a field nobody reads (valid JSON, which orjson
refuses) does not make the line ``not_json``.
"""

from __future__ import annotations

import sys
from typing import Annotated, Final

import msgspec

__all__ = [
    "HOT_KINDS",
    "HotEvent",
    "LastTradePrice",
    "Level",
    "LevelPrice",
    "LevelSize",
    "OrderBook",
    "PriceChange",
    "PriceEntry",
    "decode_line",
    "from_payload",
]


class PriceEntry(msgspec.Struct, gc=False):
    """One entry of a ``price_change`` event (its best bid and ask, as received)."""

    asset_id: str
    best_bid: str | float
    best_ask: str | float


class PriceChange(msgspec.Struct, tag_field="event_type", tag="price_change", gc=False):
    """A ``price_change`` event in its newest shape (``price_changes`` with best bid/ask)."""

    price_changes: list[PriceEntry]
    timestamp: str


LevelPrice = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
"""A level's price as the fast path takes it: in (0, 1] (NaN fails too)."""

LevelSize = Annotated[float, msgspec.Meta(gt=0.0, le=sys.float_info.max)]
"""A level's size as the fast path takes it: positive and finite (NaN fails too)."""


class Level(msgspec.Struct, gc=False):
    """One book level, its price and size parsed from their numeric strings and range
    checked (anything else fails the decode: the general path decides)."""

    price: LevelPrice
    size: LevelSize


class OrderBook(msgspec.Struct, tag_field="event_type", tag="book", gc=False):
    """A ``book`` snapshot event, its levels as received (Polymarket: worst-first)."""

    asset_id: str
    timestamp: str
    bids: list[Level]
    asks: list[Level]


class LastTradePrice(msgspec.Struct, tag_field="event_type", tag="last_trade_price", gc=False):
    """A ``last_trade_price`` event; price and size kept as received (the fill id uses them)."""

    asset_id: str
    timestamp: str
    price: str | float
    size: str | float
    side: str
    transaction_hash: str | None = None
    transactionHash: str | None = None  # noqa: N815 - Polymarket's own name


HotEvent = PriceChange | OrderBook | LastTradePrice
"""Any of the three hot kinds."""

HOT_KINDS: Final = frozenset(
    kind.__struct_config__.tag for kind in (PriceChange, OrderBook, LastTradePrice)
)
"""Their ``event_type`` values (the structs' tags)."""

_LINE_DECODER: Final = msgspec.json.Decoder(HotEvent, strict=False)


def decode_line(line: bytes) -> HotEvent | None:
    """The hot event a JSON text holds, or None for anything else (then parse it generally).

    Costs about what orjson's parse of the same line costs, level numbers included."""
    if not line.isascii():
        return None
    try:
        event: HotEvent = _LINE_DECODER.decode(line)
    except msgspec.MsgspecError:
        return None
    return event


def from_payload(payload: dict[str, object]) -> HotEvent | None:
    """The hot event an already parsed payload holds (the same rules as ``decode_line``),
    or None for anything else."""
    try:
        event: HotEvent = msgspec.convert(payload, HotEvent, strict=False)
    except msgspec.MsgspecError:
        return None
    return event
