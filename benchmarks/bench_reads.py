"""Reads against the server's limit: panels, the research loop, export, coverage; peers alike.

    python benchmarks/bench_reads.py [--rounds 3] [--smoke] [--no-8k] [--out DIR]
    PMSTORE_DSN=... python benchmarks/bench_reads.py --keep; ... --reuse --only panel

Data, written by pmstore's Writer (token ids 74-78 digits and floats as
parsed from JSON, see ``bench_data``), into empty tables:

- the panel set: ``--tokens`` (1,000) tokens x ``--minutes`` (2,000) minutes
  of price snapshots from ``DAY_START`` (2,000,000 rows, two daily chunks),
  and 50 trades a minute; then VACUUM ANALYZE and the continuous aggregates
  refreshed (Community edition);
- the coverage set: 8,000 tokens x 1,440 minutes on the day before
  (11.5M rows; 1% of the tokens miss 30 minutes, 0.1% of the rows dropped).

Workloads (every method reads the same rows, checked):

1. panel: the tokens x ``--panel-minutes`` (1,000, across the chunk
   boundary) sorted by (token_id, ts), into a pyarrow Table, a polars and a
   pandas DataFrame. The limit: the server's own ``COPY (SELECT ...) TO
   'file' (FORMAT binary)`` of the same SELECT. Peers: ADBC's PostgreSQL
   driver (one query; several connections on token slices, threads),
   connectorx (one query; several queries, its own parallelism), pmstore's
   previous path (psycopg's Copy) and its previous API (a loop of calls);
2. research loop: ``--loop-tokens`` (200) tokens, one ``price_history``
   into Arrow each; the limit: the same 200 SELECTs as COPY TO file;
3. export: the panel set to Parquet (zstd, a file per day) by ``pmstore
   export`` against ADBC + ``pyarrow.parquet``; the limit: COPY TO file of
   the export's own (sorted) queries;
4. coverage of 1,000 tokens (the panel window) and 8,000 tokens (a day),
   against the server's ``count(*)`` of the same rows; both pmstore
   implementations give the same report (checked).

Every connection runs with ``jit = off`` (pmstore sets it itself for panels;
the limit and the peers get it as a connection option): the best plan for
everyone. Rounds are interleaved (each method once per round, same order),
the best round counts. Measure alone: ``flock -x /tmp/pmstore-cpu.lock``.
Server: ``PMSTORE_DSN`` (a scratch database: its tables are emptied) or a
throwaway embedded server (fsync off). Prints tables; writes JSON to --out.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import psycopg
from bench_data import DAY_START, PRICE_COLUMNS, collected, minute
from bench_server import BenchDB, open_server
from psycopg.conninfo import conninfo_to_dict

from pmstore import Writer, __version__, migrate
from pmstore._read.bulk import read_table
from pmstore._read.coverage import coverage
from pmstore._read.panel import (
    JIT_OFF,
    fetch_panel,
    params,
    price_history_query,
    tokens,
)
from pmstore._read.parallel import token_slices
from pmstore._read.queries import PRICE_HISTORY_RAW_SQL
from pmstore._read.settings import restore_sql, settings_sql
from pmstore._utc import day_windows
from pmstore.export import EXPORT_SQL, export_table
from pmstore.frames.copy_decoding import iter_record_batches
from pmstore.frames.outbound import copy_statement, fetch_frame, query_schema
from pmstore.reader import ALL_TOKENS, Reader
from pmstore.synthetic import MarketSimulator

Conn = psycopg.Connection[tuple[Any, ...]]

JIT_OFF_OPTION = "-c jit=off"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- sizes and data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    tokens: int
    minutes: int
    panel_from: int
    panel_minutes: int
    loop_tokens: int
    trades_per_minute: int
    cov_tokens: int
    cov_minutes: int

    @classmethod
    def of(cls, args: argparse.Namespace) -> Sizes:
        if args.smoke:
            return cls(20, 60, 10, 30, 5, 5, 40, 60)
        return cls(
            args.tokens,
            args.minutes,
            args.minutes // 4,
            args.panel_minutes,
            args.loop_tokens,
            50,
            0 if args.no_8k else 8_000,
            1_440,
        )


def write_prices(
    conn: Conn, sim: MarketSimulator, first: datetime, minutes: int, *, outages: bool, trades: int
) -> int:
    """``minutes`` minute batches of every token from ``first``, as parsed from JSON;
    with ``outages`` 1% of the tokens miss 30 minutes at noon and 0.1% of rows drop."""
    rng = np.random.default_rng(3)
    written = 0
    n = len(sim.tokens)
    with Writer(conn) as writer:
        for k in range(minutes):
            at = first + timedelta(minutes=k)
            batch = sim.prices(at)
            columns = collected({c: getattr(batch, c) for c in PRICE_COLUMNS})
            if outages:
                keep = rng.random(n) >= 0.001
                if 720 <= k < 750:
                    keep[: n // 100] = False
                columns = {c: v[keep] for c, v in columns.items()}
            written += writer.copy_prices(columns).rows_written
            if trades:
                writer.copy_trades(sim.trades(at, trades))
            if k % 240 == 239:
                log(f"  ... {k + 1} minutes, {written:,} rows")
    return written


def reuse(db: BenchDB, sizes: Sizes) -> dict[str, Any]:
    """The data sets a ``--keep`` run left (the same sizes, written today: DAY_START)."""
    count = "SELECT count(*) FROM price_snapshots WHERE ts >= %s AND ts < %s"
    panel_end = DAY_START + timedelta(minutes=sizes.minutes)
    out: dict[str, Any] = {
        "panel_rows": db.scalar(count, (DAY_START, panel_end)),
        "panel_tokens": sorted(
            MarketSimulator(sizes.tokens, seed=11).tokens.tolist(), key=str.encode
        ),
        "reused": True,
    }
    if out["panel_rows"] != sizes.tokens * sizes.minutes:
        raise SystemExit(f"--reuse: {out['panel_rows']} panel rows, not the sizes asked")
    if sizes.cov_tokens:
        day = DAY_START - timedelta(days=1)
        out["cov_rows"] = db.scalar(count, (day, day + timedelta(minutes=sizes.cov_minutes)))
        simulated = MarketSimulator(sizes.cov_tokens, seed=12).tokens.tolist()
        out["cov_tokens"] = sorted(simulated, key=str.encode)
    return out


def load(db: BenchDB, sizes: Sizes) -> dict[str, Any]:
    log(f"panel set: {sizes.tokens:,} tokens x {sizes.minutes:,} minutes")
    panel = MarketSimulator(sizes.tokens, seed=11)
    out: dict[str, Any] = {}
    started = time.perf_counter()
    out["panel_rows"] = write_prices(
        db.conn, panel, DAY_START, sizes.minutes, outages=False, trades=sizes.trades_per_minute
    )
    out["panel_tokens"] = sorted(panel.tokens.tolist(), key=str.encode)
    if sizes.cov_tokens:
        log(f"coverage set: {sizes.cov_tokens:,} tokens x {sizes.cov_minutes:,} minutes")
        cov = MarketSimulator(sizes.cov_tokens, seed=12)
        out["cov_rows"] = write_prices(
            db.conn, cov, DAY_START - timedelta(days=1), sizes.cov_minutes, outages=True, trades=0
        )
        out["cov_tokens"] = sorted(cov.tokens.tolist(), key=str.encode)
    out["write_seconds"] = time.perf_counter() - started
    db.conn.execute("VACUUM ANALYZE price_snapshots")
    db.conn.execute("VACUUM ANALYZE trades")
    aggregates = db.scalar(
        "SELECT count(*) FROM timescaledb_information.continuous_aggregates "
        "WHERE view_name IN ('price_candles_1h', 'trade_volume_1h')"
    )
    for view in ("price_candles_1h", "trade_volume_1h") if aggregates else ():
        db.conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
    out["aggregates_refreshed"] = bool(aggregates)
    db.checkpoint()
    return out


# -- connections for the peers -----------------------------------------------------------------


def password_of(dsn: str) -> str | None:
    """The DSN's password, or the matching line of its passfile (connectorx reads no
    passfile). Never printed."""
    info = conninfo_to_dict(dsn)
    if info.get("password"):
        return str(info["password"])
    passfile = info.get("passfile") or os.environ.get("PGPASSFILE")
    if not passfile or not Path(str(passfile)).is_file():
        return None
    want = [str(info.get(k) or "") for k in ("host", "port", "dbname", "user")]
    for line in Path(str(passfile)).read_text().splitlines():
        fields = line.split(":")
        if len(fields) == 5 and all(f in ("*", w) for f, w in zip(fields[:4], want, strict=True)):
            return fields[4]
    return None


def peer_url(dsn: str, *, inline_password: bool, options: str = JIT_OFF_OPTION) -> str | None:
    """A postgresql:// URL of ``dsn`` with ``jit=off`` (ADBC: libpq, passfile works;
    connectorx: the password inline)."""
    info = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    user = quote(info.get("user", ""), safe="")
    if inline_password:
        password = password_of(dsn)
        if password is None:
            return None
        user += ":" + quote(password, safe="")
    host, port, db = info.get("host", "localhost"), info.get("port", "5432"), info["dbname"]
    query = [f"options={quote(options, safe='')}"]
    if not inline_password and "passfile" in info:
        query.append(f"passfile={quote(info['passfile'], safe='')}")
    return f"postgresql://{user}@{host}:{port}/{quote(db, safe='')}?{'&'.join(query)}"


def literal(conn: Conn, sql: str, values: dict[str, Any]) -> str:
    """``sql`` with ``values`` bound as literals (what a peer without psycopg runs)."""
    with psycopg.ClientCursor(conn) as cur:
        return cur.mogrify(sql, values)


def optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Method:
    """A way to do a workload: ``run`` returns (rows, a result to verify or None)."""

    name: str
    run: Callable[[], tuple[int, Any]] | None
    kind: str = "arrow"  # arrow, polars, pandas, none
    note: str = ""
    baseline: bool = False
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rows: int = 0
    verified: str = ""


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(methods: list[Method], rounds: int, check: Callable[[Method, Any], str]) -> None:
    """Each method once per round, in order; ``check`` verifies each first result."""
    for r in range(rounds):
        for m in methods:
            if m.run is None:
                continue
            c0, t0 = cpu_seconds(), time.perf_counter()
            rows, result = m.run()
            m.times.append(time.perf_counter() - t0)
            m.cpu.append(cpu_seconds() - c0)
            if r == 0:
                m.rows = rows
                m.verified = check(m, result)
            elif rows != m.rows:
                raise AssertionError(f"{m.name}: {rows} rows, {m.rows} before")
            del result
        best = ", ".join(f"{m.name}: {m.times[-1]:.3f}" for m in methods if m.times)
        log(f"  round {r + 1}: {best}")


def summary(methods: list[Method], unit_rows: int | None = None) -> list[dict[str, Any]]:
    base = next((m for m in methods if m.baseline and m.times), None)
    out = []
    for m in methods:
        if not m.times:
            out.append({"method": m.name, "skipped": m.note or "not available"})
            continue
        best = min(m.times)
        entry: dict[str, Any] = {
            "method": m.name,
            "seconds": best,
            "all_seconds": m.times,
            "client_cpu_seconds": m.cpu[m.times.index(best)],
            "rows": m.rows,
            "rows_per_s": (unit_rows or m.rows) / best if best else None,
            "verified": m.verified,
            "note": m.note,
        }
        if base is not None:
            entry["x_of_limit"] = min(base.times) / best
        out.append(entry)
    return out


def arrow_check(reference: Any) -> Callable[[Method, Any], str]:
    """Verify a result against pmstore's Table: the same rows, values and order."""
    pa = importlib.import_module("pyarrow")

    def check(method: Method, result: Any) -> str:
        if result is None or method.kind == "none":
            return f"{method.rows:,} rows"
        if method.kind == "polars":
            result = result.to_arrow()
        elif method.kind == "pandas":
            result = pa.Table.from_pandas(result, preserve_index=False)
        table = result.select(reference.schema.names)
        cast = table.cast(reference.schema) if table.schema != reference.schema else table
        if method.note.startswith("unordered"):
            order = [("token_id", "ascending"), ("ts", "ascending")]
            if not cast.sort_by(order).equals(reference.sort_by(order)):
                raise AssertionError(f"{method.name}: not the same rows as pmstore's Table")
            return "same rows and values; NOT in order"
        if not cast.equals(reference):
            raise AssertionError(f"{method.name}: not the same rows as pmstore's Table")
        return "same rows, values, order"

    return check


