"""Times given on the command line (``--start``, ``--end``): ISO with a zone, or a UTC date."""

from __future__ import annotations

from datetime import UTC, datetime

from pmstore.errors import ConfigurationError

__all__ = ["utc_time"]


def utc_time(option: str, text: str) -> datetime:
    """An ISO time with a zone, or a bare date (``YYYY-MM-DD``: midnight UTC).

    Raises ConfigurationError naming ``option`` for an unparsable or naive time.
    """
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigurationError(f"{option}: not an ISO time: {text!r}") from exc
    if len(text) == 10:  # YYYY-MM-DD
        return value.replace(tzinfo=UTC)
    if value.utcoffset() is None:
        raise ConfigurationError(f"{option}: give a zone, e.g. {text}Z or {text}+00:00")
    return value
