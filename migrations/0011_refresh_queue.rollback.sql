-- The job first, then the procedure, functions and tables.
DO $$
BEGIN
    PERFORM delete_job(j.job_id)
    FROM timescaledb_information.jobs j
    WHERE j.proc_name = 'pmstore_refresh_pending' AND j.proc_schema = current_schema();
END
$$;

DROP FUNCTION IF EXISTS pmstore_ensure_refresh_queue(boolean);
DROP PROCEDURE IF EXISTS pmstore_refresh_pending(integer, jsonb);
DROP FUNCTION IF EXISTS pmstore_cagg_watermark(regclass);
DROP FUNCTION IF EXISTS pmstore_refresh_floor(regclass);
DROP FUNCTION IF EXISTS pmstore_retention_horizon(regclass);
DROP TABLE IF EXISTS pmstore_refresh_queue;
DROP TABLE IF EXISTS pmstore_refresh_targets;
