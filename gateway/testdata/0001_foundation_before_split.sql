-- Foundation schema: sites, devices, maintenance, users, tokens, audit.
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

CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    username         TEXT NOT NULL UNIQUE,
    display_name     TEXT NOT NULL DEFAULT '',
    password_hash    TEXT NOT NULL,
    role             TEXT NOT NULL,
    departments      TEXT NOT NULL DEFAULT '[]',
    regions          TEXT NOT NULL DEFAULT '[]',
    disabled         BOOLEAN NOT NULL DEFAULT FALSE,
    failed_logins    INTEGER NOT NULL DEFAULT 0,
    locked_until     BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE tokens (
    hash        TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    ip          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX tokens_user ON tokens(user_id);

CREATE TABLE audit (
    id      {{serial}},
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL DEFAULT '',
    role    TEXT NOT NULL DEFAULT '',
    action  TEXT NOT NULL,
    target  TEXT NOT NULL DEFAULT '',
    ip      TEXT NOT NULL DEFAULT '',
    result  TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit(at);
CREATE INDEX audit_actor ON audit(actor, at);
