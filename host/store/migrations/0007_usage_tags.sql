-- Attribution tags of a request (its x-sluice-tags and its key's tags), as
-- "name=value" pairs sorted by name and joined by commas; '' for none.

ALTER TABLE usage_events ADD COLUMN tags TEXT NOT NULL DEFAULT '';
