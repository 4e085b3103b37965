"""The error hierarchy: every error pickles with its fields; chained causes hide passwords."""

from __future__ import annotations

import inspect
import json
import pickle
import traceback
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import RECENT_DAY, TestServer

from pmstore import errors
from pmstore.errors import (
    BatchValidationError,
    ConfigurationError,
    ConnectionLostError,
    CopyDecodeError,
    FeatureUnavailableError,
    IngestError,
    MigrationDriftError,
    MigrationError,
    MigrationLockError,
    PayloadError,
    PmstoreError,
    ReadError,
    RecorderError,
    RowProblem,
    ServerError,
    WaitTimeoutError,
    WriteError,
)
from pmstore.ingest._sources import BadLine, open_source
from pmstore.writer import Writer

SAMPLES: list[PmstoreError] = [
    PmstoreError("something went wrong"),
    ConfigurationError("chunk_rows must be >= 1"),
    ServerError("initdb not found in /usr/lib/postgresql/15/bin"),
    MigrationError("0003_trades failed: relation exists"),
    MigrationLockError("yoyo_lock held by pid 4242"),
    MigrationDriftError("0003_price_snapshots changed since applied", ["0003_price_snapshots"]),
    BatchValidationError(
        "price_snapshots",
        [RowProblem(3, "price", "not finite"), RowProblem(None, "ts", "missing column")],
        total=7,
    ),
    PayloadError("field 'price' is missing", kind="clob_book"),
    PayloadError("not a Polymarket payload"),
    CopyDecodeError("row 3, column price: 4 bytes where float8 takes 8"),
    IngestError("a.jsonl: the reader process ended unexpectedly (exit code -9)"),
    WriteError(
        "writing trades failed, nothing written",
        table="trades",
        sqlstate="23505",
        message_primary="duplicate key value violates unique constraint",
    ),
    WriteError("writing markets failed"),
    ConnectionLostError(
        "connection lost while writing price_snapshots",
        table="price_snapshots",
        sqlstate="57P01",
        message_primary="terminating connection due to administrator command",
    ),
    FeatureUnavailableError("continuous aggregates need the Community edition"),
    WaitTimeoutError("a subscription on connection 3 did not come true within 5.0 s"),
    ReadError(
        "reading failed: canceling statement due to statement timeout",
        sqlstate="57014",
        message_primary="canceling statement due to statement timeout",
    ),
    RecorderError("cannot write the archive a.jsonl.gz.part: File too large", path="a.part"),
]


def hierarchy() -> set[type[PmstoreError]]:
    """Every PmstoreError class pmstore.errors defines."""
    return {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, PmstoreError) and cls.__module__ == errors.__name__
    }


def fields(error: BaseException) -> dict[str, Any]:
    return {"args": error.args, "str": str(error), **vars(error)}


def test_the_samples_cover_every_error_class() -> None:
    assert {type(e) for e in SAMPLES} == hierarchy()


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: f"{type(e).__name__}")
@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_error_pickles_with_its_fields(error: PmstoreError, protocol: int) -> None:
    error.__notes__ = ["a note added by a caller"]
    copy = pickle.loads(pickle.dumps(error, protocol=protocol))
    assert type(copy) is type(error)
    assert fields(copy) == fields(error)
    assert copy.__notes__ == ["a note added by a caller"]


def test_batch_validation_error_keeps_its_problems_through_pickle() -> None:
    error = BatchValidationError("trades", [RowProblem(1, "side", "not BUY or SELL")], total=3)
    copy = pickle.loads(pickle.dumps(error))
    assert copy.table == "trades" and copy.total == 3
    assert copy.problems == [RowProblem(1, "side", "not BUY or SELL")]
    assert "row 1, column 'side'" in str(copy) and "(and 2 more)" in str(copy)


def test_compatible_bases_are_kept() -> None:
    # Callers that caught the built-in errors pmstore used to raise still catch them.
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(BatchValidationError, ValueError)
    assert issubclass(PayloadError, ValueError)
    assert issubclass(ConnectionLostError, WriteError)
    assert issubclass(MigrationLockError, MigrationError)


