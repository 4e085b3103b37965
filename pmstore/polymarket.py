"""Adapters from Polymarket API payloads (parsed JSON) to pmstore records.

Pure functions, no I/O: each takes what ``json.loads`` returned for one
Polymarket payload and returns the pydantic records of :mod:`pmstore.models`.
:func:`convert` is the entry point for mixed input: it recognises the payload
(:func:`detect_kind`), converts it, and collects every payload (or part of one)
it cannot convert as a :class:`Reject` with a precise reason, so nothing is
dropped silently. The single-kind functions raise
:class:`pmstore.errors.PayloadError` instead.

Kinds recognised (``detect_kind``) and what they yield
------------------------------------------------------
- ``gamma_market``      Gamma ``/markets`` item -> ``MarketRecord`` (+ ``ResolutionRecord``
  when closed, see *Resolutions*).
- ``gamma_event``       Gamma ``/events`` item -> one ``MarketRecord`` (+ resolution) per
  ``markets[]`` entry.
- ``clob_market``       CLOB ``/markets`` item -> ``MarketRecord`` (+ resolution).
- ``clob_book``         CLOB ``/book`` (``/books`` is a list of them) -> ``OrderbookSnapshot``.
- ``ws_book``           WebSocket ``book`` event -> ``OrderbookSnapshot``.
- ``ws_price_change``   WebSocket ``price_change`` -> ``PriceSnapshot`` per asset (newest
  shape only, see *Price rule*).
- ``ws_best_bid_ask``   WebSocket ``best_bid_ask`` -> ``PriceSnapshot`` (midpoint).
- ``ws_last_trade_price`` WebSocket ``last_trade_price`` -> ``PriceSnapshot`` (trade price)
  and ``TradeRecord`` (the fill).
- ``ws_market_resolved`` WebSocket ``market_resolved`` -> ``ResolutionRecord``.
- ``ws_new_market``     WebSocket ``new_market`` -> ``MarketRecord`` (``closed`` False).
- ``ws_tick_size_change`` recognised, always rejected: pmstore stores no tick sizes.
- ``ws_trade``          user-channel ``trade`` event (a CLOB Trade object) -> ``TradeRecord``.
- ``ws_order``          user-channel ``order`` event: recognised, rejected (not a fill).
- ``clob_trade``        CLOB Trade object (``/data/trades``) -> ``TradeRecord``.
- ``data_trade``        data-API trade (camelCase or snake_case) -> ``TradeRecord``.
- ``data_resolution``   data-API resolution row (``payouts``, ``status``) -> ``ResolutionRecord``.
- ``page``              envelope ``{"data": [...], ...}`` (CLOB ``next_cursor`` pages,
  data-API ``pagination`` pages): its ``data`` items are converted one by one
  (``"data": null``, a documented miss, yields nothing).
- ``list``              a JSON array: converted item by item.
- ``unknown``           anything else: rejected, the reason says what was seen.

Unknown extra fields are ignored everywhere. A missing required field is a
``PayloadError`` naming it; a value the pydantic model refuses is turned into a
``PayloadError`` naming the record field (e.g. ``price``, ``bids[3][0]``).

Quirks handled
--------------
- Gamma encodes ``outcomes``, ``outcomePrices`` and ``clobTokenIds`` as JSON
  strings inside the JSON; they are decoded (a real array is accepted too:
  one hand-edited fixture has one).
- Token ids are 74-78 digit decimal strings: kept as text, never converted to
  numbers; they must be decimal digits (an int is accepted and written out
  exactly). Length is not checked (some hand-written fixtures use short ids).
- ``end_date_iso`` is always a date (``YYYY-MM-DD``): Gamma's ``endDateIso``,
  falling back to the date part of ``endDate`` (which may be in the past on an
  open market); CLOB's ``end_date_iso`` timestamp is cut to its date part, so
  both sources agree on the same market.
- Order-book levels are ``{"price": "0.48", "size": "1234.5"}`` strings sent
  WORST-FIRST (best bid and best ask are the LAST entries). They become float
  ``(price, size)`` pairs; ``OrderbookSnapshot`` re-sorts them best-first and
  computes spread/midpoint from the true best levels. Empty and one-sided
  books are valid (spread and midpoint ``None``). The book's
  ``last_trade_price`` (may be ``""``), ``hash``, ``tick_size`` are not stored.
- CLOB ``/markets`` pages hold placeholder tokens with an empty ``token_id``
  and ``outcome``: they are skipped; when no real token remains,
  ``outcomes`` and ``clob_token_ids`` are ``None``. Items with an empty
  ``condition_id`` are rejected.
- Numbers may be JSON numbers or numeric strings (``".48"`` included); ``""``
  is "missing", never 0. Booleans are not numbers.
- Sides are ``BUY``/``SELL`` (upper-cased if sent in lower case).

Timestamp rule
--------------
A timestamp is a number, a numeric string, or an ISO-8601 string. Numbers are
Unix time whose unit is detected by magnitude: below ``1e11`` they are
SECONDS (1e11 s is the year 5138), from ``1e11`` up to ``1e14`` they are
MILLISECONDS (1e11 ms is March 1973); ``<= 0`` or ``>= 1e14`` is rejected.
Conversion is exact (integer arithmetic to the microsecond). ISO strings
(``Z``, ``+00``, ``+00:00`` and a space separator are all accepted) without an
offset are taken as UTC. Results are timezone-aware UTC.

Price rule (``PriceSnapshot.price``)
------------------------------------
The stored price of a token is the MIDPOINT of its best bid and best ask when
the payload states both: ``best_bid_ask`` events and the newest
``price_change`` shape (``price_changes[]`` entries with ``best_bid`` and
``best_ask``, since mid-September 2025). For a ``last_trade_price`` event it is
the TRADE price. Why: the midpoint is the market's current consensus and is
defined even without trading, while the last trade can be arbitrarily stale;
the trade price is what a trade event says, and the fill itself also goes to
``trades``.

A side is "absent" when its value is missing or ``""``, or is a bid of ``0`` /
an ask of ``1`` (no order can rest at 0 or 1, so those are placeholders for an
empty side, as in the docs' example ``"best_ask": "1"``). With a side absent
there is no midpoint and the snapshot is rejected ("one-sided top of book"),
not invented. A crossed top (bid above ask, seen in bursts) still gives the
midpoint.

The two older ``price_change`` shapes (one flat level per message, to 2024;
top-level ``asset_id`` with ``changes[]``, late 2024 to mid-September 2025)
carry only the level that changed (``size`` is the new total at ``price``; a
level far from the top changes nothing at the top), so they are rejected with
the reason ``"price_change without best_bid/best_ask carries no top-of-book
price"``. In the newest shape one message can hold several entries per asset,
applied in order: the LAST entry of each asset gives that asset's top of book,
so a message yields at most one snapshot per asset (all share the message's
``timestamp``); an asset whose last entry has no usable top is rejected on its
own. Level deltas themselves are not stored. Order books do not produce price
snapshots, and no per-token 24h volume exists (``volume_24h`` stays ``None``).

Trade-id rule
-------------
When the payload has a real id (the CLOB Trade object's ``id``), it is the
``trade_id`` verbatim. Public trades (data API, WebSocket ``last_trade_price``)
have none; a transaction hash repeats across the fills of one transaction, so
:func:`derive_fill_id` hashes the fill's identifying fields::

    fields = ["pm-fill-v1", tx_hash.lower(), token_id, side, price, size, wallet.lower()]
    (+ [str(ts_millis)] only when there is no transaction hash)
    trade_id = "pmf1_" + sha256("|".join(fields).encode()).hexdigest()[:32]

``price`` and ``size`` are canonical decimals (``"0.5000"``, ``0.5`` and
``"5E-1"`` all give ``"0.5"``; ``100.0`` gives ``"100"``), a missing wallet is
``""``; the two data-API casings therefore give the same id for the same
fill. Fills identical in all those fields inside ONE payload (a transaction
filling the same wallet twice at the same price and size) are told apart by
position: the n-th such fill (n >= 2, in payload order) gets ``"-n"``
appended. A WebSocket ``last_trade_price`` without a transaction hash is keyed
by millisecond timestamp instead, so it does not match the same fill seen
through the data API (which has a hash and a wallet). Not to be confused with
``pmstore.batches.derive_trade_id``, the Writer's fallback for fills that
reach it without an id: every ``TradeRecord`` made here already has one.

Resolutions
-----------
``detection_method`` names the source: ``ws_market_resolved``,
``gamma_outcome_prices``, ``clob_tokens_winner``, ``clob_is_50_50_outcome``,
``data_api_resolutions``. ``payout_price`` is the winner's payout (1.0); a
50/50 resolution has no winner and pays 0.5.

- WebSocket ``market_resolved``: winner ``winning_asset_id``, outcome
  ``winning_outcome``, resolved at the event ``timestamp``; status ``resolved``.
- Gamma, only when ``closed``: ``outcomePrices`` with one ``1`` and the rest
  ``0`` -> the winner is the token at the index of the ``1``; all ``0.5`` ->
  50/50. ``["0","0"]`` (legacy markets) is NOT a resolution; other fractions
  (scalar markets) are not a single-winner resolution; a missing
  ``outcomePrices`` says nothing: these three are rejected with the reason
  while the market record is kept. ``resolved_at`` is ``closedTime`` (else
  ``umaEndDate``); status is ``umaResolutionStatus`` when present, else
  ``resolved``.
- CLOB ``/markets``, only when ``closed``: the token with ``winner`` true, or
  ``is_50_50_outcome`` -> 50/50. ``winner`` is not always set on resolved
  markets and token prices of 0/1 are not proof, so a closed market with no
  winner is rejected ("no resolution ...", the market record is kept).
- data API resolutions: ``condition_id``/``conditionId``, ``status`` (kept,
  lower-cased: proposed/disputed/resolved/...), ``payouts`` (or
  ``payout_numerators`` with ``payout_denominator``), optional ``outcomes``,
  token ids (``clob_token_ids``/``clobTokenIds``/``token_ids``/``asset_ids``)
  and ``resolved_at``. Payouts are normalised by their denominator (else by
  their sum, as on chain where 50/50 is ``[1, 1]``): one payout of 1 names the
  winner, all equal halves are a 50/50, all zero or absent means no payout yet
  (winner and payout ``None``, the status is still recorded). No real capture
  of this endpoint was available: this adapter follows the documented field
  names only.

A ``Reject`` does not always mean the whole payload was discarded: for a
market whose resolution cannot be derived, the ``MarketRecord`` is kept and
the reject's reason starts with ``"resolution:"``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from pmstore.errors import PayloadError
from pmstore.models import (
    MarketRecord,
    OrderbookSnapshot,
    PriceSnapshot,
    ResolutionRecord,
    TradeRecord,
)

__all__ = [
    "KINDS",
    "Converted",
    "Reject",
    "best_bid_ask_to_snapshot",
    "book_to_snapshot",
    "clob_market_to_record",
    "clob_market_to_resolution",
    "clob_trade_to_record",
    "convert",
    "data_resolution_to_record",
    "data_trade_to_record",
    "derive_fill_id",
    "detect_kind",
    "gamma_event_to_records",
    "gamma_market_to_record",
    "gamma_market_to_resolution",
    "last_trade_price_to_snapshot",
    "last_trade_price_to_trade",
    "parse_timestamp",
    "price_change_to_snapshots",
    "ws_market_resolved_to_resolution",
    "ws_new_market_to_record",
]

JsonObject = Mapping[str, Any]

KINDS: Final[frozenset[str]] = frozenset(
    {
        "gamma_market",
        "gamma_event",
        "clob_market",
        "clob_book",
        "ws_book",
        "ws_price_change",
        "ws_best_bid_ask",
        "ws_last_trade_price",
        "ws_market_resolved",
        "ws_new_market",
        "ws_tick_size_change",
        "ws_trade",
        "ws_order",
        "clob_trade",
        "data_trade",
        "data_resolution",
        "page",
        "list",
        "unknown",
    }
)
"""Every value :func:`detect_kind` can return."""

NO_TOP_OF_BOOK: Final = "price_change without best_bid/best_ask carries no top-of-book price"

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SECONDS_BELOW: Final = Decimal(10**11)
_MILLIS_BELOW: Final = Decimal(10**14)
_TRADE_ID_PREFIX: Final = "pmf1_"
_TRADE_ID_VERSION: Final = "pm-fill-v1"

ModelT = TypeVar("ModelT", bound=BaseModel)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Reject:
    """A payload (or part of one) that was not converted.

    ``kind`` is the payload kind (``"unknown"`` when unrecognised), ``reason``
    says exactly why, ``ident`` is a short identifier or excerpt for logs, and
    ``payload`` is the offending object itself (the item, not its whole page).
    """

    kind: str
    reason: str
    ident: str
    payload: Any = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return f"{self.kind}: {self.reason} [{self.ident}]"


@dataclass(frozen=True, slots=True)
class Converted:
    """Records converted from one payload, per table, and the rejects."""

    markets: list[MarketRecord] = field(default_factory=list)
    prices: list[PriceSnapshot] = field(default_factory=list)
    orderbooks: list[OrderbookSnapshot] = field(default_factory=list)
    trades: list[TradeRecord] = field(default_factory=list)
    resolutions: list[ResolutionRecord] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    @property
    def record_count(self) -> int:
        """Number of records converted (all tables, rejects not counted)."""
        return (
            len(self.markets)
            + len(self.prices)
            + len(self.orderbooks)
            + len(self.trades)
            + len(self.resolutions)
        )


class _Acc:
    """Mutable accumulator behind :func:`convert`."""

    def __init__(self) -> None:
        self.out = Converted()
        self._fill_counts: dict[str, int] = {}

    def reject(self, kind: str, reason: str, payload: object) -> None:
        self.out.rejects.append(Reject(kind, reason, _ident(payload), payload))

    def add_trade(self, trade: TradeRecord, derived: bool) -> None:
        if derived and trade.trade_id is not None:
            n = self._fill_counts.get(trade.trade_id, 0) + 1
            self._fill_counts[trade.trade_id] = n
            if n > 1:
                trade = trade.model_copy(update={"trade_id": f"{trade.trade_id}-{n}"})
        self.out.trades.append(trade)


# --------------------------------------------------------------------------- field helpers


def _fail(reason: str, kind: str | None) -> PayloadError:
    return PayloadError(reason, kind)


def _first(obj: JsonObject, names: Sequence[str]) -> tuple[str, Any]:
    """Return (name, value) of the first of ``names`` present and not null."""
    for name in names:
        value = obj.get(name)
        if value is not None:
            return name, value
    return names[0], None


def _names(names: Sequence[str]) -> str:
    return " or ".join(repr(n) for n in names)


def _req_str(obj: JsonObject, kind: str, *names: str) -> str:
    name, value = _first(obj, names)
    if value is None:
        raise _fail(f"missing required field {_names(names)}", kind)
    if not isinstance(value, str):
        raise _fail(f"field {name!r} must be a string, got {type(value).__name__}", kind)
    if not value.strip():
        raise _fail(f"field {name!r} is empty", kind)
    return value


def _opt_str(obj: JsonObject, kind: str, *names: str) -> str | None:
    name, value = _first(obj, names)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _fail(f"field {name!r} must be a string, got {type(value).__name__}", kind)
    return value


def _req_bool(obj: JsonObject, kind: str, name: str) -> bool:
    value = obj.get(name)
    if value is None:
        raise _fail(f"missing required field {name!r}", kind)
    if not isinstance(value, bool):
        raise _fail(f"field {name!r} must be true or false, got {value!r}", kind)
    return value


def _token_id(value: object, name: str, kind: str | None) -> str:
    if isinstance(value, bool):
        raise _fail(f"field {name!r} must be a decimal token id, got {value!r}", kind)
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise _fail(f"field {name!r} must be a decimal token id, got {type(value).__name__}", kind)
    if not value:
        raise _fail(f"field {name!r} is empty", kind)
    if not (value.isascii() and value.isdigit()):
        raise _fail(f"field {name!r} must be a decimal token id, got {_short(value)}", kind)
    return value


def _req_token(obj: JsonObject, kind: str, *names: str) -> str:
    name, value = _first(obj, names)
    if value is None:
        raise _fail(f"missing required field {_names(names)}", kind)
    return _token_id(value, name, kind)


def _decimal(value: object, name: str, kind: str | None) -> Decimal:
    """A finite decimal from a JSON number or numeric string."""
    if isinstance(value, bool) or value is None:
        raise _fail(f"field {name!r} must be a number, got {value!r}", kind)
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        if not value.strip():
            raise _fail(f"field {name!r} is empty", kind)
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise _fail(f"field {name!r} is not a number: {_short(value)}", kind) from None
    else:
        raise _fail(f"field {name!r} must be a number, got {type(value).__name__}", kind)
    if not number.is_finite():
        raise _fail(f"field {name!r} is not finite: {value!r}", kind)
    return number


def _req_number(obj: JsonObject, kind: str, *names: str) -> Decimal:
    name, value = _first(obj, names)
    if value is None:
        raise _fail(f"missing required field {_names(names)}", kind)
    return _decimal(value, name, kind)


def _canonical(number: Decimal) -> str:
    """Canonical text of a decimal: no exponent, no trailing zeros ("0.5", "100")."""
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _side(obj: JsonObject, kind: str) -> str:
    side = _req_str(obj, kind, "side").upper()
    if side not in ("BUY", "SELL"):
        raise _fail(f"field 'side' must be BUY or SELL, got {obj.get('side')!r}", kind)
    return side


def _json_list(value: object, name: str, kind: str) -> list[Any] | None:
    """Decode a Gamma JSON-encoded list (a real list is accepted as is)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise _fail(f"field {name!r} is not valid JSON: {_short(value)}", kind) from None
    if not isinstance(value, list):
        raise _fail(f"field {name!r} must be a JSON list, got {type(value).__name__}", kind)
    return value


