"""Coverage against a real TimescaleDB: gaps computed here from the generated rows.

Expected gaps come from a plain Python pass over the step index of every row
written; the query plan is checked on a few hundred thousand rows for
sequential scans of the price chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from async_adapter import kind, make_reader

from pmstore import ConfigurationError, Writer
from pmstore._read.coverage import COVERAGE_GAPS_SQL, Coverage, Gap
from pmstore.cli import main
from pmstore.reader import Reader

__all__ = ["kind", "make_reader"]  # the fixtures, imported

Conn = psycopg.Connection[tuple[Any, ...]]

DAY0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
TOKENS = [str(10**76 + i * 7919) for i in range(12)]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(value: datetime) -> int:
    return (value - EPOCH) // timedelta(microseconds=1)


def write_minutes(
    conn: Conn, rng: np.random.Generator, start: datetime, minutes: int, holes: float
) -> dict[str, list[int]]:
    """A snapshot per token per minute at a random second, minus random holes and a
    few long outages; returns each token's row times (µs)."""
    times: dict[str, list[int]] = {}
    ts: list[int] = []
    tokens: list[str] = []
    base = to_us(start)
    for k, token in enumerate(TOKENS[:-1]):  # the last token has no rows at all
        keep = rng.random(minutes) >= holes
        if k % 3 == 0:  # an outage of 17 minutes
            lo = int(rng.integers(0, minutes - 17))
            keep[lo : lo + 17] = False
        if k == 1:
            keep[:5] = False  # leading gap
            keep[-3:] = False  # trailing gap
        offsets = np.flatnonzero(keep) * 60_000_000 + rng.integers(0, 60_000_000, keep.sum())
        times[token] = (base + offsets).tolist()
        ts.extend(times[token])
        tokens.extend([token] * len(offsets))
    n = len(ts)
    with Writer(conn) as writer:
        writer.copy_prices(
            {
                "ts": np.array(ts, dtype=np.int64).astype("datetime64[us]"),
                "token_id": np.array(tokens, dtype=object),
                "price": rng.uniform(0, 1, n),
            }
        )
    return times