# -- 1. panel ----------------------------------------------------------------------------------


def server_copy_to_file(conn: Conn, sql: str, values: dict[str, Any], folder: Path) -> int:
    path = folder / "out.bin"
    with psycopg.ClientCursor(conn) as cur:  # COPY takes no server-side parameters
        cur.execute(f"COPY ({sql}) TO %(path)s (FORMAT binary)", {**values, "path": str(path)})
        rows = cur.rowcount
    path.unlink(missing_ok=True)
    return rows


SORTED_SQL = """
    SELECT ts, token_id, price, volume_24h
    FROM price_snapshots
    WHERE token_id = ANY(%(token_ids)s::text[]) AND ts >= %(start)s AND ts < %(end)s
    ORDER BY token_id, ts
"""
"""The same panel as a plain sorted SELECT (the server sorts every row first): a reference."""


def settings_options(settings: Mapping[str, str] | None) -> str:
    """The ``-c name=value`` options of pmstore's settings for a read (peers' URLs)."""
    found = (settings or {}).items()
    return " ".join(f"-c {name}={value}" for name, value in found) or JIT_OFF_OPTION


def limit_of(
    base: Conn,
    sql: str,
    values: dict[str, Any],
    folder: Path,
    settings: Mapping[str, str] | None,
) -> int:
    """The server's COPY TO file of ``sql`` under pmstore's settings for it."""
    with base.transaction():
        if settings:
            saved = base.execute(settings_sql(settings)).fetchone()
        rows = server_copy_to_file(base, sql, values, folder)
        if settings:
            base.execute(*restore_sql(settings, saved))
        return rows


