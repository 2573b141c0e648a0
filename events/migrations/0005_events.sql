-- Events, alarms, alerts, uplink cursors and dead letters.
-- events is append-only: seq orders it for cursors (assigned under a writer lock so commits
-- happen in seq order), id is the ULID the outside world sees, body is the exact JSON that
-- every consumer receives.

CREATE TABLE events (
    seq          {{serial}},
    id           TEXT NOT NULL UNIQUE,
    type         TEXT NOT NULL,
    severity     TEXT NOT NULL DEFAULT '',
    occurred_at  BIGINT NOT NULL,
    logged_at    BIGINT NOT NULL,
    device_id    TEXT NOT NULL DEFAULT '',
    site_id      TEXT NOT NULL DEFAULT '',
    department   TEXT NOT NULL DEFAULT '',
    region_code  TEXT NOT NULL DEFAULT '',
    alarm_key    TEXT NOT NULL DEFAULT '',
    body         TEXT NOT NULL
);
CREATE INDEX events_type ON events(type, seq);
CREATE INDEX events_device ON events(device_id, seq);

CREATE TABLE alarms (
    alarm_key     TEXT PRIMARY KEY,
    state         TEXT NOT NULL,
    alert_id      TEXT NOT NULL DEFAULT '',
    last_event_id TEXT NOT NULL DEFAULT '',
    activated_at  BIGINT NOT NULL DEFAULT 0,
    cleared_at    BIGINT NOT NULL DEFAULT 0,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE alerts (
    id               TEXT PRIMARY KEY,
    alarm_key        TEXT NOT NULL DEFAULT '',
    state            TEXT NOT NULL,
    type             TEXT NOT NULL,
    severity         TEXT NOT NULL DEFAULT '',
    department       TEXT NOT NULL DEFAULT '',
    region_code      TEXT NOT NULL DEFAULT '',
    site_id          TEXT NOT NULL DEFAULT '',
    device_id        TEXT NOT NULL DEFAULT '',
    event_id         TEXT NOT NULL,
    message          TEXT NOT NULL DEFAULT '',
    claimed_by       TEXT NOT NULL DEFAULT '',
    outcome          TEXT NOT NULL DEFAULT '',
    escalation_level INTEGER NOT NULL DEFAULT 0,
    alarm_active     BOOLEAN NOT NULL DEFAULT TRUE,
    opened_at        BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    source           TEXT NOT NULL
);
CREATE INDEX alerts_state ON alerts(state, opened_at);
CREATE INDEX alerts_department ON alerts(department, opened_at);

CREATE TABLE alert_steps (
    id           {{serial}},
    alert_id     TEXT NOT NULL REFERENCES alerts(id),
    at           BIGINT NOT NULL,
    actor        TEXT NOT NULL DEFAULT '',
    action       TEXT NOT NULL,
    state        TEXT NOT NULL,
    note         TEXT NOT NULL DEFAULT '',
    outcome      TEXT NOT NULL DEFAULT '',
    attachments  TEXT NOT NULL DEFAULT '[]',
    event_id     TEXT NOT NULL
);
CREATE INDEX alert_steps_alert ON alert_steps(alert_id, id);

CREATE TABLE uplink_cursors (
    name        TEXT PRIMARY KEY,
    seq         BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE uplink_dead_letters (
    id          {{serial}},
    uplink      TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    at          BIGINT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 1,
    resolved_at BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX uplink_dead_letters_event ON uplink_dead_letters(uplink, event_id);
