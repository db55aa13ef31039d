-- Cost moves from micro-dollars to nano-dollars: whole micro-dollars per
-- request billed a small request $0 (16 embedding tokens at $0.02 per million
-- tokens are 0.32 micro-dollars), and a month of them lost real money. Every
-- stored cost converts exactly.

ALTER TABLE usage_events ADD COLUMN cost_nanos BIGINT NOT NULL DEFAULT 0;
UPDATE usage_events SET cost_nanos = cost_micros * 1000;
ALTER TABLE usage_events DROP COLUMN cost_micros;
