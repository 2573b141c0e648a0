-- Devices: the supervised sites (监管对象), their devices and maintenance records.
-- (Version 1 was the "foundation" file that also created users, tokens and audit; those moved
-- to 0002_auth and 0003_audit, written so a database made before the move skips them.)
-- Times are unix milliseconds (BIGINT); lists are JSON text. Both backends run this file.

CREATE TABLE sites (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    uscc              TEXT NOT NULL DEFAULT '',
    region_code       TEXT NOT NULL DEFAULT '',
    address           TEXT NOT NULL DEFAULT '',
    latitude          DOUBLE PRECISION,
    longitude         DOUBLE PRECISION,
    department        TEXT NOT NULL DEFAULT '',
    supervision_items TEXT NOT NULL DEFAULT '[]',
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);

CREATE TABLE devices (
    id                 TEXT PRIMARY KEY,
    site_id            TEXT NOT NULL REFERENCES sites(id),
    kind               TEXT NOT NULL,
    name               TEXT NOT NULL DEFAULT '',
    vendor             TEXT NOT NULL DEFAULT '',
    model              TEXT NOT NULL DEFAULT '',
    profile            TEXT NOT NULL DEFAULT '',
    firmware           TEXT NOT NULL DEFAULT '',
    serial             TEXT NOT NULL DEFAULT '',
    installed_on       TEXT NOT NULL DEFAULT '',
    stream             TEXT NOT NULL DEFAULT '',
    rtsp_password_enc  TEXT NOT NULL DEFAULT '',
    mqtt_username      TEXT,
    mqtt_secret_hash   TEXT NOT NULL DEFAULT '',
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE UNIQUE INDEX devices_mqtt_username ON devices(mqtt_username);
CREATE INDEX devices_site ON devices(site_id);

CREATE TABLE maintenance (
    id         {{serial}},
    device_id  TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    note       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX maintenance_device ON maintenance(device_id, at);
