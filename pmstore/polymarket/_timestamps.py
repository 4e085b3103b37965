"""The Polymarket timestamp rule: Unix seconds or milliseconds by magnitude, or
ISO-8601; always timezone-aware UTC (see docs/polymarket.md, *Timestamp rule*).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Final

from pmstore.polymarket._fields import JsonObject, _decimal, _fail, _first, _names, _short

__all__ = ["parse_timestamp"]


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


_SECONDS_BELOW: Final = Decimal(10**11)


_MILLIS_BELOW: Final = Decimal(10**14)


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
