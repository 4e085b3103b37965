"""What the connected server is: PostgreSQL and TimescaleDB versions, edition, features.

TimescaleDB ships as the Community edition and as the Apache-2 edition
(Debian's package, some managed clouds); the latter has no compression,
continuous aggregates or policies. ``timescaledb.license`` tells them apart
(``timescale`` or ``apache``). Migrations 0007/0008 record in
``pmstore_features`` which optional features this database actually has.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal

import psycopg

from pmstore.errors import FeatureUnavailableError

__all__ = [
    "FEATURES",
    "FEATURES_SQL",
    "MIN_TIMESCALEDB",
    "TESTED_WITH",
    "Feature",
    "ServerInfo",
    "features",
    "features_async",
    "parse_version",
    "require_feature",
    "require_feature_async",
    "server_info",
]

FEATURES = ("continuous_aggregates", "compression", "retention")
"""The optional TimescaleDB features pmstore's schema uses."""

MIN_TIMESCALEDB = "2.19.0"
"""The oldest TimescaleDB pmstore accepts: the oldest it was tested with."""

TESTED_WITH = (
    "PostgreSQL 15.18 with TimescaleDB 2.19.3 (Apache-2 edition, Debian's source package)",
    "PostgreSQL 15.18 with TimescaleDB 2.28.3 (Community edition, built from source)",
)
"""The combinations pmstore's test suite ran on. TimescaleDB 2.29 dropped
PostgreSQL 15, so 2.28.x is the last line for PostgreSQL 15; other versions
(PostgreSQL 16/17, TimescaleDB >= 2.19) are expected to work but untested."""


def parse_version(text: str) -> tuple[int, ...]:
    """``"2.19.3"`` -> ``(2, 19, 3)``; suffixes such as ``-dev`` are ignored."""
    parts: list[int] = []
    for piece in text.split("."):
        digits = "".join(itertools.takewhile(str.isdigit, piece))
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


Edition = Literal["community", "apache", "unknown", "none"]


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Versions and TimescaleDB edition of a server."""

    postgres_version: str
    timescaledb_version: str | None
    license: str | None
    edition: Edition

    def __str__(self) -> str:
        if self.timescaledb_version is None:
            return f"PostgreSQL {self.postgres_version} without TimescaleDB"
        name = {"community": "Community", "apache": "Apache-2"}.get(self.edition, "unknown")
        return (
            f"PostgreSQL {self.postgres_version}, TimescaleDB {self.timescaledb_version} "
            f"({name} edition, timescaledb.license={self.license})"
        )


def server_info(conn: psycopg.Connection[Any]) -> ServerInfo:
    """Return the server's PostgreSQL and TimescaleDB versions and edition.

    The TimescaleDB version is the extension installed in this database, or
    else the one available to it. The edition is ``"unknown"`` in a database
    where the extension is not created (its license setting is not loaded
    there). Costs one query.
    """
    row = conn.execute(
        """
        SELECT current_setting('server_version'),
               coalesce((SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'),
                        (SELECT default_version FROM pg_available_extensions
                         WHERE name = 'timescaledb')),
               current_setting('timescaledb.license', true)
        """
    ).fetchone()
    assert row is not None
    pg_version, ts_version, license = (str(v) if v is not None else None for v in row)
    edition: Edition
    if ts_version is None:
        edition = "none"
    elif license == "apache":
        edition = "apache"
    elif license is None:
        # timescaledb.license exists once the extension is loaded in this database.
        edition = "unknown"
    else:
        edition = "community"
    return ServerInfo(str(pg_version), ts_version, license, edition)


@dataclass(frozen=True, slots=True)
class Feature:
    """One optional feature: whether this database has it, and the details (or why not)."""

    name: str
    available: bool
    detail: str


FEATURES_SQL = "SELECT feature, available, detail FROM pmstore_features ORDER BY feature"
"""The features recorded by the migrations (run by ``features`` and ``features_async``)."""


def features(conn: psycopg.Connection[Any]) -> dict[str, Feature]:
    """Return the optional features recorded by the migrations, by name.

    Empty when the migrations that record them have not run. Costs one query.
    """
    return _features_of(conn.execute(FEATURES_SQL).fetchall())


def require_feature(conn: psycopg.Connection[Any], name: str) -> Feature:
    """Return feature ``name``; raise FeatureUnavailableError when this database lacks it."""
    return _required(features(conn), name)


async def features_async(conn: psycopg.AsyncConnection[Any]) -> dict[str, Feature]:
    """``features`` on an async connection."""
    cur = await conn.execute(FEATURES_SQL)
    return _features_of(await cur.fetchall())


async def require_feature_async(conn: psycopg.AsyncConnection[Any], name: str) -> Feature:
    """``require_feature`` on an async connection."""
    return _required(await features_async(conn), name)


def _features_of(rows: list[Any]) -> dict[str, Feature]:
    return {str(r[0]): Feature(str(r[0]), bool(r[1]), str(r[2])) for r in rows}


def _required(found_features: dict[str, Feature], name: str) -> Feature:
    found = found_features.get(name)
    if found is None:
        raise FeatureUnavailableError(f"{name}: not recorded; apply the migrations first")
    if not found.available:
        raise FeatureUnavailableError(f"{name}: {found.detail}")
    return found
