-- What the reply cache did for a request: 'hit', 'miss', 'bypass' (the
-- caller's Cache-Control asked for a fresh reply), or '' when its tier does
-- not cache. A hit is billed nothing (cost_nanos 0); saved_nanos is what
-- its reply cost when it was first made.

ALTER TABLE usage_events ADD COLUMN cache TEXT NOT NULL DEFAULT '';
ALTER TABLE usage_events ADD COLUMN saved_nanos BIGINT NOT NULL DEFAULT 0;
