-- Video analytics: which worker analyses which camera (leases with expiry), the workers that
-- asked recently (for a fair share), and each camera's analytics settings (zones, schedule,
-- sensitivity, limits) as validated JSON (analytics/lease.CameraSettings).

CREATE TABLE analytics_leases (
    camera_id   TEXT PRIMARY KEY,
    worker_id   TEXT NOT NULL,
    acquired_at BIGINT NOT NULL,
    renewed_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX analytics_leases_worker ON analytics_leases(worker_id);

CREATE TABLE analytics_workers (
    worker_id  TEXT PRIMARY KEY,
    capacity   INTEGER NOT NULL,
    seen_at    BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE analytics_camera_settings (
    camera_id  TEXT PRIMARY KEY,
    settings   TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL DEFAULT ''
);
