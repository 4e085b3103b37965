-- Resolutions: how (and whether yet) each market resolved, upserted by condition_id.
-- depends: 0001_extensions
--
-- A resolution changes over time (status proposed -> disputed -> resolved),
-- hence status and updated_at. A 50/50 resolution has no winner_token_id and
-- payout_price 0.5.

CREATE TABLE resolutions (
    condition_id     TEXT PRIMARY KEY,
    outcome          TEXT,
    winner_token_id  TEXT,
    resolved_at      TIMESTAMPTZ,
    payout_price     DOUBLE PRECISION,
    detection_method TEXT,
    status           TEXT,
    created_at       TIMESTAMPTZ DEFAULT now(),
    updated_at       TIMESTAMPTZ DEFAULT now()
);
