-- Feed gaps and recorder health: what the live recorder (`pmstore record`) lost, and how it is.
-- depends: 0012_ingest_cursors 0013_orderbook_levels_arrays
--
-- feed_gaps: one row per interval during which a token's feed had no
-- continuity (no valid order book kept from a fresh `book` plus every delta
-- since): started_at is when continuity was lost, ended_at when a fresh book
-- re-established it, NULL while the gap is open. reason names the cause:
-- 'disconnect', 'silence', 'book_mismatch', 'tick_size_change',
-- 'no_snapshot', 'shutdown', 'not_running' (docs/recorder.md). The rows are
-- derived from the recorder's raw archive (a deterministic function of it),
-- written in the same transaction as the archive file's cursor (0012).
-- Closing a gap is an upsert on (token_id, started_at) that never reopens a
-- closed one, so writing the same rows again changes nothing.
--
-- A plain table, not a hypertable: a few rows per token and disconnect.
-- The primary key serves "gaps of these tokens in [start, end)"; the
-- partial index serves "gaps open now" (status, alerts) at any table size.

CREATE TABLE feed_gaps (
    token_id   TEXT COLLATE "C" NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    ended_at   TIMESTAMPTZ,
    reason     TEXT NOT NULL CHECK (reason <> ''),
    PRIMARY KEY (token_id, started_at),
    CONSTRAINT feed_gaps_ends_after_start CHECK (ended_at IS NULL OR ended_at >= started_at)
);

CREATE INDEX feed_gaps_open_idx ON feed_gaps (started_at) WHERE ended_at IS NULL;
CREATE INDEX feed_gaps_started_at_idx ON feed_gaps (started_at);

-- pmstore_recorder_health: one row per recorder (archive directory on a
-- host), upserted by the running recorder every few seconds and when it
-- stops. Operational state, not derived from the archive: `pmstore status`
-- reads it (sockets, last frame age, open gaps, database lag).

CREATE TABLE pmstore_recorder_health (
    recorder_id       TEXT PRIMARY KEY,
    run_id            TEXT NOT NULL,
    host              TEXT NOT NULL,
    pid               INTEGER NOT NULL,
    archive_dir       TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('running', 'stopped', 'failed')),
    started_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    tokens            INTEGER NOT NULL DEFAULT 0,
    sockets           INTEGER NOT NULL DEFAULT 0,
    sockets_connected INTEGER NOT NULL DEFAULT 0,
    last_frame_at     TIMESTAMPTZ,
    open_gaps         INTEGER NOT NULL DEFAULT 0,
    archived_records  BIGINT NOT NULL DEFAULT 0,
    committed_records BIGINT NOT NULL DEFAULT 0,
    reconnects        BIGINT NOT NULL DEFAULT 0,
    detail            JSONB NOT NULL DEFAULT '{}'
);