def test_a_file_that_is_not_json_chains_the_decoder_error(tmp_path: Path) -> None:
    path = tmp_path / "payloads.json"
    path.write_text('{"a": 1,\n oops')
    with pytest.raises(PayloadError, match="line 2") as info, open_source(path) as source:
        list(source.items())
    cause = info.value.__cause__
    assert isinstance(cause, json.JSONDecodeError) and cause.lineno == 2


def test_a_json_lines_line_that_is_not_json_is_a_bad_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "payloads.jsonl"
    path.write_text('{"a": 1}\n{"b": 2}\n{oops\n')
    with open_source(path) as source:
        items = list(source.items())
    assert [item.where for item in items] == ["line 1", "line 2", "line 3"]
    bad = items[2].payload
    assert isinstance(bad, BadLine) and bad.text.startswith("{oops") and bad.error


# -- chained causes, passwords ------------------------------------------------------

PASSWORD = "s3cret-" + "pass-4711"  # built, so no source line shown in a traceback holds it


def chain(error: BaseException) -> list[BaseException]:
    """The error and every cause and context behind it."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__]
    return seen


def assert_no_password(error: BaseException) -> None:
    shown = "".join(traceback.format_exception(error))
    assert PASSWORD not in shown, shown
    for link in chain(error):
        assert PASSWORD not in str(link) and PASSWORD not in repr(link)
        # psycopg's connection object (its repr shows the password) is not kept.
        assert PASSWORD not in repr(vars(link)), type(link)
    assert PASSWORD.encode() not in pickle.dumps(error)


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://pmstore:{PASSWORD}@127.0.0.1:1/nowhere?connect_timeout=2",
        f"host=127.0.0.1 port=1 user=pmstore password={PASSWORD} dbname=x connect_timeout=2",
    ],
    ids=["url", "key-value"],
)
def test_a_refused_connection_chains_its_cause_without_the_password(dsn: str) -> None:
    with pytest.raises(ConnectionLostError) as opening:
        Writer(dsn).connection  # noqa: B018 - opening it is the point
    with pytest.raises(ConnectionLostError) as writing:
        Writer(dsn, retries=1, backoff=0).copy_prices(
            {"ts": [RECENT_DAY], "token_id": ["a"], "price": [0.5]}
        )
    for info in (opening, writing):
        error = info.value
        cause = error.__cause__
        assert isinstance(cause, psycopg.OperationalError), cause
        assert "Connection refused" in str(cause)  # the cause is there, only redacted
        assert cause.pgconn is None
        assert error.sqlstate is None  # refused before any server spoke
        assert_no_password(error)
    assert writing.value.table == "price_snapshots" and opening.value.table is None
    assert "gave up after 2 attempt(s)" in str(writing.value)


def test_a_server_error_carries_sqlstate_diag_and_cause(server: TestServer) -> None:
    """A query that fails on the server: WriteError keeps SQLSTATE and message, and chains."""
    name = "t_errors_server_error"
    dsn = server.migrated_database(name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                """
                CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    RAISE EXCEPTION 'refused %', NEW.token_id USING ERRCODE = 'P0042';
                END $$;
                CREATE TRIGGER refuse BEFORE INSERT ON price_snapshots
                    FOR EACH ROW EXECUTE FUNCTION refuse();
                """
            )
        with Writer(dsn) as writer, pytest.raises(WriteError) as info:
            writer.copy_prices({"ts": [RECENT_DAY], "token_id": ["tok"], "price": [0.5]})
        error = info.value
        assert type(error) is WriteError
        assert (error.table, error.sqlstate, error.message_primary) == (
            "price_snapshots",
            "P0042",
            "refused tok",
        )
        assert "[SQLSTATE P0042]" in str(error)
        cause = error.__cause__
        assert isinstance(cause, psycopg.Error) and cause.sqlstate == "P0042"
        assert cause.diag.message_primary == "refused tok"
        copy = pickle.loads(pickle.dumps(error))
        assert (copy.table, copy.sqlstate, copy.message_primary) == (
            "price_snapshots",
            "P0042",
            "refused tok",
        )
    finally:
        server.drop_database(name)
