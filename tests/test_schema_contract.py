"""Plan 01-03's schema against the migrated database, on both TimescaleDB editions.

The plan (``tests/fixtures/plan/plan-01-03.md``, a copy of the project's
shared plan, see PROVENANCE.txt) is parsed, not retyped: each table's
columns with their type, nullability and default; primary keys; the named
indexes, and the default ``(ts DESC)`` index its ``create_hypertable`` calls
imply; hypertables and every statement of their chunk intervals (the plan
contradicts itself on trades); the continuous aggregates, whose CREATE
statements are run on the same server as scratch views so that the server
deparses both sides alike; refresh, compression and retention policies.

What it finds is compared with the catalogs (``information_schema``,
``pg_catalog``, ``timescaledb_information``). Every difference must be named
in ``DIFFERENCES`` with the plan's value, the database's and the reason, and
every named difference must still exist: nothing differs silently and the
list never goes stale. The README's "The schema" section gives the same
reasons.

On the Apache-2 edition the Community-only features (continuous
aggregates, compression, policies) are absent: there the test checks that
they are, and that ``pmstore_features`` records each one as unavailable,
naming the edition.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from conftest import FIXTURES, TestServer

PLAN = FIXTURES / "plan" / "plan-01-03.md"
PLAN_SHA256 = "db6a8d878ab624e5dba9b869660c66bae98b3003e5cc08a0a21e3ddb3c2e51cf"
"""The copy's digest, also in PROVENANCE.txt: the contract is the text that was copied."""

PLAN_TYPES = {
    "TEXT": "text",
    "TEXT[]": "text[]",
    "DOUBLE PRECISION": "double precision",
    "TIMESTAMPTZ": "timestamp with time zone",
    "BOOLEAN": "boolean",
    "BOOL": "boolean",
    "JSONB": "jsonb",
}
"""The plan's type names as PostgreSQL's ``format_type`` spells them."""

PLAN_TABLE_ALIASES = {"orderbooks": "orderbook_snapshots", "trades": "trades"}
"""The plan's short names for tables in its prose (the pitfalls' chunk intervals)."""

COMMUNITY_FACETS = frozenset(
    {"aggregate", "refresh_policy", "compression", "compression_policy", "retention", "job"}
)
"""Facets only the Community edition has: on the Apache-2 edition they are absent."""

Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Difference:
    """A deliberate difference: the plan's value, the database's, and why."""

    plan: object
    db: object
    reason: str


_COLLATE_C = (
    'COLLATE "C": token ids are decimal digit strings; byte-wise comparison makes the '
    "(token_id, ts) index much cheaper to maintain than a locale collation (migration 0003; "
    "benchmarks/README.md: +7% ingest over C.UTF-8, +33% over ICU)"
)
_NO_DEFAULT_INDEX = (
    "create_default_indexes => false: time-range scans are served by chunk exclusion and "
    "every index costs ingest time (+33% ingest without it, benchmarks/README.md)"
)
_EMPTY_SIDE = (
    "an empty side is [] and never NULL (NOT NULL DEFAULT '[]' since migration 0004): a "
    "stored book always has both sides, so jsonb_array_length(bids) is never NULL and an "
    "empty side is not confused with an unknown one"
)
_REFRESH = (
    "pmstore's refresh queue (migration 0011): hours written late (backfills, catch-up) "
    "are refreshed by the job pmstore_refresh_pending every 30 s; the plan's hourly "
    "policies only cover [now - 3 h, now - 1 h]"
)
_PMSTORE_TABLE = "pmstore's own bookkeeping (not in the plan's data model)"
_RECORDER_TABLE = (
    "the live recorder's (pmstore record, migration 0017): feed_gaps records every interval a "
    "token's feed lost continuity (a lost minute of data is recorded, never silent), "
    "pmstore_recorder_health its last heartbeat; the plan has no live recorder"
)
_YOYO_TABLE = "yoyo-migrations' own table (the plan's custom migration runner is replaced by yoyo)"
_PMSTORE_ROUTINE = "pmstore's own routine (edition handling, refresh queue, ingest cursors)"

