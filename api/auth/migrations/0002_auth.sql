-- Users and their session tokens (api/auth). IF NOT EXISTS: databases made before version 2
-- existed already have these tables from version 1.
CREATE TABLE IF NOT EXISTS users (
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

CREATE TABLE IF NOT EXISTS tokens (
    hash        TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    ip          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS tokens_user ON tokens(user_id);
