"""The progress bar and the summary of ``pmstore ingest``.

The bar counts the files' own bytes (compressed bytes for gzip) against
their total size, and shows payloads (messages) and rows written with
their rates per second.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from pmstore.ingest._run import IngestSummary

__all__ = ["IngestProgress", "summary_lines"]


class _Bar(tqdm):  # type: ignore[type-arg]
    """tqdm without its monitor thread (it only refreshes a stalled bar; ours is updated at
    least every 2,048 payloads): a single-threaded ingest can fork its reader process
    (``pmstore.ingest._reader_process``)."""

    monitor_interval = 0


class IngestProgress:
    """A tqdm bar over the bytes of ``paths``; call it with (bytes, payloads, rows) done."""

    def __init__(self, paths: list[Path], *, disable: bool = False, out: TextIO | None = None):
        total = sum(p.stat().st_size for p in paths if p.is_file())
        self._bar = _Bar(
            total=total,
            desc="ingest",
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=disable,
            file=out or sys.stderr,
            smoothing=0.1,
        )
        self._started = time.monotonic()
        self.payloads = 0
        self.rows = 0

    def __call__(self, raw: int, payloads: int, rows: int) -> None:
        self.payloads += payloads
        self.rows += rows
        elapsed = max(time.monotonic() - self._started, 1e-9)
        self._bar.set_postfix_str(
            f"{self.payloads:,} msgs ({self.payloads / elapsed:,.0f}/s), "
            f"{self.rows:,} rows ({self.rows / elapsed:,.0f}/s)",
            refresh=False,
        )
        self._bar.update(raw)

    def close(self) -> None:
        """Close the bar."""
        self._bar.close()

    def __enter__(self) -> IngestProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def summary_lines(summary: IngestSummary, where: str) -> list[str]:
    """The report printed after a run: per file, then per table and the reject reasons."""
    lines = [
        f"ingested {summary.payloads} payload(s) from {len(summary.files)} file(s) into {where}"
    ]
    for f in summary.files:
        rate = f.payloads / f.seconds if f.seconds > 0 else 0.0
        resumed = f", resumed at {f.resumed_from}" if f.resumed else ""
        if f.resumed and not f.payloads:
            lines.append(f"  {f.path}: nothing new since the last run")
            continue
        lines.append(
            f"  {f.path}: {f.format or 'empty'}{resumed}, {f.payloads} payload(s), "
            f"{f.rows_written} row(s), {f.rejects} reject(s), {f.seconds:.1f} s "
            f"({rate:,.0f} payloads/s)"
        )
        if f.incomplete_tail:
            lines.append(
                f"    its last {f.incomplete_tail} byte(s) are an unfinished line, left for "
                "the next run"
            )
        if f.truncated_gzip:
            lines.append("    its gzip stream breaks off (still being written?): read up to there")
        if f.general_path:
            share = f.general_path / f.payloads if f.payloads else 0.0
            lines.append(
                f"    {f.general_path} payload(s) of the hot kinds ({share:.1%}) took the general "
                "path (an unusual field or value; slower, same results)"
            )
    for table, rows in summary.written.items():
        dups = summary.duplicates[table]
        extra = f", {dups} duplicate(s) skipped" if dups else ""
        lines.append(f"  {table:<20} {rows:>8} row(s) written{extra}")
    if summary.batches_already_written:
        lines.append(
            f"  {summary.batches_already_written} batch(es) were already written before: skipped"
        )
    lines.append(f"  rejected: {summary.rejects} payload part(s)")
    for reason, n in summary.reasons.most_common(15):
        lines.append(f"    {n:>5} x {reason}")
    return lines
