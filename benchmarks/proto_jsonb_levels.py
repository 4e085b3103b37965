"""SCRATCH (issue 23, phase 1): the JSONB level encoder prototype, measured.

    flock -x /tmp/pmstore-cpu.lock python benchmarks/proto_jsonb_levels.py [--books 50000]

Part 1, client side only (no database), best of ``--repeat``: encoding a built
batch as float8[] (main) and as JSONB (``pmstore._jsonb_levels_proto``, and a
per-level ``repr`` alternative), building a batch from Polymarket's string
levels (main's parse to floats, the prototype's pass-through) and the digest.

Part 2, the server: every method loads the same books into an emptied
``orderbook_snapshots`` (7-day hypertable, (token_id, ts DESC) index), rounds
interleaved, best of ``--repeat``; ratios are against the server's own binary
COPY FROM file of the same JSONB rows (issue 23's baseline). Comparison tables
live in ``bench_*`` schemas (float8[] as migration 0013 made it; JSONB without
a CHECK, with a per-level jsonpath CHECK, with GIN indexes). The Writer runs
with the prototype encoder patched in (``copy_encoding._flat_levels_field``),
or unpatched (float8[]) into the float8[] table.

Server: a throwaway embedded server with pmstore's durable settings and fsync
off (``bench_server.open_server``), ``PMSTORE_PG_BINDIR`` picks the build.
Prints a table and writes JSON next to the other bench results.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import orjson
import psycopg
from bench_data import BOOK_COLUMNS, BookData, _array_text, read_chunks
from bench_server import BenchDB, Target, open_server, with_search_path
from psycopg import sql

from pmstore import Writer, copy_encoding, migrations
from pmstore._jsonb_levels_proto import (
    decimal_levels,
    orderbook_batch_from_strings,
    sides_field,
)
from pmstore.batches import OrderbookBatch
from pmstore.edition import server_info

Timed = Callable[[], Any]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def best(repeat: int, call: Timed) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


@contextlib.contextmanager
def jsonb_encoder() -> Iterator[None]:
    """The Writer's level field as the prototype's JSONB (texts passed through when the
    batch's levels carry them, else the floats' shortest decimals)."""
    with mock.patch.object(copy_encoding, "_flat_levels_field", sides_field):
        yield


# -- part 1: client side -----------------------------------------------------------------------


def repr_sides(batch: OrderbookBatch) -> int:
    """The alternative to orjson: each level's JSON by ``repr``, joined per row."""
    total = 0
    for side in (batch.bids, batch.asks):
        texts = [
            "[" + ",".join(f"[{p!r},{s!r}]" for p, s in levels) + "]" for levels in side.tolist()
        ]
        total += sum(map(len, texts))
    return total


def client(books: BookData, repeat: int) -> list[dict[str, Any]]:
    raw, batch = books.raw, books.batch
    proto = orderbook_batch_from_strings(raw)
    assert proto is not None
    proto = proto.validated()
    assert proto.content_digest() == batch.content_digest()  # the same floats
    items: list[tuple[str, Timed]] = [
        (
            "encode_orderbooks, float8[] (main)",
            lambda: sum(map(len, copy_encoding.encode_orderbooks(batch))),
        ),
    ]
    with jsonb_encoder():
        jsonb_bytes = sum(map(len, copy_encoding.encode_orderbooks(batch)))
        text_bytes = sum(map(len, copy_encoding.encode_orderbooks(proto)))
    f8_bytes = sum(map(len, copy_encoding.encode_orderbooks(batch)))

    def jsonb_floats() -> int:
        with jsonb_encoder():
            return sum(map(len, copy_encoding.encode_orderbooks(batch)))

    def jsonb_texts() -> int:
        with jsonb_encoder():
            return sum(map(len, copy_encoding.encode_orderbooks(proto)))

    built_bids = batch.bids  # the objects, made once (repr_sides reads them)
    assert len(built_bids) == books.n
    items += [
        ("encode_orderbooks, JSONB from floats (proto: orjson of the chunk)", jsonb_floats),
        ("(alternative) JSON of the levels by repr, per level", lambda: repr_sides(batch)),
        ("encode_orderbooks, JSONB from decimal texts (proto: numpy, kept bytes)", jsonb_texts),
        (
            "from_columns(string levels) + validated() (main: strings parsed to floats)",
            lambda: OrderbookBatch.from_columns(raw).validated(),
        ),
        (
            "orderbook_batch_from_strings + validated() (proto: texts kept)",
            lambda: orderbook_batch_from_strings(raw).validated(),  # type: ignore[union-attr]
        ),
        (
            "orderbook_batch_from_strings(threads=True) + validated() (bids in a 2nd thread)",
            lambda: orderbook_batch_from_strings(raw, threads=True).validated(),  # type: ignore[union-attr]
        ),
        (
            "  of which decimal_levels (both sides)",
            lambda: (
                decimal_levels(list(raw["bids"]), True),
                decimal_levels(list(raw["asks"]), False),
            ),
        ),
        ("content_digest (floats, either batch)", proto.content_digest),
    ]
    out = []
    for name, call in items:
        seconds = best(repeat, call)
        log(f"  {name}: {seconds * 1000:.0f} ms")
        out.append({"step": name, "seconds": seconds})
    out.append(
        {
            "bytes": {
                "float8[]": f8_bytes,
                "jsonb from floats": jsonb_bytes,
                "jsonb from texts": text_bytes,
            }
        }
    )
    return out


