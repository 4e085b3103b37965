"""Retention horizons: rows older than a table's retention policy are not written silently.

TimescaleDB's retention policy (migration 0008: 90 days on ``price_snapshots``
and ``trades``) drops chunks older than ``now() - drop_after``. A row written
older than that horizon would disappear at the policy's next run,
unannounced. So the Writer reads the horizon from the server's actual policy
(``pmstore_retention_horizon``, migration 0011; none on the Apache-2 edition,
which has no policies) and, per ``beyond_retention``:

- ``"raise"`` (default): refuses the batch with ``BatchValidationError``
  naming the rows and the horizon; nothing written;
- ``"write"``: writes them anyway (counted in ``WriteResult.beyond_retention_written``);
- ``"skip"``: writes the other rows (counted in ``WriteResult.beyond_retention_skipped``).

This module holds the SQL and the pure logic; the Writer runs the query
(``TABLE_POLICY_SQL``, cached per Writer for ``TABLE_POLICY_TTL`` seconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

from pmstore.errors import BatchValidationError, ConfigurationError, RowProblem

__all__ = [
    "BEYOND_RETENTION_MODES",
    "TABLE_POLICY_SQL",
    "TABLE_POLICY_TTL",
    "BeyondRetention",
    "RetentionOutcome",
    "TablePolicy",
    "apply_retention",
    "check_mode",
]

BeyondRetention = Literal["raise", "write", "skip"]
"""What to do with rows older than the retention horizon: refuse, write, or skip them."""

BEYOND_RETENTION_MODES: Final = ("raise", "write", "skip")

TABLE_POLICY_TTL: Final = 60.0
"""Seconds a Writer keeps a table's policy before reading it again."""

MAX_REPORTED_ROWS: Final = 20

# One row: the table's retention horizon (NULL without a policy), its drop_after,
# and whether the Writer records touched hours for its continuous aggregates.
TABLE_POLICY_SQL: Final = """
    SELECT h.horizon, now() - h.horizon AS drop_after,
           EXISTS (SELECT 1 FROM pmstore_refresh_targets t
                   WHERE t.hypertable = %(table)s::text AND to_regclass(t.view_name) IS NOT NULL)
               AS aggregated
    FROM pmstore_retention_horizon(%(table)s::regclass) AS h(horizon)
"""


def check_mode(value: object) -> BeyondRetention:
    """Return ``value`` as a BeyondRetention; ConfigurationError when it is not one."""
    if value not in BEYOND_RETENTION_MODES:
        raise ConfigurationError(
            f"beyond_retention must be 'raise', 'write' or 'skip', not {value!r}"
        )
    mode: BeyondRetention = value
    return mode


@dataclass(frozen=True, slots=True)
class TablePolicy:
    """A table's retention horizon and aggregates, as read at ``read_at`` (monotonic seconds).

    ``horizon`` moves forward with time: ``horizon_at(now)`` adds the time
    elapsed since it was read (the server's clock, not this machine's).
    """

    table: str
    horizon: datetime | None
    drop_after: timedelta | None
    aggregated: bool
    read_at: float

    @classmethod
    def from_row(cls, table: str, row: tuple[Any, ...] | None, read_at: float) -> TablePolicy:
        """Build from ``TABLE_POLICY_SQL``'s row."""
        if row is None:
            return cls(table, None, None, False, read_at)
        horizon, drop_after, aggregated = row
        if horizon is not None:
            horizon = horizon.astimezone(UTC)
        return cls(table, horizon, drop_after, bool(aggregated), read_at)

    def fresh(self, now: float) -> bool:
        """Whether this policy was read less than ``TABLE_POLICY_TTL`` seconds before ``now``."""
        return 0 <= now - self.read_at < TABLE_POLICY_TTL

    def horizon_at(self, now: float) -> datetime | None:
        """The horizon at monotonic time ``now`` (None: no retention policy)."""
        if self.horizon is None:
            return None
        return self.horizon + timedelta(seconds=max(now - self.read_at, 0.0))


@dataclass(frozen=True, slots=True)
class RetentionOutcome:
    """What ``apply_retention`` decided: the rows to keep (None: all) and the counts."""

    keep: NDArray[np.bool_] | None
    written: int = 0
    skipped: int = 0
    horizon: datetime | None = None


def apply_retention(
    table: str,
    ts: NDArray[np.datetime64],
    horizon: datetime | None,
    mode: BeyondRetention,
    *,
    rows: NDArray[np.intp] | None = None,
    drop_after: timedelta | None = None,
) -> RetentionOutcome:
    """Decide what happens to the rows of ``ts`` older than ``horizon``.

    ``rows`` maps positions in ``ts`` to the caller's row numbers (for
    messages; default: the positions). Raises BatchValidationError naming
    the first rows and the horizon when ``mode`` is "raise" and some row is
    older. Costs one vectorized comparison.
    """
    if horizon is None or len(ts) == 0:
        return RetentionOutcome(None, horizon=horizon)
    limit = np.datetime64(horizon.astimezone(UTC).replace(tzinfo=None), "us")
    beyond = ts < limit
    count = int(np.count_nonzero(beyond))
    if count == 0:
        return RetentionOutcome(None, horizon=horizon)
    if mode == "write":
        return RetentionOutcome(None, written=count, horizon=horizon)
    if mode == "skip":
        return RetentionOutcome(~beyond, skipped=count, horizon=horizon)
    where = np.flatnonzero(beyond)[:MAX_REPORTED_ROWS]
    numbers = where if rows is None else rows[where]
    policy = f" (drop_after {_interval(drop_after)})" if drop_after is not None else ""
    problems = [
        RowProblem(
            int(number),
            "ts",
            f"{_iso(ts[pos])} is older than the retention horizon {horizon.isoformat()} of "
            f"{table}'s retention policy{policy}: the policy would drop it; pass "
            "beyond_retention='write' or 'skip' to write or skip such rows",
        )
        for pos, number in zip(where, numbers, strict=True)
    ]
    raise BatchValidationError(table, problems, total=count)


def _iso(value: np.datetime64) -> str:
    return str(np.datetime_as_string(value, unit="us")) + "+00:00"


def _interval(value: timedelta) -> str:
    """``90 days`` rather than ``90 days, 0:00:00``."""
    if value.seconds == 0 and value.microseconds == 0:
        return f"{value.days} day" + ("" if value.days == 1 else "s")
    return str(value)
