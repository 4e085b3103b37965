"""The benchmark scenarios: each returns a JSON-ready dict of its measurements.

1. ``encode``        pmstore's client-side work alone (no database)
2. ``prices_full``   price snapshots into the full schema, every method
3. ``prices_noindex`` the same into a hypertable without indexes
4. ``orderbooks``    realistic order books, every method
5. ``trades``        copy_trades with repeated fills
6. ``day``           the planned day: 8,000 tokens every minute through copy_prices
plus ``rss``: a writer process's peak memory over 1M rows in 10k-row batches.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from bench_data import PRICE_COLUMNS, BookData, PriceData, collected, minute, summarize_books
from bench_methods import Method, Run, UnavailableError
from bench_server import BenchDB, Target
from tqdm import tqdm

from pmstore import OrderbookBatch, PriceBatch, Writer
from pmstore._write.encoding import encode_orderbooks, encode_prices
from pmstore.synthetic import MarketSimulator

Result = dict[str, Any]


def log(message: str) -> None:
    """Progress for people, on stderr (stdout carries the report)."""
    print(message, file=sys.stderr, flush=True)


def matches(expected: dict[str, Any], got: dict[str, Any]) -> bool:
    """Whether a table holds the expected rows (sums of floats to 0.01)."""
    for key, want in expected.items():
        have = got.get(key)
        if isinstance(want, float):
            if have is None or abs(float(have) - want) > 0.01:
                return False
        elif have != want:
            return False
    return True


def compare(
    db: BenchDB,
    target: Target,
    methods: Sequence[Method],
    data: Any,
    summarize: Callable[[], dict[str, Any]],
    expected: dict[str, Any],
    repeat: int = 1,
) -> list[Result]:
    """Run every method on the same data into an emptied ``target``; check what each wrote.

    With ``repeat`` > 1 the methods run in rounds (all once, then all again)
    so that a disturbance hits them alike; the best run counts, all are kept.
    The first method is the baseline: every ``vs_baseline`` is rows/s over its rows/s.
    """
    runs: dict[str, list[Run]] = {m.name: [] for m in methods}
    skipped: dict[str, str] = {}
    for round_ in range(repeat):
        for method in methods:
            if method.name in skipped:
                continue
            db.reset(target)
            log(f"  {method.name}" + (f" (round {round_ + 1}/{repeat})" if repeat > 1 else ""))
            try:
                run = method.run(target, data)
            except UnavailableError as exc:
                log(f"    skipped: {exc}")
                skipped[method.name] = str(exc)
                continue
            got = summarize()
            full = run.rows == expected["rows"]
            if not (matches(expected, got) if full else got["rows"] == run.rows):
                raise RuntimeError(
                    f"{method.name} wrote {got}, expected {expected} ({run.rows} rows sent)"
                )
            runs[method.name].append(run)
            log(f"    {run.rows_per_s:,.0f} rows/s ({run.seconds:.2f} s)")
    db.reset(target)
    out: list[Result] = []
    for method in methods:
        entry: Result = {"method": method.name, "group": method.group}
        if method.name in skipped:
            out.append({**entry, "skipped": skipped[method.name]})
            continue
        best = min(runs[method.name], key=lambda r: r.seconds)
        out.append(
            {
                **entry,
                "rows": best.rows,
                "seconds": best.seconds,
                "rows_per_s": best.rows_per_s,
                "all_rows_per_s": [r.rows_per_s for r in runs[method.name]],
                "note": best.note,
                "verified": True,
                "skipped": None,
            }
        )
    base = out[0].get("rows_per_s") or 0.0
    for entry in out:
        if entry.get("rows_per_s") and base:
            entry["vs_baseline"] = entry["rows_per_s"] / base
    return out


# -- 1. encode only ------------------------------------------------------------------------------


def _best(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def _item(name: str, rows: int, seconds: float, nbytes: int | None = None, **extra: Any) -> Result:
    item: Result = {"name": name, "rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}
    if nbytes is not None:
        item["bytes"] = nbytes
        item["mib_per_s"] = nbytes / seconds / (1 << 20)
    return {**item, **extra}


def encode(prices: PriceData, books: BookData, repeat: int = 3) -> Result:
    """pmstore's client-side costs, best of ``repeat``: build+validate, digest, encode."""
    log("scenario 1: encode only")
    batch = prices.batch().validated()
    nbytes = sum(map(len, encode_prices(batch)))
    book_bytes = sum(map(len, encode_orderbooks(books.batch)))
    items = [
        _item(
            "encode_prices (binary COPY)",
            prices.n,
            _best(repeat, lambda: sum(map(len, encode_prices(batch)))),
            nbytes,
        ),
        _item(
            "PriceBatch.from_columns + validated()",
            prices.n,
            _best(repeat, lambda: PriceBatch.from_columns(prices.columns).validated()),
        ),
        _item(
            "PriceBatch.content_digest (batch id)", prices.n, _best(repeat, batch.content_digest)
        ),
        _item(
            "encode_orderbooks (binary COPY)",
            books.n,
            _best(repeat, lambda: sum(map(len, encode_orderbooks(books.batch)))),
            book_bytes,
            levels_per_book=books.levels / max(books.n, 1),
        ),
        _item("OrderbookBatch.validated()", books.n, _best(repeat, books.batch.validated)),
        _item(
            "OrderbookBatch.content_digest (batch id)",
            books.n,
            _best(repeat, books.batch.content_digest),
        ),
        _item(
            "numpy columns -> tuples (the Python peers' input, not timed there)",
            prices.n,
            _best(1, lambda: PriceData(prices.columns).rows),
        ),
        _item(
            "OrderbookBatch.from_columns (string levels) + validated()",
            books.n,
            _best(repeat, lambda: OrderbookBatch.from_columns(books.raw).validated()),
        ),
    ]
    for item in items:
        log(f"  {item['name']}: {item['rows_per_s']:,.0f} rows/s")
    return {
        "title": "1. Encode only (no database)",
        "items": items,
        "prices": prices.label,
        "books": books.label,
    }


