DROP TABLE IF EXISTS pmstore_ingest_log;
