-- A key gets a scope of its own: a name, an expiry, its own limits and
-- budgets, a model allow-list and tags (the JSON of KeyScope), who created
-- it, and the key it replaced when it was issued by a rotation.

ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT '{}';
ALTER TABLE api_keys ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN rotated_from TEXT NOT NULL DEFAULT '';