# -- 2/3. prices ------------------------------------------------------------------------------


def prices(
    db: BenchDB,
    target: Target,
    methods: Sequence[Method],
    data: PriceData,
    title: str,
    summarize: Callable[[], dict[str, Any]],
    repeat: int = 1,
) -> Result:
    log(title)
    results = compare(db, target, methods, data, summarize, data.expected(), repeat)
    return {
        "title": title,
        "table": f"{target.schema}.{target.table}",
        "data": data.label,
        "rows": data.n,
        "methods": results,
    }


# -- 4. order books ----------------------------------------------------------------------------


def orderbooks(db: BenchDB, methods: Sequence[Method], data: BookData, repeat: int = 1) -> Result:
    title = "4. Order-book snapshots -> orderbook_snapshots (full schema)"
    log(title)
    target = db.public("orderbook_snapshots", "orderbook_snapshots")
    results = compare(
        db, target, methods, data, lambda: summarize_books(db), data.expected(), repeat
    )
    for entry in results:
        if entry.get("rows_per_s"):
            entry["levels_per_s"] = entry["rows_per_s"] * data.levels / max(data.n, 1)
    return {
        "title": title,
        "table": "public.orderbook_snapshots",
        "data": data.label,
        "rows": data.n,
        "levels": data.levels,
        "methods": results,
    }


# -- 5. trades ---------------------------------------------------------------------------------


