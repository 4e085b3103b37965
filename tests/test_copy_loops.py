"""The compiled message loop (pmstore._copydata) against the Python loop, on real streams.

Bulk reads take a COPY's CopyData messages from libpq in C when pmstore was built
with its compiled module, else in Python (``CopyStream(..., compiled=False)`` asks
for the Python loop). Both loops must hand the decoder the same bytes and the same
message sizes, in batches of the same limits, stop at the same places (no message
ready, the trailer, the end) and raise the server's error mid-stream the same way.
The compiled row walk must decode as numpy's walk does, and decline (the numpy
walk then takes the batch, with its errors) what is not one row a message.
Every read here is a real ``COPY ... TO STDOUT (FORMAT binary)`` on a real server.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pytest

from pmstore._pgcopy import copy_statement
from pmstore._read.bulk import (
    CopyStream,
    Received,
    SocketWait,
    final_results,
    iter_batches,
    raise_error,
    receive,
)
from pmstore._read.libpq import compiled_loop, libpq_path
from pmstore.errors import CopyDecodeError, ReadError
from pmstore.frames.copy_decoding import CopyDecoder

Conn = psycopg.Connection[tuple[Any, ...]]

# Texts of 0 to 300 bytes (several sizes of message), NULLs, a float, a timestamp.
ROWS_SQL = """
    SELECT g::int8 AS g,
           CASE WHEN g %% 7 = 0 THEN NULL ELSE repeat(chr(48 + g %% 10), g %% 301) END AS t,
           g / 3.0::float8 AS f,
           timestamptz '2026-12-05 00:00+00' + g * interval '1 second' AS ts
    FROM generate_series(1, %(n)s) g
