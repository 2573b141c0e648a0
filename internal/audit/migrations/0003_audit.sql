-- The audit log (internal/audit). IF NOT EXISTS: databases made before version 3 existed
-- already have this table from version 1.
CREATE TABLE IF NOT EXISTS audit (
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
CREATE INDEX IF NOT EXISTS audit_at ON audit(at);
CREATE INDEX IF NOT EXISTS audit_actor ON audit(actor, at);
