DROP TABLE IF EXISTS orderbook_snapshots;
