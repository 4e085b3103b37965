"""Peak memory of a writer process: 1M price rows in 10k-row batches through ``copy_prices``.

Run by ``run.py`` as a fresh process, so nothing the benchmark itself holds
counts: ``python benchmarks/bench_rss.py --batches 100 --rows 10000`` with
``PMSTORE_BENCH_DSN`` naming the database. Prints one JSON object: the
process's RSS after its imports (the interpreter's baseline), just before
the loop, the highest RSS sampled during the loop, and the kernel's peak
(``ru_maxrss``), all in MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import threading
import time
from datetime import UTC, datetime, timedelta

from pmstore import Writer
from pmstore.synthetic import MarketSimulator

MIB = 1 << 20
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """The current resident set size of this process (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


class Sampler(threading.Thread):
    """Samples RSS every few milliseconds and keeps the highest."""

    def __init__(self, interval: float = 0.002) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = rss_bytes()
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def stop(self) -> int:
        self._stop.set()
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
    start = datetime(2026, 3, 1, tzinfo=UTC)
    writer = Writer(dsn)
    before = rss_bytes()
    sampler = Sampler()
    sampler.start()
    started = time.perf_counter()
    written = 0
    for k in range(args.batches):
        batch = sim.prices(start + timedelta(minutes=k))
        result = writer.copy_prices({name: getattr(batch, name)[: args.rows] for name in batch.COLUMNS})
        written += result.rows_written
    seconds = time.perf_counter() - started
    sampled = sampler.stop()
    writer.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(
        json.dumps(
            {
                "rows": written,
                "batches": args.batches,
                "batch_rows": args.rows,
                "seconds": seconds,
                "rss_after_imports_mib": after_imports / MIB,
                "rss_before_loop_mib": before / MIB,
                "rss_peak_sampled_mib": sampled / MIB,
                "ru_maxrss_mib": peak / MIB,
                "growth_mib": (max(peak, sampled) - after_imports) / MIB,
            }
        )
    )


if __name__ == "__main__":
    main()
