-- Xray compares emails without case, and some emails are ovpn's own (core.model.RESERVED_EMAILS; the list below
-- must match it). From now on the state itself refuses a user whose username or email another user already has
-- apart from case, or who takes a reserved email. Users that clash already are not rewritten: ovpn names them
-- (core.users.identity_clashes) and refuses to render until the operator fixes them, and these triggers refuse
-- only a change of their identity, never an update that keeps it (enable, disable, expiry, quota).
CREATE TRIGGER users_identity_on_insert BEFORE INSERT ON users
WHEN lower(NEW.email) IN ('proxy-service@cluster', 'ovpn-agent-marker@local')
    OR EXISTS (
        SELECT 1 FROM users WHERE lower(username) = lower(NEW.username) OR lower(email) = lower(NEW.email)
    )
BEGIN
    SELECT RAISE(ABORT, 'user identity clash: another user has this username or email apart from case, or the email is reserved');
END;

CREATE TRIGGER users_identity_on_update BEFORE UPDATE OF username, email ON users
WHEN (
        lower(NEW.username) <> lower(OLD.username)
        AND EXISTS (SELECT 1 FROM users WHERE id <> OLD.id AND lower(username) = lower(NEW.username))
    )
    OR (
        lower(NEW.email) <> lower(OLD.email)
        AND (
            lower(NEW.email) IN ('proxy-service@cluster', 'ovpn-agent-marker@local')
            OR EXISTS (SELECT 1 FROM users WHERE id <> OLD.id AND lower(email) = lower(NEW.email))
        )
    )
BEGIN
    SELECT RAISE(ABORT, 'user identity clash: another user has this username or email apart from case, or the email is reserved');
END;
