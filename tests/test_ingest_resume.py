"""``pmstore ingest`` streams, resumes exactly once and continues grown files, on a real server.

Every run is the real command in a subprocess. Kills are deterministic and come
from the tests: the command talks to the server through ``fault_proxy``, which
SIGKILLs it once the server committed its N-th writing transaction (before the
command hears so), and a lock held by the test stops it inside a transaction
(rows and cursor written, not committed) until the test kills it.
Each result is compared with one clean run of the same content: row counts
and a digest of every stored value.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from conftest import TestServer
from fault_proxy import pg_proxy
from test_ingest_columnar import realistic

from pmstore.writer import Writer

TABLES = ("price_snapshots", "orderbook_snapshots", "trades", "markets", "resolutions")
DIGESTS = {
    "price_snapshots": "ts, token_id, price",
    "orderbook_snapshots": "ts, token_id, bids::text, asks::text, spread, midpoint",
    "trades": "ts, token_id, side, price, size, trade_id",
    "markets": "condition_id, question, active, closed",
    "resolutions": "condition_id, status, winner_token_id",
}
NEW_MARKET = {
    "event_type": "new_market",
    "id": "1",
    "question": "Will it rain?",
    "market": "0x" + "ab" * 32,
    "slug": "rain",
    "assets_ids": ["1" * 76, "2" * 77],
    "outcomes": ["Yes", "No"],
    "timestamp": "1764547200000",
}


def command(dsn: str, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "PMSTORE_DSN"}
    return subprocess.Popen(
        [sys.executable, "-P", "-m", "pmstore", "ingest", "--dsn", dsn, "--no-progress", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def ingest(
    dsn: str, *args: str, kill_after_commit: int | None = None
) -> subprocess.CompletedProcess[str]:
    """``pmstore ingest ARGS``; with ``kill_after_commit=N`` it is killed (SIGKILL) once the
    server committed its N-th writing transaction, before it hears so (``fault_proxy``)."""
    if kill_after_commit is None:
        proc = command(dsn, *args)
        out, err = proc.communicate(timeout=600)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    with pg_proxy(dsn) as proxy:
        proxy.kill_after_writes(kill_after_commit, Writer.APPLICATION_NAME)
        proc = command(proxy.dsn(dsn), *args)
        proxy.victim(proc.pid)
        out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def state(dsn: str) -> dict[str, tuple[int, str]]:
    """Rows and an md5 of every stored value, per table."""
    with psycopg.connect(dsn) as conn:
        out = {}
        for table, cols in DIGESTS.items():
            row = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                f"FROM (SELECT {cols} FROM {table}) t"
            ).fetchone()
            assert row is not None
            out[table] = (int(row[0]), str(row[1]))
        return out


def archive_lines(n: int, seed: int = 3) -> list[bytes]:
    """Realistic messages, plus a market, an unknown payload, a line that is not JSON and a
    trade that only the general path takes (a JSON number for its timestamp)."""
    lines = [orjson.dumps(m) for m in realistic(n, seed=seed)]
    trade = next(m for m in realistic(200, seed=seed + 1) if m["event_type"] == "last_trade_price")
    lines.insert(n // 4, orjson.dumps({**trade, "timestamp": int(trade["timestamp"])}))
    lines.insert(5, orjson.dumps(NEW_MARKET))
    lines.insert(n // 2, b'{"event_type": "mystery"}')
    lines.insert(n // 3, b"{not json")
    return lines


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return archive_lines(1_500)


@pytest.fixture(scope="module")
def clean(server: TestServer, tmp_path_factory: pytest.TempPathFactory, lines: list[bytes]) -> Any:
    """One clean run of the archive: what every other run must end with."""
    path = tmp_path_factory.mktemp("clean") / "clean.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    dsn = server.migrated_database("t_ingest_clean")
    done = ingest(dsn, str(path), "--batch-rows", "400")
    assert done.returncode == 0, done.stderr
    assert "1 payload(s) of the hot kinds (0.1%) took the general path" in done.stdout
    result = state(dsn)
    server.drop_database("t_ingest_clean")
    assert result["price_snapshots"][0] > 1_500 and result["orderbook_snapshots"][0] > 100
    assert result["trades"][0] > 20 and result["markets"][0] == 1
    return result


def fresh(server: TestServer, name: str) -> str:
    return server.migrated_database(name)


@pytest.mark.parametrize("gz", [False, True], ids=["jsonl", "gzip"])
@pytest.mark.parametrize("kill_after", [1, 2, 4, 7])
def test_killed_after_any_commit_then_rerun_writes_every_row_once(
    server: TestServer,
    tmp_path: Path,
    lines: list[bytes],
    clean: Any,
    kill_after: int,
    gz: bool,
) -> None:
    data = b"\n".join(lines) + b"\n"
    path = tmp_path / ("a.jsonl.gz" if gz else "a.jsonl")
    path.write_bytes(gzip.compress(data) if gz else data)
    dsn = fresh(server, f"t_ingest_kill_{kill_after}_{int(gz)}")
    try:
        killed = ingest(dsn, str(path), "--batch-rows", "400", kill_after_commit=kill_after)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        partial = state(dsn)
        assert partial != clean  # it did stop half way
        # Other batch sizes than the killed run: segments are cut elsewhere.
        done = ingest(dsn, str(path), "--batch-rows", "250")
        assert done.returncode == 0, done.stderr
        assert "resumed at" in done.stdout
        assert state(dsn) == clean
        again = ingest(dsn, str(path))
        assert "nothing new since the last run" in again.stdout
        assert state(dsn) == clean
    finally:
        server.drop_database(f"t_ingest_kill_{kill_after}_{int(gz)}")


# Ends its own backend once, inside the transaction of the first trades merge: after
# that segment's rows were COPYed and its cursor moved, before the commit. A
# sequence is not rolled back with the transaction, so the fault fires only once.
KILL_ONCE_SQL = """
    CREATE SEQUENCE pmstore_test_kill_once;
    CREATE FUNCTION pmstore_test_kill_once() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF nextval('pmstore_test_kill_once') = 1 THEN
            PERFORM pg_terminate_backend(pg_backend_pid());
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER pmstore_test_kill_once BEFORE INSERT ON trades
        FOR EACH STATEMENT EXECUTE FUNCTION pmstore_test_kill_once();
