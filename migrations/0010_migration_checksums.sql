-- Checksums of applied migrations, so pmstore can tell when an applied file was edited later.
-- depends: 0009_ingest_log
--
-- yoyo identifies a migration by its id only. `pmstore migrate` records the
-- SHA-256 of each applied migration's file here (the rows of migrations
-- applied by plain yoyo are added at the next `pmstore migrate`);
-- `pmstore migrate --status` and `pmstore status` name every applied
-- migration whose file no longer matches.

CREATE TABLE pmstore_migration_checksums (
    migration_id TEXT PRIMARY KEY,
    sha256       TEXT NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
