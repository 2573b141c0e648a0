-- Consumers of the RTSP re-serve (analytics workers, recorders, later a city centre), each
-- with its own Digest login that can be revoked alone. The secret is shown once when the
-- consumer is created; what is kept is Digest's HA1, hex MD5(name:offsite:secret), the one
-- value a Digest check needs. Secrets are 192 random bits, so HA1 cannot be reversed to them,
-- but HA1 logs in to the re-serve: the table is as sensitive as a password file. Times are
-- unix milliseconds; revoked_at 0 = active.

CREATE TABLE streams_rtsp_consumers (
    name       TEXT PRIMARY KEY,
    ha1        TEXT NOT NULL,
    note       TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL DEFAULT 0
);
