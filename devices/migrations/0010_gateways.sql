-- Site gateways enrolled below a centre (docs/contracts.md §7), the inventory each one last
-- reported, and the request nonces seen from them (replay refusal that survives a restart and
-- holds across centre instances sharing one database).

CREATE TABLE gateways (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    base_url            TEXT NOT NULL DEFAULT '',
    alg                 TEXT NOT NULL DEFAULT '',
    secret_enc          TEXT NOT NULL,
    disabled            BOOLEAN NOT NULL DEFAULT FALSE,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    state               TEXT NOT NULL DEFAULT 'unknown',
    state_since         BIGINT NOT NULL DEFAULT 0,
    last_seen           BIGINT NOT NULL DEFAULT 0,
    last_addr           TEXT NOT NULL DEFAULT '',
    version             TEXT NOT NULL DEFAULT '',
    inventory_revision  BIGINT NOT NULL DEFAULT 0,
    inventory_at        BIGINT NOT NULL DEFAULT 0,
    backlog             BIGINT NOT NULL DEFAULT 0,
    events_received     BIGINT NOT NULL DEFAULT 0,
    refused             BIGINT NOT NULL DEFAULT 0,
    last_refusal        TEXT NOT NULL DEFAULT '',
    last_refusal_at     BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE gateway_sites (
    gateway_id   TEXT NOT NULL,
    id           TEXT NOT NULL,
    department   TEXT NOT NULL DEFAULT '',
    region_code  TEXT NOT NULL DEFAULT '',
    body         TEXT NOT NULL,
    PRIMARY KEY (gateway_id, id)
);

CREATE TABLE gateway_devices (
    gateway_id   TEXT NOT NULL,
    id           TEXT NOT NULL,
    site_id      TEXT NOT NULL DEFAULT '',
    kind         TEXT NOT NULL DEFAULT '',
    profile      TEXT NOT NULL DEFAULT '',
    body         TEXT NOT NULL,
    PRIMARY KEY (gateway_id, id)
);
CREATE INDEX gateway_devices_kind ON gateway_devices(kind, id);

CREATE TABLE gateway_nonces (
    gateway_id  TEXT NOT NULL,
    nonce       TEXT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (gateway_id, nonce)
);
CREATE INDEX gateway_nonces_at ON gateway_nonces(at);
