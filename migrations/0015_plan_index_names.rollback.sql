-- pmstore's earlier index names (0002-0005), and 0002's markets index.
DROP INDEX idx_markets_active;
CREATE INDEX markets_active_idx ON markets (active) WHERE active;
ALTER INDEX idx_trades_trade_id RENAME TO trades_trade_id_ts_key;
ALTER INDEX idx_trades_token_time RENAME TO trades_token_ts_idx;
ALTER INDEX idx_orderbook_snapshots_token_time RENAME TO orderbook_snapshots_token_ts_idx;
ALTER INDEX idx_price_snapshots_token_time RENAME TO price_snapshots_token_ts_idx;
