"""Peak memory of a writer process: 1M price rows in 10k-row batches through ``copy_prices``.

Run by ``run.py`` as a fresh process, so nothing the benchmark itself holds
counts: ``python benchmarks/bench_rss.py --batches 100 --rows 10000`` with
``PMSTORE_BENCH_DSN`` naming the database. Prints one JSON object: the
process's RSS after its imports (the interpreter's baseline), just before
the loop, the highest RSS sampled during the loop, and the kernel's
high-water mark of this process image (``VmHWM``; not ``ru_maxrss``, which
Linux carries over from the parent across fork/exec), all in MB (10^6 bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta

from bench_data import collected

from pmstore import Writer
from pmstore.synthetic import MarketSimulator

MB = 1_000_000
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """The current resident set size of this process (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def peak_rss_bytes() -> int:
    """The kernel's high-water mark of this process's RSS since exec (``VmHWM``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


class Sampler(threading.Thread):
    """Samples RSS every few milliseconds and keeps the highest."""

    def __init__(self, interval: float = 0.002) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = rss_bytes()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return max(self.peak, rss_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    dsn = os.environ["PMSTORE_BENCH_DSN"]
    after_imports = rss_bytes()
    sim = MarketSimulator(args.rows + args.rows % 2, seed=5)
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    writer = Writer(dsn)
    before = rss_bytes()
    sampler = Sampler()
    sampler.start()
    started = time.perf_counter()
    written = 0
    for k in range(args.batches):
        batch = sim.prices(start + timedelta(minutes=k))
        result = writer.copy_prices(
            collected({name: getattr(batch, name)[: args.rows] for name in batch.COLUMNS})
        )
        written += result.rows_written
    seconds = time.perf_counter() - started
    sampled = sampler.stop()
    writer.close()
    peak = peak_rss_bytes()
    print(
        json.dumps(
            {
                "rows": written,
                "batches": args.batches,
                "batch_rows": args.rows,
                "seconds": seconds,
                "rss_after_imports_mb": after_imports / MB,
                "rss_before_loop_mb": before / MB,
                "rss_peak_sampled_mb": sampled / MB,
                "vm_hwm_mb": peak / MB,
                "growth_mb": (max(peak, sampled) - after_imports) / MB,
            }
        )
    )


if __name__ == "__main__":
    main()
