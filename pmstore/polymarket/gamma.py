"""Gamma API adapters: ``/markets`` items and ``/events`` items -> markets and
resolutions (see docs/polymarket.md).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pmstore.models import (
    FIFTY_FIFTY_PAYOUT,
    MarketRecord,
    ResolutionRecord,
)
from pmstore.polymarket._fields import (
    JsonObject,
    build_record,
    date_part,
    decimal_value,
    json_list,
    optional_str,
    payload_error,
    payload_mapping,
    required_bool,
    required_str,
    str_list,
    token_list,
)
from pmstore.polymarket._timestamps import optional_ts

__all__ = ["gamma_event_to_records", "gamma_market_to_record", "gamma_market_to_resolution"]


def gamma_market_to_record(market: JsonObject) -> MarketRecord:
    """Convert one Gamma ``/markets`` item (or an event's ``markets[]`` entry).

    Decodes the JSON-encoded ``outcomes`` and ``clobTokenIds``. Returns a
    ``MarketRecord``; raises ``PayloadError`` (kind ``gamma_market``) when a
    required field (``conditionId``, ``question``, ``active``, ``closed``) is
    missing or a value is invalid.
    """
    kind = "gamma_market"
    market = payload_mapping(market, kind)
    outcomes = str_list(market.get("outcomes"), "outcomes", kind)
    tokens = token_list(market.get("clobTokenIds"), "clobTokenIds", kind)
    if outcomes is not None and tokens is not None and len(outcomes) != len(tokens):
        raise payload_error(
            f"'outcomes' has {len(outcomes)} entries but 'clobTokenIds' has {len(tokens)}", kind
        )
    end_iso = optional_str(market, kind, "endDateIso")
    end_date = optional_str(market, kind, "endDate")
    if end_iso is not None:
        end_date_iso: str | None = date_part(end_iso, "endDateIso", kind)
    elif end_date is not None:
        end_date_iso = date_part(end_date, "endDate", kind)
    else:
        end_date_iso = None
    return build_record(
        MarketRecord,
        kind,
        condition_id=required_str(market, kind, "conditionId"),
        question=required_str(market, kind, "question"),
        slug=optional_str(market, kind, "slug"),
        market_type=optional_str(market, kind, "marketType"),
        outcomes=outcomes,
        clob_token_ids=tokens,
        active=required_bool(market, kind, "active"),
        closed=required_bool(market, kind, "closed"),
        end_date_iso=end_date_iso,
        created_at=optional_ts(market, kind, "createdAt"),
        updated_at=optional_ts(market, kind, "updatedAt"),
    )


def gamma_market_to_resolution(market: JsonObject) -> ResolutionRecord | None:
    """Derive a resolution from a Gamma market's ``closed`` + ``outcomePrices``.

    Returns ``None`` for a market that is not closed, a ``ResolutionRecord``
    for a 1/0 winner or a 50/50, and raises ``PayloadError`` (kind
    ``gamma_market``, reason starting ``"resolution:"``) for a closed market
    whose prices are missing, the legacy ``["0","0"]``, or fractional.
    """
    kind = "gamma_market"
    market = payload_mapping(market, kind)
    if not required_bool(market, kind, "closed"):
        return None
    condition_id = required_str(market, kind, "conditionId")
    raw_prices = market.get("outcomePrices")
    prices_list = json_list(raw_prices, "outcomePrices", kind)
    if not prices_list:
        raise payload_error(
            "resolution: closed market without 'outcomePrices': no payouts known", kind
        )
    prices = [decimal_value(p, f"outcomePrices[{i}]", kind) for i, p in enumerate(prices_list)]
    shown = json.dumps([str(p) for p in prices_list], separators=(",", ":"))
    outcomes = str_list(market.get("outcomes"), "outcomes", kind)
    tokens = token_list(market.get("clobTokenIds"), "clobTokenIds", kind)
    if all(p == 0 for p in prices):
        raise payload_error(
            f"resolution: outcomePrices {shown} on a closed (legacy) market is not a "
            "resolution: no outcome pays",
            kind,
        )
    status = (optional_str(market, kind, "umaResolutionStatus") or "resolved").lower()
    resolved_at = optional_ts(market, kind, "closedTime", "umaEndDate")
    winners = [i for i, p in enumerate(prices) if p == 1]
    if len(winners) == 1 and all(p == 0 for i, p in enumerate(prices) if i != winners[0]):
        idx = winners[0]
        if tokens is None or len(tokens) != len(prices):
            raise payload_error(
                f"resolution: outcomePrices {shown} name outcome #{idx} but 'clobTokenIds' "
                f"has no entry #{idx}",
                kind,
            )
        outcome = outcomes[idx] if outcomes is not None and len(outcomes) == len(prices) else None
        return build_record(
            ResolutionRecord,
            kind,
            condition_id=condition_id,
            outcome=outcome,
            winner_token_id=tokens[idx],
            resolved_at=resolved_at,
            payout_price=1.0,
            detection_method="gamma_outcome_prices",
            status=status,
        )
    if len(prices) == 2 and all(p == Decimal("0.5") for p in prices):
        return build_record(
            ResolutionRecord,
            kind,
            condition_id=condition_id,
            outcome=None,
            winner_token_id=None,
            resolved_at=resolved_at,
            payout_price=FIFTY_FIFTY_PAYOUT,
            detection_method="gamma_outcome_prices",
            status=status,
        )
    market_type = market.get("marketType")
    what = f" ({market_type} market)" if isinstance(market_type, str) and market_type else ""
    raise payload_error(
        f"resolution: closed market{what} with outcomePrices {shown} is neither a 1/0 winner "
        "nor a 50/50: no single-winner resolution",
        kind,
    )


def gamma_event_to_records(event: JsonObject) -> list[MarketRecord]:
    """Convert a Gamma ``/events`` item: one ``MarketRecord`` per ``markets[]`` entry.

    Raises ``PayloadError`` (kind ``gamma_event``) when ``markets`` is missing,
    or the first market's error (kind ``gamma_market``). :func:`convert` keeps
    the good markets and rejects only the bad ones.
    """
    return [gamma_market_to_record(m) for m in event_markets(event)]


def event_markets(event: object) -> list[Any]:
    kind = "gamma_event"
    event = payload_mapping(event, kind)
    markets = event.get("markets")
    if markets is None:
        raise payload_error("missing required field 'markets'", kind)
    if not isinstance(markets, list):
        raise payload_error(f"field 'markets' must be a list, got {type(markets).__name__}", kind)
    return markets
