"""The Polymarket timestamp rule: Unix seconds or milliseconds by magnitude, or
ISO-8601; always timezone-aware UTC (see docs/polymarket.md, *Timestamp rule*).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Final

from pmstore._utc import UNIX_EPOCH
from pmstore.polymarket._fields import (
    JsonObject,
    decimal_value,
    first_present,
    payload_error,
    quoted_names,
    shortened,
)

__all__ = ["MILLIS_BELOW", "SECONDS_BELOW", "optional_ts", "parse_timestamp", "required_ts"]


SECONDS_BELOW: Final = 10**11
"""A Unix time below this is in seconds (10**11 s is the year 5138)."""
MILLIS_BELOW: Final = 10**14
"""A Unix time at or above ``SECONDS_BELOW`` and below this is in milliseconds; larger
numbers are refused (the rule of docs/polymarket.md, shared with the ingest fast path)."""


def _from_number(number: Decimal, name: str, kind: str | None) -> datetime:
    if number <= 0:
        raise payload_error(f"field {name!r} must be a positive Unix time, got {number}", kind)
    if number < SECONDS_BELOW:
        micros = number * 1_000_000
    elif number < MILLIS_BELOW:
        micros = number * 1_000
    else:
        raise payload_error(
            f"field {name!r} is {number}: too large for Unix seconds or milliseconds", kind
        )
    return UNIX_EPOCH + timedelta(microseconds=int(micros.to_integral_value(ROUND_HALF_EVEN)))


def parse_timestamp(value: object, name: str = "timestamp", kind: str | None = None) -> datetime:
    """Parse a Polymarket timestamp into a timezone-aware UTC datetime.

    Takes a number or numeric string of Unix seconds (< 1e11) or milliseconds
    (1e11 to 1e14), or an ISO-8601 string (no offset means UTC). Raises
    ``PayloadError`` naming ``name`` for anything else.
    """
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise payload_error(f"field {name!r} is empty", kind)
        try:
            number = Decimal(text)
        except InvalidOperation:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                raise payload_error(
                    f"field {name!r} is neither Unix time nor ISO-8601: {shortened(value)}", kind
                ) from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
        if not number.is_finite():
            raise payload_error(f"field {name!r} is not finite: {value!r}", kind)
        return _from_number(number, name, kind)
    return _from_number(decimal_value(value, name, kind), name, kind)


def required_ts(obj: JsonObject, kind: str, *names: str) -> datetime:
    name, value = first_present(obj, names)
    if value is None:
        raise payload_error(f"missing required field {quoted_names(names)}", kind)
    return parse_timestamp(value, name, kind)


def optional_ts(obj: JsonObject, kind: str, *names: str) -> datetime | None:
    name, value = first_present(obj, names)
    if value is None or value == "":
        return None
    return parse_timestamp(value, name, kind)