def trades(db: BenchDB, n: int, batch_rows: int, duplicate_fraction: float = 0.05) -> Result:
    title = f"5. Trades with {duplicate_fraction:.0%} repeated fills -> trades (copy_trades)"
    log(title)
    sim = MarketSimulator(8_000, seed=3)
    batches = [
        sim.trades(minute(k), min(batch_rows, n - k * batch_rows), duplicate_fraction)
        for k in range(math.ceil(n / batch_rows))
    ]
    distinct = len(
        {key for b in batches for key in zip(b.trade_id.tolist(), b.ts.tolist(), strict=True)}
    )
    target = db.public("trades", "trades")
    db.reset(target)
    inserted = skipped = 0
    latencies = []
    with Writer(db.dsn) as writer:
        _ = writer.connection
        for batch in batches:
            started = time.perf_counter()
            result = writer.copy_trades(batch)
            latencies.append(time.perf_counter() - started)
            inserted += result.rows_written
            skipped += result.duplicates_skipped
    stored = int(db.scalar("SELECT count(*) FROM public.trades"))
    db.reset(target)
    if not inserted == stored == distinct:
        raise RuntimeError(
            f"trades: {inserted} inserted, {stored} stored, {distinct} distinct generated"
        )
    seconds = sum(latencies)
    log(f"  {n / seconds:,.0f} rows/s; {inserted:,} inserted, {skipped:,} duplicates skipped")
    return {
        "title": title,
        "rows": n,
        "batches": len(batches),
        "batch_rows": batch_rows,
        "rows_inserted": inserted,
        "duplicates_skipped": skipped,
        "seconds": seconds,
        "rows_per_s": n / seconds,
        "batch_p50_ms": float(np.percentile(latencies, 50) * 1000),
        "batch_p99_ms": float(np.percentile(latencies, 99) * 1000),
        "verified": True,
    }


# -- 6. the planned day ------------------------------------------------------------------------


def timed_batches(writer: Writer, batches: Iterable[dict[str, Any]]) -> list[float]:
    """Write each batch with ``copy_prices``; return each call's seconds."""
    latencies = []
    for columns in batches:
        started = time.perf_counter()
        writer.copy_prices(columns)
        latencies.append(time.perf_counter() - started)
    return latencies


def latency_summary(latencies: Sequence[float], rows_per_batch: Sequence[int]) -> Result:
    seconds = float(sum(latencies))
    rows = int(sum(rows_per_batch))
    return {
        "batches": len(latencies),
        "rows": rows,
        "seconds": seconds,
        "rows_per_s": rows / seconds if seconds else 0.0,
        "batch_p50_ms": float(np.percentile(latencies, 50) * 1000),
        "batch_p99_ms": float(np.percentile(latencies, 99) * 1000),
        "batch_max_ms": float(max(latencies) * 1000),
    }


