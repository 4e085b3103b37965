"""``--investigate``: why the full schema ingests slower than a bare hypertable, and what helps.

Measured, each on the same price rows:

- index variants, loaded by the server's own binary ``COPY FROM`` file (so
  only the server's cost counts): no index; the schema's
  ``(token_id COLLATE "C", ts DESC)``; ascending ts; the database's default
  collation and other non-C collations present on the server; the schema's
  index plus TimescaleDB's default ``(ts DESC)`` index; and the schema's
  index loaded from a file sorted by (token_id, ts);
- ``copy_prices`` with each batch sorted by (token_id, ts) first (the sort's
  time counted) against unsorted, for minute batches and 100k-row batches;
- ``copy_prices`` batch sizes 1k / 10k / 100k;
- a backfill over 2 connections (threads with a Writer each; and two
  server-side COPYs of half the file) against one;
- server settings (only on the benchmark's own server, which it may
  reconfigure): wal_compression and full_page_writes, with the WAL written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import psycopg
from bench_data import PRICE_COLUMNS, Files, PriceData, price_files, summarize_prices
from bench_methods import ServerCopy
from bench_scenarios import latency_summary, log, matches
from bench_server import BenchDB, Target, with_settings
from psycopg import sql
from tqdm import tqdm

from pmstore import PriceBatch, Writer
from pmstore.copy_encoding import encode_prices

Result = dict[str, Any]

SCHEMA_INDEX = "(token_id, ts DESC)"


def _load_file(
    db: BenchDB, target: Target, path: Path, rows: int, server_reads: bool, repeat: int
) -> Result:
    """Server binary COPY of ``path`` into ``target``, best of ``repeat``; sizes and WAL."""
    runs = []
    for _ in range(repeat):
        db.reset(target)
        lsn = db.wal_lsn()
        runs.append(ServerCopy(path, "binary", PRICE_COLUMNS, rows, server_reads)(target, None))
        wal = db.wal_lsn() - lsn
        got = summarize_prices(db, target.qualified)
        if got["rows"] != rows:
            raise RuntimeError(f"{target.schema}: {got['rows']} rows loaded of {rows}")
        heap, index = db.table_bytes(target)
    db.reset(target)
    best = min(runs, key=lambda r: r.seconds)
    return {
        "rows_per_s": best.rows_per_s,
        "all_rows_per_s": [r.rows_per_s for r in runs],
        "seconds": best.seconds,
        "index_bytes": index,
        "heap_bytes": heap,
        "wal_bytes": wal,
    }


def index_variants(
    db: BenchDB, data: PriceData, files: Files, folder: Path, server_reads: bool, repeat: int
) -> list[Result]:
    """Server binary COPY of the same file into tables differing only in indexes/collation.

    Best of ``repeat`` runs of each, in order (a variant's runs follow each other).
    """
    log("investigation: index and collation variants (server binary COPY FROM file)")
    sorted_files = price_files(db, data.sorted(), folder, "investigate-sorted")
    datcollate = str(
        db.scalar("SELECT datcollate FROM pg_database WHERE datname = current_database()")
    )
    variants: list[tuple[str, str, str, list[str], Path]] = [
        ("no index", "bench_v_noindex", "C", [], files.binary),
        ('schema: (token_id COLLATE "C", ts DESC)', "bench_v_c", "C", [SCHEMA_INDEX], files.binary),
        (
            "same, file sorted by (token_id, ts)",
            "bench_v_c_sorted",
            "C",
            [SCHEMA_INDEX],
            sorted_files.binary,
        ),
        (
            '(token_id COLLATE "C", ts) ascending',
            "bench_v_c_asc",
            "C",
            ["(token_id, ts)"],
            files.binary,
        ),
        (
            f"database default collation ({datcollate}), (token_id, ts DESC)",
            "bench_v_default",
            "default",
            [SCHEMA_INDEX],
            files.binary,
        ),
    ]
    for choices in (("en_US.utf8", "en_US"), ("en-US-x-icu", "und-x-icu")):  # libc, ICU
        name = next((c for c in choices if db.collation_exists(c)), None)
        if name is not None and name != datcollate:
            variants.append(
                (
                    f'COLLATE "{name}", (token_id, ts DESC)',
                    f"bench_v_{len(variants)}",
                    name,
                    [SCHEMA_INDEX],
                    files.binary,
                )
            )
    variants.append(
        (
            "schema index + TimescaleDB default (ts DESC) index",
            "bench_v_c_tsidx",
            "C",
            [SCHEMA_INDEX, "(ts DESC)"],
            files.binary,
        )
    )
    out: list[Result] = []
    for label, schema, collation, indexes, path in variants:
        target = db.price_table(schema, label, collation=collation, indexes=indexes)
        log(f"  {label} ...")
        result = {
            "variant": label,
            "collation": collation,
            "indexes": indexes,
            **_load_file(db, target, path, data.n, server_reads, repeat),
        }
        log(
            f"    {result['rows_per_s']:,.0f} rows/s, index {result['index_bytes'] / 2**20:.0f} MiB"
        )
        out.append(result)
    schema_rate = out[1]["rows_per_s"]
    for entry in out:
        entry["vs_schema"] = entry["rows_per_s"] / schema_rate
    return out


def client_cost(db: BenchDB, data: PriceData, files: Files, server_reads: bool) -> list[Result]:
    """Where copy_prices' time goes, on the index-free table where the client's cost shows.

    One call of all the rows, best of 3 each: copy_prices as is (the Writer
    sorts rows into index order); without that sort; also with a batch id
    given (no content digest); also from a built and validated batch;
    pmstore's encoder straight into psycopg's COPY (no Writer: no
    validation, ingest log or digest); the same bytes encoded beforehand;
    the server's own binary COPY FROM file.
    """
    log("investigation: where copy_prices' time goes (hypertable without indexes, best of 3)")
    target = db.price_table("bench_cc", "no index", collation="C", indexes=[])
    batch = PriceBatch.from_columns(data.columns).validated()
    encoded = list(encode_prices(batch))
    query = sql.SQL("COPY {} (ts, token_id, price, volume_24h) FROM STDIN (FORMAT binary)").format(
        target.qualified
    )
    ids = iter(range(1_000_000))
    writer = Writer(target.dsn)
    as_given = Writer(target.dsn, index_order=False)
    conn = psycopg.connect(target.dsn)

    def stream(chunks: Callable[[], Iterable[bytes]]) -> Callable[[], None]:
        def run() -> None:
            with conn.cursor() as cur, cur.copy(query) as copy:
                for chunk in chunks():
                    copy.write(chunk)
            conn.commit()

        return run

    copy = ServerCopy(files.binary, "binary", PRICE_COLUMNS, data.n, server_reads)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("copy_prices(columns)", lambda: writer.copy_prices(data.columns)),
        (
            "copy_prices(columns), Writer(index_order=False): no sort",
            lambda: as_given.copy_prices(data.columns),
        ),
        (
            "  same, batch_id=...: no sort, no content digest",
            lambda: as_given.copy_prices(data.columns, batch_id=f"bench-{next(ids)}"),
        ),
        (
            "  same, a validated PriceBatch: no sort, digest or conversion",
            lambda: as_given.copy_prices(batch, batch_id=f"bench-{next(ids)}"),
        ),
        ("encode_prices -> psycopg Copy.write (no Writer)", stream(lambda: encode_prices(batch))),
        ("bytes encoded beforehand -> psycopg Copy.write", stream(lambda: encoded)),
        ("server binary COPY FROM file", lambda: copy.load(conn, target)),
    ]
    out: list[Result] = []
    try:
        _ = writer.connection, as_given.connection
        for label, work in cases:
            times = []
            for _ in range(3):
                db.reset(target)
                started = time.perf_counter()
                work()
                times.append(time.perf_counter() - started)
                if summarize_prices(db, target.qualified)["rows"] != data.n:
                    raise RuntimeError(f"{label}: wrong row count")
            out.append({"case": label, "seconds": min(times), "rows_per_s": data.n / min(times)})
            log(f"  {label}: {out[-1]['rows_per_s']:,.0f} rows/s")
    finally:
        writer.close()
        as_given.close()
        conn.close()
        db.reset(target)
    server = out[-1]["rows_per_s"]
    for entry in out:
        entry["vs_server"] = entry["rows_per_s"] / server
    return out


def _copy_batches(
    target: Target, batches: Sequence[PriceData], desc: str, *, index_order: bool = True
) -> list[float]:
    """copy_prices each batch (a Writer with ``index_order``); return each call's seconds."""
    latencies = []
    with Writer(target.dsn, index_order=index_order) as writer:
        _ = writer.connection
        for batch in tqdm(batches, desc=desc, unit="batch", disable=None, leave=False):
            started = time.perf_counter()
            writer.copy_prices(batch.columns)
            latencies.append(time.perf_counter() - started)
    return latencies


def _sort_ms(batches: Sequence[PriceData]) -> float:
    """Milliseconds ``PriceBatch.in_index_order`` takes on a batch (mean of up to 5)."""
    built = [b.batch() for b in batches[:5]]
    started = time.perf_counter()
    for batch in built:
        batch.in_index_order()
    return 1000 * (time.perf_counter() - started) / len(built)


def _batched_run(
    db: BenchDB, target: Target, data: PriceData, size: int, *, index_order: bool, label: str
) -> Result:
    db.reset(target)
    batches = data.split(size)
    latencies = _copy_batches(target, batches, label, index_order=index_order)
    got = summarize_prices(db, target.qualified)
    db.reset(target)
    if not matches(data.expected(), got):
        raise RuntimeError(f"{label}: wrote {got}, expected {data.expected()}")
    summary = latency_summary(latencies, [b.n for b in batches])
    log(
        f"  {label}: {summary['rows_per_s']:,.0f} rows/s, "
        f"p50 {summary['batch_p50_ms']:.1f} ms, p99 {summary['batch_p99_ms']:.1f} ms"
    )
    return {
        "case": label,
        "batch_rows": size,
        "index_order": index_order,
        "sort_ms_per_batch": _sort_ms(batches) if index_order else 0.0,
        **summary,
    }


def sorting_and_batch_sizes(
    db: BenchDB, data: PriceData, minute_data: PriceData, minute_rows: int
) -> tuple[list[Result], list[Result]]:
    """Writer(index_order=False) against the default True; batch sizes with the default."""
    log("investigation: rows in index order or not, batch sizes (copy_prices, full schema)")
    target = db.public("price_snapshots", "price_snapshots")
    sizes = sorted({min(s, data.n) for s in (1_000, 10_000, 100_000)})
    big = sizes[-1]
    runs = [(minute_data, minute_rows, "minute batches"), (data, big, f"{big:,}-row batches")]
    sorting = [
        _batched_run(
            db,
            target,
            rows,
            size,
            index_order=index_order,
            label=f"{name}, "
            + ("index_order=True (the Writer sorts)" if index_order else "index_order=False"),
        )
        for rows, size, name in runs
        for index_order in (False, True)
    ]
    batch_sizes = [
        _batched_run(
            db, target, data, size, index_order=True, label=f"{size:,}-row batches (default Writer)"
        )
        for size in sizes[:-1]
    ]
    batch_sizes.append(
        {**sorting[3], "case": f"{big:,}-row batches (default Writer)", "note": "the run above"}
    )
    return sorting, batch_sizes


def _threads(work: Sequence[Callable[[], None]]) -> float:
    errors: list[BaseException] = []

    def guarded(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # reported after join
                errors.append(exc)

        return run

    threads = [threading.Thread(target=guarded(fn)) for fn in work]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def parallel(
    db: BenchDB,
    data: PriceData,
    one_connection: Result,
    folder: Path,
    server_reads: bool,
    single_file: Result,
) -> list[Result]:
    """A backfill over 2 connections against 1: pmstore Writers in threads, and server COPYs."""
    log("investigation: backfill over 2 connections")
    target = db.public("price_snapshots", "price_snapshots")
    size = one_connection["batch_rows"]
    batches = data.split(size)
    db.reset(target)
    writers = [Writer(db.dsn) for _ in range(2)]
    for w in writers:
        _ = w.connection

    def share(writer: Writer, mine: Sequence[PriceData]) -> Callable[[], None]:
        def work() -> None:
            for batch in mine:
                writer.copy_prices(batch.columns)

        return work

    seconds = _threads([share(w, batches[i::2]) for i, w in enumerate(writers)])
    for w in writers:
        w.close()
    if not matches(data.expected(), summarize_prices(db, target.qualified)):
        raise RuntimeError("parallel copy_prices wrote other rows than expected")
    halves = [data.slice(0, data.n // 2), data.slice(data.n // 2, data.n)]
    files = [price_files(db, half, folder, f"half{i}") for i, half in enumerate(halves)]
    schema_target = db.price_table(
        "bench_p_c", "schema index", collation="C", indexes=[SCHEMA_INDEX]
    )
    db.reset(target, schema_target)

    def load(copy: ServerCopy, conn: psycopg.Connection[tuple[Any, ...]]) -> Callable[[], None]:
        def work() -> None:
            copy.load(conn, schema_target)

        return work

    copies = [
        ServerCopy(f.binary, "binary", PRICE_COLUMNS, h.n, server_reads)
        for f, h in zip(files, halves, strict=True)
    ]
    conns = [psycopg.connect(schema_target.dsn) for _ in copies]  # connected before the clock
    try:
        server_seconds = _threads([load(c, conn) for c, conn in zip(copies, conns, strict=True)])
    finally:
        for conn in conns:
            conn.close()
    loaded = summarize_prices(db, schema_target.qualified)["rows"]
    db.reset(schema_target)
    if loaded != data.n:
        raise RuntimeError(f"parallel server COPY loaded {loaded} of {data.n}")
    out = [
        {
            "case": f"copy_prices, {size:,}-row batches, 1 connection",
            "connections": 1,
            "rows_per_s": one_connection["rows_per_s"],
        },
        {
            "case": f"copy_prices, {size:,}-row batches, 2 connections (threads)",
            "connections": 2,
            "rows_per_s": data.n / seconds,
        },
        {
            "case": "server binary COPY FROM file, 1 connection",
            "connections": 1,
            "rows_per_s": single_file["rows_per_s"],
        },
        {
            "case": "server binary COPY FROM file, 2 connections (half each)",
            "connections": 2,
            "rows_per_s": data.n / server_seconds,
        },
    ]
    out[1]["speedup"] = out[1]["rows_per_s"] / out[0]["rows_per_s"]
    out[3]["speedup"] = out[3]["rows_per_s"] / out[2]["rows_per_s"]
    for entry in out:
        log(f"  {entry['case']}: {entry['rows_per_s']:,.0f} rows/s")
    return out


def settings(db: BenchDB, data: PriceData, own_server: bool, batch_rows: int) -> Result:
    """copy_prices with WAL settings changed, on the benchmark's own server only.

    Each case loads the first half of the rows (not timed), checkpoints, then
    measures the second half: its index pages existed before the checkpoint,
    so their first change writes a full-page image, as in a chunk that is
    filled across checkpoints (a fresh table's new pages would write none).
    Superuser settings (wal_compression) are set per connection; reload-only
    ones (full_page_writes) with ALTER SYSTEM, reset afterwards. A case whose
    setting does not take effect (set on the server's command line) is
    reported as skipped.
    """
    if not own_server or not db.superuser:
        reason = (
            "only on the benchmark's own embedded server (it changes the server's configuration)"
        )
        log(f"investigation: settings skipped: {reason}")
        return {"skipped": reason, "cases": []}
    log("investigation: WAL settings (copy_prices, full schema)")
    cases: list[tuple[str, dict[str, str], dict[str, str]]] = [
        ("as configured", {}, {}),
        ("wal_compression=off", {"wal_compression": "off"}, {}),
        ("wal_compression=lz4", {"wal_compression": "lz4"}, {}),
        (
            "full_page_writes=off (unsafe unless the storage cannot tear pages)",
            {},
            {"full_page_writes": "off"},
        ),
    ]
    first, second = data.slice(0, data.n // 2), data.slice(data.n // 2, data.n)
    out: list[Result] = []
    for label, session, system in cases:
        target = Target(
            "public",
            "price_snapshots",
            with_settings(db.dsn, search_path="public", **session),
            label,
        )
        try:
            for name, value in system.items():
                db.conn.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(
                        sql.Identifier(name), sql.Literal(value)
                    )
                )
            db.conn.execute("SELECT pg_reload_conf()")
            time.sleep(0.5)
            with psycopg.connect(target.dsn) as conn:
                for name, value in {**session, **system}.items():
                    row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
                    if row is None or str(row[0]) != value:
                        raise RuntimeError(
                            f"{name} stays {row[0] if row else '?'} (set on the command line?)"
                        )
            db.reset(target)
            _copy_batches(target, first.split(batch_rows), label + ", first half")
            db.checkpoint()
            lsn = db.wal_lsn()
            batches = second.split(batch_rows)
            latencies = _copy_batches(target, batches, label)
            wal = db.wal_lsn() - lsn
            summary = latency_summary(latencies, [b.n for b in batches])
            per_row = wal / second.n
            out.append({"case": label, **summary, "wal_bytes": wal, "wal_bytes_per_row": per_row})
            log(f"  {label}: {summary['rows_per_s']:,.0f} rows/s, WAL {per_row:.0f} bytes/row")
        except (psycopg.Error, RuntimeError) as exc:  # e.g. lz4 not compiled in
            reason = str(exc).strip().splitlines()[0]
            out.append({"case": label, "skipped": reason})
            log(f"  {label}: skipped ({reason})")
        finally:
            for name in system:
                db.conn.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
            db.conn.execute("SELECT pg_reload_conf()")
    db.reset(db.public("price_snapshots", "price_snapshots"))
    return {
        "fsync": str(db.scalar("SHOW fsync")),
        "batch_rows": batch_rows,
        "cases": out,
        "note": "second half of the rows, measured after loading the first half and a CHECKPOINT: "
        "the first change to each existing page writes a full-page image",
    }


def recommendations(result: Result) -> list[str]:
    """Plain statements drawn from the numbers (the lead decides)."""
    out: list[str] = []
    variants = {v["variant"]: v for v in result["index_variants"]}
    rows = list(variants.values())
    schema, none = rows[1], rows[0]
    out.append(
        f"index cost: server binary COPY runs at {schema['rows_per_s']:,.0f} rows/s with the "
        f"schema's index, {none['rows_per_s']:,.0f} without "
        f"({none['rows_per_s'] / schema['rows_per_s']:.2f}x)"
    )
    for v in rows[2:]:
        out.append(f"{v['variant']}: {v['vs_schema']:.2f}x the schema's rate")
    costs = [c["vs_server"] for c in result["client_cost"]]
    out.append(
        "client cost (table without indexes), vs the server's binary COPY: copy_prices "
        f"{costs[0]:.2f}x; without the sort {costs[1]:.2f}x; and without the digest "
        f"{costs[2]:.2f}x; pmstore's encoder alone into psycopg {costs[4]:.2f}x (encoding "
        "overlaps the server's work; sorting, validation and the digest precede the COPY)"
    )
    for unsorted, sorted_ in (result["sorting"][0:2], result["sorting"][2:4]):
        gain = sorted_["rows_per_s"] / unsorted["rows_per_s"] - 1
        out.append(
            f"index_order=True against False, {unsorted['batch_rows']:,}-row batches: "
            f"{gain:+.0%} rows/s, p99 {sorted_['batch_p99_ms']:.0f} vs "
            f"{unsorted['batch_p99_ms']:.0f} ms (the sort, ~{sorted_['sort_ms_per_batch']:.1f} "
            "ms a batch, counted). The encoder regroups a chunk's rows by token length and "
            "NULL pattern, so a sorted batch reaches the server as ~10 sorted runs; the "
            "server loading a fully sorted file shows the ceiling"
        )
    best = max(result["batch_sizes"], key=lambda r: r["rows_per_s"])
    out.append(
        "batch size: "
        + ", ".join(
            f"{r['batch_rows']:,} -> {r['rows_per_s']:,.0f} rows/s" for r in result["batch_sizes"]
        )
        + f"; best {best['batch_rows']:,}"
    )
    par = result["parallel"]
    out.append(
        f"2 connections: copy_prices {par[1]['speedup']:.2f}x, "
        f"server COPY {par[3]['speedup']:.2f}x "
        "the single-connection rate"
    )
    cases = [c for c in result["settings"].get("cases", []) if "rows_per_s" in c]
    if cases:
        base = cases[0]
        for c in cases[1:]:
            out.append(
                f"{c['case']}: {c['rows_per_s'] / base['rows_per_s']:.2f}x rows/s, "
                f"WAL {c['wal_bytes_per_row']:.0f} vs {base['wal_bytes_per_row']:.0f} bytes/row"
            )
        day_wal = base["wal_bytes_per_row"] * 11_520_000
        out.append(
            f"WAL for the planned day (11.52M rows) at {base['wal_bytes_per_row']:.0f} bytes/row: "
            f"~{day_wal / 2**30:.1f} GiB (an upper bound: every index page of a half-full chunk "
            "pays its full-page image again after each checkpoint)"
        )
    return out


def investigate(
    db: BenchDB,
    data: PriceData,
    minute_data: PriceData,
    minute_rows: int,
    folder: Path,
    server_reads: bool,
    own_server: bool,
    repeat: int = 1,
) -> Result:
    """Every part of the investigation, and the statements drawn from it."""
    started = time.perf_counter()
    files = price_files(db, data, folder, "investigate")
    variants = index_variants(db, data, files, folder, server_reads, repeat)
    costs = client_cost(db, data, files, server_reads)
    sorting, batch_sizes = sorting_and_batch_sizes(db, data, minute_data, minute_rows)
    result: Result = {
        "title": "Investigation: index maintenance, client cost, sorting, batch size, "
        "parallelism, settings",
        "rows": data.n,
        "index_variants": variants,
        "client_cost": costs,
        "sorting": sorting,
        "batch_sizes": batch_sizes,
        "parallel": parallel(db, data, sorting[3], folder, server_reads, variants[1]),
        "settings": settings(db, data, own_server, sorting[3]["batch_rows"]),
    }
    result["recommendations"] = recommendations(result)
    result["seconds"] = time.perf_counter() - started
    return result
