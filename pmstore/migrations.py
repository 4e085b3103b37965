"""Apply, roll back and inspect pmstore's schema: the yoyo migrations in ``migrations/``.

The SQL lives in the repository's ``migrations/`` folder (override with
``PMSTORE_MIGRATIONS``), one file per step with a ``.rollback.sql`` beside
it; ``yoyo apply`` from the repository root runs the very same files. This
module runs them programmatically under yoyo's lock and adds what the yoyo
command line does not do:

- the post-apply hook (``migrations/post-apply.sql``) runs on every
  ``apply``, even when nothing is pending, so a server that gained the
  Community edition of TimescaleDB gets the features it lacked;
- server WARNINGs (e.g. features left out on the Apache-2 edition) are
  logged and returned;
- a lock held by another or a killed process raises MigrationLockError with
  the way out instead of waiting forever.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from yoyo import get_backend, read_migrations
from yoyo.exceptions import LockTimeout

from pmstore.dsn import describe, redact, to_yoyo_url
from pmstore.errors import MigrationError, MigrationLockError

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "MigrationResult",
    "MigrationStatus",
    "apply",
    "break_lock",
    "migrations_dir",
    "rollback",
    "status",
]

logger = logging.getLogger(__name__)
lock_logger = logging.getLogger(f"{__name__}.lock")
"""Says, before the wait, who holds the migration lock."""

DEFAULT_LOCK_TIMEOUT = 120.0
"""Seconds to wait for yoyo's lock before reporting who holds it."""


def migrations_dir() -> Path:
    """Return the folder of migration files (``PMSTORE_MIGRATIONS`` or the checkout's)."""
    env = os.environ.get("PMSTORE_MIGRATIONS")
    path = Path(env) if env else Path(__file__).resolve().parent.parent / "migrations"
    if not (path / "0001_extensions.sql").exists():
        raise MigrationError(
            f"no pmstore migrations in {path}: run pmstore from its source checkout "
            "(pip install -e .) or set PMSTORE_MIGRATIONS to the migrations folder"
        )
    return path


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """Which migrations are applied and which are pending, by id, in order."""

    applied: list[str]
    pending: list[str]


@dataclass(slots=True)
class MigrationResult:
    """What ``apply`` or ``rollback`` did: the migration ids and the server's warnings."""

    migrations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _backend(dsn: str, result: MigrationResult | None = None) -> Iterator[Any]:
    try:
        backend = get_backend(to_yoyo_url(dsn))
    except psycopg.Error as exc:
        raise MigrationError(f"cannot connect to {describe(dsn)}: {redact(str(exc))}") from None

    def on_notice(diag: psycopg.errors.Diagnostic) -> None:
        if diag.severity_nonlocalized in ("WARNING",) and diag.message_primary:
            logger.warning("%s", diag.message_primary)
            if result is not None:
                result.warnings.append(diag.message_primary)

    backend.connection.add_notice_handler(on_notice)
    # yoyo applies each migration on a copy of the backend (a new connection):
    # give every copy the same notice handler.
    make_copy = backend.copy

    def copy_with_notices() -> Any:
        copied = make_copy()
        copied.connection.add_notice_handler(on_notice)
        return copied

    backend.copy = copy_with_notices
    try:
        yield backend
    finally:
        with contextlib.suppress(Exception):
            backend.connection.close()


@contextlib.contextmanager
def _locked(backend: Any, dsn: str, timeout: float) -> Iterator[None]:
    with contextlib.suppress(Exception):  # no yoyo_lock table yet: nobody holds it
        row = backend.execute("SELECT pid, ctime FROM yoyo_lock").fetchone()
        if row:
            lock_logger.warning(
                "waiting up to %gs for the migration lock held by process %s since %s UTC",
                timeout,
                row[0],
                row[1],
            )
    try:
        with backend.lock(timeout=timeout):
            yield
    except LockTimeout:
        holder = ""
        with contextlib.suppress(Exception):
            row = backend.execute("SELECT pid, ctime FROM yoyo_lock").fetchone()
            if row:
                holder = f" by process {row[0]} since {row[1]} UTC"
        raise MigrationLockError(
            f"migrations on {describe(dsn)} are locked{holder} (waited {timeout:g}s). "
            "If no migration is running (e.g. a killed process left the lock), remove it "
            "with `pmstore migrate --break-lock` or `yoyo break-lock`, then retry."
        ) from None


def _load() -> Any:
    return read_migrations(str(migrations_dir()))


def _run(dsn: str, action: str, step: Any) -> MigrationResult:
    result = MigrationResult()
    with _backend(dsn, result) as backend:
        try:
            step(backend, result)
        except (MigrationLockError, MigrationError):
            raise
        except psycopg.Error as exc:
            raise MigrationError(
                f"{action} failed on {describe(dsn)}: {redact(str(exc)).strip()}"
            ) from None
    return result


def apply(dsn: str, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> MigrationResult:
    """Apply every pending migration, then the post-apply hook, under yoyo's lock.

    Returns the ids applied (empty when the schema was current) and the
    server's warnings. Raises MigrationLockError when the lock stays held for
    ``lock_timeout`` seconds, MigrationError when a migration fails (that
    migration is rolled back; earlier ones stay applied).
    """

    def step(backend: Any, result: MigrationResult) -> None:
        with _locked(backend, dsn, lock_timeout):
            migrations = _load()
            pending = backend.to_apply(migrations)
            backend.apply_migrations_only(pending)
            backend.run_post_apply(migrations)
            result.migrations.extend(m.id for m in pending)

    return _run(dsn, "applying migrations", step)


def rollback(
    dsn: str, count: int | None = None, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
) -> MigrationResult:
    """Roll back the last ``count`` applied migrations (all when ``count`` is None).

    Newest first, respecting dependencies. Raises MigrationLockError or
    MigrationError like ``apply``.
    """
    if count is not None and count < 1:
        raise MigrationError(f"rollback count must be at least 1, not {count}")

    def step(backend: Any, result: MigrationResult) -> None:
        with _locked(backend, dsn, lock_timeout):
            migrations = backend.to_rollback(_load())
            if count is not None:
                migrations = migrations.replace(list(migrations)[:count])
            backend.rollback_migrations(migrations)
            result.migrations.extend(m.id for m in migrations)

    return _run(dsn, "rolling back migrations", step)


def status(dsn: str) -> MigrationStatus:
    """Return the applied and pending migrations (no lock taken)."""
    out: dict[str, list[str]] = {}

    def step(backend: Any, result: MigrationResult) -> None:
        migrations = _load()
        applied = backend.get_applied_migration_hashes()
        out["applied"] = [m.id for m in migrations if m.hash in applied]
        out["pending"] = [m.id for m in migrations if m.hash not in applied]

    _run(dsn, "reading migration status", step)
    return MigrationStatus(out["applied"], out["pending"])


def break_lock(dsn: str) -> None:
    """Remove yoyo's migration lock (use only when no migration is running)."""
    _run(dsn, "breaking the lock", lambda backend, result: backend.break_lock())
