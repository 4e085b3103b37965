DROP TABLE IF EXISTS pmstore_migration_checksums;