# -- part 2: the server ------------------------------------------------------------------------

BOOK_TABLE = """
CREATE TABLE {table} (
    ts       TIMESTAMPTZ NOT NULL,
    token_id TEXT COLLATE "C" NOT NULL,
    bids     {type} NOT NULL DEFAULT {empty},
    asks     {type} NOT NULL DEFAULT {empty},
    spread   DOUBLE PRECISION,
    midpoint DOUBLE PRECISION
)
"""
PAIRS_CHECK = (
    "CHECK ((cardinality(bids) = 0 OR (array_ndims(bids) = 2 AND array_length(bids, 2) = 2)) "
    "AND (cardinality(asks) = 0 OR (array_ndims(asks) = 2 AND array_length(asks, 2) = 2)))"
)
ARRAY_CHECK = "CHECK (jsonb_typeof(bids) = 'array' AND jsonb_typeof(asks) = 'array')"
PATH = (
    '\'strict $[*] ? (@.type() != "array" || @.size() != 2 '
    '|| @[0].type() != "number" || @[1].type() != "number")\''
)
LEVEL_CHECK = f"CHECK (NOT (bids @? {PATH}) AND NOT (asks @? {PATH}))"
TABLES: dict[str, tuple[str, str, list[str]]] = {
    # schema: (type, check, extra indexes)
    "bench_f8": ("DOUBLE PRECISION[]", PAIRS_CHECK, []),
    "bench_nocheck": ("JSONB", "", []),
    "bench_levelcheck": ("JSONB", LEVEL_CHECK, []),
    "bench_gin_path": (
        "JSONB",
        ARRAY_CHECK,
        ["USING gin (bids jsonb_path_ops)", "USING gin (asks jsonb_path_ops)"],
    ),
    "bench_gin": ("JSONB", ARRAY_CHECK, ["USING gin (bids)", "USING gin (asks)"]),
}


def make_table(db: BenchDB, schema: str) -> Target:
    type_, check, extra = TABLES[schema]
    db.conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    db.conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    table = f"{schema}.orderbook_snapshots"
    empty = "'{}'" if type_.endswith("[]") else "'[]'"
    db.conn.execute(BOOK_TABLE.format(table=table, type=type_, empty=empty))
    if check:
        db.conn.execute(f"ALTER TABLE {table} ADD {check}")
    db.conn.execute(
        "SELECT create_hypertable(%s::regclass, by_range('ts', INTERVAL '7 days'), "
        "create_default_indexes => false)",
        (table,),
    )
    db.conn.execute(f"CREATE INDEX ON {table} (token_id, ts DESC)")
    for index in extra:
        db.conn.execute(f"CREATE INDEX ON {table} {index}")
    return Target(schema, "orderbook_snapshots", with_search_path(db.dsn, schema), schema)


