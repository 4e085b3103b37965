DROP FUNCTION IF EXISTS pmstore_ingest_advance(TEXT, TEXT, BIGINT, BIGINT, BIGINT, BIGINT);
DROP TABLE IF EXISTS pmstore_ingest_cursors;
DROP TABLE IF EXISTS pmstore_ingest_files;
