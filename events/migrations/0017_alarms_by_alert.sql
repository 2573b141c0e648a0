-- A clearing alarm counts the active alarms of its alert (events/alerts.go): without an index
-- that was a scan of every alarm the gateway ever had, inside the log's write transaction.
CREATE INDEX IF NOT EXISTS alarms_alert ON alarms(alert_id, state);
