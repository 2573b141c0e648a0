-- HJ 212-2017 stations (docs/contracts.md §8): a sensor's MN (its identity in every frame) and
-- the hash of its PW (the access password it sends in every frame). Both backends run this file.

ALTER TABLE devices ADD COLUMN hj212_mn TEXT;
ALTER TABLE devices ADD COLUMN hj212_pw_hash TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX devices_hj212_mn ON devices(hj212_mn);
