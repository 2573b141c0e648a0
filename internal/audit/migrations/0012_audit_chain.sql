-- The audit log's hash chain (internal/audit): every record carries the SM3 hash of its
-- content and of the record before it (prev_hash), so a changed, inserted or removed record
-- breaks the chain. audit_chain (one row, id = 1) is the chain head every append locks and
-- moves, and the anchor: the hash of the last record deleted by retention, which the first
-- kept record must point at. legacy_through is the newest record written before the chain
-- existed; the first append chains those records too.
ALTER TABLE audit ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN hash TEXT NOT NULL DEFAULT '';
CREATE TABLE audit_chain (
    id              INTEGER PRIMARY KEY,
    head_id         BIGINT NOT NULL DEFAULT 0,
    head_hash       TEXT NOT NULL DEFAULT '',
    anchor_id       BIGINT NOT NULL DEFAULT 0,
    anchor_hash     TEXT NOT NULL DEFAULT '',
    anchor_at       BIGINT NOT NULL DEFAULT 0,
    legacy_through  BIGINT NOT NULL DEFAULT 0
);
INSERT INTO audit_chain(id, head_id, head_hash, anchor_id, anchor_hash, anchor_at, legacy_through)
    SELECT 1, 0, '', 0, '', 0, COALESCE(MAX(id), 0) FROM audit;