def panel_methods(
    conn: Conn,
    base: Conn,
    dsn: str,
    folder: Path,
    ids: list[str],
    start: datetime,
    end: datetime,
    stack: contextlib.ExitStack,
) -> tuple[list[Method], Any]:
    pa = importlib.import_module("pyarrow")
    select = tokens(ids)
    query = price_history_query(select, None)
    values = params(select, start, end)
    sql, settings = query.sql, query.settings
    schema = query.schema()
    reader = Reader(conn)
    reference = reader.price_history(ids, start, end, as_="arrow")
    second = stack.enter_context(psycopg.connect(dsn, autocommit=True))
    parallel = Reader(conn, parallel=[second])

    methods = [
        Method(
            "server COPY (SELECT) TO file, binary: the limit",
            lambda: (limit_of(base, sql, values, folder, settings), None),
            "none",
            baseline=True,
        ),
        Method(
            "reference: server COPY TO file of pmstore's bulk statement (ids as numbers)",
            lambda: (limit_of(base, query.bulk_sql(), values, folder, settings), None),
            "none",
        ),
        Method(
            "pmstore bulk -> pyarrow.Table: Reader.price_history(ids, as_='arrow')",
            lambda: _rows(reader.price_history(ids, start, end, as_="arrow")),
        ),
        Method(
            "pmstore bulk -> polars.DataFrame: Reader.price_history(ids, as_='polars')",
            lambda: _rows(reader.price_history(ids, start, end, as_="polars")),
            "polars",
        ),
        Method(
            "pmstore bulk -> pandas.DataFrame: Reader.price_history(ids, as_='pandas')",
            lambda: _rows(reader.price_history(ids, start, end, as_="pandas")),
            "pandas",
        ),
        Method(
            "pmstore bulk, 2 connections: Reader(conn, parallel=[second]) -> Table",
            lambda: _rows(parallel.price_history(ids, start, end, as_="arrow")),
            note="one snapshot (exported from conn)",
        ),
        Method(
            "pmstore bulk, ALL_TOKENS -> pyarrow.Table",
            lambda: _rows(reader.price_history(ALL_TOKENS, start, end, as_="arrow")),
            note="its own SQL (tokens by a loose index scan)",
        ),
        Method(
            "pmstore previous engine (psycopg Copy, LIMIT 0) -> Table",
            lambda: _rows(_previous(conn, sql, values, settings)),
        ),
        Method(
            f"pmstore previous API: {len(ids):,} single-token reads (psycopg Copy, LIMIT 0)",
            lambda: _rows(_previous_loop(conn, ids, start, end)),
        ),
        Method(
            "reference: server COPY TO file of ORDER BY token_id, ts (sorts)",
            lambda: (limit_of(base, SORTED_SQL, values, folder, JIT_OFF), None),
            "none",
        ),
        Method(
            "reference: pmstore bulk on ORDER BY token_id, ts",
            lambda: _rows(_sorted(conn, values, schema)),
        ),
    ]
    adbc = optional("adbc_driver_postgresql.dbapi")
    url = peer_url(dsn, inline_password=False, options=settings_options(settings))
    plain = peer_url(dsn, inline_password=False)
    lit = literal(base, sql, values)
    if adbc is None or url is None or plain is None:
        methods.append(Method("ADBC", None, note="adbc-driver-postgresql not installed"))
    else:
        one = stack.enter_context(adbc.connect(url, autocommit=True))
        pool = [stack.enter_context(adbc.connect(url, autocommit=True)) for _ in range(4)]
        sorted_conn = stack.enter_context(adbc.connect(plain, autocommit=True))
        sorted_lit = literal(base, SORTED_SQL, values)

        def adbc_one(kind: str) -> tuple[int, Any]:
            with one.cursor() as cur:
                cur.execute(lit)
                table = cur.fetch_arrow_table()
            return _rows(_as(table, kind))

        def adbc_sorted() -> tuple[int, Any]:
            with sorted_conn.cursor() as cur:
                cur.execute(sorted_lit)
                return _rows(cur.fetch_arrow_table())

        def adbc_slices(k: int) -> tuple[int, Any]:
            parts = [
                literal(base, sql, params(tokens(s), start, end))
                for s in token_slices(list(select.ids), k)
            ]

            def read(i: int) -> Any:
                with pool[i].cursor() as cur:
                    cur.execute(parts[i])
                    return cur.fetch_arrow_table()

            with ThreadPoolExecutor(k) as ex:
                return _rows(pa.concat_tables(list(ex.map(read, range(k)))))

        methods += [
            Method("ADBC one query -> pyarrow.Table", lambda: adbc_one("arrow")),
            Method("ADBC one query -> polars.DataFrame", lambda: adbc_one("polars"), "polars"),
            Method("ADBC one query -> pandas.DataFrame", lambda: adbc_one("pandas"), "pandas"),
            Method("ADBC 2 connections, token slices -> Table", lambda: adbc_slices(2)),
            Method("ADBC 4 connections, token slices -> Table", lambda: adbc_slices(4)),
            Method("reference: ADBC one query, ORDER BY token_id, ts", adbc_sorted),
        ]
    cx = optional("connectorx")
    cx_url = peer_url(dsn, inline_password=True, options=settings_options(settings))
    if cx is None or cx_url is None:
        why = "connectorx not installed" if cx is None else "no password for connectorx"
        methods.append(Method("connectorx", None, note=why))
    else:

        def cx_read(kind: str, k: int = 1) -> tuple[int, Any]:
            queries: str | list[str] = lit
            if k > 1:
                queries = [
                    literal(base, sql, params(tokens(s), start, end))
                    for s in token_slices(list(select.ids), k)
                ]
            return _rows(cx.read_sql(cx_url, queries, return_type=kind))

        methods += [
            Method("connectorx one query -> pyarrow.Table", lambda: cx_read("arrow")),
            Method("connectorx one query -> polars.DataFrame", lambda: cx_read("polars"), "polars"),
            Method("connectorx one query -> pandas.DataFrame", lambda: cx_read("pandas"), "pandas"),
            Method(
                "connectorx 2 queries (its threads) -> Table",
                lambda: cx_read("arrow", 2),
                note="unordered: partitions come in any order (checked sorted)",
            ),
            Method(
                "connectorx 4 queries (its threads) -> Table",
                lambda: cx_read("arrow", 4),
                note="unordered: partitions come in any order (checked sorted)",
            ),
        ]
    return methods, reference


