"""``pmstore export`` to object storage: a local S3-compatible server (moto's, from PyPI).

The same rows as tests/test_export.py go to ``s3://bucket/prefix`` and are read back by
pyarrow and by DuckDB (its own Parquet reader and hive partitioning, over the objects on
the server) and compared with the server's rows; re-runs leave the same objects; a
failure mid-day, and the connection to the store cut mid-upload, leave the previous
objects and no other; credentials never show. Nothing here reaches past 127.0.0.1, and
the AWS SDK's config files and instance metadata are pointed away from this machine's.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import duckdb
import fsspec
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.arrow import ArrowFSWrapper
from s3_server import CutRelay, MotoS3, moto_s3
from test_export import DAY0, TOKENS, Conn, server_rows, write_data

from pmstore import ConfigurationError
from pmstore.cli import main
from pmstore.export import export_table

KEY_ID = "AKIAPMSTORETESTKEY01"
SECRET = "pmstore-test-secret-6f1c0e9a77d2"
TOKEN = "pmstore-test-session-token-5b2d"
START, END = DAY0 + timedelta(hours=12), DAY0 + timedelta(days=2, hours=20)


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    with moto_s3() as server:
        yield server


@pytest.fixture
def aws(s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and the endpoint in the environment, as a user sets them; the SDK's
    files and instance metadata pointed away from this machine's."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def bucket(s3: MotoS3, aws: None) -> str:
    name = f"pm-{uuid.uuid4().hex[:16]}"
    client(s3).create_bucket(Bucket=name)
    return name


def client(s3: MotoS3) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )


def filesystem(port: int, attempts: int = 3) -> Any:
    """pyarrow's S3 filesystem on 127.0.0.1:``port`` (the server, or a relay to it)."""
    return pafs.S3FileSystem(
        endpoint_override=f"127.0.0.1:{port}",
        scheme="http",
        region="us-east-1",
        background_writes=False,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=attempts),
    )


def objects(s3: MotoS3, bucket: str) -> dict[str, str]:
    """Every object in ``bucket``: key -> SHA-256 of its bytes."""
    c = client(s3)
    listed = c.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: hashlib.sha256(body(c, bucket, o["Key"])).hexdigest() for o in listed}


def body(c: Any, bucket: str, key: str) -> bytes:
    return c.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]


class S3ForDuckDB(ArrowFSWrapper):  # type: ignore[misc]  # fsspec has no type information
    """pyarrow's S3 filesystem as an fsspec one answering ``s3://`` for DuckDB."""

    protocol = "s3"
    root_marker = ""


def duckdb_rows(fs: Any, glob: str, columns: list[str]) -> list[tuple[Any, ...]]:
    with duckdb.connect() as duck:
        duck.register_filesystem(S3ForDuckDB(fs))
        duck.execute("SET TimeZone = 'UTC'")
        return duck.execute(
            f"SELECT {', '.join(columns)} FROM read_parquet(?, hive_partitioning = true)", [glob]
        ).fetchall()


