"""Typed records for pmstore's five tables (pydantic v2).

One model per table, with the table's columns as fields:

- ``MarketRecord``      -> ``markets``
- ``PriceSnapshot``     -> ``price_snapshots``
- ``OrderbookSnapshot`` -> ``orderbook_snapshots``
- ``TradeRecord``       -> ``trades``
- ``ResolutionRecord``  -> ``resolutions``

Rules shared by all models (they mirror the Writer's batch validation):

- token ids are text (Polymarket's are 74-78 decimal digits), never empty;
- timestamps must be timezone-aware and are normalised to UTC;
- prices are finite and within [0, 1]; sizes and volumes finite and >= 0;
- a trade's side is ``BUY`` or ``SELL``;
- order-book levels are ``(price, size)`` pairs, stored best-first: bids by
  descending price, asks by ascending price (Polymarket sends them
  worst-first). When ``spread``/``midpoint`` are not given they are computed
  from the best bid and best ask, and are ``None`` for empty or one-sided books.

Models are frozen; invalid values raise ``pydantic.ValidationError`` naming
the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from pmstore.errors import ConfigurationError

__all__ = [
    "FIFTY_FIFTY_PAYOUT",
    "BookLevel",
    "MarketRecord",
    "ModelT",
    "OrderbookSnapshot",
    "PriceSnapshot",
    "ResolutionRecord",
    "TradeRecord",
    "best_bid_ask",
    "record_to_model",
]


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be finite")
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware datetime, normalised to UTC. Naive datetimes are rejected."""

TokenId = Annotated[str, Field(min_length=1)]
"""A token id as text (Polymarket's are 74-78 decimal digits)."""

Price = Annotated[float, AfterValidator(_finite), Field(ge=0.0, le=1.0)]
"""A probability price: finite, within [0, 1]."""

Size = Annotated[float, AfterValidator(_finite), Field(ge=0.0)]
"""A size or volume: finite and not negative."""

Side = Literal["BUY", "SELL"]

BookLevel = tuple[Price, Size]
"""One order-book level: (price, size)."""


def _level_pairs(levels: Any) -> Any:
    """Polymarket's ``{"price": "0.48", "size": "1234.5"}`` levels as (price, size) pairs.

    Other items are left for the pair validation (which names what is wrong).
    """
    if not isinstance(levels, list | tuple):
        return levels
    out = []
    for k, level in enumerate(levels):
        if isinstance(level, Mapping):
            if "price" not in level or "size" not in level:
                raise ValueError(f"level {k} has no 'price' and 'size': {dict(level)!r:.60}")
            level = (level["price"], level["size"])
        out.append(level)
    return out


BookLevels = Annotated[list[BookLevel], BeforeValidator(_level_pairs)]
"""A side of a book: (price, size) pairs, or Polymarket's ``{"price", "size"}`` dicts."""

_FROZEN = ConfigDict(frozen=True, extra="forbid", strict=False)


class MarketRecord(BaseModel):
    """A row of ``markets``: one Polymarket market (a condition), keyed by condition_id."""

    model_config = _FROZEN

    condition_id: Annotated[str, Field(min_length=1)]
    question: str
    slug: str | None = None
    market_type: str | None = None
    outcomes: list[str] | None = None
    clob_token_ids: list[TokenId] | None = None
    active: bool = True
    closed: bool = False
    end_date_iso: str | None = None
    created_at: UtcDatetime | None = None
    updated_at: UtcDatetime | None = None


class PriceSnapshot(BaseModel):
    """A row of ``price_snapshots``: a token's price at an instant."""

    model_config = _FROZEN

    ts: UtcDatetime
    token_id: TokenId
    price: Price
    volume_24h: Size | None = None


def best_bid_ask(
    bids: Sequence[tuple[float, float]], asks: Sequence[tuple[float, float]]
) -> tuple[float | None, float | None]:
    """Return (spread, midpoint) from the highest bid and the lowest ask.

    Both are ``None`` when either side is empty. Levels may be in any order.
    """
    if not bids or not asks:
        return None, None
    best_bid = max(level[0] for level in bids)
    best_ask = min(level[0] for level in asks)
    return best_ask - best_bid, (best_bid + best_ask) / 2.0


