"""Shared field parsing for the Polymarket adapters: required/optional fields,
token ids, numbers, JSON-encoded lists, dates, and pydantic validation turned
into :class:`pmstore.errors.PayloadError` (rules in docs/polymarket.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from pmstore.errors import PayloadError
from pmstore.models import ModelT

JsonObject = Mapping[str, Any]


def payload_error(reason: str, kind: str | None) -> PayloadError:
    return PayloadError(reason, kind)


def first_present(obj: JsonObject, names: Sequence[str]) -> tuple[str, Any]:
    """Return (name, value) of the first of ``names`` present and not null."""
    for name in names:
        value = obj.get(name)
        if value is not None:
            return name, value
    return names[0], None


def quoted_names(names: Sequence[str]) -> str:
    return " or ".join(repr(n) for n in names)


def required_str(obj: JsonObject, kind: str, *names: str) -> str:
    name, value = first_present(obj, names)
    if value is None:
        raise payload_error(f"missing required field {quoted_names(names)}", kind)
    if not isinstance(value, str):
        raise payload_error(f"field {name!r} must be a string, got {type(value).__name__}", kind)
    if not value.strip():
        raise payload_error(f"field {name!r} is empty", kind)
    return value


def optional_str(obj: JsonObject, kind: str, *names: str) -> str | None:
    name, value = first_present(obj, names)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise payload_error(f"field {name!r} must be a string, got {type(value).__name__}", kind)
    return value


def required_bool(obj: JsonObject, kind: str, name: str) -> bool:
    value = obj.get(name)
    if value is None:
        raise payload_error(f"missing required field {name!r}", kind)
    if not isinstance(value, bool):
        raise payload_error(f"field {name!r} must be true or false, got {value!r}", kind)
    return value


def checked_token_id(value: object, name: str, kind: str | None) -> str:
    if isinstance(value, bool):
        raise payload_error(f"field {name!r} must be a decimal token id, got {value!r}", kind)
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise payload_error(
            f"field {name!r} must be a decimal token id, got {type(value).__name__}", kind
        )
    if not value:
        raise payload_error(f"field {name!r} is empty", kind)
    if not (value.isascii() and value.isdigit()):
        raise payload_error(
            f"field {name!r} must be a decimal token id, got {shortened(value)}", kind
        )
    return value


def required_token(obj: JsonObject, kind: str, *names: str) -> str:
    name, value = first_present(obj, names)
    if value is None:
        raise payload_error(f"missing required field {quoted_names(names)}", kind)
    return checked_token_id(value, name, kind)


def decimal_value(value: object, name: str, kind: str | None) -> Decimal:
    """A finite decimal from a JSON number or numeric string."""
    if isinstance(value, bool) or value is None:
        raise payload_error(f"field {name!r} must be a number, got {value!r}", kind)
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        if not value.strip():
            raise payload_error(f"field {name!r} is empty", kind)
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise payload_error(
                f"field {name!r} is not a number: {shortened(value)}", kind
            ) from None
    else:
        raise payload_error(f"field {name!r} must be a number, got {type(value).__name__}", kind)
    if not number.is_finite():
        raise payload_error(f"field {name!r} is not finite: {value!r}", kind)
    return number


def required_number(obj: JsonObject, kind: str, *names: str) -> Decimal:
    name, value = first_present(obj, names)
    if value is None:
        raise payload_error(f"missing required field {quoted_names(names)}", kind)
    return decimal_value(value, name, kind)


def canonical_decimal(number: Decimal) -> str:
    """Canonical text of a decimal: no exponent, no trailing zeros ("0.5", "100")."""
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "") else text


def trade_side(obj: JsonObject, kind: str) -> str:
    side = required_str(obj, kind, "side").upper()
    if side not in ("BUY", "SELL"):
        raise payload_error(f"field 'side' must be BUY or SELL, got {obj.get('side')!r}", kind)
    return side


def json_list(value: object, name: str, kind: str) -> list[Any] | None:
    """Decode a Gamma JSON-encoded list (a real list is accepted as is)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise payload_error(
                f"field {name!r} is not valid JSON: {shortened(value)}", kind
            ) from None
    if not isinstance(value, list):
        raise payload_error(f"field {name!r} must be a JSON list, got {type(value).__name__}", kind)
    return value


def str_list(value: object, name: str, kind: str) -> list[str] | None:
    """A Gamma JSON-encoded (or real) list of strings; PayloadError naming the bad item."""
    return _list_of(value, name, kind, _string)


def token_list(value: object, name: str, kind: str) -> list[str] | None:
    """A Gamma JSON-encoded (or real) list of token ids; PayloadError naming the bad item."""
    return _list_of(value, name, kind, checked_token_id)


def _list_of(
    value: object, name: str, kind: str, item: Callable[[object, str, str], str]
) -> list[str] | None:
    items = json_list(value, name, kind)
    if items is None:
        return None
    return [item(value, f"{name}[{i}]", kind) for i, value in enumerate(items)]


def _string(value: object, name: str, kind: str) -> str:
    if not isinstance(value, str):
        raise payload_error(f"field {name!r} must be a string, got {value!r}", kind)
    return value


def date_part(value: str, name: str, kind: str) -> str:
    text = value.strip()[:10]
    try:
        date.fromisoformat(text)
    except ValueError:
        raise payload_error(
            f"field {name!r} does not start with an ISO date: {shortened(value)}", kind
        ) from None
    return text


def shortened(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _loc(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(record)"


def build_record(model: type[ModelT], kind: str, **values: Any) -> ModelT:
    """Validate ``values`` into ``model``; a ValidationError becomes a PayloadError."""
    try:
        return model(**values)
    except ValidationError as exc:
        problems = [
            f"{_loc(err['loc'])}: {err['msg']} (got {shortened(err.get('input'), 40)})"
            for err in exc.errors(include_url=False)
        ]
        raise payload_error(f"invalid {model.__name__}: " + "; ".join(problems), kind) from None


def payload_mapping(payload: object, kind: str) -> JsonObject:
    if not isinstance(payload, Mapping):
        raise payload_error(f"expected a JSON object, got {type(payload).__name__}", kind)
    return payload
