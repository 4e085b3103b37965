"""benchmarks/run.py --smoke against the test server: it runs to the end and reports every figure.

No timing is asserted: the figures of a smoke run mean nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import TestServer

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"
SCENARIOS = ("encode", "prices_full", "prices_noindex", "orderbooks", "trades", "day", "rss")


def test_smoke_run_reports_every_scenario_and_target(server: TestServer, tmp_path: Path) -> None:
    dsn = server.migrated_database("bench_smoke")
    try:
        done = subprocess.run(
            [
                sys.executable,
                str(RUN),
                "--smoke",
                "--scenarios",
                "1,2,3,4,5,6,7",
                "--out",
                str(tmp_path),
            ],
            env={**os.environ, "PMSTORE_DSN": dsn},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        server.drop_database("bench_smoke")
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-5000:]}"
    assert "== Targets" in done.stdout

    [path] = tmp_path.glob("bench-*.json")
    results = json.loads(path.read_text())
    assert {"machine", "server", "sizes", "scenarios", "targets"} <= results.keys()
    assert results["machine"]["logical_cores"] >= 1 and results["machine"]["memory_gib"] > 0
    assert results["server"]["timescaledb_version"]
    assert results["server"]["edition"] in ("apache", "community")
    assert "fsync" in results["server"]["settings"]
    assert results["server"]["source"].startswith("PMSTORE_DSN")
    assert set(SCENARIOS) <= results["scenarios"].keys()

    for key in ("prices_full", "prices_noindex", "orderbooks"):
        methods = {m["method"]: m for m in results["scenarios"][key]["methods"]}
        baseline = methods["server COPY FROM file (binary)"]
        assert baseline["vs_baseline"] == 1.0 and baseline["verified"]
        for method in methods.values():
            assert method["skipped"] or (method["rows_per_s"] > 0 and method["verified"])
    for key in ("prices_full", "prices_noindex"):
        ratios = results["scenarios"][key]["ratios"]
        assert {"copy_prices_vs_server_binary", "copy_prices_vs_server_csv"} <= ratios.keys()

    trades = results["scenarios"]["trades"]
    assert trades["rows_inserted"] + trades["duplicates_skipped"] == trades["rows"]
    assert trades["duplicates_skipped"] > 0
    day = results["scenarios"]["day"]
    assert {"realtime_ratio", "batch_p50_ms", "batch_p99_ms", "deciles"} <= day.keys()
    assert len(day["latencies_ms"]) == day["minutes"]
    assert results["scenarios"]["rss"]["growth_mb"] > 0

    targets = {t["target"]: t for t in results["targets"]}
    assert len(targets) == 11  # (a) 1, (b) 1, (c) 4, (d) 2, (e) 2, (f) 1
    assert all(isinstance(t["met"], bool) and t["measured"] > 0 for t in targets.values())

    if importlib.util.find_spec("matplotlib") is not None:
        assert Path(results["files"]["chart"]).exists()


def test_reads_smoke_run_verifies_every_method(server: TestServer, tmp_path: Path) -> None:
    dsn = server.migrated_database("bench_reads_smoke")
    try:
        done = subprocess.run(
            [
                sys.executable,
                str(RUN),
                "--reads",
                "--smoke",
                "--rounds",
                "1",
                "--out",
                str(tmp_path),
            ],
            env={**os.environ, "PMSTORE_DSN": dsn},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        server.drop_database("bench_reads_smoke")
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-5000:]}"
    [path] = tmp_path.glob("reads-*-smoke.json")
    results = json.loads(path.read_text())
    for key in ("panel", "loop", "export", "coverage_1k", "coverage_8k"):
        measured = [m for m in results[key] if "seconds" in m]
        assert measured and all(m["rows"] > 0 or "coverage" in key for m in measured), key
        assert all(m["verified"] for m in measured), key
        assert sum("limit" in m["method"] and m["x_of_limit"] == 1.0 for m in measured) == 1
    names = {t["target"] for t in results["targets"]}
    assert {
        "panel into Arrow >= 0.9x of the limit",
        "coverage_8k: coverage <= 2x count(*)",
    } <= names
    assert all(isinstance(t["met"], bool) for t in results["targets"])
