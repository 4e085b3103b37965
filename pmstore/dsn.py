"""Connection strings: where they come from, how they are shown, how yoyo gets them.

pmstore takes a server as a libpq connection string, either URL
(``postgresql://user@host:5432/db``) or key=value (``host=... dbname=...``).
``postgresql+psycopg://`` (yoyo's spelling) is accepted too.

Passwords never leave this module in clear text: ``redact`` hides them in
anything meant for people (logs, errors, reprs).
"""

from __future__ import annotations

import copy
import itertools
import os
import re
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pmstore.errors import ConfigurationError

__all__ = [
    "LIBPQ_ENV_VARS",
    "describe",
    "from_environment",
    "normalize",
    "redact",
    "redact_error",
    "to_yoyo_url",
    "with_dbname",
]

LIBPQ_ENV_VARS = ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")
"""libpq variables that, when set, name a server (PGPASSWORD alone does not)."""

_URL_PASSWORD = re.compile(r"(?P<head>[a-z0-9+.-]+://[^:/?#@\s]*:)(?P<pw>[^@/?#\s]*)(?=@)", re.I)
_KV_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\S+)", re.I)
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)(?P<pw>[^&#\s]*)", re.I)
_URL_HEAD = re.compile(r"^[a-z0-9+.-]+://(?P<authority>[^/?#]*)(?P<path>[^?#]*)", re.I)


def redact(text: str) -> str:
    """Return ``text`` with every password in URLs or key=value pairs replaced by ``***``.

    Safe on any string (error messages included); costs one regex pass.
    """
    text = _URL_PASSWORD.sub(r"\g<head>***", text)
    text = _QUERY_PASSWORD.sub(r"\g<head>***", text)
    return _KV_PASSWORD.sub(r"\g<head>***", text)


ErrorT = TypeVar("ErrorT", bound=BaseException)


def redact_error(exc: ErrorT) -> ErrorT:
    """Return a copy of ``exc`` safe to chain, log or show, for ``raise ... from``.

    Its message and notes, and those of its own causes and contexts, have
    passwords replaced by ``***``. A psycopg error's copy keeps its class,
    ``sqlstate`` and ``diag`` but not its connection object, whose repr shows
    the password (psycopg's pickling leaves it out the same way). The copy
    keeps the original's traceback. Costs one copy per exception in the chain.
    """
    return _redacted(exc, {})


def _redacted(exc: ErrorT, done: dict[int, BaseException]) -> ErrorT:
    if id(exc) in done:
        return done[id(exc)]  # type: ignore[return-value]
    try:
        clone = copy.copy(exc)
    except Exception:  # an exception that cannot be copied is redacted in place
        clone = exc
    done[id(exc)] = clone
    clone.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in exc.args)
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list):
        clone.__notes__ = [redact(str(note)) for note in notes]
    clone.__traceback__ = exc.__traceback__
    suppress = exc.__suppress_context__
    clone.__cause__ = None if exc.__cause__ is None else _redacted(exc.__cause__, done)
    clone.__context__ = None if exc.__context__ is None else _redacted(exc.__context__, done)
    clone.__suppress_context__ = suppress
    return clone


def normalize(dsn: str) -> str:
    """Return ``dsn`` as a libpq connection string psycopg accepts.

    Strips yoyo's ``+psycopg`` driver suffix. Raises ConfigurationError
    (with the password hidden) when the string cannot be parsed.
    """
    dsn = dsn.strip()
    if not dsn:
        raise ConfigurationError("empty connection string")
    dsn = re.sub(r"^postgres(?:ql)?\+psycopg://", "postgresql://", dsn, flags=re.I)
    url = _URL_HEAD.match(dsn)
    if url and (url["authority"].count("@") > 1 or "@" in url["path"]):
        # libpq would take part of the password for the host or database name,
        # and show it in every message naming them.
        raise ConfigurationError(
            "cannot parse connection URL: its user or password holds an unescaped "
            "'@' or '/' (percent-encode them as %40 and %2F)"
        )
    try:
        conninfo_to_dict(dsn)
    except Exception as exc:
        raise ConfigurationError(
            f"cannot parse connection string {redact(dsn)!r}: {redact(str(exc))}"
        ) from redact_error(exc)
    return dsn


def from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """Return the server named by the environment, or None when none is named.

    Looks at ``PMSTORE_DSN`` first, then the standard libpq variables
    (PGHOST, PGPORT, PGDATABASE, PGUSER, PGSERVICE): when any is set the
    result is an empty conninfo (``""``), which libpq completes from them.
    """
    env = os.environ if environ is None else environ
    dsn = env.get("PMSTORE_DSN", "").strip()
    if dsn:
        return normalize(dsn)
    if any(env.get(name) for name in LIBPQ_ENV_VARS):
        return ""
    return None


def to_yoyo_url(dsn: str) -> str:
    """Return a ``postgresql+psycopg://`` URL for yoyo holding every parameter of ``dsn``.

    Every parameter (host, port, user, password, dbname, passfile, sslmode,
    ...) is passed in the query string, which yoyo hands to psycopg.connect
    unchanged. libpq environment variables still apply to what is left out.
    """
    params = {k: str(v) for k, v in conninfo_to_dict(normalize(dsn)).items() if v is not None}
    query = urlencode(params, quote_via=quote)
    return f"postgresql+psycopg:///?{query}" if query else "postgresql+psycopg:///"


def with_dbname(dsn: str, dbname: str) -> str:
    """Return ``dsn`` pointing at database ``dbname`` (other parameters kept)."""
    params: dict[str, Any] = dict(conninfo_to_dict(normalize(dsn)))
    params["dbname"] = dbname
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def describe(dsn: str) -> str:
    """Return a short, password-free description of ``dsn`` such as ``user@host:port/db``.

    A DSN naming several servers (``host=a,b port=5432,5433``, or
    ``postgresql://a:5432,b:5433/db``) shows each as ``host:port``, in the
    order libpq tries them: ``user@a:5432,b:5433/db``. A single port applies
    to every host, as in libpq; an IPv6 address is bracketed (``[::1]:5432``).
    Values missing from ``dsn`` come from the libpq variables (PGHOST, ...),
    else libpq's defaults. Costs one parse of ``dsn``.
    """
    try:
        params = conninfo_to_dict(normalize(dsn))
    except ConfigurationError:
        return "<unparseable connection string>"
    hosts = _listed(params.get("host") or params.get("hostaddr"), "PGHOST", "localhost")
    ports = _listed(params.get("port"), "PGPORT", "5432")
    if len(ports) == 1:
        ports *= len(hosts)
    servers = ",".join(
        f"{_bracketed(host)}:{port}"
        for host, port in itertools.zip_longest(hosts, ports, fillvalue="?")
    )
    user = str(params.get("user") or os.environ.get("PGUSER") or "")
    db = str(params.get("dbname") or os.environ.get("PGDATABASE") or user)
    at = f"{user}@" if user else ""
    return f"{at}{servers}/{db}"


def _listed(value: object, variable: str, default: str) -> list[str]:
    """A comma-separated libpq list (hosts, ports), from ``value``, the variable or ``default``.

    An empty item means libpq's default, as in libpq.
    """
    text = str(value or os.environ.get(variable) or default)
    return [item.strip() or default for item in text.split(",")]


def _bracketed(host: str) -> str:
    """``host`` as it goes before ``:port``: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("/") else host