@pytest.mark.parametrize("table", ["price_snapshots", "trades", "orderbook_snapshots"])
def test_export_to_s3_is_read_back_by_pyarrow_and_duckdb(
    conn: Conn, s3: MotoS3, bucket: str, table: str
) -> None:
    write_data(conn)
    result = export_table(conn, table, START, END, f"s3://{bucket}/lake", batch_rows=4_000)
    expected = server_rows(conn, table, START, END)
    assert result.rows == len(expected) > 0
    assert result.root == f"s3://{bucket}/lake/{table}"
    days = [d.day for d in result.days]
    assert days == [(DAY0 + timedelta(days=i)).date() for i in range(3)]
    keys = [f"lake/{table}/date={d.isoformat()}/part.parquet" for d in days]
    # The hive layout, and the zero-byte folder marker pyarrow leaves where temporaries were.
    stored = objects(s3, bucket)
    assert sorted(stored) == sorted([*keys, "lake/_pmstore_tmp/"])
    assert stored["lake/_pmstore_tmp/"] == hashlib.sha256(b"").hexdigest()
    assert [d.path for d in result.days] == [f"s3://{bucket}/{k}" for k in keys]

    fs = filesystem(s3.port)
    for day, key in zip(result.days, keys, strict=True):  # streamed: a row group per batch
        meta = pq.ParquetFile(f"{bucket}/{key}", filesystem=fs).metadata
        assert meta.num_rows == day.rows
        assert meta.num_row_groups == -(-day.rows // 4_000)

    root = f"{bucket}/lake/{table}"
    by_arrow = ds.dataset(root, filesystem=fs, format="parquet", partitioning="hive").to_table()
    columns = [c for c in by_arrow.column_names if c != "date"]
    arrow_rows = sorted(zip(*(by_arrow.column(c).to_pylist() for c in columns), strict=True))
    duck_rows = sorted(duckdb_rows(fs, f"s3://{root}/*/*.parquet", columns))
    assert len(arrow_rows) == len(duck_rows) == len(expected)
    assert arrow_rows == duck_rows == sorted(expected)
    assert sorted(set(by_arrow.column("date").to_pylist())) == [d.isoformat() for d in days]


def test_a_rerun_leaves_the_same_objects_and_follows_the_database(
    conn: Conn, s3: MotoS3, bucket: str
) -> None:
    write_data(conn)
    out = f"s3://{bucket}/lake"
    start, end = DAY0, DAY0 + timedelta(days=4)
    export_table(conn, "price_snapshots", start, end, out, batch_rows=5_000)
    before = objects(s3, bucket)
    assert len(before) == 3 + 1  # the fourth day has no rows: no object; the marker
    export_table(conn, "price_snapshots", start, end, out, batch_rows=5_000)
    assert objects(s3, bucket) == before  # same keys, same bytes: no duplicates
    conn.execute("DELETE FROM price_snapshots WHERE ts < %s", (DAY0 + timedelta(days=1),))
    export_table(conn, "price_snapshots", start, end, out, batch_rows=5_000)
    after = objects(s3, bucket)
    gone = f"lake/price_snapshots/date={DAY0.date().isoformat()}/part.parquet"
    # The emptied day's object is gone (its folder too: pyarrow marks the table's instead).
    assert sorted(after) == sorted({*before, "lake/price_snapshots/"} - {gone})
    assert all(after[k] == before[k] for k in after if k in before)


def test_a_failure_mid_day_leaves_the_previous_objects(
    conn: Conn, s3: MotoS3, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_data(conn)
    out = f"s3://{bucket}/lake"
    start, end = DAY0, DAY0 + timedelta(days=3)
    export_table(conn, "price_snapshots", start, end, out, batch_rows=3_000)
    before = objects(s3, bucket)
    conn.execute("DELETE FROM price_snapshots WHERE token_id = %s", (TOKENS[0],))
    calls = 0
    real = pq.ParquetWriter.write_batch

    def failing(self: Any, batch: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 5:  # the second day's second row group
            raise OSError("stream broken (injected)")
        real(self, batch, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_batch", failing)
    with pytest.raises(OSError, match="injected"):
        export_table(conn, "price_snapshots", start, end, out, batch_rows=3_000)
    after = objects(s3, bucket)
    # The first day was replaced whole (fewer rows now); the second kept its old object,
    # the third was not reached; no temporary object is left.
    first = f"lake/price_snapshots/date={DAY0.date().isoformat()}/part.parquet"
    assert sorted(after) == sorted(before)
    assert after[first] != before[first]
    assert {k: v for k, v in after.items() if k != first} == {
        k: v for k, v in before.items() if k != first
    }


def test_the_store_cut_off_mid_upload_leaves_the_previous_objects(
    conn: Conn, s3: MotoS3, bucket: str
) -> None:
    write_data(conn)
    relay = CutRelay(s3.port)
    try:
        fs = filesystem(relay.port, attempts=1)
        start, end = DAY0, DAY0 + timedelta(days=3)
        export_table(
            conn, "price_snapshots", start, end, f"{bucket}/lake", filesystem=fs, batch_rows=4_000
        )
        before = objects(s3, bucket)
        conn.execute("DELETE FROM price_snapshots WHERE token_id = %s", (TOKENS[1],))
        relay.cut_after(64 * 1024)  # inside the first day's upload (its Parquet is larger)
        with pytest.raises(OSError):
            export_table(
                conn,
                "price_snapshots",
                start,
                end,
                f"{bucket}/lake",
                filesystem=fs,
                batch_rows=4_000,
            )
        assert relay.cut.is_set()
        assert objects(s3, bucket) == before  # no partial object, no temporary

        relay.restore()  # the store is back: the next run finishes the job
        export_table(
            conn, "price_snapshots", start, end, f"{bucket}/lake", filesystem=fs, batch_rows=4_000
        )
    finally:
        relay.close()
    after = objects(s3, bucket)
    assert sorted(after) == sorted(before)
    by_arrow = ds.dataset(
        f"{bucket}/lake/price_snapshots",
        filesystem=filesystem(s3.port),
        format="parquet",
        partitioning="hive",
    ).to_table()
    assert by_arrow.num_rows == len(server_rows(conn, "price_snapshots", start, end))
    assert TOKENS[1] not in set(by_arrow.column("token_id").to_pylist())


def test_export_command_to_s3_never_shows_credentials(
    conn: Conn, db: str, s3: MotoS3, bucket: str, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_data(conn)
    start, end = DAY0.date().isoformat(), (DAY0 + timedelta(days=3)).date().isoformat()
    args = ["export", "trades", "--dsn", db, "--start", start, "--end", end, "--no-progress"]
    assert main([*args, "--out", f"s3://{bucket}/cli"]) == 0
    out, err = capsys.readouterr()
    expected = server_rows(conn, "trades", DAY0, DAY0 + timedelta(days=3))
    assert f"exported {len(expected)} row(s) of trades" in out
    assert f"under s3://{bucket}/cli/trades in" in out
    assert f"s3://{bucket}/cli/trades/date={DAY0.date().isoformat()}/part.parquet" in out
    # Keys in the URI itself (pyarrow accepts them there) are not shown either.
    assert main([*args, "--out", f"s3://{KEY_ID}:{SECRET}@{bucket}/inline"]) == 0
    inline, inline_err = capsys.readouterr()
    assert f"under s3://{bucket}/inline/trades in" in inline
    # The store unreachable: one error line, no credentials.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard: nothing listens
    assert main([*args, "--out", f"s3://{KEY_ID}:{SECRET}@{bucket}/down"]) == 1
    down, down_err = capsys.readouterr()
    assert down_err.startswith("pmstore: error: ")
    assert "127.0.0.1:9" in down_err or bucket in down_err
    for shown in (out, err, inline, inline_err, down, down_err):
        assert SECRET not in shown and TOKEN not in shown
    client_objects = objects(s3, bucket)
    assert any(k.startswith("inline/trades/date=") for k in client_objects)


def test_a_bad_uri_is_a_configuration_error_without_credentials(aws: None) -> None:
    with pytest.raises(ConfigurationError) as raised:
        export_table(
            None,  # type: ignore[arg-type]  # never reached: the URI fails first
            "trades",
            DAY0,
            DAY0 + timedelta(days=1),
            f"s3://{KEY_ID}:{SECRET}@bucket/x?bogus={SECRET}",
        )
    assert "cannot open export destination s3://bucket/x" in str(raised.value)
    assert SECRET not in str(raised.value)
    assert SECRET not in str(raised.value.__cause__)
    with pytest.raises(ConfigurationError, match="cannot open export destination nosuch://"):
        export_table(None, "trades", DAY0, DAY0 + timedelta(days=1), "nosuch://x/y")  # type: ignore[arg-type]


def test_export_to_an_fsspec_filesystem(conn: Conn, monkeypatch: pytest.MonkeyPatch) -> None:
    write_data(conn)
    folder = f"pmstore-{uuid.uuid4().hex[:8]}/lake"
    out = f"memory://{folder}"
    result = export_table(conn, "trades", START, END, out)
    assert result.root == f"{out}/trades"
    memory = fsspec.filesystem("memory")
    found = sorted(memory.glob(f"/{folder}/trades/*/*"))
    days = [f"date={d.day.isoformat()}" for d in result.days]
    assert [p.rsplit("/", 2)[1:] for p in found] == [[d, "part.parquet"] for d in days]
    table = ds.dataset(
        f"/{folder}/trades",
        filesystem=pafs.PyFileSystem(pafs.FSSpecHandler(memory)),
        format="parquet",
        partitioning="hive",
    ).to_table()
    assert table.num_rows == len(server_rows(conn, "trades", START, END))
    monkeypatch.setitem(__import__("sys").modules, "fsspec", None)  # fsspec not installed
    with pytest.raises(ConfigurationError, match=r"pip install 'pmstore\[fsspec\]'"):
        export_table(conn, "trades", START, END, out)


class ShortWrites(pafs.FSSpecHandler):  # type: ignore[misc]  # pyarrow has no type information
    """fsspec's memory filesystem, except that every file written keeps only its first
    ``keep`` bytes while the writer is told all went through: a store that "completed"
    an upload short, as pyarrow's S3 stream does when closed after a failed part."""

    keep = 1_000

    def open_output_stream(self, path: str, metadata: Any) -> Any:
        from pyarrow import PythonFile

        return PythonFile(Truncating(self.fs.open(path, mode="wb"), self.keep), mode="w")


class Truncating:
    def __init__(self, raw: Any, keep: int) -> None:
        self.raw, self.left, self.closed = raw, keep, False

    def write(self, data: bytes) -> int:
        self.raw.write(bytes(data)[: max(self.left, 0)])
        self.left -= len(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.closed = True
        self.raw.close()

    def writable(self) -> bool:
        return True


def test_a_short_upload_is_refused_and_leaves_the_previous_file(conn: Conn) -> None:
    write_data(conn)
    memory = fsspec.filesystem("memory")
    folder = f"/pmstore-{uuid.uuid4().hex[:8]}/lake"
    export_table(conn, "trades", START, END, f"memory://{folder}")
    day_files = sorted(memory.glob(f"{folder}/trades/*/part.parquet"))
    before = {p: memory.cat_file(p) for p in day_files}
    conn.execute("DELETE FROM trades WHERE token_id = %s", (TOKENS[2],))
    short = pafs.PyFileSystem(ShortWrites(memory))
    with pytest.raises(OSError, match=r"upload of memory://.*\.tmp is incomplete: 1000 of \d+"):
        export_table(conn, "trades", START, END, folder, filesystem=short)
    assert sorted(memory.glob(f"{folder}/trades/*/part.parquet")) == day_files
    assert {p: memory.cat_file(p) for p in day_files} == before
    assert memory.glob(f"{folder}/_pmstore_tmp/*") == []  # the short temporary is gone
