"""``pmstore ingest`` on the real payloads in tests/fixtures/polymarket, twice, and on odd files."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from conftest import TestServer, polymarket_fixture, polymarket_fixture_files

from pmstore.ingest._sources import open_source
from pmstore.polymarket import convert


def run_ingest(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``pmstore ingest`` in a subprocess. The fixtures are captures of 2024-2025, older
    than the Community edition's 90-day retention: written anyway, as a replay of an old
    archive would ask (``--beyond-retention write``; the refusal is tested in test_aggregates)."""
    env = {k: v for k, v in os.environ.items() if k != "PMSTORE_DSN"}
    command = [sys.executable, "-P", "-m", "pmstore", "ingest", "--dsn", dsn, "--no-progress"]
    return subprocess.run(
        [*command, "--beyond-retention", "write", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def table_counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {
            t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
            for t in ("markets", "resolutions", "price_snapshots", "orderbook_snapshots", "trades")
        }


def expected(files: list[Path]) -> dict[str, Any]:
    """What the adapters make of the files, de-duplicated the way the tables key them."""
    markets: dict[str, Any] = {}
    resolutions: set[str] = set()
    prices = books = 0
    trades: set[tuple[str, Any]] = set()
    rejects = 0
    for path in files:
        with open_source(path) as source:
            payloads = [item.payload for item in source.items()]
        for payload in payloads:
            got = convert(payload)
            for m in got.markets:
                markets[m.condition_id] = m
            resolutions.update(r.condition_id for r in got.resolutions)
            prices += len(got.prices)
            books += len(got.orderbooks)
            trades.update((t.trade_id or "", t.ts) for t in got.trades)
            rejects += len(got.rejects)
    return {
        "markets": len(markets),
        "resolutions": len(resolutions),
        "price_snapshots": prices,
        "orderbook_snapshots": books,
        "rejects": rejects,
        "trades_with_ids": trades,
    }


def test_ingest_shared_payloads_twice(server: TestServer, tmp_path: Path) -> None:
    dsn = server.create_database("t_ingest_shared")
    files = polymarket_fixture_files()
    want = expected(files)
    try:
        rejects_file = tmp_path / "rejects.jsonl"
        first = run_ingest(dsn, *map(str, files), "--rejects", str(rejects_file))
        assert first.returncode == 0, first.stderr
        counts = table_counts(dsn)
        for table in ("markets", "resolutions", "price_snapshots", "orderbook_snapshots"):
            assert counts[table] == want[table], table
        assert counts["trades"] == len(want["trades_with_ids"]) >= 1
        assert counts["markets"] > 1000
        assert f"rejected: {want['rejects']} payload part(s)" in first.stdout
        lines = rejects_file.read_text().splitlines()
        assert len(lines) == want["rejects"]
        for line in lines:
            record = json.loads(line)
            assert record["reason"] and record["file"].endswith(".json") and record["where"]

        second = run_ingest(dsn, *map(str, files))
        assert second.returncode == 0, second.stderr
        assert table_counts(dsn) == counts
        for table in ("markets", "resolutions", "price_snapshots", "orderbook_snapshots", "trades"):
            assert f"{table}" in second.stdout
            line = next(x for x in second.stdout.splitlines() if x.strip().startswith(table))
            assert " 0 row(s) written" in line, line
    finally:
        server.drop_database("t_ingest_shared")


def test_ingest_json_lines_gzip_and_bad_files(server: TestServer, tmp_path: Path) -> None:
    dsn = server.migrated_database("t_ingest_formats")
    try:
        book = json.loads(
            polymarket_fixture("nautilus_trader/py_http_responses__book.json").read_text()
        )
        ws_book = json.loads(  # the WebSocket `book` event: "0.001", "9000023.58", ...
            polymarket_fixture("nautilus_trader/py_ws_messages__book.json").read_text()
        )
        trades = json.loads(
            polymarket_fixture("nautilus_trader/py_http_responses__trades.json").read_text()
        )
        lines = tmp_path / "mixed.jsonl.gz"
        with gzip.open(lines, "wt") as out:
            out.write(json.dumps(book) + "\n\n")
            out.write(json.dumps(ws_book) + "\n")
            for trade in trades if isinstance(trades, list) else [trades]:
                out.write(json.dumps(trade) + "\n")
            out.write(json.dumps({"what": "is this"}) + "\n")
        done = run_ingest(dsn, str(lines))
        assert done.returncode == 0, done.stderr
        counts = table_counts(dsn)
        assert counts["orderbook_snapshots"] == 2
        with psycopg.connect(dsn) as conn:  # every level the source's decimal, best-first
            stored = conn.execute(
                "SELECT o.token_id, s.side, (l.pair->>0)::numeric, (l.pair->>1)::numeric "
                "FROM orderbook_snapshots o, LATERAL (VALUES ('bids', o.bids), ('asks', o.asks)) "
                "AS s(side, levels), jsonb_array_elements(s.levels) WITH ORDINALITY AS l(pair, k) "
                "ORDER BY o.token_id, s.side, l.k"
            ).fetchall()
        source = [
            (payload["asset_id"], side, Decimal(level["price"]), Decimal(level["size"]))
            for payload in sorted((book, ws_book), key=lambda p: str(p["asset_id"]))
            for side, best_first in (("asks", False), ("bids", True))
            for level in sorted(
                payload[side], key=lambda v: Decimal(v["price"]), reverse=best_first
            )
        ]
        assert stored == source and (Decimal("0.001") in {row[2] for row in stored})
        assert counts["trades"] == len(trades if isinstance(trades, list) else [trades])
        assert "rejected: 1 payload part(s)" in done.stdout and "unknown" in done.stdout

        broken = tmp_path / "broken.json"
        broken.write_text('{"event_type": "book", \n not json at all')
        done = run_ingest(dsn, str(broken))
        assert done.returncode == 1
        assert done.stderr.startswith("pmstore: error:") and "line 2" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        missing = run_ingest(dsn, str(tmp_path / "nope.json"))
        assert missing.returncode == 1 and "no such file" in missing.stderr
        assert table_counts(dsn) == counts
    finally:
        server.drop_database("t_ingest_formats")


def test_ingest_data_api_v2_resolutions_keeps_each_status_and_never_goes_back(
    server: TestServer, tmp_path: Path
) -> None:
    """Issue 23: v2 rows without payouts are stored with their status; the stale polls of
    the lifecycle file never move its condition back, whether the file is one batch
    (ingest keeps the record that is furthest along) or one transaction per payload
    (the upsert's guard)."""
    by_condition = json.loads(
        polymarket_fixture("data_api_v2/resolutions_by_condition.json").read_text()
    )["data"]
    lifecycle = json.loads(
        polymarket_fixture("data_api_v2/resolution_lifecycle_one_condition.json").read_text()
    )
    lines = tmp_path / "polls.jsonl"  # one poll's response per line, in arrival order
    lines.write_text("".join(json.dumps(page) + "\n" for page in lifecycle))
    files = [
        str(polymarket_fixture(f"data_api_v2/{name}.json"))
        for name in ("resolutions_by_condition", "resolutions_by_question")
    ]
    for db, extra in (("t_ingest_v2_batch", ()), ("t_ingest_v2_each", ("--batch-rows", "1"))):
        dsn = server.migrated_database(db)
        try:
            rejects = tmp_path / f"{db}.rejects.jsonl"
            done = run_ingest(dsn, *files, str(lines), "--rejects", str(rejects), *extra)
            assert done.returncode == 0, done.stderr
            with psycopg.connect(dsn) as conn:
                stored = {
                    row[0]: row[1:]
                    for row in conn.execute(
                        "SELECT condition_id, status, payout_price, winner_token_id "
                        "FROM resolutions"
                    ).fetchall()
                }
            for row in by_condition:
                status, payout, winner = stored[row["condition_id"]]
                assert status == row["status"] and winner is None
                if row.get("payouts") is None:
                    assert payout is None
            cid = lifecycle[0]["data"][0]["condition_id"]
            assert stored[cid] == ("resolved", 1.0, None), db
            assert len(stored) == len(by_condition) + 1
            (reject,) = [json.loads(x) for x in rejects.read_text().splitlines()]
            assert reject["kind"] == "data_resolution"
            assert reject["reason"].startswith("question-keyed row")
        finally:
            server.drop_database(db)
