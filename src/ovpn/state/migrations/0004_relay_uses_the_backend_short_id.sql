-- The relay now authenticates with each backend's own REALITY short id (pool parity covers it), so a backend
-- that missed its redeploy rejects the relay's UUID with `invalid request user id` instead of hiding it.
ALTER TABLE servers DROP COLUMN relay_short_id;
