-- What was deployed where: one row per deploy attempt, written as 'running' before the host is touched and
-- finished afterwards, so an interrupted deploy stays visible.
CREATE TABLE deploy_revisions (
    id            INTEGER PRIMARY KEY,
    server_id     INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    revision      TEXT NOT NULL,
    bundle_sha256 TEXT NOT NULL,
    operator      TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    result        TEXT NOT NULL CHECK (result IN ('running', 'ok', 'unchanged', 'rolled-back', 'failed')),
    message       TEXT NOT NULL DEFAULT ''
);

CREATE INDEX deploy_revisions_by_server ON deploy_revisions (server_id, id);
