-- TimescaleDB, and pmstore's registry of the TimescaleDB features this database has.
-- depends:

CREATE EXTENSION IF NOT EXISTS timescaledb;

-- One row per optional feature (continuous_aggregates, compression, retention),
-- written by migrations 0007/0008 and the post-apply hook: whether this
-- database has it, and why not (the Apache-2 edition lacks all three).
CREATE TABLE pmstore_features (
    feature    TEXT PRIMARY KEY,
    available  BOOLEAN NOT NULL,
    detail     TEXT NOT NULL,
    checked_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