DIFFERENCES: dict[Key, Difference] = {
    # -- columns ---------------------------------------------------------------------------
    ("column", "price_snapshots", "token_id", "collation"): Difference(None, "C", _COLLATE_C),
    ("column", "orderbook_snapshots", "token_id", "collation"): Difference(None, "C", _COLLATE_C),
    ("column", "trades", "token_id", "collation"): Difference(None, "C", _COLLATE_C),
    ("column", "trades", "trade_id", "collation"): Difference(
        None,
        "C",
        "trade ids are compared byte-wise in the unique (trade_id, ts) index, as token ids",
    ),
    ("column", "trades", "trade_id", "nullable"): Difference(
        True,
        False,
        "every trade has an id (the Writer derives 'sha1:' + SHA-1 of the fill's content when "
        "the source gives none): the de-duplication key (trade_id, ts) needs one",
    ),
    ("column", "orderbook_snapshots", "bids", "nullable"): Difference(True, False, _EMPTY_SIDE),
    ("column", "orderbook_snapshots", "asks", "nullable"): Difference(True, False, _EMPTY_SIDE),
    ("column", "orderbook_snapshots", "bids", "default"): Difference(
        None, "'[]'::jsonb", _EMPTY_SIDE
    ),
    ("column", "orderbook_snapshots", "asks", "default"): Difference(
        None, "'[]'::jsonb", _EMPTY_SIDE
    ),
    ("column", "resolutions", "status", "present"): Difference(
        False,
        True,
        "a resolution changes over time (proposed -> disputed -> resolved): its status is "
        "stored, and a stale message never reverts it (migration 0006)",
    ),
    ("column", "resolutions", "updated_at", "present"): Difference(
        False, True, "when the resolution's row last changed (upserted by condition_id)"
    ),
    # -- constraints ------------------------------------------------------------------------
    ("check", "trades", "trades_side_check"): Difference(
        None,
        "CHECK (side = ANY (ARRAY['BUY'::text, 'SELL'::text]))",
        "a fill's side is BUY or SELL: anything else is refused by the database too",
    ),
    ("check", "orderbook_snapshots", "orderbook_snapshots_levels_arrays"): Difference(
        None,
        "CHECK (jsonb_typeof(bids) = 'array'::text AND jsonb_typeof(asks) = 'array'::text)",
        "each side is a JSON array of levels (migration 0014); a per-level check would cost "
        "the server more than parsing the JSONB itself",
    ),
    # -- indexes ----------------------------------------------------------------------------
    ("index", "idx_trades_trade_id", "keys"): Difference(
        ("trade_id",),
        ("trade_id", "ts"),
        "TimescaleDB requires a unique index on a hypertable to include its partitioning "
        "column (ts): trades are unique by (trade_id, ts)",
    ),
    ("index", "idx_trades_trade_id", "predicate"): Difference(
        "trade_id IS NOT NULL",
        None,
        "trade_id is NOT NULL, so the plan's predicate would cover every row; without it "
        "INSERT ... ON CONFLICT (trade_id, ts) infers the index with no WHERE clause",
    ),
    ("index", "price_snapshots_ts_idx", "present"): Difference(True, False, _NO_DEFAULT_INDEX),
    ("index", "orderbook_snapshots_ts_idx", "present"): Difference(True, False, _NO_DEFAULT_INDEX),
    ("index", "trades_ts_idx", "present"): Difference(True, False, _NO_DEFAULT_INDEX),
    ("index", "GIN index on orderbook bids/asks if queried", "present"): Difference(
        "if queried",
        False,
        "not queried: no pmstore query (and none of the README's level queries) uses JSONB "
        "containment, existence or jsonpath match, the operators a GIN index serves; one on "
        "both sides cut the server's own COPY of 50,000 books to 0.35x (jsonb_path_ops) and "
        "0.28x (jsonb_ops) and grew the indexes from 7.5 to 33 MB (issue 23)",
    ),
    # -- hypertables ------------------------------------------------------------------------
    ("chunk_interval", "trades", "pitfalls"): Difference(
        "7 days",
        "1 day",
        "the plan contradicts itself: Task 1 (and its context's table list) creates trades "
        "with 1-day chunks, its pitfalls say 7 days; pmstore follows Task 1",
    ),
    # -- Community edition: aggregates, policies, jobs --------------------------------------
    ("aggregate", "price_candles_1h", "materialized_only"): Difference(
        True,
        False,
        "real-time aggregation: the hours the hourly policy has not refreshed yet are "
        "computed from the raw rows, so the last hour's candles are there",
    ),
    ("aggregate", "trade_volume_1h", "materialized_only"): Difference(
        True,
        False,
        "real-time aggregation: the hours the hourly policy has not refreshed yet are "
        "computed from the raw rows, so the last hour's volume is there",
    ),
    ("compression", "trades", "orderby"): Difference(
        "ts DESC",
        "ts DESC,trade_id",
        "trade_id, the other column of the unique key (trade_id, ts), is in the orderby too "
        "(migration 0008): each compressed batch then records its min/max trade_id, which can "
        "narrow what a late trade's uniqueness check decompresses",
    ),
    ("job", "pmstore_refresh_pending"): Difference(False, True, _REFRESH),
    # -- pmstore's and yoyo's own tables and routines ---------------------------------------
    **{
        ("table", name): Difference(False, True, _PMSTORE_TABLE)
        for name in (
            "pmstore_features",
            "pmstore_ingest_cursors",
            "pmstore_ingest_files",
            "pmstore_ingest_log",
            "pmstore_migration_checksums",
            "pmstore_refresh_queue",
            "pmstore_refresh_targets",
        )
    },
    **{
        ("table", name): Difference(False, True, _RECORDER_TABLE)
        for name in ("feed_gaps", "pmstore_recorder_health")
    },
    **{
        ("table", name): Difference(False, True, _YOYO_TABLE)
        for name in ("_yoyo_log", "_yoyo_migration", "_yoyo_version", "yoyo_lock")
    },
    **{
        ("routine", name): Difference(False, True, _PMSTORE_ROUTINE)
        for name in (
            "pmstore_cagg_watermark",
            "pmstore_ensure_compression_and_retention",
            "pmstore_ensure_continuous_aggregates",
            "pmstore_ensure_refresh_queue",
            "pmstore_ingest_advance",
            "pmstore_refresh_floor",
            "pmstore_refresh_pending",
            "pmstore_retention_horizon",
            "pmstore_suspend_orderbook_compression",
        )
    },
}
"""Every way the migrated schema differs from plan 01-03 on purpose: (facet, names...) ->
the plan's value, the database's, and why. Facets: table, column (present, type, nullable,
default, collation, order), primary_key, check, index (present, table, unique, keys,
predicate, method), hypertable, chunk_interval (per plan statement), aggregate,
refresh_policy, compression, compression_policy, retention, job, routine."""


