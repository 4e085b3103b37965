"""Coverage's bulk path (pmstore._read.gaps) against its SQL definition and a Python pass.

Same data and expected reports as tests/test_coverage.py, on every case its
tests cover: the bulk report equals the server-side one (``COVERAGE_GAPS_SQL``,
the definition) and a plain Python pass; the runs are the same in one part and
in several (each a Parallel Append branch), in one block of timestamps and in
many, in index order and shuffled; plus snapshots exactly on step boundaries
and a microsecond before them, where rounding would show, and several rows in
a step next to an empty one. Each with the compiled gap search
(``pmstore._copydata.runs``, where built) and with numpy's (``compiled=False``),
and the two against each other on random blocks.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from test_coverage import TOKENS, expected_report, to_us, write_minutes

from pmstore import ConfigurationError, Writer
from pmstore._optional import compiled_module
from pmstore._read.coverage import SMALL_REQUEST, coverage, coverage_async
from pmstore._read.gaps import (
    BLOCK,
    TIMESTAMPS_SETTINGS,
    _numpy_block_runs,
    gap_runs,
    timestamps_query,
)
from pmstore._read.settings import settings_sql
from pmstore.errors import CopyDecodeError

Conn = psycopg.Connection[tuple[Any, ...]]

DAY0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
CASES = [
    (DAY0, DAY0 + timedelta(hours=10), timedelta(minutes=1)),
    (DAY0 + timedelta(seconds=30), DAY0 + timedelta(hours=7, seconds=10), timedelta(minutes=1)),
    (DAY0 + timedelta(hours=1), DAY0 + timedelta(hours=9), timedelta(minutes=5)),
    (DAY0 - timedelta(hours=1), DAY0 + timedelta(hours=11), timedelta(seconds=90)),
    (
        DAY0 + timedelta(microseconds=7),
        DAY0 + timedelta(hours=3),
        timedelta(seconds=7, microseconds=3),
    ),
]


def coverage_today(conn: Conn, *args: Any) -> Any:
    """The server-side report: the SQL definition of coverage."""
    return coverage(conn, *args, bulk=False)


def runs_of(
    conn: Conn,
    tokens: list[str],
    start: datetime,
    end: datetime,
    step: timedelta,
    *,
    parts: int,
    block: int,
    shuffle: np.random.Generator | None = None,
    compiled: bool = True,
) -> Any:
    """``gap_runs`` of the bulk rows, read in ``parts`` parts under the path's settings;
    with ``shuffle``, each token's timestamps shuffled first (not in index order)."""
    sql, values, ordered = timestamps_query(tokens, start, end, parts)
    steps = -((start - end) // step)
    with conn.transaction(), conn.cursor(binary=True) as cur:
        cur.execute(settings_sql(TIMESTAMPS_SETTINGS))
        rows = cur.execute(sql, values).fetchall()
    if shuffle is not None:
        rows = [
            (token, shuffle.permutation(np.frombuffer(blob, ">i8")).tobytes())
            for token, blob in rows
        ]
    return gap_runs(rows, ordered, start, step, steps, block=block, compiled=compiled)


def test_the_same_reports_as_the_sql_definition_and_a_python_pass(conn: Conn) -> None:
    rng = np.random.default_rng(21)
    times = write_minutes(conn, rng, DAY0, minutes=600, holes=0.02)
    asked = [*TOKENS, TOKENS[3], "9" * 77]  # a duplicate, and an unknown token
    unique = list(dict.fromkeys(asked))
    for start, end, step in CASES:
        gaps, missing = expected_report(times, asked, start, end, step)
        today = coverage_today(conn, asked, start, end, step)
        assert today.gaps == gaps and today.missing_tokens == missing
        report = coverage(conn, asked, start, end, step, bulk=True)
        assert report == today, (start, end, step)
        runs = [(g.token_id, (g.start - start) // step) for g in gaps]
        for parts, compiled in itertools.product((1, 2, 3), (True, False)):
            for block in (BLOCK, 1_000, 1):  # one block; several; a token a block
                found, lost = runs_of(
                    conn, unique, start, end, step, parts=parts, block=block, compiled=compiled
                )
                assert [(t, first) for t, first, _ in found] == runs, (start, step, parts, block)
                assert [after - first for _, first, after in found] == [g.steps for g in gaps]
                assert lost == missing
            mixed = runs_of(
                conn,
                unique,
                start,
                end,
                step,
                parts=parts,
                block=1_000,
                shuffle=rng,
                compiled=compiled,
            )
            assert mixed == (found, lost)
    assert any(g.steps >= 17 for g in gaps)  # the outages are there


def test_snapshots_on_step_boundaries(conn: Conn) -> None:
    start, step = DAY0 + timedelta(seconds=11, microseconds=5), timedelta(seconds=10)
    token, other = TOKENS[0], TOKENS[1]
    # Steps 0, 2 (its first µs), 3 (its last µs), 5 (first µs of the last, partial step).
    at = [start, start + 2 * step, start + 4 * step - timedelta(microseconds=1), start + 5 * step]
    end = start + 5 * step + timedelta(seconds=3)
    with Writer(conn) as writer:
        writer.copy_prices(
            {
                "ts": np.array(
                    [to_us(t) for t in [*at, end, start - timedelta(microseconds=1)]]
                ).astype("datetime64[us]"),
                "token_id": np.array([token] * 4 + [other, other], dtype=object),
                "price": np.full(6, 0.5),
            }
        )
    for bulk in (True, False):
        report = coverage(conn, [token, other], start, end, step, bulk=bulk)
        assert report.steps == 6 and report.missing_tokens == [other]  # its rows: just outside
        assert [(g.start, g.end, g.steps) for g in report.gaps] == [
            (start + step, start + 2 * step, 1),
            (start + 4 * step, start + 5 * step, 1),
        ]
    for compiled in (True, False):
        found = runs_of(
            conn, [token, other], start, end, step, parts=1, block=BLOCK, compiled=compiled
        )
        assert found == ([(token, 1, 2), (token, 4, 5)], [other])


def test_several_rows_in_a_step_and_none_in_the_next(conn: Conn) -> None:
    # A count-based shortcut would call every token here complete: as many rows as
    # steps, all on step boundaries, first and last step covered. Token 0 has two
    # rows in step 3 (one on its boundary, one inside) and none in step 4; token 1
    # the same row twice in step 3 and none in step 4; token 2 every step.
    start, step, steps = DAY0 + timedelta(minutes=7), timedelta(minutes=1), 8
    end = start + steps * step
    on = [start + i * step for i in range(steps)]
    rows = {
        TOKENS[0]: [*on[:4], on[3] + timedelta(seconds=59, microseconds=999_999), *on[5:]],
        TOKENS[1]: [*on[:4], on[3], *on[5:]],
        TOKENS[2]: on,
    }
    with Writer(conn) as writer:
        writer.copy_prices(
            {
                "ts": np.array([to_us(t) for ts in rows.values() for t in ts]).astype(
                    "datetime64[us]"
                ),
                "token_id": np.array([t for t, ts in rows.items() for _ in ts], dtype=object),
                "price": np.full(sum(map(len, rows.values())), 0.5),
            }
        )
    assert all(len(ts) == steps for ts in rows.values())
    asked = [*TOKENS[:3], TOKENS[3]]  # the last one without rows
    for bulk in (True, False):
        report = coverage(conn, asked, start, end, step, bulk=bulk)
        assert [(g.token_id, g.start, g.end, g.steps) for g in report.gaps] == [
            (TOKENS[0], on[4], on[5], 1),
            (TOKENS[1], on[4], on[5], 1),
        ], bulk
        assert report.missing_tokens == [TOKENS[3]]
    for compiled in (True, False):
        found = runs_of(conn, asked, start, end, step, parts=2, block=BLOCK, compiled=compiled)
        assert found == ([(TOKENS[0], 4, 5), (TOKENS[1], 4, 5)], [TOKENS[3]])


def test_empty_bad_arguments_and_async(conn: Conn, db: str) -> None:
    rng = np.random.default_rng(4)
    times = write_minutes(conn, rng, DAY0, minutes=120, holes=0.05)
    start, end = DAY0, DAY0 + timedelta(hours=2)
    empty = coverage(conn, [], start, end)
    assert empty.tokens == 0 and empty.gaps == [] and empty.ratio == 0.0
    bad: list[Callable[[], object]] = [
        lambda: coverage(conn, TOKENS[0], start, end),
        lambda: coverage(conn, TOKENS, start, start),
        lambda: coverage(conn, TOKENS, start.replace(tzinfo=None), end),
        lambda: coverage(conn, TOKENS, start, end, timedelta(0)),
        lambda: coverage(conn, TOKENS, start, end, timedelta(microseconds=1)),  # > 10M steps
        lambda: coverage(conn, ["", TOKENS[0]], start, end),
        lambda: coverage(conn, TOKENS, start, end, bulk=1),  # type: ignore[arg-type]
    ]
    for call in bad:
        with pytest.raises(ConfigurationError):
            call()
    gaps, missing = expected_report(times, TOKENS, start, end, timedelta(minutes=1))

    async def body() -> None:
        async with await psycopg.AsyncConnection.connect(db, autocommit=True) as aconn:
            for bulk in (None, True, False):
                report = await coverage_async(aconn, TOKENS, start, end, bulk=bulk)
                assert report.gaps == gaps and report.missing_tokens == missing
            assert (await coverage_async(aconn, [], start, end)).tokens == 0

    asyncio.run(body())
    # Tokens x steps over SMALL_REQUEST: parts under the settings, in a caller's transaction.
    second, late = timedelta(seconds=1), end + timedelta(hours=1)
    seconds = expected_report(times, TOKENS, start, late, second)
    with psycopg.connect(db) as tx:
        report = coverage(tx, TOKENS, start, late, second)
        assert report.steps * len(TOKENS) >= SMALL_REQUEST
        assert (report.gaps, report.missing_tokens) == seconds
        row = tx.execute("SELECT current_setting('parallel_setup_cost')").fetchone()
        assert row is not None and row[0] == "1000"  # the savepoint's settings are gone
        assert tx.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS


COMPILED = compiled_module()
needs_compiled = pytest.mark.skipif(
    COMPILED is None,
    reason="pmstore was installed without its compiled module (no C compiler at build)",
)


@needs_compiled
def test_the_compiled_search_takes_index_ordered_rows_and_declines_the_rest(conn: Conn) -> None:
    assert COMPILED is not None
    compiled_search = COMPILED.runs
    # Across midnight: two daily chunks, merged by (token_id, ts DESC) on the server.
    rng = np.random.default_rng(8)
    start, end, step = DAY0 - timedelta(hours=2), DAY0 + timedelta(hours=3), timedelta(minutes=1)
    write_minutes(conn, rng, start, minutes=300, holes=0.03)
    chunks = conn.execute(
        "SELECT count(DISTINCT tableoid) FROM price_snapshots WHERE ts >= %s AND ts < %s",
        (start, end),
    ).fetchone()
    assert chunks is not None and chunks[0] == 2
    sql, values, _ = timestamps_query(TOKENS, start, end, 2)
    with conn.transaction(), conn.cursor(binary=True) as cur:
        cur.execute(settings_sql(TIMESTAMPS_SETTINGS))
        blobs = [blob for _, blob in cur.execute(sql, values).fetchall()]
    origin = (start - datetime(2000, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)  # wire µs
    width = step // timedelta(microseconds=1)
    out = bytearray(b"kept")
    assert compiled_search(blobs, origin, width, 300, out)  # the server's rows: taken
    assert len(out) > 4 and (len(out) - 4) % 24 == 0
    triples = np.frombuffer(bytes(out[4:]), dtype=np.int64).reshape(-1, 3)
    rows = list(range(len(blobs)))
    reference = np.stack(_numpy_block_runs(blobs, rows, origin, width, 300), axis=1)
    assert sorted(map(tuple, triples.tolist())) == sorted(map(tuple, reference.tolist()))
    unsorted = [*blobs[:-1], rng.permutation(np.frombuffer(blobs[-1], ">i8")).tobytes()]
    for declined in ([*blobs, b""], [*blobs, b"1234567"], unsorted):
        before = bytes(out)
        assert not compiled_search(declined, origin, width, 300, out)
        assert out == before  # left as it was: numpy takes the block
    for width_, steps_ in ((0, 300), (width, 0)):
        with pytest.raises(ValueError, match="positive"):
            compiled_search(blobs, origin, width_, steps_, out)


@needs_compiled
@pytest.mark.parametrize("seed", range(4))
def test_the_compiled_search_finds_the_runs_numpy_finds(seed: int) -> None:
    """Random blocks: duplicates, rows before the origin, steps of 1 µs to a minute,
    unsorted tokens (declined by C, sorted by numpy): the same runs either way."""
    assert COMPILED is not None
    rng = np.random.default_rng(seed)
    taken = 0
    for _ in range(300):
        steps = int(rng.integers(1, 60))
        width = int(rng.choice([1, 7, 1_000_003, 60_000_000]))
        origin = int(rng.integers(-(10**12), 10**12))
        blobs, rows = [], []
        for token in range(int(rng.integers(1, 8))):
            at = origin + rng.integers(-2 * width, steps * width, size=int(rng.integers(1, 40)))
            at = np.sort(at)[::-1] if rng.random() < 0.9 else at
            blobs.append(at.astype(">i8").tobytes())
            rows.append(token * 3)
        ordered = [f"t{i:03d}" for i in range(30)]
        fed = [(ordered[r], blob) for r, blob in zip(rows, blobs, strict=True)]
        start = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(microseconds=origin)
        compiled = gap_runs(fed, ordered, start, timedelta(microseconds=width), steps)
        reference = gap_runs(
            fed, ordered, start, timedelta(microseconds=width), steps, compiled=False
        )
        assert compiled == reference
        taken += COMPILED.runs(blobs, origin, width, steps, bytearray())
    assert taken > 100  # most blocks went through C, not numpy alone


def test_bytes_that_are_not_whole_timestamps_are_a_decode_error() -> None:
    start, step = datetime(2026, 12, 1, tzinfo=UTC), timedelta(minutes=1)
    whole = np.array([60_000_000, 0], dtype=">i8").tobytes()
    for compiled, blob in itertools.product((True, False), (b"", whole[:7], whole + b"1")):
        with pytest.raises(CopyDecodeError, match=r"token b: .* not a whole number"):
            gap_runs([("a", whole), ("b", blob)], ["a", "b"], start, step, 5, compiled=compiled)
