-- The indexes under plan 01-03's names, and the markets index as the plan writes it.
-- depends: 0014_orderbook_levels_jsonb
--
-- Renames only: the same indexes, no rebuild. TimescaleDB renames each
-- chunk's index after its hypertable's (_hyper_1_1_chunk_<new name>), for
-- compressed chunks too, and names new chunks' indexes after the new name
-- (checked on TimescaleDB 2.19.3 Apache-2 and 2.28.3 Community).
-- idx_trades_trade_id keeps pmstore's definition, UNIQUE (trade_id, ts):
-- TimescaleDB requires a unique index to include the partitioning column
-- (the plan's is (trade_id) WHERE trade_id IS NOT NULL; trade_id is never
-- NULL here), so only its name follows the plan. The markets index is made
-- again with the plan's predicate (active = true; the same rows as 0002's
-- `WHERE active`, which the planner treats alike): markets is a small table.

ALTER INDEX price_snapshots_token_ts_idx RENAME TO idx_price_snapshots_token_time;
ALTER INDEX orderbook_snapshots_token_ts_idx RENAME TO idx_orderbook_snapshots_token_time;
ALTER INDEX trades_token_ts_idx RENAME TO idx_trades_token_time;
ALTER INDEX trades_trade_id_ts_key RENAME TO idx_trades_trade_id;
DROP INDEX markets_active_idx;
CREATE INDEX idx_markets_active ON markets (active) WHERE active = true;
