-- Evaluation state of the analytics rules (analytics/rules), one row per device and rule, so a
-- restart resumes a running duration, keeps an active alarm active and still sends its clear.
-- Written behind the in-memory state about once a second and before any event leaves.
--   state       idle | pending (condition holds, duration not reached) | active
--   since       ms: start of the pending condition, or when the alarm activated
--   last_value  the rule metric's last reading; last_at its time (ms), 0 = none yet
--   cleared_at  ms of the last clear (cooldown)
--   data        JSON: rate-of-change ring, suppression flag, value at activation
--   pending     JSON array of events made but not yet accepted by the event log
CREATE TABLE rule_state (
    device_id   TEXT NOT NULL,
    rule_id     TEXT NOT NULL,
    state       TEXT NOT NULL,
    since       BIGINT NOT NULL DEFAULT 0,
    last_value  DOUBLE PRECISION NOT NULL DEFAULT 0,
    last_at     BIGINT NOT NULL DEFAULT 0,
    cleared_at  BIGINT NOT NULL DEFAULT 0,
    data        TEXT NOT NULL DEFAULT '{}',
    pending     TEXT NOT NULL DEFAULT '[]',
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (device_id, rule_id)
);
