"""benchmarks/run.py --async --smoke against the test server: it runs and reports every figure.

No timing is asserted: the figures of a smoke run mean nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import TestServer

ROOT = Path(__file__).resolve().parent.parent


def test_async_benchmark_smoke_run_reports_every_method(server: TestServer, tmp_path: Path) -> None:
    dsn = server.migrated_database("bench_async_smoke")
    try:
        done = subprocess.run(
            [sys.executable, "benchmarks/run.py", "--async", "--smoke", "--out", str(tmp_path)],
            env={**os.environ, "PMSTORE_DSN": dsn},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        server.drop_database("bench_async_smoke")
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    [path] = tmp_path.glob("bench-async-*.json")
    results = json.loads(path.read_text())
    runs = {r["method"]: r for r in results["runs"]}
    writers = ("Writer", "AsyncWriter", "AsyncWriter, 10k-row chunks", "AsyncWriter, CPU inline")
    references = ("idle loop", "GIL-free thread + server", "pure-Python thread")
    assert set(runs) == {*writers, *references}
    for method in writers:
        assert runs[method]["rows"] == 20_000 and runs[method]["rows_per_second"] > 0
    for method in (*writers[1:], *references):
        assert runs[method]["ticks"] > 0
        assert runs[method]["max_late_ms"] >= runs[method]["p99_late_ms"]
    assert "PMSTORE_DSN" in results["server"] and "numpy" in results["machine"]
    assert "max ms" in done.stdout and "AsyncWriter" in done.stdout