def _rows(frame: Any) -> tuple[int, Any]:
    return (int(frame.num_rows) if hasattr(frame, "num_rows") else len(frame)), frame


def _as(table: Any, kind: str) -> Any:
    if kind == "polars":
        return importlib.import_module("polars").from_arrow(table)
    if kind == "pandas":
        return table.to_pandas()
    return table


def _previous(
    conn: Conn, sql: str, values: dict[str, Any], settings: Mapping[str, str] | None
) -> Any:
    """The same query by the engine before the bulk reader: LIMIT 0, then psycopg's Copy."""
    with conn.transaction():
        if settings:
            saved = conn.execute(settings_sql(settings)).fetchone()
        table = fetch_frame(conn, sql, values, "arrow")
        if settings:
            conn.execute(*restore_sql(settings, saved))
        return table


def _sorted(conn: Conn, values: dict[str, Any], schema: Any) -> Any:
    with conn.transaction():
        saved = conn.execute(settings_sql(JIT_OFF)).fetchone()
        table = read_table(conn, SORTED_SQL, values, schema)
        conn.execute(*restore_sql(JIT_OFF, saved))
        return table


def _previous_loop(conn: Conn, ids: list[str], start: datetime, end: datetime) -> Any:
    """``Reader.price_history(token, as_='arrow')`` per token as it was before the bulk
    reader: ``fetch_frame`` (a LIMIT 0 probe, then psycopg's Copy)."""
    pa = importlib.import_module("pyarrow")
    return pa.concat_tables(
        [
            fetch_frame(
                conn, PRICE_HISTORY_RAW_SQL, {"token_id": t, "start": start, "end": end}, "arrow"
            )
            for t in ids
        ]
    )