def _str_list(value: object, name: str, kind: str) -> list[str] | None:
    items = _json_list(value, name, kind)
    if items is None:
        return None
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise _fail(f"field {name!r}[{i}] must be a string, got {item!r}", kind)
    return items


def _token_list(value: object, name: str, kind: str) -> list[str] | None:
    items = _json_list(value, name, kind)
    if items is None:
        return None
    return [_token_id(item, f"{name}[{i}]", kind) for i, item in enumerate(items)]


def _date_part(value: str, name: str, kind: str) -> str:
    text = value.strip()[:10]
    try:
        date.fromisoformat(text)
    except ValueError:
        raise _fail(
            f"field {name!r} does not start with an ISO date: {_short(value)}", kind
        ) from None
    return text


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ident(payload: object) -> str:
    if isinstance(payload, Mapping):
        keys = (
            "event_type",
            "condition_id",
            "conditionId",
            "market",
            "asset_id",
            "asset",
            "token_id",
            "id",
            "transactionHash",
            "transaction_hash",
            "timestamp",
            "match_time",
        )
        parts = [
            f"{k}={payload[k]}"
            for k in keys
            if k in payload and isinstance(payload[k], str | int | float)
        ]
        if parts:
            return ", ".join(parts)[:200]
        try:
            return json.dumps(payload, default=str)[:120]
        except (TypeError, ValueError):
            return repr(payload)[:120]
    return f"{type(payload).__name__}: {repr(payload)[:120]}"


