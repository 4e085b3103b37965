"""The server a ``pmstore`` command works on: the one given, else the embedded server."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import psycopg

from pmstore.dsn import describe, from_environment, normalize, redact, redact_error
from pmstore.errors import ConfigurationError
from pmstore.server import EmbeddedServer

__all__ = ["Target", "connect", "given_dsn", "resolve"]


@dataclass(frozen=True, slots=True)
class Target:
    """The server a command works on: a DSN, and the embedded server when it is that."""

    dsn: str
    embedded: EmbeddedServer | None

    @property
    def where(self) -> str:
        """A password-free description of the server, for messages."""
        kind = f"embedded server in {self.embedded.home}" if self.embedded else "server"
        return f"{describe(self.dsn)} ({kind})"


def given_dsn(args: argparse.Namespace) -> str | None:
    """The DSN from ``--dsn``, else from the environment (PMSTORE_DSN, libpq); None if none."""
    if args.dsn:
        return normalize(args.dsn)
    return from_environment()


def resolve(args: argparse.Namespace, *, start: bool = True) -> Target:
    """The given server, else the embedded one (started when ``start``; a few seconds)."""
    dsn = given_dsn(args)
    if dsn is not None:
        return Target(dsn, None)
    server = EmbeddedServer()
    if start:
        if not server.status().running:
            print(f"starting the embedded TimescaleDB in {server.home} ...", file=sys.stderr)
        server.start()
    return Target(server.dsn(), server)


def connect(target: Target) -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection; raises ConfigurationError (one line, no password)."""
    try:
        return psycopg.connect(target.dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        first = redact(str(exc)).strip().splitlines()[0] if str(exc).strip() else "no answer"
        raise ConfigurationError(
            f"cannot connect to {describe(target.dsn)}: {first}"
        ) from redact_error(exc)