# -- 2. research loop --------------------------------------------------------------------------


def loop_methods(
    conn: Conn,
    base: Conn,
    dsn: str,
    folder: Path,
    ids: list[str],
    start: datetime,
    end: datetime,
    stack: contextlib.ExitStack,
) -> tuple[list[Method], Any]:
    pa = importlib.import_module("pyarrow")
    one = [(t, price_history_query(tokens(t), None), params(tokens(t), start, end)) for t in ids]
    reader = Reader(conn)
    reference = pa.concat_tables([fetch_panel(conn, q, v, "arrow") for _, q, v in one])

    def limit() -> tuple[int, Any]:
        return sum(server_copy_to_file(base, q.sql, v, folder) for _, q, v in one), None

    def bulk_limit() -> tuple[int, Any]:
        return sum(server_copy_to_file(base, q.bulk_sql(), v, folder) for _, q, v in one), None

    methods = [
        Method("server COPY (SELECT) TO file, each token: the limit", limit, "none", baseline=True),
        Method(
            "reference: server COPY TO file of pmstore's bulk statements (no id column)",
            bulk_limit,
            "none",
        ),
        Method(
            "pmstore bulk: Reader.price_history(token, as_='arrow') (1 round trip)",
            lambda: _rows(
                pa.concat_tables([reader.price_history(t, start, end, as_="arrow") for t in ids])
            ),
        ),
        Method(
            "pmstore previous: price_history(as_='arrow') before (LIMIT 0 + psycopg Copy)",
            lambda: _rows(_previous_loop(conn, ids, start, end)),
        ),
    ]
    adbc = optional("adbc_driver_postgresql.dbapi")
    url = peer_url(dsn, inline_password=False)
    if adbc is not None and url is not None:
        adbc_conn = stack.enter_context(adbc.connect(url, autocommit=True))
        literals = [literal(base, q.sql, v) for _, q, v in one]
        dollar = one[0][1].sql.replace("%(token_id)s", "$1").replace("%(start)s", "$2")
        dollar = dollar.replace("%(end)s", "$3")

        def adbc_literal() -> tuple[int, Any]:
            tables = []
            with adbc_conn.cursor() as cur:
                for sql in literals:
                    cur.execute(sql)
                    tables.append(cur.fetch_arrow_table())
            return _rows(pa.concat_tables(tables))

        def adbc_bound() -> tuple[int, Any]:
            tables = []
            with adbc_conn.cursor() as cur:
                for t, _, v in one:
                    cur.execute(dollar, parameters=(t, v["start"], v["end"]))
                    tables.append(cur.fetch_arrow_table())
            return _rows(pa.concat_tables(tables))

        methods += [
            Method("ADBC loop, one connection, literal SQL", adbc_literal),
            Method("ADBC loop, one connection, bound parameters", adbc_bound),
        ]
    else:
        methods.append(Method("ADBC loop", None, note="adbc-driver-postgresql not installed"))
    return methods, reference


# -- 3. export ---------------------------------------------------------------------------------