"""


def test_killed_inside_a_transaction_after_its_rows_and_cursor(
    server: TestServer, tmp_path: Path, lines: list[bytes], clean: Any
) -> None:
    """The server ends the ingest's connection inside a transaction that already holds
    rows and a moved cursor; the Writer reconnects and retries: every row once."""
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    dsn = fresh(server, "t_ingest_kill_inside")
    try:
        first = ingest(dsn, str(path), "--batch-rows", "400", kill_after_commit=3)
        assert first.returncode == -signal.SIGKILL
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(KILL_ONCE_SQL)
        done = ingest(dsn, str(path), "--batch-rows", "400")
        assert done.returncode == 0, done.stderr
        with psycopg.connect(dsn, autocommit=True) as conn:
            fired = conn.execute("SELECT last_value FROM pmstore_test_kill_once").fetchone()
            conn.execute("DROP TRIGGER pmstore_test_kill_once ON trades")
        assert fired is not None and fired[0] >= 1  # the fault did end a transaction
        assert "retrying" in done.stderr  # ... and the Writer retried it
        assert state(dsn) == clean
    finally:
        server.drop_database("t_ingest_kill_inside")


def test_grown_file_is_continued_without_duplicates(
    server: TestServer, tmp_path: Path, lines: list[bytes], clean: Any
) -> None:
    data = b"\n".join(lines) + b"\n"
    cut = data.index(b"\n", len(data) // 2) + 40  # the first run sees half a line at the end
    path = tmp_path / "growing.jsonl"
    path.write_bytes(data[:cut])
    dsn = fresh(server, "t_ingest_grown")
    try:
        first = ingest(dsn, str(path), "--batch-rows", "400")
        assert first.returncode == 0, first.stderr
        assert "unfinished line, left for the next run" in first.stdout
        with path.open("ab") as out:
            out.write(data[cut:])
        second = ingest(dsn, str(path), "--batch-rows", "400")
        assert second.returncode == 0, second.stderr
        assert "resumed at" in second.stdout
        assert state(dsn) == clean
        # The same content under another name, gzipped: the same file, nothing new.
        copy = tmp_path / "copy.jsonl.gz"
        copy.write_bytes(gzip.compress(data))
        third = ingest(dsn, str(copy))
        assert "nothing new since the last run" in third.stdout
        assert state(dsn) == clean
    finally:
        server.drop_database("t_ingest_grown")


def test_rewritten_file_is_refused(server: TestServer, tmp_path: Path, lines: list[bytes]) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\n".join(lines[:300]) + b"\n")
    dsn = fresh(server, "t_ingest_rewritten")
    try:
        assert ingest(dsn, str(path)).returncode == 0
        before = state(dsn)
        head = b"\n".join(lines[:250]) + b"\n"  # the same first 64 KiB, then other lines
        path.write_bytes(head + b'{"event_type": "x"}\n' + b"\n".join(lines[260:400]) + b"\n")
        done = ingest(dsn, str(path))
        assert done.returncode == 1
        assert "changed since" in done.stderr or "rewritten" in done.stderr
        assert state(dsn) == before
    finally:
        server.drop_database("t_ingest_rewritten")


def test_array_document_and_lines_give_the_same_rows_and_rejects(
    server: TestServer, tmp_path: Path, lines: list[bytes], clean: Any
) -> None:
    payloads = [json.loads(line) for line in lines if line != b"{not json"]
    array = tmp_path / "a.json"
    array.write_text(json.dumps(payloads, indent=1))  # pretty-printed: streamed by ijson
    dsn = fresh(server, "t_ingest_array")
    rejects = tmp_path / "rejects.jsonl"
    try:
        killed = ingest(dsn, str(array), "--batch-rows", "400", kill_after_commit=2)
        assert killed.returncode == -signal.SIGKILL
        done = ingest(dsn, str(array), "--batch-rows", "250", "--rejects", str(rejects))
        assert done.returncode == 0, done.stderr
        assert state(dsn) == clean
        got = [json.loads(x) for x in rejects.read_text().splitlines()]
        assert [r["kind"] for r in got] == ["unknown"]
        assert got[0]["where"].startswith("item ") and got[0]["payload"] == {
            "event_type": "mystery"
        }
    finally:
        server.drop_database("t_ingest_array")


def test_rejects_file_keeps_every_rejected_part_with_its_reason(
    server: TestServer, tmp_path: Path, lines: list[bytes]
) -> None:
    odd = [
        b'{"event_type": "tick_size_change", "asset_id": "1", "old_tick_size": "0.01"}',
        b'{"event_type": "price_change", "market": "0x1", "asset_id": "5", "changes": []}',
        b'{"event_type": "book", "asset_id": "7", "timestamp": "1", "bids": [], "asks": "x"}',
        b"[1, 2",
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines[:200] + odd + lines[200:800]) + b"\n")
    dsn = fresh(server, "t_ingest_rejects")
    rejects = tmp_path / "rejects.jsonl"
    try:
        done = ingest(dsn, str(path), "--rejects", str(rejects), "--batch-rows", "100")
        assert done.returncode == 0, done.stderr
        got = [json.loads(x) for x in rejects.read_text().splitlines()]
        kinds = sorted(r["kind"] for r in got)
        assert kinds == sorted(
            ["not_json", "not_json", "unknown", "ws_tick_size_change", "ws_price_change", "ws_book"]
        )
        assert all(r["reason"] and r["where"].startswith("line ") for r in got)
        assert {r["file"] for r in got} == {str(path)}
        bad = [r for r in got if r["kind"] == "not_json"]
        assert {r["payload"] for r in bad} == {"{not json", "[1, 2"}
        assert f"rejected: {len(got)} payload part(s)" in done.stdout
    finally:
        server.drop_database("t_ingest_rejects")


def test_jobs_ingest_files_in_parallel_with_the_same_result(
    server: TestServer, tmp_path: Path
) -> None:
    parts = [archive_lines(600, seed=s) for s in (11, 12, 13)]
    paths = []
    for i, part in enumerate(parts):
        paths.append(tmp_path / f"p{i}.jsonl")
        paths[-1].write_bytes(b"\n".join(part) + b"\n")
    one, many = fresh(server, "t_ingest_jobs_1"), fresh(server, "t_ingest_jobs_3")
    rejects = tmp_path / "rejects.jsonl"
    try:
        assert ingest(one, *map(str, paths)).returncode == 0
        done = ingest(many, *map(str, paths), "--jobs", "3", "--rejects", str(rejects))
        assert done.returncode == 0, done.stderr
        assert state(many) == state(one)
        assert len(rejects.read_text().splitlines()) == 6  # two per file, lines intact
        for path in paths:
            assert str(path) in done.stdout
    finally:
        server.drop_database("t_ingest_jobs_1")
        server.drop_database("t_ingest_jobs_3")