def write_csv(books: BookData, path: Path, jsonb: bool) -> None:
    """The books' rows as CSV, levels as JSON text (floats' repr) or float8[] literals."""
    side_text: Callable[[Any], str] = json.dumps if jsonb else _array_text
    with path.open("w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        for ts, token, bids, asks, spread, mid in books.rows:
            out.writerow(
                (
                    ts.isoformat(),
                    token,
                    side_text(bids),
                    side_text(asks),
                    "" if spread is None else repr(spread),
                    "" if mid is None else repr(mid),
                )
            )


def server_binary_file(db: BenchDB, like: str, csv_path: Path, out: Path) -> None:
    """The server's own binary COPY of the CSV rows (loaded into a temporary copy of ``like``)."""
    cols = sql.SQL(", ").join(map(sql.Identifier, BOOK_COLUMNS))
    with db.conn.transaction(), db.conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "CREATE TEMP TABLE bench_scratch (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP"
            ).format(sql.SQL(like))
        )
        with cur.copy(sql.SQL("COPY bench_scratch ({}) FROM STDIN (FORMAT csv)").format(cols)) as c:
            for chunk in read_chunks(csv_path):
                c.write(chunk)
        with (
            out.open("wb") as f,
            cur.copy(
                sql.SQL("COPY bench_scratch ({}) TO STDOUT (FORMAT binary)").format(cols)
            ) as c,
        ):
            for data in c:
                f.write(data)
    out.chmod(0o644)


def server_copy(path: Path) -> Callable[[Target], None]:
    def load(target: Target) -> None:
        cols = sql.SQL(", ").join(map(sql.Identifier, BOOK_COLUMNS))
        with psycopg.connect(target.dsn) as conn:
            conn.execute(
                sql.SQL("COPY {} ({}) FROM {} (FORMAT binary)").format(
                    target.qualified, cols, sql.Literal(str(path))
                )
            )
            conn.commit()

    return load


def writer_load(
    data: Any, *, jsonb: bool, build: Callable[[Any], Any] | None = None
) -> Callable[[Target], None]:
    def load(target: Target) -> None:
        with Writer(target.dsn) as writer:
            _ = writer.connection
            with jsonb_encoder() if jsonb else contextlib.nullcontext():
                batch = build(data) if build else data
                result = writer.copy_orderbooks(batch)
        assert result.rows_written > 0

    return load


def summary(db: BenchDB, target: Target, jsonb: bool) -> tuple[int, int, str]:
    """Rows, levels, and the sum of the best bids (numeric): what every method must agree on."""
    levels = (
        "jsonb_array_length(bids) + jsonb_array_length(asks)"
        if jsonb
        else "(cardinality(bids) + cardinality(asks)) / 2"
    )
    best = "(bids -> 0 ->> 0)::numeric" if jsonb else "bids[1][1]::numeric"
    row = db.conn.execute(
        sql.SQL("SELECT count(*), coalesce(sum({}), 0), coalesce(sum({}), 0)::text FROM {}").format(
            sql.SQL(levels), sql.SQL(best), target.qualified
        )
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), str(row[2])


def sizes(db: BenchDB, target: Target) -> dict[str, int]:
    row = db.conn.execute(
        "SELECT table_bytes, index_bytes, toast_bytes FROM hypertable_detailed_size(%s::regclass)",
        (f"{target.schema}.{target.table}",),
    ).fetchone()
    assert row is not None
    return {"table": int(row[0] or 0), "index": int(row[1] or 0), "toast": int(row[2] or 0)}


