-- The ingest log: one row per committed batch, so a retried batch is never written twice.
-- depends: 0001_extensions
--
-- The writer inserts the batch id in the same transaction as the batch's
-- rows: if the id is already there the batch was committed before (e.g. the
-- connection dropped after COMMIT) and nothing is written again.

CREATE TABLE pmstore_ingest_log (
    batch_id     TEXT PRIMARY KEY,
    table_name   TEXT NOT NULL,
    rows_written BIGINT NOT NULL,
    committed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX pmstore_ingest_log_committed_at_idx ON pmstore_ingest_log (committed_at);
