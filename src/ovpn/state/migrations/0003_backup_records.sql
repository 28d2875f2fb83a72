-- Backups taken on hosts: where the archive is and its checksum, so a restore can verify it.
CREATE TABLE backup_records (
    id          INTEGER PRIMARY KEY,
    server_id   INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    remote_path TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL,
    operator    TEXT NOT NULL
);