class OrderbookSnapshot(BaseModel):
    """A row of ``orderbook_snapshots``: a token's book at an instant.

    Levels are ``(price, size)`` pairs or Polymarket's ``{"price": "0.48",
    "size": "1234.5"}`` dicts (as ``/book`` and the WebSocket ``book`` event
    send them, worst-first), numbers or numeric strings; they are stored as
    float pairs sorted best-first (bids descending, asks ascending by price).
    Spread and midpoint are filled in from the best levels when not given.
    """

    model_config = _FROZEN

    ts: UtcDatetime
    token_id: TokenId
    bids: BookLevels = Field(default_factory=list)
    asks: BookLevels = Field(default_factory=list)
    spread: float | None = None
    midpoint: Price | None = None

    @model_validator(mode="after")
    def _normalise(self) -> OrderbookSnapshot:
        bids = sorted(self.bids, key=lambda level: level[0], reverse=True)
        asks = sorted(self.asks, key=lambda level: level[0])
        object.__setattr__(self, "bids", bids)
        object.__setattr__(self, "asks", asks)
        if self.spread is None and self.midpoint is None:
            spread, midpoint = best_bid_ask(bids, asks)
            object.__setattr__(self, "spread", spread)
            object.__setattr__(self, "midpoint", midpoint)
        if self.spread is not None and not math.isfinite(self.spread):
            raise ValueError("spread must be finite")
        return self


class TradeRecord(BaseModel):
    """A row of ``trades``: one fill. ``trade_id`` is derived by the Writer when absent."""

    model_config = _FROZEN

    ts: UtcDatetime
    token_id: TokenId
    side: Side
    price: Price
    size: Size
    trade_id: Annotated[str, Field(min_length=1)] | None = None


FIFTY_FIFTY_PAYOUT: Final = 0.5
"""The ``payout_price`` of a 50/50 resolution (no winner: each outcome pays half)."""


class ResolutionRecord(BaseModel):
    """A row of ``resolutions``: how (and whether yet) a market resolved.

    ``status`` follows the resolution through its life (``pending``,
    ``proposed``, ``disputed``, ... ``resolved``); until it resolves there is
    no payout and no winner. A record never replaces a stored one that is
    further along (docs/polymarket.md, *Resolutions*). A 50/50 resolution has
    no winner and a payout of ``FIFTY_FIFTY_PAYOUT``.
    """

    model_config = _FROZEN

    condition_id: Annotated[str, Field(min_length=1)]
    outcome: str | None = None
    winner_token_id: TokenId | None = None
    resolved_at: UtcDatetime | None = None
    payout_price: Price | None = None
    detection_method: str | None = None
    status: str | None = None
    created_at: UtcDatetime | None = None
    updated_at: UtcDatetime | None = None


ModelT = TypeVar("ModelT", bound=BaseModel)
"""Any pydantic model (a record type): the type variable of the calls generic over one."""


def record_to_model(row: Any, model: type[ModelT]) -> ModelT:
    """Build ``model`` from a psycopg row.

    Accepts a mapping (``dict_row``), a named tuple (``namedtuple_row``) or a
    plain tuple in the model's field order (``tuple_row`` of ``SELECT *``).
    Columns the model does not know are ignored. Raises
    ``pydantic.ValidationError`` when a value breaks the model's rules, and
    ConfigurationError for a row of another kind or with too many values.
    """
    if isinstance(row, Mapping):
        data = dict(row)
    elif hasattr(row, "_asdict"):
        data = row._asdict()
    elif isinstance(row, Sequence) and not isinstance(row, str | bytes):
        names = list(model.model_fields)
        if len(row) > len(names):
            raise ConfigurationError(
                f"{model.__name__} has {len(names)} fields but the row has {len(row)} values"
            )
        data = dict(zip(names, row, strict=False))
    else:
        raise ConfigurationError(f"cannot build {model.__name__} from {type(row).__name__}")
    known = model.model_fields
    return model.model_validate({k: v for k, v in data.items() if k in known})
