DROP TABLE IF EXISTS pmstore_features;
DROP EXTENSION IF EXISTS timescaledb;
