-- Sensor presence (online/offline derived from data) kept across restarts, so that a restart
-- neither repeats device.offline for a sensor already known to be silent nor forgets when a
-- sensor was last heard from. Times are unix milliseconds.

CREATE TABLE ingest_presence (
    device_id TEXT PRIMARY KEY,
    state     TEXT NOT NULL,
    since     BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    reason    TEXT NOT NULL DEFAULT ''
);
