-- Per-user preferences of the dashboard (api/auth), e.g. the video wall's layout ("wall"),
-- so a user finds them on any machine after logging in. body is a JSON document.
CREATE TABLE IF NOT EXISTS user_preferences (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    body        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, name)
);