def expected_report(
    times: dict[str, list[int]], tokens: list[str], start: datetime, end: datetime, step: timedelta
) -> tuple[list[Gap], list[str]]:
    lo, hi, width = to_us(start), to_us(end), step // timedelta(microseconds=1)
    steps = -(-(hi - lo) // width)
    gaps: list[Gap] = []
    missing: list[str] = []
    for token in sorted(dict.fromkeys(tokens), key=str.encode):
        covered = {(t - lo) // width for t in times.get(token, []) if lo <= t < hi}
        if not covered:
            missing.append(token)
            continue
        k = 0
        while k < steps:
            if k in covered:
                k += 1
                continue
            first = k
            while k < steps and k not in covered:
                k += 1
            gaps.append(
                Gap(
                    token_id=token,
                    start=start + first * step,
                    end=min(start + k * step, end),
                    steps=k - first,
                )
            )
    return gaps, missing


def test_coverage_reports_every_gap_and_tokens_without_rows(
    conn: Conn, make_reader: Callable[..., Any]
) -> None:
    """On a Reader and on an AsyncReader (``make_reader``)."""
    rng = np.random.default_rng(21)
    times = write_minutes(conn, rng, DAY0, minutes=600, holes=0.02)
    reader = make_reader()
    cases = [
        (DAY0, DAY0 + timedelta(hours=10), timedelta(minutes=1)),
        # Not on the minute grid, a step not dividing the range: a partial last step.
        (DAY0 + timedelta(seconds=30), DAY0 + timedelta(hours=7, seconds=10), timedelta(minutes=1)),
        (DAY0 + timedelta(hours=1), DAY0 + timedelta(hours=9), timedelta(minutes=5)),
        (DAY0 - timedelta(hours=1), DAY0 + timedelta(hours=11), timedelta(seconds=90)),
    ]
    asked = [*TOKENS, TOKENS[3], "9" * 77]  # a duplicate, and an unknown token
    for start, end, step in cases:
        report = reader.coverage(asked, start, end, step)
        gaps, missing = expected_report(times, asked, start, end, step)
        assert isinstance(report, Coverage)
        assert report.tokens == len(TOKENS) + 1
        assert report.steps == -(-(end - start) // step)
        assert report.missing_tokens == missing
        assert report.gaps == gaps, (start, end, step)
        assert any(g.end - g.start >= timedelta(minutes=10) for g in gaps)  # the outages
        assert TOKENS[-1] in missing
    one_minute = reader.coverage(TOKENS[1:2], DAY0, DAY0 + timedelta(hours=10))
    assert one_minute.gaps[0].start == DAY0 and one_minute.gaps[0].steps >= 5
    assert one_minute.gaps[-1].end == DAY0 + timedelta(hours=10)
    assert not one_minute.complete and 0.9 < one_minute.ratio < 1.0


def test_a_complete_token_has_no_gaps(conn: Conn, make_reader: Callable[..., Any]) -> None:
    rng = np.random.default_rng(2)
    times = write_minutes(conn, rng, DAY0, minutes=120, holes=0.0)
    full = [t for t in TOKENS[:-1] if len(times[t]) == 120 and TOKENS.index(t) % 3]
    reader = make_reader()
    report = reader.coverage(full, DAY0, DAY0 + timedelta(hours=2))
    assert report.complete and report.ratio == 1.0 and report.gaps == []
    assert len(full) >= 3 and report.tokens == len(full)
    assert reader.coverage([], DAY0, DAY0 + timedelta(hours=2)).tokens == 0
    bad_calls: list[Callable[[], object]] = [
        lambda: reader.coverage(TOKENS[0], DAY0, DAY0 + timedelta(hours=1)),
        lambda: reader.coverage(TOKENS, DAY0, DAY0),
        lambda: reader.coverage(TOKENS, DAY0.replace(tzinfo=None), DAY0),
        lambda: reader.coverage(TOKENS, DAY0, DAY0 + timedelta(hours=1), timedelta(0)),
    ]
    for bad in bad_calls:
        with pytest.raises(ConfigurationError):
            bad()


def test_coverage_uses_the_token_index_not_sequential_scans(conn: Conn) -> None:
    rng = np.random.default_rng(8)
    tokens = [str(10**76 + i * 7919) for i in range(300)]
    n = 300_000
    span_us = 3 * 86_400_000_000
    with Writer(conn) as writer:
        writer.copy_prices(
            {
                "ts": (to_us(DAY0) + rng.integers(0, span_us, n)).astype("datetime64[us]"),
                "token_id": np.array(tokens, dtype=object)[rng.integers(0, len(tokens), n)],
                "price": rng.uniform(0, 1, n),
            }
        )
    conn.execute("VACUUM ANALYZE price_snapshots")
    chunks = {
        str(r[0])
        for r in conn.execute(
            "SELECT chunk_name FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'price_snapshots'"
        ).fetchall()
    }
    assert len(chunks) >= 3
    start, end, step = DAY0 + timedelta(hours=20), DAY0 + timedelta(days=2), timedelta(minutes=1)
    steps = -(-(end - start) // step)
    params = {
        "token_ids": tokens[:50],
        "start": start,
        "end": end,
        "step": step,
        "before": start - step,
        "after": start + steps * step,
    }
    row = conn.execute(f"EXPLAIN (FORMAT JSON) {COVERAGE_GAPS_SQL}", params).fetchone()
    assert row is not None

    def nodes(node: dict[str, Any]) -> Any:
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    plan = list(nodes(row[0][0]["Plan"]))
    scans = [(n["Node Type"], n.get("Relation Name"), n.get("Index Name", "")) for n in plan]
    assert not [s for s in scans if s[0] == "Seq Scan" and s[1] in chunks | {"price_snapshots"}]
    assert any("_token_time" in s[2] for s in scans), scans
    report = Reader(conn).coverage(tokens[:50], start, end, step)
    assert report.steps == steps and report.gaps  # ~100 rows a token a day: mostly gaps


def test_coverage_command(conn: Conn, db: str, capsys: Any) -> None:
    rng = np.random.default_rng(4)
    write_minutes(conn, rng, DAY0, minutes=60, holes=0.1)
    conn.execute(
        "INSERT INTO markets (condition_id, question, clob_token_ids, active) VALUES"
        " ('0xa', 'A?', %s, true), ('0xb', 'B?', %s, false)",
        ([TOKENS[0], TOKENS[-1]], [TOKENS[1]]),
    )
    start, end = DAY0.isoformat(), (DAY0 + timedelta(hours=1)).isoformat()
    assert main(["coverage", "--dsn", db, "--start", start, "--end", end, "--limit", "500"]) == 0
    out = capsys.readouterr().out
    assert "coverage of 2 token(s)" in out  # the active market's two tokens
    assert f"  none {TOKENS[-1]}" in out and f"gap  {TOKENS[0]}" in out
    assert TOKENS[1] not in out
    args = ["coverage", TOKENS[2], "--dsn", db, "--start", start, "--end", end, "--step", "600"]
    assert main(args) == 0
    assert "in steps of 0:10:00 (6 per token)" in capsys.readouterr().out
