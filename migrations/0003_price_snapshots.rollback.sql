DROP TABLE IF EXISTS price_snapshots;