def _loc(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(record)"


def _build(model: type[ModelT], kind: str, **values: Any) -> ModelT:
    """Validate ``values`` into ``model``; a ValidationError becomes a PayloadError."""
    try:
        return model(**values)
    except ValidationError as exc:
        problems = [
            f"{_loc(err['loc'])}: {err['msg']} (got {_short(err.get('input'), 40)})"
            for err in exc.errors(include_url=False)
        ]
        raise _fail(f"invalid {model.__name__}: " + "; ".join(problems), kind) from None


def _mapping(payload: object, kind: str) -> JsonObject:
    if not isinstance(payload, Mapping):
        raise _fail(f"expected a JSON object, got {type(payload).__name__}", kind)
    return payload


# --------------------------------------------------------------------------- timestamps


def _from_number(number: Decimal, name: str, kind: str | None) -> datetime:
    if number <= 0:
        raise _fail(f"field {name!r} must be a positive Unix time, got {number}", kind)
    if number < _SECONDS_BELOW:
        micros = number * 1_000_000
    elif number < _MILLIS_BELOW:
        micros = number * 1_000
    else:
        raise _fail(f"field {name!r} is {number}: too large for Unix seconds or milliseconds", kind)
    return _EPOCH + timedelta(microseconds=int(micros.to_integral_value(ROUND_HALF_EVEN)))


def parse_timestamp(value: object, name: str = "timestamp", kind: str | None = None) -> datetime:
    """Parse a Polymarket timestamp into a timezone-aware UTC datetime.

    Takes a number or numeric string of Unix seconds (< 1e11) or milliseconds
    (1e11 to 1e14), or an ISO-8601 string (no offset means UTC). Raises
    ``PayloadError`` naming ``name`` for anything else.
    """
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise _fail(f"field {name!r} is empty", kind)
        try:
            number = Decimal(text)
        except InvalidOperation:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                raise _fail(
                    f"field {name!r} is neither Unix time nor ISO-8601: {_short(value)}", kind
                ) from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
        if not number.is_finite():
            raise _fail(f"field {name!r} is not finite: {value!r}", kind)
        return _from_number(number, name, kind)
    return _from_number(_decimal(value, name, kind), name, kind)


def _req_ts(obj: JsonObject, kind: str, *names: str) -> datetime:
    name, value = _first(obj, names)
    if value is None:
        raise _fail(f"missing required field {_names(names)}", kind)
    return parse_timestamp(value, name, kind)


def _opt_ts(obj: JsonObject, kind: str, *names: str) -> datetime | None:
    name, value = _first(obj, names)
    if value is None or value == "":
        return None
    return parse_timestamp(value, name, kind)


# --------------------------------------------------------------------------- markets


def gamma_market_to_record(market: JsonObject) -> MarketRecord:
    """Convert one Gamma ``/markets`` item (or an event's ``markets[]`` entry).

    Decodes the JSON-encoded ``outcomes`` and ``clobTokenIds``. Returns a
    ``MarketRecord``; raises ``PayloadError`` (kind ``gamma_market``) when a
    required field (``conditionId``, ``question``, ``active``, ``closed``) is
    missing or a value is invalid.
    """
    kind = "gamma_market"
    market = _mapping(market, kind)
    outcomes = _str_list(market.get("outcomes"), "outcomes", kind)
    tokens = _token_list(market.get("clobTokenIds"), "clobTokenIds", kind)
    if outcomes is not None and tokens is not None and len(outcomes) != len(tokens):
        raise _fail(
            f"'outcomes' has {len(outcomes)} entries but 'clobTokenIds' has {len(tokens)}", kind
        )
    end_iso = _opt_str(market, kind, "endDateIso")
    end_date = _opt_str(market, kind, "endDate")
    if end_iso is not None:
        end_date_iso: str | None = _date_part(end_iso, "endDateIso", kind)
    elif end_date is not None:
        end_date_iso = _date_part(end_date, "endDate", kind)
    else:
        end_date_iso = None
    return _build(
        MarketRecord,
        kind,
        condition_id=_req_str(market, kind, "conditionId"),
        question=_req_str(market, kind, "question"),
        slug=_opt_str(market, kind, "slug"),
        market_type=_opt_str(market, kind, "marketType"),
        outcomes=outcomes,
        clob_token_ids=tokens,
        active=_req_bool(market, kind, "active"),
        closed=_req_bool(market, kind, "closed"),
        end_date_iso=end_date_iso,
        created_at=_opt_ts(market, kind, "createdAt"),
        updated_at=_opt_ts(market, kind, "updatedAt"),
    )


def gamma_market_to_resolution(market: JsonObject) -> ResolutionRecord | None:
    """Derive a resolution from a Gamma market's ``closed`` + ``outcomePrices``.

    Returns ``None`` for a market that is not closed, a ``ResolutionRecord``
    for a 1/0 winner or a 50/50, and raises ``PayloadError`` (kind
    ``gamma_market``, reason starting ``"resolution:"``) for a closed market
    whose prices are missing, the legacy ``["0","0"]``, or fractional.
    """
    kind = "gamma_market"
    market = _mapping(market, kind)
    if not _req_bool(market, kind, "closed"):
        return None
    condition_id = _req_str(market, kind, "conditionId")
    raw_prices = market.get("outcomePrices")
    prices_list = _json_list(raw_prices, "outcomePrices", kind)
    if not prices_list:
        raise _fail("resolution: closed market without 'outcomePrices': no payouts known", kind)
    prices = [_decimal(p, f"outcomePrices[{i}]", kind) for i, p in enumerate(prices_list)]
    shown = json.dumps([str(p) for p in prices_list], separators=(",", ":"))
    outcomes = _str_list(market.get("outcomes"), "outcomes", kind)
    tokens = _token_list(market.get("clobTokenIds"), "clobTokenIds", kind)
    if all(p == 0 for p in prices):
        raise _fail(
            f"resolution: outcomePrices {shown} on a closed (legacy) market is not a "
            "resolution: no outcome pays",
            kind,
        )
    status = (_opt_str(market, kind, "umaResolutionStatus") or "resolved").lower()
    resolved_at = _opt_ts(market, kind, "closedTime", "umaEndDate")
    winners = [i for i, p in enumerate(prices) if p == 1]
    if len(winners) == 1 and all(p == 0 for i, p in enumerate(prices) if i != winners[0]):
        idx = winners[0]
        if tokens is None or len(tokens) != len(prices):
            raise _fail(
                f"resolution: outcomePrices {shown} name outcome #{idx} but 'clobTokenIds' "
                f"has no entry #{idx}",
                kind,
            )
        outcome = outcomes[idx] if outcomes is not None and len(outcomes) == len(prices) else None
        return _build(
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
        return _build(
            ResolutionRecord,
            kind,
            condition_id=condition_id,
            outcome=None,
            winner_token_id=None,
            resolved_at=resolved_at,
            payout_price=0.5,
            detection_method="gamma_outcome_prices",
            status=status,
        )
    market_type = market.get("marketType")
    what = f" ({market_type} market)" if isinstance(market_type, str) and market_type else ""
    raise _fail(
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
    return [gamma_market_to_record(m) for m in _event_markets(event)]


def _event_markets(event: object) -> list[Any]:
    kind = "gamma_event"
    event = _mapping(event, kind)
    markets = event.get("markets")
    if markets is None:
        raise _fail("missing required field 'markets'", kind)
    if not isinstance(markets, list):
        raise _fail(f"field 'markets' must be a list, got {type(markets).__name__}", kind)
    return markets


def _clob_tokens(market: JsonObject, kind: str) -> list[tuple[str, str, bool]]:
    """(token_id, outcome, winner) of the real tokens; empty-id placeholders skipped."""
    raw = market.get("tokens")
    if raw is None:
        raise _fail("missing required field 'tokens'", kind)
    if not isinstance(raw, list):
        raise _fail(f"field 'tokens' must be a list, got {type(raw).__name__}", kind)
    tokens: list[tuple[str, str, bool]] = []
    for i, tok in enumerate(raw):
        if not isinstance(tok, Mapping):
            raise _fail(f"tokens[{i}] must be an object, got {type(tok).__name__}", kind)
        if tok.get("token_id") in (None, ""):
            continue
        token_id = _token_id(tok.get("token_id"), f"tokens[{i}].token_id", kind)
        outcome = tok.get("outcome")
        if not isinstance(outcome, str):
            raise _fail(f"tokens[{i}].outcome must be a string, got {outcome!r}", kind)
        winner = tok.get("winner", False)
        if not isinstance(winner, bool):
            raise _fail(f"tokens[{i}].winner must be true or false, got {winner!r}", kind)
        tokens.append((token_id, outcome, winner))
    return tokens


def clob_market_to_record(market: JsonObject) -> MarketRecord:
    """Convert one CLOB ``/markets`` item into a ``MarketRecord``.

    Tokens with an empty ``token_id`` are skipped (``outcomes`` and
    ``clob_token_ids`` are ``None`` when none remain); ``end_date_iso`` is cut
    to its date. Raises ``PayloadError`` (kind ``clob_market``) for an empty or
    missing ``condition_id``, a missing ``question``/``active``/``closed``/
    ``tokens``, or invalid values.
    """
    kind = "clob_market"
    market = _mapping(market, kind)
    condition_id = _req_str(market, kind, "condition_id")
    tokens = _clob_tokens(market, kind)
    end = _opt_str(market, kind, "end_date_iso")
    return _build(
        MarketRecord,
        kind,
        condition_id=condition_id,
        question=_req_str(market, kind, "question"),
        slug=_opt_str(market, kind, "market_slug"),
        market_type=None,
        outcomes=[t[1] for t in tokens] or None,
        clob_token_ids=[t[0] for t in tokens] or None,
        active=_req_bool(market, kind, "active"),
        closed=_req_bool(market, kind, "closed"),
        end_date_iso=_date_part(end, "end_date_iso", kind) if end else None,
    )


def clob_market_to_resolution(market: JsonObject) -> ResolutionRecord | None:
    """Derive a resolution from a CLOB ``/markets`` item (``tokens[].winner``).

    Returns ``None`` when the market is not closed, a ``ResolutionRecord`` for
    the token marked ``winner`` or for ``is_50_50_outcome``; raises
    ``PayloadError`` (kind ``clob_market``, reason starting ``"resolution:"``)
    when a closed market names no winner (or several).
    """
    kind = "clob_market"
    market = _mapping(market, kind)
    if not _req_bool(market, kind, "closed"):
        return None
    condition_id = _req_str(market, kind, "condition_id")
    tokens = _clob_tokens(market, kind)
    winners = [t for t in tokens if t[2]]
    if len(winners) > 1:
        raise _fail(f"resolution: {len(winners)} tokens are marked winner", kind)
    if winners:
        token_id, outcome, _ = winners[0]
        return _build(
            ResolutionRecord,
            kind,
            condition_id=condition_id,
            outcome=outcome or None,
            winner_token_id=token_id,
            payout_price=1.0,
            detection_method="clob_tokens_winner",
            status="resolved",
        )
    if market.get("is_50_50_outcome") is True:
        return _build(
            ResolutionRecord,
            kind,
            condition_id=condition_id,
            payout_price=0.5,
            detection_method="clob_is_50_50_outcome",
            status="resolved",
        )
    raise _fail(
        "resolution: closed but no token has winner=true and is_50_50_outcome is not true; "
        "CLOB /markets does not always set winner on resolved markets, so no resolution "
        "is recorded (the market record is kept)",
        kind,
    )


def ws_new_market_to_record(message: JsonObject) -> MarketRecord:
    """Convert a WebSocket ``new_market`` event into a ``MarketRecord``.

    ``closed`` is False (the event announces a new market) and ``active`` is
    taken from the event (True when absent). Raises ``PayloadError`` (kind
    ``ws_new_market``) for a missing condition id or question.
    """
    kind = "ws_new_market"
    message = _mapping(message, kind)
    active = message.get("active", True)
    if not isinstance(active, bool):
        raise _fail(f"field 'active' must be true or false, got {active!r}", kind)
    _, raw_tokens = _first(message, ("clob_token_ids", "assets_ids"))
    return _build(
        MarketRecord,
        kind,
        condition_id=_req_str(message, kind, "condition_id", "market"),
        question=_req_str(message, kind, "question"),
        slug=_opt_str(message, kind, "slug"),
        outcomes=_str_list(message.get("outcomes"), "outcomes", kind),
        clob_token_ids=_token_list(raw_tokens, "clob_token_ids", kind),
        active=active,
        closed=False,
    )


# --------------------------------------------------------------------------- books


def _levels(book: JsonObject, side: str, kind: str) -> list[tuple[float, float]]:
    raw = book.get(side)
    if raw is None:
        raise _fail(f"missing required field {side!r}", kind)
    if not isinstance(raw, list):
        raise _fail(f"field {side!r} must be a list, got {type(raw).__name__}", kind)
    levels: list[tuple[float, float]] = []
    for i, level in enumerate(raw):
        if not isinstance(level, Mapping):
            raise _fail(f"{side}[{i}] must be an object, got {type(level).__name__}", kind)
        price = _req_number(level, kind, "price")
        size = _req_number(level, kind, "size")
        levels.append((float(price), float(size)))
    return levels


def book_to_snapshot(book: JsonObject) -> OrderbookSnapshot:
    """Convert a CLOB ``/book`` response or a WebSocket ``book`` event.

    Levels (worst-first strings) become float (price, size) pairs; the model
    sorts them best-first and computes spread/midpoint from the best levels
    (``None`` when a side is empty). Raises ``PayloadError`` (kind
    ``clob_book`` or ``ws_book``) for a missing ``asset_id``, ``timestamp``,
    ``bids`` or ``asks``, or an invalid level.
    """
    kind = (
        "ws_book" if isinstance(book, Mapping) and book.get("event_type") == "book" else "clob_book"
    )
    book = _mapping(book, kind)
    return _build(
        OrderbookSnapshot,
        kind,
        ts=_req_ts(book, kind, "timestamp"),
        token_id=_req_token(book, kind, "asset_id"),
        bids=_levels(book, "bids", kind),
        asks=_levels(book, "asks", kind),
    )


# --------------------------------------------------------------------------- prices


def _top_price(entry: JsonObject, kind: str) -> float:
    """Midpoint of ``best_bid``/``best_ask``; PayloadError when a side is absent."""
    bid_raw, ask_raw = entry.get("best_bid"), entry.get("best_ask")
    if bid_raw in (None, "") and ask_raw in (None, ""):
        raise _fail(
            NO_TOP_OF_BOOK if kind == "ws_price_change" else "missing best_bid and best_ask", kind
        )
    if bid_raw in (None, ""):
        raise _fail("one-sided top of book: best_bid is missing, no midpoint", kind)
    if ask_raw in (None, ""):
        raise _fail("one-sided top of book: best_ask is missing, no midpoint", kind)
    bid = _decimal(bid_raw, "best_bid", kind)
    ask = _decimal(ask_raw, "best_ask", kind)
    if bid <= 0:
        raise _fail(f"one-sided top of book: best_bid {bid_raw!r} means no bids, no midpoint", kind)
    if ask >= 1:
        raise _fail(f"one-sided top of book: best_ask {ask_raw!r} means no asks, no midpoint", kind)
    return float((bid + ask) / 2)


def _price_change(message: JsonObject) -> tuple[list[PriceSnapshot], list[tuple[str, str]]]:
    """Snapshots per asset, and (asset_id, reason) for the assets rejected."""
    kind = "ws_price_change"
    message = _mapping(message, kind)
    changes = message.get("price_changes")
    if changes is None:
        # Flat (to 2024) or changes[] (late 2024 to mid-Sept 2025): one level, no top.
        shape = "changes[]" if "changes" in message else "flat"
        raise _fail(f"{NO_TOP_OF_BOOK} (old {shape} shape)", kind)
    if not isinstance(changes, list):
        raise _fail(f"field 'price_changes' must be a list, got {type(changes).__name__}", kind)
    ts = _req_ts(message, kind, "timestamp")
    last: dict[str, JsonObject] = {}
    for i, entry in enumerate(changes):
        if not isinstance(entry, Mapping):
            raise _fail(f"price_changes[{i}] must be an object, got {type(entry).__name__}", kind)
        _, raw_asset = _first(entry, ("asset_id",))
        if raw_asset is None:
            raise _fail(f"missing required field 'price_changes[{i}].asset_id'", kind)
        last[_token_id(raw_asset, f"price_changes[{i}].asset_id", kind)] = entry
    snapshots: list[PriceSnapshot] = []
    problems: list[tuple[str, str]] = []
    for asset_id, entry in last.items():
        try:
            price = _top_price(entry, kind)
            snapshots.append(_build(PriceSnapshot, kind, ts=ts, token_id=asset_id, price=price))
        except PayloadError as exc:
            problems.append((asset_id, exc.reason))
    return snapshots, problems


def price_change_to_snapshots(message: JsonObject) -> list[PriceSnapshot]:
    """Convert a WebSocket ``price_change`` (newest shape) into price snapshots.

    Returns one midpoint ``PriceSnapshot`` per asset (from that asset's last
    entry). Raises ``PayloadError`` (kind ``ws_price_change``) for the older
    shapes (no top of book) and when any asset's top of book is unusable;
    :func:`convert` keeps the good assets and rejects only the bad ones.
    """
    snapshots, problems = _price_change(message)
    if problems:
        asset_id, reason = problems[0]
        raise _fail(f"asset_id {asset_id}: {reason}", "ws_price_change")
    return snapshots


def best_bid_ask_to_snapshot(message: JsonObject) -> PriceSnapshot:
    """Convert a WebSocket ``best_bid_ask`` event into a midpoint ``PriceSnapshot``.

    Raises ``PayloadError`` (kind ``ws_best_bid_ask``) for a missing field or a
    one-sided top of book.
    """
    kind = "ws_best_bid_ask"
    message = _mapping(message, kind)
    return _build(
        PriceSnapshot,
        kind,
        ts=_req_ts(message, kind, "timestamp"),
        token_id=_req_token(message, kind, "asset_id"),
        price=_top_price(message, kind),
    )


def last_trade_price_to_snapshot(message: JsonObject) -> PriceSnapshot:
    """Convert a WebSocket ``last_trade_price`` event into a ``PriceSnapshot``.

    The price is the trade price. Raises ``PayloadError`` (kind
    ``ws_last_trade_price``) for a missing ``asset_id``, ``price`` or ``timestamp``.
    """
    kind = "ws_last_trade_price"
    message = _mapping(message, kind)
    return _build(
        PriceSnapshot,
        kind,
        ts=_req_ts(message, kind, "timestamp"),
        token_id=_req_token(message, kind, "asset_id"),
        price=float(_req_number(message, kind, "price")),
    )


# --------------------------------------------------------------------------- trades


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
    """Deterministic ``trade_id`` for a public fill without an id (see module docstring).

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
        _canonical(_decimal(price, "price", None)),
        _canonical(_decimal(size, "size", None)),
        (wallet or "").lower(),
    ]
    if not transaction_hash:
        if ts is None:
            raise _fail("a trade id needs a transaction hash or a timestamp", None)
        fields.append(str((ts - _EPOCH) // timedelta(milliseconds=1)))
    digest = hashlib.sha256("|".join(fields).encode()).hexdigest()
    return _TRADE_ID_PREFIX + digest[:32]


def _fill(
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
    token_id = _req_token(obj, kind, *token_keys)
    side = _side(obj, kind)
    price = _req_number(obj, kind, "price")
    size = _req_number(obj, kind, "size")
    ts = _req_ts(obj, kind, *ts_keys)
    if trade_id is None:
        trade_id = derive_fill_id(
            transaction_hash=_opt_str(obj, kind, *hash_keys),
            token_id=token_id,
            side=side,
            price=price,
            size=size,
            wallet=_opt_str(obj, kind, *wallet_keys) if wallet_keys else None,
            ts=ts,
        )
    return _build(
        TradeRecord,
        kind,
        ts=ts,
        token_id=token_id,
        side=side,
        price=float(price),
        size=float(size),
        trade_id=trade_id,
    )


def data_trade_to_record(trade: JsonObject) -> TradeRecord:
    """Convert a data-API trade (camelCase ``asset``/``transactionHash`` or snake_case).

    ``trade_id`` is derived by :func:`derive_fill_id` from the transaction
    hash, token, side, price, size and proxy wallet. Raises ``PayloadError``
    (kind ``data_trade``) for a missing token, side, price, size or timestamp.
    """
    kind = "data_trade"
    trade = _mapping(trade, kind)
    return _fill(
        trade,
        kind,
        token_keys=("asset", "token_id", "asset_id"),
        ts_keys=("timestamp",),
        hash_keys=("transactionHash", "transaction_hash"),
        wallet_keys=("proxyWallet", "proxy_wallet"),
    )


def clob_trade_to_record(trade: JsonObject) -> TradeRecord:
    """Convert a CLOB Trade object (``/data/trades``, user-channel ``trade`` event).

    ``trade_id`` is the trade's ``id`` (derived from ``transaction_hash`` when
    absent); the time is ``match_time`` (seconds, ms or ISO); side is the
    taker's. Raises ``PayloadError`` (kind ``clob_trade``/``ws_trade``) for a
    missing field or a trade whose ``status`` is ``FAILED`` (it did not settle).
    """
    kind = (
        "ws_trade"
        if isinstance(trade, Mapping) and trade.get("event_type") == "trade"
        else "clob_trade"
    )
    trade = _mapping(trade, kind)
    status = trade.get("status")
    if isinstance(status, str) and status.upper() == "FAILED":
        raise _fail("status FAILED: the fill did not settle on chain", kind)
    return _fill(
        trade,
        kind,
        token_keys=("asset_id",),
        ts_keys=("match_time", "timestamp"),
        hash_keys=("transaction_hash",),
        trade_id=_opt_str(trade, kind, "id"),
    )


def last_trade_price_to_trade(message: JsonObject) -> TradeRecord:
    """Convert a WebSocket ``last_trade_price`` event into the fill it reports.

    ``trade_id`` is derived from ``transaction_hash`` when the event has one,
    else from the millisecond timestamp. Raises ``PayloadError`` (kind
    ``ws_last_trade_price``) for a missing asset, side, price, size or timestamp.
    """
    kind = "ws_last_trade_price"
    message = _mapping(message, kind)
    return _fill(
        message,
        kind,
        token_keys=("asset_id",),
        ts_keys=("timestamp",),
        hash_keys=("transaction_hash", "transactionHash"),
    )


# --------------------------------------------------------------------------- resolutions


def ws_market_resolved_to_resolution(message: JsonObject) -> ResolutionRecord:
    """Convert a WebSocket ``market_resolved`` event into a ``ResolutionRecord``.

    Winner ``winning_asset_id`` (payout 1.0), outcome ``winning_outcome``,
    resolved at ``timestamp``. Raises ``PayloadError`` (kind
    ``ws_market_resolved``) when ``market``, ``winning_asset_id`` or
    ``timestamp`` is missing.
    """
    kind = "ws_market_resolved"
    message = _mapping(message, kind)
    return _build(
        ResolutionRecord,
        kind,
        condition_id=_req_str(message, kind, "market", "condition_id"),
        outcome=_opt_str(message, kind, "winning_outcome"),
        winner_token_id=_req_token(message, kind, "winning_asset_id"),
        resolved_at=_req_ts(message, kind, "timestamp"),
        payout_price=1.0,
        detection_method="ws_market_resolved",
        status="resolved",
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
    row = _mapping(row, kind)
    condition_id = _req_str(row, kind, "condition_id", "conditionId", "condition")
    status = _req_str(row, kind, "status").strip().lower()
    name, raw = _first(row, ("payouts", "payout_numerators"))
    payouts_raw = _json_list(raw, name, kind) or []
    payouts = [_decimal(p, f"{name}[{i}]", kind) for i, p in enumerate(payouts_raw)]
    outcomes = _str_list(row.get("outcomes"), "outcomes", kind)
    tok_name, tok_raw = _first(row, ("clob_token_ids", "clobTokenIds", "token_ids", "asset_ids"))
    tokens = _token_list(tok_raw, tok_name, kind)
    resolved_at = _opt_ts(row, kind, "resolved_at", "resolvedAt")
    base: dict[str, Any] = {
        "condition_id": condition_id,
        "resolved_at": resolved_at,
        "detection_method": "data_api_resolutions",
        "status": status,
    }
    if any(p < 0 for p in payouts):
        raise _fail(f"field {name!r} has a negative payout", kind)
    total = sum(payouts, Decimal(0))
    if total == 0:
        return _build(ResolutionRecord, kind, **base)
    _, denom_raw = _first(row, ("payout_denominator", "payoutDenominator"))
    denominator = (
        _decimal(denom_raw, "payout_denominator", kind) if denom_raw not in (None, "") else total
    )
    if denominator <= 0:
        raise _fail(f"field 'payout_denominator' must be positive, got {denom_raw!r}", kind)
    shares = [p / denominator for p in payouts]
    winners = [i for i, s in enumerate(shares) if s == 1]
    if len(winners) == 1 and all(s == 0 for i, s in enumerate(shares) if i != winners[0]):
        idx = winners[0]
        winner = tokens[idx] if tokens is not None and len(tokens) == len(shares) else None
        outcome = outcomes[idx] if outcomes is not None and len(outcomes) == len(shares) else None
        return _build(
            ResolutionRecord,
            kind,
            outcome=outcome,
            winner_token_id=winner,
            payout_price=1.0,
            **base,
        )
    if len(shares) == 2 and all(s == Decimal("0.5") for s in shares):
        return _build(ResolutionRecord, kind, payout_price=0.5, **base)
    shown = [_canonical(s) for s in shares]
    raise _fail(
        f"payouts {shown} name no single winner and are not a 50/50 (scalar payout vector)", kind
    )


# --------------------------------------------------------------------------- dispatch

_WS_EVENTS: Final[Mapping[str, str]] = {
    "book": "ws_book",
    "price_change": "ws_price_change",
    "last_trade_price": "ws_last_trade_price",
    "best_bid_ask": "ws_best_bid_ask",
    "market_resolved": "ws_market_resolved",
    "new_market": "ws_new_market",
    "tick_size_change": "ws_tick_size_change",
    "trade": "ws_trade",
    "order": "ws_order",
}


def detect_kind(payload: object) -> str:
    """Name the kind of a parsed Polymarket payload (one of :data:`KINDS`).

    Takes any parsed JSON value; returns ``"list"`` for an array, ``"page"``
    for a ``{"data": [...]}`` envelope and ``"unknown"`` when nothing matches.
    Never raises.
    """
    if isinstance(payload, list):
        return "list"
    if not isinstance(payload, Mapping):
        return "unknown"
    event_type = payload.get("event_type")
    if event_type is not None:
        return _WS_EVENTS.get(event_type, "unknown") if isinstance(event_type, str) else "unknown"
    keys = payload.keys()
    if "bids" in keys and "asks" in keys:
        return "clob_book"
    if "price_changes" in keys:
        return "ws_price_change"
    if "taker_order_id" in keys or "maker_orders" in keys or "match_time" in keys:
        return "clob_trade"
    if "tokens" in keys and ("condition_id" in keys or "market_slug" in keys):
        return "clob_market"
    if isinstance(payload.get("markets"), list):
        return "gamma_event"
    if "side" in keys and any(
        k in keys for k in ("transactionHash", "transaction_hash", "proxyWallet", "proxy_wallet")
    ):
        return "data_trade"
    if "payouts" in keys or "payout_numerators" in keys:
        return "data_resolution"
    if "conditionId" in keys and any(k in keys for k in ("question", "clobTokenIds", "outcomes")):
        return "gamma_market"
    if "data" in keys and (payload["data"] is None or isinstance(payload["data"], list)):
        return "page"
    return "unknown"


def _unknown_reason(payload: object) -> str:
    if isinstance(payload, Mapping):
        event_type = payload.get("event_type")
        if event_type is not None:
            return f"unknown event_type {event_type!r}: no adapter for it"
        keys = sorted(str(k) for k in payload)
        shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
        return (
            f"unrecognised object with keys [{shown}]: not a Gamma market/event, CLOB "
            "book/market/trade, data-API trade/resolution or WebSocket market-channel event"
        )
    if isinstance(payload, str | bytes):
        return f"expected parsed JSON (an object or array), got {type(payload).__name__} text"
    return f"expected a JSON object or array, got {type(payload).__name__}"


def _market_and_resolution(
    obj: JsonObject,
    acc: _Acc,
    kind: str,
    to_record: Callable[[JsonObject], MarketRecord],
    to_resolution: Callable[[JsonObject], ResolutionRecord | None],
) -> None:
    """The market, and its resolution when it has one; a bad resolution is a
    reject of its own (the market is still kept)."""
    acc.out.markets.append(to_record(obj))
    try:
        resolution = to_resolution(obj)
    except PayloadError as exc:
        acc.reject(kind, exc.reason, obj)
    else:
        if resolution is not None:
            acc.out.resolutions.append(resolution)


def _h_gamma_market(obj: JsonObject, acc: _Acc) -> None:
    _market_and_resolution(
        obj, acc, "gamma_market", gamma_market_to_record, gamma_market_to_resolution
    )


def _h_gamma_event(obj: JsonObject, acc: _Acc) -> None:
    for market in _event_markets(obj):
        try:
            _h_gamma_market(market, acc)
        except PayloadError as exc:
            acc.reject("gamma_market", exc.reason, market)


def _h_clob_market(obj: JsonObject, acc: _Acc) -> None:
    _market_and_resolution(
        obj, acc, "clob_market", clob_market_to_record, clob_market_to_resolution
    )


def _h_book(obj: JsonObject, acc: _Acc) -> None:
    acc.out.orderbooks.append(book_to_snapshot(obj))


def _h_price_change(obj: JsonObject, acc: _Acc) -> None:
    snapshots, problems = _price_change(obj)
    acc.out.prices.extend(snapshots)
    for asset_id, reason in problems:
        acc.reject("ws_price_change", f"asset_id {asset_id}: {reason}", obj)


def _h_best_bid_ask(obj: JsonObject, acc: _Acc) -> None:
    acc.out.prices.append(best_bid_ask_to_snapshot(obj))


def _h_last_trade_price(obj: JsonObject, acc: _Acc) -> None:
    snapshot = last_trade_price_to_snapshot(obj)
    trade = last_trade_price_to_trade(obj)
    acc.out.prices.append(snapshot)
    acc.add_trade(trade, derived=True)


def _h_market_resolved(obj: JsonObject, acc: _Acc) -> None:
    acc.out.resolutions.append(ws_market_resolved_to_resolution(obj))


def _h_new_market(obj: JsonObject, acc: _Acc) -> None:
    acc.out.markets.append(ws_new_market_to_record(obj))


def _h_tick_size(obj: JsonObject, acc: _Acc) -> None:
    raise _fail(
        "tick_size_change carries no price, book, trade, market or resolution "
        "(pmstore stores no tick sizes)",
        "ws_tick_size_change",
    )


def _h_order(obj: JsonObject, acc: _Acc) -> None:
    raise _fail(
        "user-channel order event is not a fill (its trades arrive as trade events)", "ws_order"
    )


def _h_clob_trade(obj: JsonObject, acc: _Acc) -> None:
    trade = clob_trade_to_record(obj)
    acc.add_trade(trade, derived=not isinstance(obj.get("id"), str) or not obj.get("id"))


def _h_data_trade(obj: JsonObject, acc: _Acc) -> None:
    acc.add_trade(data_trade_to_record(obj), derived=True)


def _h_data_resolution(obj: JsonObject, acc: _Acc) -> None:
    acc.out.resolutions.append(data_resolution_to_record(obj))


_HANDLERS: Final[Mapping[str, Callable[[JsonObject, _Acc], None]]] = {
    "gamma_market": _h_gamma_market,
    "gamma_event": _h_gamma_event,
    "clob_market": _h_clob_market,
    "clob_book": _h_book,
    "ws_book": _h_book,
    "ws_price_change": _h_price_change,
    "ws_best_bid_ask": _h_best_bid_ask,
    "ws_last_trade_price": _h_last_trade_price,
    "ws_market_resolved": _h_market_resolved,
    "ws_new_market": _h_new_market,
    "ws_tick_size_change": _h_tick_size,
    "ws_order": _h_order,
    "ws_trade": _h_clob_trade,
    "clob_trade": _h_clob_trade,
    "data_trade": _h_data_trade,
    "data_resolution": _h_data_resolution,
}


def _convert_into(payload: object, acc: _Acc) -> None:
    kind = detect_kind(payload)
    if kind == "list":
        assert isinstance(payload, list)
        for item in payload:
            _convert_into(item, acc)
        return
    if kind == "page":
        assert isinstance(payload, Mapping)
        for item in payload["data"] or ():
            _convert_into(item, acc)
        return
    handler = _HANDLERS.get(kind)
    if handler is None:
        acc.reject("unknown", _unknown_reason(payload), payload)
        return
    assert isinstance(payload, Mapping)
    try:
        handler(payload, acc)
    except PayloadError as exc:
        acc.reject(exc.kind or kind, exc.reason, payload)


def convert(payload: object) -> Converted:
    """Convert any parsed Polymarket payload into pmstore records.

    Takes one payload, a JSON array of payloads or a ``{"data": [...]}`` page
    (converted item by item). Returns a :class:`Converted` with the records
    per table and one :class:`Reject` per payload, or part of one, that could
    not be converted. Never raises for bad input.
    """
    acc = _Acc()
    _convert_into(payload, acc)
    return acc.out
