"""Fills as ``TradeRecord`` and the deterministic id of a public fill without one
(see docs/polymarket.md, *Trade-id rule*).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from pmstore._utc import UNIX_EPOCH
from pmstore.models import (
    TradeRecord,
)
from pmstore.polymarket._fields import (
    JsonObject,
    build_record,
    canonical_decimal,
    decimal_value,
    optional_str,
    payload_error,
    required_number,
    required_token,
    trade_side,
)
from pmstore.polymarket._timestamps import required_ts

__all__ = ["derive_fill_id"]


_TRADE_ID_PREFIX: Final = "pmf1_"


_TRADE_ID_VERSION: Final = "pm-fill-v1"


def derive_fill_id(
    *,
    transaction_hash: str | None,
    token_id: str,
    side: str,
    price: object,
    size: object,
    wallet: str | None = None,
    ts: datetime | None = None,
) -> str:
    """Deterministic ``trade_id`` for a public fill without an id.

    The rule is in docs/polymarket.md (*Trade-id rule*).

    Takes the transaction hash (or None, then ``ts`` is required), the token
    id, side, price and size (number or numeric string) and the wallet.
    Returns ``"pmf1_"`` + 32 hex digits. Raises ``PayloadError`` for a
    non-numeric price/size or when neither a hash nor ``ts`` is given.
    """
    fields = [
        _TRADE_ID_VERSION,
        (transaction_hash or "").lower(),
        token_id,
        side.upper(),
        canonical_decimal(decimal_value(price, "price", None)),
        canonical_decimal(decimal_value(size, "size", None)),
        (wallet or "").lower(),
    ]
    if not transaction_hash:
        if ts is None:
            raise payload_error("a trade id needs a transaction hash or a timestamp", None)
        fields.append(str((ts - UNIX_EPOCH) // timedelta(milliseconds=1)))
    digest = hashlib.sha256("|".join(fields).encode()).hexdigest()
    return _TRADE_ID_PREFIX + digest[:32]


def fill_record(
    obj: JsonObject,
    kind: str,
    *,
    token_keys: Sequence[str],
    ts_keys: Sequence[str],
    hash_keys: Sequence[str],
    wallet_keys: Sequence[str] = (),
    trade_id: str | None = None,
) -> TradeRecord:
    """A ``TradeRecord`` from a fill's fields (under the names given); the id is
    ``trade_id`` when the source has one, else :func:`derive_fill_id`'s."""
    token_id = required_token(obj, kind, *token_keys)
    side = trade_side(obj, kind)
    price = required_number(obj, kind, "price")
    size = required_number(obj, kind, "size")
    ts = required_ts(obj, kind, *ts_keys)
    if trade_id is None:
        trade_id = derive_fill_id(
            transaction_hash=optional_str(obj, kind, *hash_keys),
            token_id=token_id,
            side=side,
            price=price,
            size=size,
            wallet=optional_str(obj, kind, *wallet_keys) if wallet_keys else None,
            ts=ts,
        )
    return build_record(
        TradeRecord,
        kind,
        ts=ts,
        token_id=token_id,
        side=side,
        price=float(price),
        size=float(size),
        trade_id=trade_id,
    )
