"""The Writer's extra_statements and the cursor function of migration 0012, on a real server."""

from __future__ import annotations

import psycopg
import pytest
from conftest import RECENT_DAY

from pmstore.errors import WriteError
from pmstore.writer import Writer

ADVANCE = "SELECT pmstore_ingest_advance(%s, %s, %s, %s, %s, %s)"
REGISTER = (
    "INSERT INTO pmstore_ingest_files (file_id, identity_bytes, format, path) "
    "VALUES ('f', 10, 'lines', 'x') ON CONFLICT DO NOTHING"
)
TOKEN = "7" * 76


def rows(db: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_extra_statements_commit_with_the_rows_or_not_at_all(db: str) -> None:
    when = RECENT_DAY
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("TRUNCATE price_snapshots, pmstore_ingest_log, pmstore_ingest_files CASCADE")
    with Writer(db) as writer:
        moved = [(REGISTER, ()), (ADVANCE, ("f", "price_snapshots", 0, 100, 3, 1))]
        writer.copy_prices([(when, TOKEN, 0.5)], batch_id="b1", extra_statements=moved)
        assert rows(db, "SELECT position, line_number, records FROM pmstore_ingest_cursors") == [
            (100, 3, 1)
        ]
        # The cursor is not at 0 any more: the function refuses, nothing of the batch is written.
        stale = [(ADVANCE, ("f", "price_snapshots", 0, 200, 6, 1))]
        with pytest.raises(WriteError, match="PM001"):
            writer.copy_prices([(when, TOKEN, 0.6)], batch_id="b2", extra_statements=stale)
        assert rows(db, "SELECT count(*) FROM price_snapshots") == [(1,)]
        # Already at the target (a retried commit): nothing, and the logged batch is skipped.
        again = writer.copy_prices([(when, TOKEN, 0.5)], batch_id="b1", extra_statements=moved[1:])
        assert again.already_written and again.rows_written == 0
        # An empty batch still commits its statements; execute_statements runs them alone.
        writer.copy_trades([], extra_statements=[(ADVANCE, ("f", "trades", 0, 100, 3, 0))])
        writer.execute_statements([(ADVANCE, ("f", "rejects", 0, 100, 3, 2))])
    assert rows(
        db, "SELECT table_name, position, records FROM pmstore_ingest_cursors ORDER BY 1"
    ) == [
        ("price_snapshots", 100, 1),
        ("rejects", 100, 2),
        ("trades", 100, 0),
    ]