def server(books: BookData, repeat: int, folder: Path) -> dict[str, Any]:
    with open_server(fsync=False) as srv:
        migrations.apply(srv.dsn)
        db = BenchDB(srv.dsn)
        info = server_info(db.conn)
        log(f"server: {info}")
        public = db.public("orderbook_snapshots", "public (0014: JSONB, array CHECK)")
        targets = {"public": public, **{s: make_table(db, s) for s in TABLES}}
        log("writing the server's binary files ...")
        write_csv(books, folder / "jsonb.csv", jsonb=True)
        write_csv(books, folder / "f8.csv", jsonb=False)
        server_binary_file(
            db, "public.orderbook_snapshots", folder / "jsonb.csv", folder / "jsonb.bin"
        )
        server_binary_file(db, "bench_f8.orderbook_snapshots", folder / "f8.csv", folder / "f8.bin")
        jsonb_file, f8_file = server_copy(folder / "jsonb.bin"), server_copy(folder / "f8.bin")
        _ = books.rows
        proto_build: Callable[[Any], Any] = orderbook_batch_from_strings

        def threaded_build(raw: Any) -> Any:
            return orderbook_batch_from_strings(raw, threads=True)

        methods: list[tuple[str, str, Callable[[Target], None]]] = [
            ("server binary COPY FROM file, JSONB (baseline)", "public", jsonb_file),
            ("server binary COPY FROM file, float8[] (0013)", "bench_f8", f8_file),
            ("server binary COPY, JSONB without CHECK", "bench_nocheck", jsonb_file),
            (
                "server binary COPY, JSONB + per-level jsonpath CHECK",
                "bench_levelcheck",
                jsonb_file,
            ),
            (
                "server binary COPY, JSONB + GIN jsonb_path_ops (bids, asks)",
                "bench_gin_path",
                jsonb_file,
            ),
            ("server binary COPY, JSONB + GIN jsonb_ops (bids, asks)", "bench_gin", jsonb_file),
            (
                "Writer.copy_orderbooks(batch), float8[] (main)",
                "bench_f8",
                writer_load(books.batch, jsonb=False),
            ),
            (
                "Writer.copy_orderbooks(batch), JSONB proto (floats)",
                "public",
                writer_load(books.batch, jsonb=True),
            ),
            (
                "Writer.copy_orderbooks(string levels), float8[] (main)",
                "bench_f8",
                writer_load(books.raw, jsonb=False),
            ),
            (
                "Writer.copy_orderbooks(string levels), JSONB proto (parsed to floats)",
                "public",
                writer_load(books.raw, jsonb=True),
            ),
            (
                "proto string batch + Writer.copy_orderbooks, JSONB (texts passed through)",
                "public",
                writer_load(books.raw, jsonb=True, build=proto_build),
            ),
            (
                "the same, the batch built in 2 threads (bids beside asks)",
                "public",
                writer_load(books.raw, jsonb=True, build=threaded_build),
            ),
        ]
        runs: dict[str, list[float]] = {name: [] for name, _, _ in methods}
        checks: dict[str, Any] = {}
        table_sizes: dict[str, Any] = {}
        for round_ in range(repeat):
            for name, where, load in methods:
                target = targets[where]
                db.reset(target)
                gc.collect()
                started = time.perf_counter()
                load(target)
                seconds = time.perf_counter() - started
                runs[name].append(seconds)
                checks[name] = summary(db, target, jsonb=where != "bench_f8")
                if round_ == 0:
                    table_sizes[name] = sizes(db, target)
                log(f"  round {round_ + 1}: {name}: {books.n / seconds:,.0f} books/s")
        db.drop_bench_schemas()
        db.reset(public)
        db.close()
    base = books.n / min(runs[methods[0][0]])
    rows = []
    for name, _, _ in methods:
        rate = books.n / min(runs[name])
        rows.append(
            {
                "method": name,
                "books_per_s": rate,
                "vs_baseline": rate / base,
                "runs_s": runs[name],
                "check": checks[name],
                "sizes": table_sizes[name],
            }
        )
    return {"server": str(info), "methods": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--client-only", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()
    started = datetime.now(UTC)
    log(f"generating {args.books:,} order books ...")
    books = BookData.generate(args.books)
    log(books.label)
    result: dict[str, Any] = {
        "started_at": started.isoformat(timespec="seconds"),
        "books": books.label,
        "loadavg_start": os.getloadavg(),
        "numpy": np.__version__,
        "orjson": orjson.__version__,
    }
    log("client side:")
    result["client"] = client(books, args.repeat)
    if not args.client_only:
        with tempfile.TemporaryDirectory(prefix="pmstore-proto-jsonb-") as tmp:
            folder = Path(tmp)
            folder.chmod(0o755)
            result["server"] = server(books, args.repeat, folder)
    result["loadavg_end"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"proto-jsonb-{started:%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    for item in result["client"]:
        if "step" in item:
            print(f"{item['step']:<80} {item['seconds'] * 1000:8.0f} ms")
        else:
            print(f"encoded bytes: {item['bytes']}")
    if "server" in result:
        print(result["server"]["server"])
        for row in result["server"]["methods"]:
            print(
                f"{row['method']:<80} {row['books_per_s']:10,.0f} books/s "
                f"{row['vs_baseline']:5.2f}x  sizes {row['sizes']}  check {row['check']}"
            )
    print(f"JSON: {path}; load average {result['loadavg_start']} -> {result['loadavg_end']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
