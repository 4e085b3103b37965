-- Drops what 0017 added: the feed gaps and the recorder health rows with it.

DROP TABLE IF EXISTS pmstore_recorder_health;
DROP TABLE IF EXISTS feed_gaps;
