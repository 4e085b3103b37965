-- Markets: one row per Polymarket market (condition), upserted by condition_id.
-- depends: 0001_extensions

CREATE TABLE markets (
    condition_id   TEXT PRIMARY KEY,
    question       TEXT NOT NULL,
    slug           TEXT,
    market_type    TEXT,
    outcomes       TEXT[],
    clob_token_ids TEXT[],
    active         BOOLEAN DEFAULT true,
    closed         BOOLEAN DEFAULT false,
    end_date_iso   TEXT,
    created_at     TIMESTAMPTZ DEFAULT now(),
    updated_at     TIMESTAMPTZ DEFAULT now()
);

CREATE INDEX markets_active_idx ON markets (active) WHERE active;