def export_methods(
    conn: Conn,
    base: Conn,
    dsn: str,
    folder: Path,
    start: datetime,
    end: datetime,
    stack: contextlib.ExitStack,
) -> list[Method]:
    pq = importlib.import_module("pyarrow.parquet")
    sql = EXPORT_SQL["price_snapshots"]
    days = [{"start": lo, "end": hi} for _, lo, hi in day_windows(start, end)]
    out = folder / "export"

    def limit() -> tuple[int, Any]:
        return sum(server_copy_to_file(base, sql, v, folder) for v in days), None

    def pmstore_export() -> tuple[int, Any]:
        return export_table(conn, "price_snapshots", start, end, out / "pmstore").rows, None

    def previous_export() -> tuple[int, Any]:  # pmstore export's loop before the bulk reader
        rows = 0
        with conn.cursor() as cur:
            schema = query_schema(cur, sql, days[0])
            for n, v in enumerate(days):
                path = out / "previous" / f"date={n}" / "part.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                with (
                    pq.ParquetWriter(path, schema, compression="zstd") as writer,
                    cur.copy(copy_statement(sql), v) as copy,
                ):
                    for batch in iter_record_batches(copy, schema, batch_rows=250_000):
                        writer.write_batch(batch, row_group_size=250_000)
                        rows += batch.num_rows
        return rows, None

    methods = [
        Method(
            "server COPY (export SELECT) TO file, each day: the limit", limit, "none", baseline=True
        ),
        Method("pmstore export_table (bulk reader) -> Parquet", pmstore_export, "none"),
        Method("pmstore export, previous engine (psycopg Copy)", previous_export, "none"),
    ]
    adbc = optional("adbc_driver_postgresql.dbapi")
    url = peer_url(dsn, inline_password=False)
    if adbc is not None and url is not None:
        adbc_conn = stack.enter_context(adbc.connect(url, autocommit=True))
        literals = [literal(base, sql, v) for v in days]

        def adbc_export() -> tuple[int, Any]:
            rows = 0
            for n, text in enumerate(literals):
                path = out / "adbc" / f"date={n}" / "part.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                with adbc_conn.cursor() as cur:
                    cur.execute(text)
                    reader = cur.fetch_record_batch()
                    with pq.ParquetWriter(path, reader.schema, compression="zstd") as writer:
                        for batch in reader:
                            writer.write_batch(batch, row_group_size=250_000)
                            rows += batch.num_rows
            return rows, None

        methods.append(Method("ADBC + pyarrow.parquet (zstd, streamed)", adbc_export, "none"))
    else:
        methods.append(Method("ADBC + pyarrow.parquet", None, note="adbc not installed"))
    return methods


# -- 4. coverage -------------------------------------------------------------------------------


COUNT_SQL = """
    SELECT count(*) FROM price_snapshots
    WHERE token_id = ANY(%(tokens)s::text[]) AND ts >= %(start)s AND ts < %(end)s
"""


def coverage_methods(
    conn: Conn, base: Conn, ids: list[str], start: datetime, end: datetime
) -> list[Method]:
    values = {"tokens": ids, "start": start, "end": end}
    reference = coverage(conn, ids, start, end, bulk=False)

    def count() -> tuple[int, Any]:
        row = base.execute(COUNT_SQL, values, prepare=False).fetchone()
        return int(row[0]) if row else 0, None

    def new() -> tuple[int, Any]:
        report = coverage(conn, ids, start, end, bulk=True)
        if report != reference:
            raise AssertionError("the bulk coverage differs from the server-side one")
        return len(report.gaps), None

    return [
        Method("server count(*) of the same rows: the limit", count, "none", baseline=True),
        Method(
            "pmstore coverage, bulk path (timestamps in bulk, gaps in one pass)",
            new,
            "none",
            note="same report as the server-side path",
        ),
        Method(
            "pmstore coverage, server-side path (window on the server; before: always)",
            lambda: (len(coverage(conn, ids, start, end, bulk=False).gaps), None),
            "none",
        ),
    ]


# -- report ------------------------------------------------------------------------------------


def render_table(title: str, rows: list[dict[str, Any]], unit: str) -> str:
    lines = [
        f"\n### {title}\n",
        f"| method | best s | {unit} | x of the limit | client CPU s | check |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['method']} | skipped: {r['skipped']} | | | | |")
            continue
        rate = f"{r['rows_per_s']:,.0f}" if r.get("rows_per_s") else ""
        ratio = f"{r['x_of_limit']:.2f}x" if "x_of_limit" in r else ""
        lines.append(
            f"| {r['method']} | {r['seconds']:.3f} | {rate} | {ratio} "
            f"| {r['client_cpu_seconds']:.2f} | {r['verified']} |"
        )
    return "\n".join(lines)


