-- A request id names one request, so the ledger holds it once. This lets a
-- batch be retried after a failure that left its fate unknown (the commit
-- reached the database, its acknowledgement did not) without counting it
-- twice: InsertUsage skips ids already present.

DROP INDEX usage_events_request;
CREATE UNIQUE INDEX usage_events_request_id ON usage_events (request_id);
