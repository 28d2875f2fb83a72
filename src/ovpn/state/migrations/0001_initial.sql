-- Desired state of the fleet. Secrets (REALITY private keys, tokens) are stored encrypted (enc:v1:...).
CREATE TABLE servers (
    id                  INTEGER PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    role                TEXT NOT NULL CHECK (role IN ('vpn', 'proxy')),
    host                TEXT NOT NULL,
    domain              TEXT NOT NULL,
    port                INTEGER NOT NULL DEFAULT 443,
    ssh_user            TEXT NOT NULL,
    ssh_port            INTEGER NOT NULL DEFAULT 22,
    ssh_identity        TEXT,
    xray_version        TEXT NOT NULL,
    reality_private_key TEXT NOT NULL,
    reality_public_key  TEXT NOT NULL,
    reality_short_id    TEXT NOT NULL,
    reality_server_name TEXT NOT NULL,
    reality_target      TEXT NOT NULL,
    proxy_preset        TEXT,
    relay_uuid          TEXT,
    relay_short_id      TEXT,
    images              TEXT NOT NULL DEFAULT '{}',
    enabled             INTEGER NOT NULL DEFAULT 1,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    CHECK ((role = 'proxy') = (proxy_preset IS NOT NULL))
);

CREATE TABLE proxy_backends (
    proxy_id   INTEGER NOT NULL REFERENCES servers (id) ON DELETE RESTRICT,
    backend_id INTEGER NOT NULL REFERENCES servers (id) ON DELETE RESTRICT,
    priority   INTEGER NOT NULL DEFAULT 100,
    created_at TEXT NOT NULL,
    PRIMARY KEY (proxy_id, backend_id)
);

CREATE TABLE server_secrets (
    server_id INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    name      TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (server_id, name)
);

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    username    TEXT NOT NULL UNIQUE,
    uuid        TEXT NOT NULL UNIQUE,
    email       TEXT NOT NULL UNIQUE,
    enabled     INTEGER NOT NULL DEFAULT 1,
    expiry_date TEXT,
    quota_bytes INTEGER,
    notes       TEXT NOT NULL DEFAULT '',
    tags        TEXT NOT NULL DEFAULT '[]',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
