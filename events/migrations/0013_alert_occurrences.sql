-- One alert per condition (issue 16): an alert collects the occurrences of its alarms while it
-- is not closed, and the alarms of one measurement (low and high limit of one metric on one
-- device) share one alert. audience says who must act on it (maintainers or officers).
ALTER TABLE alerts ADD COLUMN group_key TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN occurrences INTEGER NOT NULL DEFAULT 1;
ALTER TABLE alerts ADD COLUMN first_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN last_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN recovered_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN audience TEXT NOT NULL DEFAULT '';
UPDATE alerts SET group_key = alarm_key, first_at = opened_at, last_at = opened_at,
    audience = CASE WHEN type LIKE 'device.%' OR type LIKE 'firmware.%' OR type LIKE 'gateway.%'
        OR type IN ('sensor.silent', 'video.signal_lost', 'video.tamper') THEN 'maintainers' ELSE 'officers' END;
CREATE INDEX alerts_group ON alerts(group_key, state);
