-- Leases that let one of several centre instances sharing this database run a job at a time
-- (an uplink's delivery, alert escalation, gateway-offline detection, presence, retention):
-- the holder renews expires_at; a row not renewed expires and another instance takes it.
-- Times are the database's clock in Unix milliseconds, so instances' clocks need not agree.

CREATE TABLE instance_leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    acquired_at BIGINT NOT NULL,
    renewed_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