# -- the plan, parsed ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlanColumn:
    """A column as the plan's CREATE TABLE line declares it."""

    name: str
    type: str
    nullable: bool
    default: str | None
    primary_key: bool


@dataclass(frozen=True, slots=True)
class PlanIndex:
    """An index the plan names (or implies), and where it says so."""

    name: str
    table: str
    keys: tuple[str, ...]
    unique: bool
    predicate: str | None
    source: str


@dataclass
class Plan:
    """What plan 01-03 says the schema is."""

    tables: dict[str, list[PlanColumn]] = field(default_factory=dict)
    context_columns: dict[str, list[str]] = field(default_factory=dict)
    """The context's table list: each table's column names (Task 1 gives their types)."""
    indexes: dict[str, PlanIndex] = field(default_factory=dict)
    conditional_indexes: list[str] = field(default_factory=list)
    hypertables: dict[str, str] = field(default_factory=dict)
    """Table -> its time column."""
    chunk_intervals: dict[tuple[str, str], str] = field(default_factory=dict)
    """(table, statement) -> interval text: each of the plan's statements of it."""
    aggregates: dict[str, str] = field(default_factory=dict)
    """View -> its CREATE MATERIALIZED VIEW statement, verbatim."""
    refresh_policies: dict[str, dict[str, str]] = field(default_factory=dict)
    compression: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Hypertable -> (segmentby, orderby)."""
    compress_after: dict[str, str] = field(default_factory=dict)
    retention: dict[str, str | None] = field(default_factory=dict)
    """Hypertable or aggregate -> drop_after, None where the plan says no retention."""


def _section(text: str, start: str, end: str) -> str:
    begin = text.index(start)
    return text[begin : text.index(end, begin)]


def _parse_column(text: str) -> PlanColumn:
    match = re.fullmatch(
        r"(?P<name>\w+) (?P<type>[A-Z][A-Z ]*?(?:\[\])?)"
        r"(?P<pk> PRIMARY KEY)?(?P<notnull> NOT NULL)?(?: DEFAULT (?P<default>.+))?",
        text.strip(),
    )
    assert match, f"unparsed column in the plan: {text!r}"
    pk = bool(match["pk"])
    default = match["default"].lower() if match["default"] else None
    return PlanColumn(
        match["name"], PLAN_TYPES[match["type"]], not (pk or match["notnull"]), default, pk
    )


def parse_plan(text: str) -> Plan:
    """Plan 01-03's schema statements: Task 1's tables, indexes and hypertables, the
    context's table list and pitfalls, Task 2's aggregates, compression and retention."""
    plan = Plan()
    context = _section(text, "<context>", "</context>")
    task1 = _section(text, "<name>Task 1", "</task>")
    task2 = _section(text, "<name>Task 2", "</task>")

    for match in re.finditer(r"^- CREATE TABLE (\w+) with: (.+)$", task1, re.M):
        plan.tables[match[1]] = [_parse_column(c) for c in match[2].split(", ")]
    index_line = r"^- CREATE (UNIQUE )?INDEX (\w+) ON (\w+) \(([^)]*)\)(?: WHERE (.+))?$"
    for match in re.finditer(index_line, task1, re.M):
        keys = tuple(k.strip() for k in match[4].split(","))
        plan.indexes[match[2]] = PlanIndex(
            match[2], match[3], keys, bool(match[1]), match[5], "Task 1"
        )
    hypertable_line = (
        r"^- SELECT create_hypertable\('(\w+)', by_range\('(\w+)', INTERVAL '([^']+)'\)\)$"
    )
    for match in re.finditer(hypertable_line, task1, re.M):
        table, column = match[1], match[2]
        plan.hypertables[table] = column
        plan.chunk_intervals[(table, "Task 1")] = match[3]
        # No create_default_indexes => false: TimescaleDB adds its (ts DESC) index.
        name = f"{table}_{column}_idx"
        plan.indexes[name] = PlanIndex(
            name, table, (f"{column} DESC",), False, None, "create_hypertable's default index"
        )

    listed = _section(context, "Tables:", "\n\n")
    for match in re.finditer(r"^- (\w+): (.+?)(?: → (.+))?$", listed, re.M):
        plan.context_columns[match[1]] = [c.split()[0] for c in match[2].split(", ")]
        if match[3]:
            hypertable = re.fullmatch(r"hypertable by_range\('ts', INTERVAL '([^']+)'\)", match[3])
            assert hypertable, f"unparsed hypertable in the context: {match[3]!r}"
            plan.chunk_intervals[(match[1], "context")] = hypertable[1]
    pitfall = re.search(r"^- chunk_time_interval: (.+)$", context, re.M)
    assert pitfall, "the plan's pitfall on chunk intervals is gone"
    for statement in pitfall[1].split(", "):
        said = re.fullmatch(r"(\d+ days?) for (.+?)(?: \(.*\))?", statement)
        assert said, f"unparsed chunk interval statement: {statement!r}"
        for name in re.split(r" and ", said[2]):
            table = PLAN_TABLE_ALIASES.get(name, name)
            plan.chunk_intervals[(table, "pitfalls")] = said[1]
    plan.conditional_indexes = re.findall(r"(GIN index on [^.]+ if queried)", context)

    blocks = list(re.finditer(r"```sql\n(CREATE MATERIALIZED VIEW (\w+).*?;)\n```", task2, re.S))
    for k, block in enumerate(blocks):
        plan.aggregates[block[2]] = block[1]
        after = task2[block.end() : blocks[k + 1].start() if k + 1 < len(blocks) else None]
        policy = re.search(r"Add refresh policy: (.+?)\.\n", after)
        assert policy, f"no refresh policy after {block[2]}"
        plan.refresh_policies[block[2]] = dict(
            re.findall(r"(\w+) => INTERVAL '([^']+)'", policy[1])
        )
    compression_line = (
        r"^\d\. (\w+): compress_segmentby = '([^']+)', compress_orderby = '([^']+)'\. "
        r"Compression policy after ([^.]+)\.$"
    )
    for match in re.finditer(compression_line, task2, re.M):
        plan.compression[match[1]] = (match[2], match[3])
        plan.compress_after[match[1]] = match[4]
    for match in re.finditer(r"^- (\w+): drop_after => INTERVAL '([^']+)'$", task2, re.M):
        plan.retention[match[1]] = match[2]
    for match in re.finditer(r"^- Do NOT add retention to (.+?) \(", task2, re.M):
        names = list(plan.aggregates) if match[1] == "continuous aggregates" else [match[1]]
        for name in names:
            plan.retention[name] = None
    return plan


@pytest.fixture(scope="module")
def plan() -> Plan:
    text = PLAN.read_bytes()
    assert hashlib.sha256(text).hexdigest() == PLAN_SHA256, (
        f"{PLAN} is not the copy PROVENANCE.txt names: the contract changed"
    )
    return parse_plan(text.decode("utf-8"))


def test_the_plan_is_parsed_whole(plan: Plan) -> None:
    """Every statement the contract rests on was found (a parse that missed one would
    compare less than the plan says)."""
    assert list(plan.tables) == [
        "markets",
        "price_snapshots",
        "orderbook_snapshots",
        "trades",
        "resolutions",
    ]
    assert [len(columns) for columns in plan.tables.values()] == [11, 4, 6, 6, 7]
    assert plan.context_columns == {  # the context's list names the same columns
        table: [c.name for c in columns] for table, columns in plan.tables.items()
    }
    assert sorted(i.name for i in plan.indexes.values() if i.source == "Task 1") == [
        "idx_markets_active",
        "idx_orderbook_snapshots_token_time",
        "idx_price_snapshots_token_time",
        "idx_trades_token_time",
        "idx_trades_trade_id",
    ]
    assert plan.conditional_indexes == ["GIN index on orderbook bids/asks if queried"]
    assert plan.hypertables == {
        "price_snapshots": "ts",
        "orderbook_snapshots": "ts",
        "trades": "ts",
    }
    assert len(plan.chunk_intervals) == 3 + 3 + 3  # Task 1, the context's list, the pitfalls
    assert (
        plan.chunk_intervals[("trades", "Task 1")] != plan.chunk_intervals[("trades", "pitfalls")]
    )
    assert list(plan.aggregates) == ["price_candles_1h", "trade_volume_1h"]
    assert all(len(p) == 3 for p in plan.refresh_policies.values())
    assert sorted(plan.compression) == sorted(plan.hypertables) == sorted(plan.compress_after)
    assert plan.retention == {
        "price_snapshots": "90 days",
        "trades": "90 days",
        "orderbook_snapshots": None,
        "price_candles_1h": None,
        "trade_volume_1h": None,
    }
    markets = {c.name: c for c in plan.tables["markets"]}
    assert markets["condition_id"] == PlanColumn("condition_id", "text", False, None, True)
    assert markets["active"] == PlanColumn("active", "boolean", True, "true", False)
    books = {c.name: c for c in plan.tables["orderbook_snapshots"]}
    assert books["bids"] == PlanColumn("bids", "jsonb", True, None, False)


# -- the database, compared ------------------------------------------------------------------


def _rows(conn: psycopg.Connection[Any], sql: str, *args: object) -> list[tuple[Any, ...]]:
    return conn.execute(sql, args or None).fetchall()


def _same_interval(conn: psycopg.Connection[Any], a: str, b: str) -> bool:
    row = conn.execute("SELECT %s::interval = %s::interval", (a, b)).fetchone()
    return bool(row and row[0])


class Comparison:
    """The differences found, keyed like ``DIFFERENCES``."""

    def __init__(self) -> None:
        self.found: dict[Key, tuple[object, object]] = {}

    def check(self, key: Key, plan: object, db: object) -> None:
        if plan != db:
            self.found[key] = (plan, db)


def _compare_tables(conn: psycopg.Connection[Any], plan: Plan, out: Comparison) -> None:
    tables = {
        r[0]
        for r in _rows(
            conn,
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        )
    }
    for name in sorted(tables | set(plan.tables)):
        out.check(("table", name), name in plan.tables, name in tables)
    columns: dict[str, dict[str, tuple[Any, ...]]] = {}
    for row in _rows(
        conn,
        """
        SELECT table_name, column_name,
               CASE WHEN data_type = 'ARRAY' THEN format_type(ltrim(udt_name, '_')::regtype, NULL)
                                                  || '[]'
                    ELSE data_type END,
               is_nullable = 'YES', column_default, collation_name
        FROM information_schema.columns WHERE table_schema = 'public'
        ORDER BY table_name, ordinal_position
        """,
    ):
        columns.setdefault(row[0], {})[row[1]] = row[2:]
    for table, planned in plan.tables.items():
        have = columns.get(table, {})
        for col in planned:
            key = ("column", table, col.name)
            out.check((*key, "present"), True, col.name in have)
            if col.name not in have:
                continue
            type_, nullable, default, collation = have[col.name]
            out.check((*key, "type"), col.type, type_)
            out.check((*key, "nullable"), col.nullable, nullable)
            out.check((*key, "default"), col.default, default)
            out.check((*key, "collation"), None, collation)
        for name in have:
            if name not in {c.name for c in planned}:
                out.check(("column", table, name, "present"), False, True)
        common = [c.name for c in planned if c.name in have]
        out.check(("column", table, "order"), common, [n for n in have if n in common])

    keys = _rows(
        conn,
        """
        SELECT tc.table_name, array_agg(k.column_name::text ORDER BY k.ordinal_position)
        FROM information_schema.table_constraints tc
        JOIN information_schema.key_column_usage k USING (constraint_schema, constraint_name)
        WHERE tc.table_schema = 'public' AND tc.constraint_type = 'PRIMARY KEY'
        GROUP BY tc.table_name
        """,
    )
    primary = {table: tuple(cols) for table, cols in keys}
    for table, planned in plan.tables.items():
        pk = tuple(c.name for c in planned if c.primary_key) or None
        out.check(("primary_key", table), pk, primary.get(table))

    for table, name, definition in _rows(
        conn,
        """
        SELECT c.relname, k.conname, pg_get_constraintdef(k.oid, true)
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND k.contype NOT IN ('p', 'u')
        """,
    ):
        if table in plan.tables:
            out.check(("check", table, name), None, definition)


def _compare_indexes(conn: psycopg.Connection[Any], plan: Plan, out: Comparison) -> None:
    have = {
        name: (table, tuple(keys), unique, predicate, method)
        for name, table, keys, unique, predicate, method in _rows(
            conn,
            """
            SELECT c.relname, t.relname,
                   array(SELECT pg_get_indexdef(i.indexrelid, k, true)
                                || CASE WHEN i.indoption[k - 1] & 1 = 1 THEN ' DESC' ELSE '' END
                         FROM generate_series(1, i.indnkeyatts) k),
                   i.indisunique, pg_get_expr(i.indpred, i.indrelid, true), am.amname
            FROM pg_index i
            JOIN pg_class c ON c.oid = i.indexrelid
            JOIN pg_class t ON t.oid = i.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            JOIN pg_am am ON am.oid = c.relam
            WHERE n.nspname = 'public' AND NOT i.indisprimary
            """,
        )
        if table in plan.tables
    }
    for name, index in plan.indexes.items():
        out.check(("index", name, "present"), True, name in have)
        if name not in have:
            continue
        table, keys, unique, predicate, method = have[name]
        out.check(("index", name, "table"), index.table, table)
        out.check(("index", name, "keys"), index.keys, keys)
        out.check(("index", name, "unique"), index.unique, unique)
        out.check(("index", name, "predicate"), index.predicate, predicate)
        out.check(("index", name, "method"), "btree", method)
    for name in have:
        if name not in plan.indexes:
            out.check(("index", name, "present"), False, True)
    gin = {name for name, (_, _, _, _, method) in have.items() if method == "gin"}
    for conditional in plan.conditional_indexes:
        out.check(("index", conditional, "present"), "if queried", bool(gin) or False)


def _compare_hypertables(conn: psycopg.Connection[Any], plan: Plan, out: Comparison) -> None:
    have = {
        table: (column, interval, dims)
        for table, column, interval, dims in _rows(
            conn,
            """
            SELECT d.hypertable_name, d.column_name, d.time_interval::text, h.num_dimensions
            FROM timescaledb_information.dimensions d
            JOIN timescaledb_information.hypertables h USING (hypertable_schema, hypertable_name)
            WHERE d.hypertable_schema = 'public'
            """,
        )
    }
    for table in sorted(set(have) | set(plan.hypertables)):
        out.check(("hypertable", table, "present"), table in plan.hypertables, table in have)
    for table, column in plan.hypertables.items():
        if table in have:
            out.check(("hypertable", table, "time_column"), column, have[table][0])
            out.check(("hypertable", table, "dimensions"), 1, have[table][2])
    for (table, statement), interval in plan.chunk_intervals.items():
        if table in have and not _same_interval(conn, interval, have[table][1]):
            out.check(("chunk_interval", table, statement), interval, have[table][1])


def _routines(conn: psycopg.Connection[Any], out: Comparison) -> None:
    for (name,) in _rows(
        conn,
        """
        SELECT DISTINCT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                            AND d.deptype = 'e')
        """,
    ):
        out.check(("routine", name), False, True)


@contextlib.contextmanager
def _plan_views(conn: psycopg.Connection[Any], plan: Plan) -> Iterator[dict[str, str]]:
    """The plan's aggregates made by its own CREATE statements, as scratch views beside
    pmstore's (on the same tables): view -> the scratch view's name. Dropped on exit."""
    made: dict[str, str] = {}
    try:
        for view, statement in plan.aggregates.items():
            scratch = f"contract_{view}"
            conn.execute(statement.replace(f"VIEW {view}", f"VIEW {scratch}", 1))
            made[view] = scratch
        yield made
    finally:
        for scratch in made.values():
            conn.execute(f"DROP MATERIALIZED VIEW IF EXISTS {scratch}")


def _view_facts(conn: psycopg.Connection[Any], view: str) -> tuple[bool, str, list[Any]]:
    """A continuous aggregate's materialized_only, definition (as the server deparses it,
    whitespace folded) and columns (name, type, collation)."""
    row = conn.execute(
        "SELECT materialized_only, view_definition "
        "FROM timescaledb_information.continuous_aggregates WHERE view_name = %s",
        (view,),
    ).fetchone()
    assert row is not None, view
    columns = _rows(
        conn,
        "SELECT column_name, data_type, collation_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
        view,
    )
    return bool(row[0]), " ".join(str(row[1]).split()), columns


def _jobs(conn: psycopg.Connection[Any]) -> list[tuple[str, str | None, str, dict[str, Any]]]:
    """pmstore's jobs (system jobs left out): proc, target (a continuous aggregate's job
    names its view, from TimescaleDB 2.20 on, or its materialized hypertable), schedule,
    config."""
    return [
        (str(proc), target, str(schedule), dict(config or {}))
        for proc, target, schedule, config in _rows(
            conn,
            """
            SELECT j.proc_name, coalesce(ca.view_name, j.hypertable_name),
                   j.schedule_interval::text, j.config
            FROM timescaledb_information.jobs j
            LEFT JOIN timescaledb_information.continuous_aggregates ca
                   ON ca.materialization_hypertable_name = j.hypertable_name
                   OR ca.view_name = j.hypertable_name
            WHERE j.job_id >= 1000
            """,
        )
    ]


def _compare_community(conn: psycopg.Connection[Any], plan: Plan, out: Comparison) -> None:
    """Aggregates (against the plan's own statements run on this server), refresh,
    compression and retention policies, and any other job."""
    views = {
        r[0]
        for r in _rows(conn, "SELECT view_name FROM timescaledb_information.continuous_aggregates")
    }
    for view in sorted(views | set(plan.aggregates)):
        out.check(("aggregate", view, "present"), view in plan.aggregates, view in views)
    with _plan_views(conn, plan) as scratch:
        for view, planned_view in scratch.items():
            if view not in views:
                continue
            want, have = _view_facts(conn, planned_view), _view_facts(conn, view)
            out.check(("aggregate", view, "materialized_only"), want[0], have[0])
            out.check(("aggregate", view, "definition"), want[1], have[1])
            out.check(("aggregate", view, "columns"), want[2], have[2])

    jobs = _jobs(conn)
    accounted: set[int] = set()
    for view, policy in plan.refresh_policies.items():
        found = [
            (k, j)
            for k, j in enumerate(jobs)
            if j[0] == "policy_refresh_continuous_aggregate" and j[1] == view
        ]
        out.check(("refresh_policy", view, "present"), True, len(found) == 1)
        for k, (_, _, schedule, config) in found:
            accounted.add(k)
            for name, interval in policy.items():
                value = schedule if name == "schedule_interval" else config.get(name)
                if value is None or not _same_interval(conn, interval, str(value)):
                    out.check(("refresh_policy", view, name), interval, value)

    settings = {
        str(r[0]): (r[1], r[2])
        for r in _rows(
            conn,
            "SELECT hypertable::text, segmentby, orderby "
            "FROM timescaledb_information.hypertable_compression_settings",
        )
    }
    for table, (segmentby, orderby) in plan.compression.items():
        out.check(("compression", table, "enabled"), True, table in settings)
        if table in settings:
            out.check(("compression", table, "segmentby"), segmentby, settings[table][0])
            orderby_db = settings[table][1]
            out.check(("compression", table, "orderby"), orderby.replace(", ", ","), orderby_db)
    for table, after in plan.compress_after.items():
        found = [
            (k, j) for k, j in enumerate(jobs) if j[0] == "policy_compression" and j[1] == table
        ]
        out.check(("compression_policy", table, "present"), True, len(found) == 1)
        for k, (_, _, _, config) in found:
            accounted.add(k)
            value = config.get("compress_after")
            if value is None or not _same_interval(conn, after, str(value)):
                out.check(("compression_policy", table, "compress_after"), after, value)

    retention: dict[str, str] = {}
    for k, (proc, target, _, config) in enumerate(jobs):
        if proc == "policy_retention" and target is not None:
            accounted.add(k)
            retention[target] = str(config.get("drop_after"))
    for name in sorted(set(plan.retention) | set(retention)):
        planned, dropped = plan.retention.get(name), retention.get(name)
        if planned is None or dropped is None or not _same_interval(conn, planned, dropped):
            out.check(("retention", name), planned, dropped)
    for k, (proc, target, _, _) in enumerate(jobs):
        if k not in accounted:
            out.check(("job", proc, *([target] if target else [])), False, True)


def _check_absent_on_apache(conn: psycopg.Connection[Any], plan: Plan) -> None:
    """The Apache-2 edition has none of the plan's Community features; pmstore_features says
    why for each. (The Community facets' named differences do not apply here.)"""
    assert plan.aggregates and plan.compression and plan.retention  # the plan wants them
    assert _rows(conn, "SELECT view_name FROM timescaledb_information.continuous_aggregates") == []
    assert (
        _rows(
            conn,
            "SELECT hypertable_name FROM timescaledb_information.hypertables "
            "WHERE compression_enabled",
        )
        == []
    )
    assert _jobs(conn) == []
    recorded = {
        feature: (available, detail)
        for feature, available, detail in _rows(
            conn, "SELECT feature, available, detail FROM pmstore_features"
        )
    }
    assert set(recorded) == {"continuous_aggregates", "compression", "retention"}
    for feature, (available, detail) in recorded.items():
        assert available is False, feature
        assert "Apache-2 edition" in detail and "left out" in detail, (feature, detail)
    assert "price_candles_1h" in recorded["continuous_aggregates"][1]
    assert "7 days" in recorded["compression"][1] and "90 days" in recorded["retention"][1]


@pytest.fixture(params=["community", "apache"])
def edition_db(request: pytest.FixtureRequest) -> Iterator[tuple[TestServer, str]]:
    """A migrated database on each edition in turn (Community skips where only the Apache-2
    edition is installed)."""
    server: TestServer = request.getfixturevalue(f"{request.param}_server")
    name = f"t_schema_contract_{request.param}"
    yield server, server.migrated_database(name)
    server.drop_database(name)


def _listing(items: dict[Key, Any]) -> str:
    return "".join(f"\n  {key}: {value!r}" for key, value in sorted(items.items()))


def test_the_schema_is_the_plan_but_for_the_named_differences(
    plan: Plan, edition_db: tuple[TestServer, str]
) -> None:
    server, dsn = edition_db
    community = server.info.edition == "community"
    out = Comparison()
    with psycopg.connect(dsn, autocommit=True) as conn:
        _compare_tables(conn, plan, out)
        _compare_indexes(conn, plan, out)
        _compare_hypertables(conn, plan, out)
        _routines(conn, out)
        if community:
            _compare_community(conn, plan, out)
        else:
            _check_absent_on_apache(conn, plan)
    named = {
        key: (d.plan, d.db)
        for key, d in DIFFERENCES.items()
        if community or key[0] not in COMMUNITY_FACETS
    }
    unlisted = {k: v for k, v in out.found.items() if k not in named}
    stale = {
        k: (v, out.found.get(k, "no difference")) for k, v in named.items() if out.found.get(k) != v
    }
    assert not unlisted and not stale, (
        f"on {server.info}: differences from plan 01-03 that DIFFERENCES does not name "
        f"(key: (plan, database)):{_listing(unlisted)}\n"
        f"named differences that are not what the database has "
        f"(key: ((plan, database) named, found)):{_listing(stale)}"
    )


def test_every_named_difference_says_why() -> None:
    for key, difference in DIFFERENCES.items():
        assert difference.plan != difference.db, key
        assert len(difference.reason) >= 40, key


def test_an_unnamed_difference_is_caught(plan: Plan, server: TestServer) -> None:
    """The comparison itself: a column made nullable and an index renamed are found, and
    DIFFERENCES does not name them."""
    name = "t_schema_contract_mutated"
    dsn = server.migrated_database(name)
    try:
        out = Comparison()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ALTER TABLE trades ALTER COLUMN price DROP NOT NULL")
            conn.execute("ALTER INDEX idx_trades_token_time RENAME TO trades_by_token")
            conn.execute("ALTER TABLE markets ALTER COLUMN active SET DEFAULT false")
            _compare_tables(conn, plan, out)
            _compare_indexes(conn, plan, out)
        unnamed = {k: v for k, v in out.found.items() if k not in DIFFERENCES}
        assert unnamed == {
            ("column", "trades", "price", "nullable"): (False, True),
            ("column", "markets", "active", "default"): ("true", "false"),
            ("index", "idx_trades_token_time", "present"): (True, False),
            ("index", "trades_by_token", "present"): (False, True),
        }
    finally:
        server.drop_database(name)
