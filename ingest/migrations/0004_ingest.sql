-- Ingest: messages and readings refused by decoding or validation, with the raw payload
-- (cut to a few KiB) so a maintainer can see what the device sent. Readings themselves live in
-- the telemetry store (InfluxDB or a separate SQLite file), not here.
CREATE TABLE ingest_quarantine (
    id           {{serial}},
    at           BIGINT NOT NULL,
    device_id    TEXT NOT NULL DEFAULT '',
    site_id      TEXT NOT NULL DEFAULT '',
    topic        TEXT NOT NULL,
    client       TEXT NOT NULL DEFAULT '',
    reason       TEXT NOT NULL,
    metric       TEXT NOT NULL DEFAULT '',
    detail       TEXT NOT NULL DEFAULT '',
    payload      {{blob}} NOT NULL,
    payload_size BIGINT NOT NULL
);
CREATE INDEX ingest_quarantine_device ON ingest_quarantine(device_id, id);
CREATE INDEX ingest_quarantine_reason ON ingest_quarantine(reason, id);
