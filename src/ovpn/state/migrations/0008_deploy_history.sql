-- `ovpn deploy history`: which operation made each revision (a deploy, a rollback to a kept release, a restore)
-- and which files it changed; 'interrupted' for a deploy stopped part-way (Ctrl-C), whose message says what the
-- host runs since. SQLite cannot change a CHECK constraint in place, so the table is rebuilt with its rows.
CREATE TABLE deploy_revisions_v8 (
    id            INTEGER PRIMARY KEY,
    server_id     INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    revision      TEXT NOT NULL,
    bundle_sha256 TEXT NOT NULL,
    operator      TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    result        TEXT NOT NULL
        CHECK (result IN ('running', 'ok', 'unchanged', 'rolled-back', 'failed', 'interrupted')),
    message       TEXT NOT NULL DEFAULT '',
    kind          TEXT NOT NULL DEFAULT 'deploy' CHECK (kind IN ('deploy', 'rollback', 'restore')),
    changes       TEXT NOT NULL DEFAULT ''
);

INSERT INTO deploy_revisions_v8
    (id, server_id, revision, bundle_sha256, operator, started_at, finished_at, result, message, kind)
SELECT id, server_id, revision, bundle_sha256, operator, started_at, finished_at, result, message,
       CASE WHEN message LIKE 'restored from %' THEN 'restore' ELSE 'deploy' END
FROM deploy_revisions;

DROP TABLE deploy_revisions;

ALTER TABLE deploy_revisions_v8 RENAME TO deploy_revisions;

CREATE INDEX deploy_revisions_by_server ON deploy_revisions (server_id, id);
