"""Data-API adapters: trades and resolution rows (see docs/polymarket.md,
*Resolutions*).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pmstore.models import (
    ResolutionRecord,
    TradeRecord,
)
from pmstore.polymarket._fields import (
    JsonObject,
    build_record,
    canonical_decimal,
    decimal_value,
    first_present,
    json_list,
    payload_error,
    payload_mapping,
    required_str,
    str_list,
    token_list,
)
from pmstore.polymarket._fills import fill_record
from pmstore.polymarket._timestamps import optional_ts

__all__ = ["data_resolution_to_record", "data_trade_to_record"]


def data_trade_to_record(trade: JsonObject) -> TradeRecord:
    """Convert a data-API trade (camelCase ``asset``/``transactionHash`` or snake_case).

    ``trade_id`` is derived by :func:`derive_fill_id` from the transaction
    hash, token, side, price, size and proxy wallet. Raises ``PayloadError``
    (kind ``data_trade``) for a missing token, side, price, size or timestamp.
    """
    kind = "data_trade"
    trade = payload_mapping(trade, kind)
    return fill_record(
        trade,
        kind,
        token_keys=("asset", "token_id", "asset_id"),
        ts_keys=("timestamp",),
        hash_keys=("transactionHash", "transaction_hash"),
        wallet_keys=("proxyWallet", "proxy_wallet"),
    )


def data_resolution_to_record(row: JsonObject) -> ResolutionRecord:
    """Convert a data-API resolution row (``payouts``, ``status``) into a ``ResolutionRecord``.

    Payouts are normalised (by ``payout_denominator``, else by their sum): a
    single payout of 1 names the winner, equal halves are a 50/50, none or all
    zero leave winner and payout ``None``. Raises ``PayloadError`` (kind
    ``data_resolution``) for a missing condition id or status, or payouts that
    name no single winner (scalar).
    """
    kind = "data_resolution"
    row = payload_mapping(row, kind)
    condition_id = required_str(row, kind, "condition_id", "conditionId", "condition")
    status = required_str(row, kind, "status").strip().lower()
    name, raw = first_present(row, ("payouts", "payout_numerators"))
    payouts_raw = json_list(raw, name, kind) or []
    payouts = [decimal_value(p, f"{name}[{i}]", kind) for i, p in enumerate(payouts_raw)]
    outcomes = str_list(row.get("outcomes"), "outcomes", kind)
    tok_name, tok_raw = first_present(
        row, ("clob_token_ids", "clobTokenIds", "token_ids", "asset_ids")
    )
    tokens = token_list(tok_raw, tok_name, kind)
    resolved_at = optional_ts(row, kind, "resolved_at", "resolvedAt")
    base: dict[str, Any] = {
        "condition_id": condition_id,
        "resolved_at": resolved_at,
        "detection_method": "data_api_resolutions",
        "status": status,
    }
    if any(p < 0 for p in payouts):
        raise payload_error(f"field {name!r} has a negative payout", kind)
    total = sum(payouts, Decimal(0))
    if total == 0:
        return build_record(ResolutionRecord, kind, **base)
    _, denom_raw = first_present(row, ("payout_denominator", "payoutDenominator"))
    denominator = (
        decimal_value(denom_raw, "payout_denominator", kind)
        if denom_raw not in (None, "")
        else total
    )
    if denominator <= 0:
        raise payload_error(f"field 'payout_denominator' must be positive, got {denom_raw!r}", kind)
    shares = [p / denominator for p in payouts]
    winners = [i for i, s in enumerate(shares) if s == 1]
    if len(winners) == 1 and all(s == 0 for i, s in enumerate(shares) if i != winners[0]):
        idx = winners[0]
        winner = tokens[idx] if tokens is not None and len(tokens) == len(shares) else None
        outcome = outcomes[idx] if outcomes is not None and len(outcomes) == len(shares) else None
        return build_record(
            ResolutionRecord,
            kind,
            outcome=outcome,
            winner_token_id=winner,
            payout_price=1.0,
            **base,
        )
    if len(shares) == 2 and all(s == Decimal("0.5") for s in shares):
        return build_record(ResolutionRecord, kind, payout_price=0.5, **base)
    shown = [canonical_decimal(s) for s in shares]
    raise payload_error(
        f"payouts {shown} name no single winner and are not a 50/50 (scalar payout vector)", kind
    )