def targets(results: dict[str, Any]) -> list[tuple[str, bool, str]]:
    def by(section: str, prefix: str) -> dict[str, Any] | None:
        found: list[dict[str, Any]] = results.get(section, [])
        for r in found:
            if r["method"].startswith(prefix) and "seconds" in r:
                return r
        return None

    out: list[tuple[str, bool, str]] = []
    arrow = by("panel", "pmstore bulk -> pyarrow")
    if arrow:
        out.append(
            (
                "panel into Arrow >= 0.9x of the limit",
                arrow["x_of_limit"] >= 0.9,
                f"{arrow['x_of_limit']:.2f}x",
            )
        )
        peers = [
            r
            for r in results["panel"]
            if r["method"].startswith(("ADBC", "connectorx"))
            and "seconds" in r
            and "Table" in r["method"]
        ]
        single = [r for r in peers if not any(w in r["method"] for w in ("connections", "queries"))]
        if single:  # like for like: one connection each
            fastest = min(single, key=lambda r: r["seconds"])
            out.append(
                (
                    "panel into Arrow on one connection ahead of ADBC's and connectorx's one query",
                    arrow["seconds"] < fastest["seconds"],
                    f"{arrow['seconds']:.3f} s vs {fastest['method']} {fastest['seconds']:.3f} s",
                )
            )
        if peers:  # every form: several connections / partitions too
            fastest = min(peers, key=lambda r: r["seconds"])
            ours = min(
                (r for r in (arrow, by("panel", "pmstore bulk, 2 connections")) if r),
                key=lambda r: r["seconds"],
            )
            out.append(
                (
                    "panel into Arrow ahead of ADBC and connectorx, any form",
                    ours["seconds"] < fastest["seconds"],
                    f"{ours['method']} {ours['seconds']:.3f} s vs "
                    f"{fastest['method']} {fastest['seconds']:.3f} s",
                )
            )
        for kind in ("polars", "pandas"):
            frame = by("panel", f"pmstore bulk -> {kind}")
            if frame:
                ratio = frame["seconds"] / arrow["seconds"]
                out.append(
                    (f"panel into {kind} within 10% of Arrow", ratio <= 1.10, f"{ratio:.3f}x")
                )
    loop = by("loop", "pmstore bulk")
    adbc_loops = [
        r for r in results.get("loop", []) if r["method"].startswith("ADBC") and "seconds" in r
    ]
    if loop and adbc_loops:
        fastest = min(adbc_loops, key=lambda r: r["seconds"])
        out.append(
            (
                "research loop ahead of ADBC's loop",
                loop["seconds"] < fastest["seconds"],
                f"{loop['seconds']:.3f} s vs {fastest['seconds']:.3f} s",
            )
        )
    export = by("export", "pmstore export_table")
    adbc_export = by("export", "ADBC")
    if export and adbc_export:
        out.append(
            (
                "export ahead of ADBC + pyarrow.parquet",
                export["seconds"] < adbc_export["seconds"],
                f"{export['seconds']:.3f} s vs {adbc_export['seconds']:.3f} s",
            )
        )
    for key in ("coverage_1k", "coverage_8k"):
        new = by(key, "pmstore coverage, bulk")
        if new:
            times = 1 / new["x_of_limit"]
            out.append((f"{key}: coverage <= 2x count(*)", times <= 2.0, f"{times:.2f}x count(*)"))
    return out


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "pmstore": __version__,
        "libpq": psycopg.pq.version(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                out["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    for lib in (
        "numpy",
        "pyarrow",
        "polars",
        "pandas",
        "psycopg",
        "adbc_driver_postgresql",
        "adbc_driver_manager",
        "connectorx",
    ):
        module = optional(lib)
        out[lib] = getattr(module, "__version__", None) if module else None
    return out


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best counts")
    parser.add_argument("--tokens", type=int, default=1_000)
    parser.add_argument("--minutes", type=int, default=2_000)
    parser.add_argument("--panel-minutes", type=int, default=1_000)
    parser.add_argument("--loop-tokens", type=int, default=200)
    parser.add_argument("--no-8k", action="store_true", help="skip the 8,000-token coverage set")
    parser.add_argument(
        "--only", default="panel,loop,export,coverage", help="workloads to run, comma-separated"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (checks it runs)")
    parser.add_argument(
        "--keep", action="store_true", help="leave the data (PMSTORE_DSN) for a --reuse run"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="measure the data a --keep run left today"
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be positive")
    return args


@contextlib.contextmanager
def connections(dsn: str) -> Iterator[tuple[Conn, Conn]]:
    """pmstore's connection (as a user opens it) and the limit's (jit off)."""
    with (
        psycopg.connect(dsn, autocommit=True) as conn,
        psycopg.connect(dsn, autocommit=True, options=JIT_OFF_OPTION) as base,
    ):
        yield conn, base


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = Sizes.of(args)
    only = set(args.only.split(","))
    stamp = datetime.now(UTC)
    results: dict[str, Any] = {
        "schema": "pmstore-bench-reads/1",
        "started_at": stamp.isoformat(timespec="seconds"),
        "sizes": sizes.__dict__,
        "rounds": args.rounds,
        "machine": versions(),
        "loadavg_start": list(os.getloadavg()),
    }
    folder = Path(tempfile.mkdtemp(prefix="pmstore-bench-reads-"))
    folder.chmod(0o777)  # the server's OS user writes the COPY TO files here
    try:
        with open_server(fsync=False) as server:
            migrate(server.dsn)
            db = BenchDB(server.dsn)
            busy = [] if args.reuse else db.non_empty_tables()
            if busy:
                log(f"refusing to run: {', '.join(busy)} hold rows; use a scratch database")
                db.close()
                return 2
            results["server"] = {
                "source": server.source,
                "description": str(db.info()),
                "note": server.note,
                "settings": db.settings(),
            }
            try:
                data = reuse(db, sizes) if args.reuse else load(db, sizes)
                results["data"] = {k: v for k, v in data.items() if not k.endswith("tokens")}
                run_workloads(server.dsn, sizes, data, folder, args.rounds, only, results)
            except BaseException:
                traceback.print_exc()
                raise
            finally:
                if not args.keep:
                    db.conn.execute("SET lock_timeout = '30s'")
                    db.conn.execute("TRUNCATE price_snapshots, trades, pmstore_ingest_log")
                db.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    results["loadavg_end"] = list(os.getloadavg())
    results["targets"] = [
        {"target": t, "met": met, "figure": fig} for t, met, fig in targets(results)
    ]
    print(render(results))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"reads-{stamp:%Y%m%d-%H%M%S}{'-smoke' if args.smoke else ''}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nJSON: {path}")
    return 0


def run_workloads(
    dsn: str,
    sizes: Sizes,
    data: dict[str, Any],
    folder: Path,
    rounds: int,
    only: set[str],
    results: dict[str, Any],
) -> None:
    ids = data["panel_tokens"]
    start = minute(sizes.panel_from)
    end = start + timedelta(minutes=sizes.panel_minutes)
    with connections(dsn) as (conn, base), contextlib.ExitStack() as stack:
        if "panel" in only:
            log(f"panel: {len(ids):,} tokens x {sizes.panel_minutes:,} minutes")
            methods, reference = panel_methods(conn, base, dsn, folder, ids, start, end, stack)
            measure(methods, rounds, arrow_check(reference))
            results["panel"] = summary(methods)
        if "loop" in only:
            chosen = ids[:: max(1, len(ids) // sizes.loop_tokens)][: sizes.loop_tokens]
            log(f"research loop: {len(chosen)} tokens, one read each")
            methods, reference = loop_methods(conn, base, dsn, folder, chosen, start, end, stack)
            measure(methods, rounds, arrow_check(reference))
            results["loop"] = summary(methods)
        if "export" in only:
            log("export: the panel set to Parquet")
            days = -(-sizes.minutes // 1_440)
            methods = export_methods(
                conn, base, dsn, folder, DAY_START, DAY_START + timedelta(days=days), stack
            )
            measure(methods, rounds, lambda m, r: f"{m.rows:,} rows")
            results["export"] = summary(methods, data["panel_rows"])
        if "coverage" in only:
            log(f"coverage: {len(ids):,} tokens over the panel window")
            methods = coverage_methods(conn, base, ids, start, end)
            measure(methods, rounds, lambda m, r: f"{m.rows:,}")
            results["coverage_1k"] = summary(methods, sizes.tokens * sizes.panel_minutes)
            if sizes.cov_tokens:
                day = DAY_START - timedelta(days=1)
                cov_ids = data["cov_tokens"]
                log(f"coverage: {len(cov_ids):,} tokens over a day")
                methods = coverage_methods(conn, base, cov_ids, day, day + timedelta(days=1))
                measure(methods, rounds, lambda m, r: f"{m.rows:,}")
                results["coverage_8k"] = summary(methods, data["cov_rows"])


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"pmstore {m['pmstore']} reads benchmark, {results['started_at']}, "
        f"best of {results['rounds']} interleaved rounds",
        f"machine: {m.get('cpu_model')}, {m['cpus']} CPUs, {m['memory_gib']} GiB, "
        f"{m['platform']}, Python {m['python']}",
        "versions: "
        + ", ".join(
            f"{k} {m[k]}"
            for k in (
                "numpy",
                "pyarrow",
                "polars",
                "pandas",
                "psycopg",
                "libpq",
                "adbc_driver_postgresql",
                "connectorx",
            )
        ),
        f"server: {results['server']['description']} ({results['server']['source']}); "
        f"{results['server']['note']}",
        f"load average: {results['loadavg_start']} at start, {results['loadavg_end']} at end",
    ]
    titles = {
        "panel": ("Panel: tokens x minutes, sorted by (token_id, ts)", "rows/s"),
        "loop": ("Research loop: one price_history into Arrow per token", "rows/s"),
        "export": ("Export: the panel set to Parquet (zstd), a file per day", "rows/s"),
        "coverage_1k": ("Coverage: the panel tokens over the panel window", "steps/s"),
        "coverage_8k": ("Coverage: 8,000 tokens over a day", "snapshots/s"),
    }
    for key, (title, unit) in titles.items():
        if key in results:
            lines.append(render_table(title, results[key], unit))
    lines.append("\n### Targets (issue 25, item 3)\n")
    for t in results["targets"]:
        lines.append(f"- {'MET' if t['met'] else 'NOT MET'}: {t['target']} ({t['figure']})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