"""
FAILING_SQL = (
    "SELECT g::int8 AS g, 1 / (g - %(fail_at)s)::int8 AS r FROM generate_series(1, %(n)s) g"
)

compiled_module = pytest.importorskip(
    "pmstore._copydata",
    reason="pmstore was installed without its compiled message loop (no C compiler at build)",
)


def read_stream(conn: Conn, sql: str, params: dict[str, Any], limit: int, compiled: bool) -> Any:
    """Every batch a CopyStream hands over: (bytes, sizes, trailer, ended) each."""
    batches: list[tuple[bytes, list[int], bool, bool]] = []
    with conn.cursor() as cur, cur.copy(copy_statement(sql), params) as copy:
        stream = CopyStream(conn.pgconn, compiled=compiled)
        assert (stream.loop is not None) is compiled
        wait = SocketWait(conn.pgconn)
        try:
            while True:
                batch: Received = receive(stream, limit, wait)
                batches.append((bytes(batch.data), list(batch.sizes), batch.trailer, batch.ended))
                if batch.ended:
                    raise_error(final_results(conn.pgconn, wait), conn.info.encoding)
                if batch.last:
                    break
        finally:
            wait.close()
        if batches[-1][2]:
            assert copy.read() == b""  # psycopg takes the end after the trailer
    return batches


def test_the_compiled_loop_is_bound_to_the_connections_own_libpq(conn: Conn) -> None:
    path = libpq_path()
    assert path is not None
    loop = compiled_loop(conn.pgconn)
    assert loop is not None
    assert loop.pgconn_ptr == getattr(conn.pgconn, "pgconn_ptr", None)
    # the library found answers for this very connection
    assert loop.libpq.backend_pid(loop.pgconn_ptr) == conn.info.backend_pid


@pytest.mark.parametrize("limit", [1, 2, 7, 1000, 100_000])
def test_both_loops_hand_over_the_same_batches(conn: Conn, limit: int) -> None:
    params = {"n": 3000}
    compiled = read_stream(conn, ROWS_SQL, params, limit, compiled=True)
    python = read_stream(conn, ROWS_SQL, params, limit, compiled=False)
    # batches may be cut where the socket ran dry, but the stream is the same
    assert b"".join(b[0] for b in compiled) == b"".join(b[0] for b in python)
    sizes = [s for b in compiled for s in b[1]]
    assert sizes == [s for b in python for s in b[1]]
    assert len(sizes) == 3000 + 1  # the rows (the header rides with the first), the trailer
    assert all(len(b[1]) <= limit for b in compiled)
    assert compiled[-1][2] and python[-1][2]  # both stopped at the trailer
    assert sum(sizes) == len(b"".join(b[0] for b in compiled))


def test_empty_and_one_row_streams(conn: Conn) -> None:
    for n in (0, 1):
        compiled = read_stream(conn, ROWS_SQL, {"n": n}, 16, compiled=True)
        python = read_stream(conn, ROWS_SQL, {"n": n}, 16, compiled=False)
        assert compiled == python
        assert compiled[-1][2]


def test_a_server_error_mid_stream_is_raised_alike_and_the_connection_recovers(
    conn: Conn,
) -> None:
    params = {"n": 200_000, "fail_at": 150_000}
    errors = []
    for compiled in (True, False):
        with pytest.raises(psycopg.errors.DivisionByZero) as caught:
            read_stream(conn, FAILING_SQL, params, 4096, compiled=compiled)
        errors.append(caught.value.sqlstate)
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert errors == ["22012", "22012"]


def test_a_closed_connection_gets_no_compiled_loop(db: str) -> None:
    other = psycopg.connect(db)
    assert compiled_loop(other.pgconn) is not None
    other.close()
    assert compiled_loop(other.pgconn) is None


def test_the_compiled_module_refuses_null_pointers() -> None:
    module = importlib.import_module("pmstore._copydata")
    assert module is compiled_module
    with pytest.raises(ValueError, match="null"):
        module.take(0, 0, 0, bytearray(), bytearray(), 10)


def decoded(conn: Conn, sql: str, params: dict[str, Any], schema: Any, compiled: bool) -> Any:
    """The stream's batches (of up to 1,000 messages) decoded with or without the
    compiled walk, as one table."""
    decoder = CopyDecoder(schema, compiled=compiled)
    batches = [
        decoder.decode_messages(bytearray(data), np.array(sizes, dtype=np.int64))
        for data, sizes, _, _ in read_stream(conn, sql, params, 1000, compiled=True)
    ]
    decoder.finish()
    return pa.Table.from_batches(batches, schema=schema)


ROWS_SCHEMA = pa.schema(
    [
        ("g", pa.int64()),
        ("t", pa.string()),
        ("f", pa.float64()),
        ("ts", pa.timestamp("us", tz="UTC")),
    ]
)


@pytest.mark.parametrize("n", [0, 1, 2_500])
def test_the_compiled_walk_decodes_as_numpy_does(conn: Conn, n: int) -> None:
    with_walk = decoded(conn, ROWS_SQL, {"n": n}, ROWS_SCHEMA, compiled=True)
    numpy_only = decoded(conn, ROWS_SQL, {"n": n}, ROWS_SCHEMA, compiled=False)
    assert with_walk.equals(numpy_only)
    assert with_walk.num_rows == n
    expected = conn.execute(ROWS_SQL, {"n": n}).fetchall()
    assert [tuple(r.values()) for r in with_walk.to_pylist()] == expected


def test_the_compiled_walk_declines_what_is_not_one_row_a_message(conn: Conn) -> None:
    data, sizes, _, _ = read_stream(conn, ROWS_SQL, {"n": 5}, 100, compiled=True)[0]
    module = compiled_module
    schema_fields = len(ROWS_SCHEMA)
    ends = np.cumsum(np.array(sizes, dtype=np.int64))
    starts = ends - np.array(sizes, dtype=np.int64)
    starts[0] = 19  # past the header
    # room for one field more than the schema's (the wrong count below)
    offsets = np.empty((schema_fields + 3, len(sizes)), dtype=np.int64)
    lengths = np.empty((schema_fields + 1, len(sizes)), dtype=np.int32)
    buffer = bytes(data)
    assert module.walk(buffer, starts, ends, schema_fields, offsets, lengths) == (5, True)
    assert list(lengths.reshape(-1)[:5]) == [8] * 5  # int8 g, rows 0-4 of field 0
    # two rows in one message, a wrong field count, a length past the message: declined
    merged = np.array([starts[0], starts[2]]), np.array([ends[1], ends[2]])
    assert module.walk(buffer, *merged, schema_fields, offsets, lengths) is None
    assert module.walk(buffer, starts, ends, schema_fields + 1, offsets, lengths) is None
    cut = ends.copy()
    cut[1] -= 1
    assert module.walk(buffer, starts, cut, schema_fields, offsets, lengths) is None
    # and the decoder's own errors are numpy's, unchanged
    decoder = CopyDecoder(pa.schema(list(ROWS_SCHEMA)[:3]))
    with pytest.raises(CopyDecodeError, match="a row has 4 fields; the schema has 3"):
        decoder.decode_messages(bytearray(data), np.array(sizes, dtype=np.int64))


PYTHON_IMPL_CHECK = """
import os, psycopg
from psycopg import pq
from pmstore._read.bulk import read_table
from pmstore._read.libpq import compiled_loop
import pyarrow as pa
assert pq.__impl__ == "python", pq.__impl__
with psycopg.connect(os.environ["CHECK_DSN"]) as conn:
    assert compiled_loop(conn.pgconn) is not None
    schema = pa.schema([("g", pa.int64()), ("r", pa.int64())])
    sql = "SELECT g::int8 AS g, (g * 3)::int8 AS r FROM generate_series(1, %(n)s) g"
    table = read_table(conn, sql, {"n": 5000}, schema)
    assert table.column("r").to_pylist() == [g * 3 for g in range(1, 5001)]
