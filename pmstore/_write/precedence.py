"""Which of two records of one market's resolution wins: the rule, once, in Python and SQL.

A resolution goes through a lifecycle (Polymarket's data API v2, "Get resolution
state"): UMA's ``initialized``/``posed`` -> ``proposed`` -> ``challenged`` ->
``reproposed`` -> ``disputed`` -> ``resolved``, native V2's ``active`` ...
``arbitration`` -> ``resolved``. Messages about it arrive late and out of order (an
archive replayed, a poll that lags a WebSocket event), so a record replaces the stored
one only when it is at least as far along: its ``precedence`` is at least the stored
row's. Precedence is (stage, what it knows):

- stage: ``STAGES[status]`` (lower-cased); a status pmstore does not know (or none)
  is 0, below every known one, so it never displaces a known stage;
- what it knows, within one stage: 2 for a full result (a winner token, or a 50/50),
  1 for a payout without its winner (a data-API v2 row: payouts per outcome index,
  no token ids), 0 for no payout. So a data-API ``resolved`` row does not erase the
  winner a WebSocket ``market_resolved`` event named.

Equal precedence replaces (the latest word on the same state wins: corrections,
details). ``UPSERT_RESOLUTIONS_SQL`` (``pmstore._write.plan``) guards its update
with ``precedence_sql``; ``pmstore ingest`` keeps one record per condition of a
batch with ``precedence``, so a batch and the table agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from pmstore.models import FIFTY_FIFTY_PAYOUT, ResolutionRecord

__all__ = ["STAGES", "precedence", "precedence_sql"]

STAGES: Final[Mapping[str, int]] = MappingProxyType(
    {
        # nothing proposed yet: "pending" (older data-API rows), UMA's question
        # initialized, a native V2 market open
        "pending": 1,
        "initialized": 1,
        "active": 1,
        "posed": 2,  # UMA: a price requested
        "proposed": 3,
        "challenged": 4,  # UMA: the first proposal disputed (the request is reset)
        "reproposed": 5,
        "disputed": 6,  # UMA: the second proposal disputed (the DVM votes)
        "arbitration": 7,  # native V2: arbitration after a dispute
        "resolved": 8,
    }
)
"""How far along the lifecycle each ``status`` is (unknown statuses: 0)."""


def precedence(record: ResolutionRecord) -> tuple[int, int]:
    """(stage, what it knows) of ``record``: a record replaces another one of the same
    condition when its precedence is at least the other's. Costs a dict lookup."""
    stage = STAGES.get((record.status or "").lower(), 0)
    if record.winner_token_id is not None or record.payout_price == FIFTY_FIFTY_PAYOUT:
        return stage, 2
    return stage, 0 if record.payout_price is None else 1


def precedence_sql(row: str) -> str:
    """``precedence`` as an SQL row value over the columns of ``row`` (a table name or
    ``EXCLUDED``): compare two with ``>=``. Never NULL."""
    stages = " ".join(f"WHEN '{status}' THEN {stage}" for status, stage in STAGES.items())
    return (
        f"(CASE lower({row}.status) {stages} ELSE 0 END,"
        f" CASE WHEN {row}.winner_token_id IS NOT NULL"
        f" OR {row}.payout_price = {FIFTY_FIFTY_PAYOUT} THEN 2"
        f" WHEN {row}.payout_price IS NOT NULL THEN 1 ELSE 0 END)"
    )