def day(db: BenchDB, minutes: int, tokens: int) -> Result:
    title = (
        f"6. The planned day: {tokens:,} tokens every minute, "
        f"{minutes:,} minute batches via copy_prices"
    )
    log(title)
    target = db.public("price_snapshots", "price_snapshots")
    db.reset(target)
    sim = MarketSimulator(tokens, seed=4)
    latencies: list[float] = []
    new_pages: list[int] = []  # index pages each batch added (after the clock stopped)
    wal: list[int] = []
    index_before, lsn_before = db.index_bytes(target), db.wal_lsn()
    started = time.perf_counter()
    with Writer(db.dsn) as writer:
        _ = writer.connection
        for k in tqdm(range(minutes), desc="day", unit="min", disable=None, file=sys.stderr):
            batch = sim.prices(minute(k))
            columns = collected({c: getattr(batch, c) for c in PRICE_COLUMNS})  # as parsed
            latencies += timed_batches(writer, [columns])
            index_after, lsn_after = db.index_bytes(target), db.wal_lsn()
            new_pages.append((index_after - index_before) // 8192)
            wal.append(lsn_after - lsn_before)
            index_before, lsn_before = index_after, lsn_after
    elapsed = time.perf_counter() - started
    heap, index = db.table_bytes(target)
    stored = int(db.scalar("SELECT count(*) FROM public.price_snapshots"))
    db.reset(target)
    if stored != minutes * tokens:
        raise RuntimeError(f"day: {stored} rows stored, {minutes * tokens} written")
    summary = latency_summary(latencies, [tokens] * minutes)
    deciles = []
    for part in np.array_split(np.arange(minutes), min(10, minutes)):
        lat = [latencies[i] for i in part.tolist()]
        deciles.append(
            {
                "minutes": [int(part[0]), int(part[-1])],
                "rows_per_s": tokens * len(lat) / sum(lat),
                "batch_p50_ms": float(np.percentile(lat, 50) * 1000),
            }
        )
    realtime = minutes * 60.0 / summary["seconds"]
    splits = _split_waves(latencies, new_pages, tokens, summary["batch_p99_ms"])
    log(
        f"  {summary['rows_per_s']:,.0f} rows/s, {realtime:,.0f}x real time, "
        f"p50 {summary['batch_p50_ms']:.0f} ms, p99 {summary['batch_p99_ms']:.0f} ms"
    )
    return {
        "title": title,
        "tokens": tokens,
        "minutes": minutes,
        **summary,
        "elapsed_with_generation_s": elapsed,
        "realtime_ratio": realtime,
        "deciles": deciles,
        "latencies_ms": [round(s * 1000, 3) for s in latencies],
        "heap_bytes": heap,
        "index_bytes": index,
        "index_pages_added": new_pages,
        "wal_bytes": wal,
        "split_waves": splits,
        "note": "seconds = sum of copy_prices calls (from numpy columns of token ids and floats "
        "parsed from JSON); data generation and the size probes after each batch excluded",
    }


def _split_waves(
    latencies: Sequence[float], new_pages: Sequence[int], tokens: int, p99_ms: float
) -> Result:
    """Batches during which the index grew by a burst of pages (B-tree leaf splits), and their cost.

    Every token gains one row a minute, so its leaf pages fill in step: after
    a 50/50 split they are full again together, and one batch then splits a
    large share of them.
    """
    threshold = max(tokens // 16, 8)  # pages in one batch
    waves = [i for i, pages in enumerate(new_pages) if pages >= threshold]
    calm = [s for i, s in enumerate(latencies) if i not in set(waves)]
    slowest = [i for i, s in enumerate(latencies) if s * 1000 >= p99_ms]
    return {
        "threshold_pages": threshold,
        "batches": waves,
        "mean_pages": float(np.mean([new_pages[i] for i in waves])) if waves else 0.0,
        "mean_ms": float(np.mean([latencies[i] for i in waves]) * 1000) if waves else None,
        "mean_ms_other": float(np.mean(calm) * 1000) if calm else None,
        "slowest_batches": slowest,
        "slowest_in_waves": len(set(slowest) & set(waves)),
    }


# -- RSS ---------------------------------------------------------------------------------------


def rss(db: BenchDB, batches: int, batch_rows: int) -> Result:
    """Run ``bench_rss.py`` in a fresh process and return its figures."""
    log(f"peak RSS: {batches} batches of {batch_rows:,} rows via copy_prices in a fresh process")
    target = db.public("price_snapshots", "price_snapshots")
    db.reset(target)
    script = Path(__file__).with_name("bench_rss.py")
    env = {**os.environ, "PMSTORE_BENCH_DSN": db.dsn}
    done = subprocess.run(
        [sys.executable, str(script), "--batches", str(batches), "--rows", str(batch_rows)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    db.reset(target)
    if done.returncode != 0:
        raise RuntimeError(
            f"bench_rss.py failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
        )
    result: Result = json.loads(done.stdout.strip().splitlines()[-1])
    log(f"  growth {result['growth_mb']:.1f} MB over the interpreter's baseline")
    return {
        "title": f"Peak RSS of a writer process: {batches} x {batch_rows:,} rows via copy_prices",
        **result,
    }
