"""Data-API adapters: trades and resolution rows (see docs/polymarket.md,
*Resolutions*).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from pmstore.models import (
    FIFTY_FIFTY_PAYOUT,
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
    shortened,
    str_list,
    token_list,
)
from pmstore.polymarket._fills import fill_record
from pmstore.polymarket._timestamps import optional_ts

__all__ = [
    "RESOLUTION_V2_KEYS",
    "V2_PAYOUT_UNIT",
    "data_resolution_to_record",
    "data_trade_to_record",
]


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


RESOLUTION_V2_KEYS: Final = (
    "was_disputed",
    "extended_review",
    "new_version_q",
    "last_update_timestamp",
)
"""Fields every data-API v2 ``/v2/resolutions`` row has (with ``status``) and no other
payload does: how a row without payouts yet (pending, proposed, disputed) is recognised."""

_CONDITION_KEYS: Final = ("condition_id", "conditionId", "condition")

V2_PAYOUT_UNIT: Final = Decimal(1_000_000)
"""A v2 row's ``payouts`` are micro-USDC per share: 1000000 pays 1."""


def data_resolution_to_record(row: JsonObject) -> ResolutionRecord:
    """Convert a data-API resolution row (``status``, ``payouts`` once resolved) into a
    ``ResolutionRecord``.

    A v2 ``/v2/resolutions`` row (it has ``RESOLUTION_V2_KEYS``) pays in micro-USDC
    per share; an older row's payouts are normalised by ``payout_denominator``,
    else by their sum. A single payout of 1 names the winner (its token and
    outcome when the row lists them: a v2 row does not, so only the payout is
    known), equal halves are a 50/50, none, null or all zero leave winner and
    payout ``None``: a pending, proposed or disputed row is stored with its
    status only. UMA's price fields (``proposed_price``, ``price``) are not read.
    Raises ``PayloadError`` (kind ``data_resolution``) for a missing status or
    condition id (a question-keyed v2 row has none), or payouts that name no
    single winner (scalar).
    """
    kind = "data_resolution"
    row = payload_mapping(row, kind)
    question = row.get("question_id")
    if first_present(row, _CONDITION_KEYS)[1] is None and question:
        named = question if isinstance(question, str) and len(question) <= 80 else None
        raise payload_error(
            f"question-keyed row (question_id {named or shortened(question)}) names no "
            "condition id, and resolutions are stored by condition: query /v2/resolutions "
            "by condition or event_id",
            kind,
        )
    condition_id = required_str(row, kind, *_CONDITION_KEYS)
    status = required_str(row, kind, "status").strip().lower()
    v2 = any(k in row for k in RESOLUTION_V2_KEYS)
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
    denom_name, denom_raw = first_present(row, ("payout_denominator", "payoutDenominator"))
    if denom_raw not in (None, ""):
        denominator = decimal_value(denom_raw, denom_name, kind)
    else:
        denominator = V2_PAYOUT_UNIT if v2 else total
    if denominator <= 0:
        raise payload_error(f"field {denom_name!r} must be positive, got {denom_raw!r}", kind)
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
        return build_record(ResolutionRecord, kind, payout_price=FIFTY_FIFTY_PAYOUT, **base)
    shown = [canonical_decimal(s) for s in shares]
    unit = " (v2 payouts are micro-USDC per share: 1000000 pays 1)" if v2 else ""
    raise payload_error(
        f"payouts {shown} name no single winner and are not a 50/50 (scalar payout vector){unit}",
        kind,
    )