print("ok")
"""


def test_with_psycopgs_python_implementation_the_loop_binds_the_system_libpq(db: str) -> None:
    env = {**os.environ, "PSYCOPG_IMPL": "python", "CHECK_DSN": db}
    probe = subprocess.run(
        [sys.executable, "-c", "import psycopg"], env=env, capture_output=True, text=True
    )
    if probe.returncode != 0:
        pytest.skip(f"psycopg's python implementation cannot load a libpq here: {probe.stderr}")
    done = subprocess.run(
        [sys.executable, "-c", PYTHON_IMPL_CHECK], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_connection_closed_mid_stream_is_a_read_error_not_a_crash(db: str) -> None:
    other = psycopg.connect(db)
    schema = pa.schema([("g", pa.int64()), ("r", pa.int64())])
    sql = "SELECT g::int8 AS g, (g * 3)::int8 AS r FROM generate_series(1, %(n)s) g"
    batches = iter_batches(other, sql, {"n": 200_000}, schema, batch_rows=1000)
    assert next(batches).num_rows == 1000  # taken by the compiled loop
    other.close()  # libpq's PGconn is freed: the loop must not touch it again
    with pytest.raises(ReadError, match="connection pointer is NULL"):
        for _ in batches:
            pass


def test_a_corrupt_field_length_is_a_decode_error_with_either_walk(conn: Conn) -> None:
    (data, sizes, _, _), *_ = read_stream(conn, ROWS_SQL, {"n": 50}, 1000, compiled=True)
    corrupt = bytearray(data)
    last_row = sum(sizes[:-2])  # the last row's message (the trailer follows)
    corrupt[last_row + 2 : last_row + 6] = (10**6).to_bytes(4, "big")  # field g's length
    for compiled in (True, False):
        decoder = CopyDecoder(ROWS_SCHEMA, compiled=compiled)
        with pytest.raises(CopyDecodeError, match="past the end of the data"):
            decoder.decode_messages(bytearray(corrupt), np.array(sizes, dtype=np.int64))
        corrupt_negative = bytearray(data)
        corrupt_negative[last_row + 2 : last_row + 6] = (-7).to_bytes(4, "big", signed=True)
        decoder = CopyDecoder(ROWS_SCHEMA, compiled=compiled)
        with pytest.raises(CopyDecodeError, match="a field length of -7"):
            decoder.decode_messages(corrupt_negative, np.array(sizes, dtype=np.int64))


def test_rows_without_columns_decode_alike(conn: Conn) -> None:
    sql = "SELECT FROM generate_series(1, %(n)s)"
    results = [decoded(conn, sql, {"n": 3}, pa.schema([]), compiled=c) for c in (True, False)]
    assert results[0].equals(results[1])
