-- Ingest cursors: how far `pmstore ingest` has got in each file, per table.
-- depends: 0009_ingest_log
--
-- A file is identified by its content, not its path: file_id is
-- 'sha256:' + the SHA-256 of its first identity_bytes decompressed bytes
-- (64 KiB, or the whole file when it was smaller at its first run), so a
-- moved, renamed or re-compressed file is recognised, and a grown one too.
--
-- One cursor row per (file, table): position is how far the records of that
-- table are committed (JSON lines: the decompressed byte offset just past the
-- last consumed line; JSON arrays: items consumed; a document: 1), line_number
-- the lines before position, records how many records of that table the file
-- gave. 'rejects' is a table name too (rejected payload parts). Each row moves
-- in the same transaction as the batch it covers, through
-- pmstore_ingest_advance, so a run killed at any point and run again writes
-- every row exactly once.

CREATE TABLE pmstore_ingest_files (
    file_id        TEXT PRIMARY KEY,
    identity_bytes INTEGER NOT NULL CHECK (identity_bytes > 0),
    format         TEXT NOT NULL CHECK (format IN ('lines', 'array', 'document')),
    path           TEXT NOT NULL,
    first_seen_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX pmstore_ingest_files_identity_bytes_idx ON pmstore_ingest_files (identity_bytes);

CREATE TABLE pmstore_ingest_cursors (
    file_id     TEXT NOT NULL REFERENCES pmstore_ingest_files (file_id) ON DELETE CASCADE,
    table_name  TEXT NOT NULL,
    position    BIGINT NOT NULL CHECK (position >= 0),
    line_number BIGINT NOT NULL DEFAULT 0 CHECK (line_number >= 0),
    records     BIGINT NOT NULL DEFAULT 0 CHECK (records >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (file_id, table_name)
);

-- Move a cursor from p_from to p_to (optimistic: it must still be at p_from).
-- Already at p_to: nothing (a retried transaction that did commit). Anywhere
-- else: another run moved it, so this transaction must not write its rows:
-- raise SQLSTATE PM001 (the whole transaction rolls back).
CREATE FUNCTION pmstore_ingest_advance(
    p_file_id TEXT, p_table TEXT, p_from BIGINT, p_to BIGINT, p_line BIGINT, p_records BIGINT
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    current_position BIGINT;
BEGIN
    SELECT position INTO current_position FROM pmstore_ingest_cursors
        WHERE file_id = p_file_id AND table_name = p_table FOR UPDATE;
    IF NOT FOUND THEN
        current_position := 0;
        IF p_from = 0 THEN
            INSERT INTO pmstore_ingest_cursors (file_id, table_name, position, line_number, records)
                VALUES (p_file_id, p_table, p_to, p_line, p_records);
            RETURN;
        END IF;
    ELSIF current_position = p_from THEN
        UPDATE pmstore_ingest_cursors
            SET position = p_to, line_number = p_line, records = records + p_records,
                updated_at = now()
            WHERE file_id = p_file_id AND table_name = p_table;
        RETURN;
    ELSIF current_position = p_to THEN
        RETURN;
    END IF;
    RAISE EXCEPTION 'ingest cursor of % (%) is at %, not at % where this run started: another pmstore ingest is writing the same file', p_file_id, p_table, current_position, p_from
        USING ERRCODE = 'PM001';
END
$$;
