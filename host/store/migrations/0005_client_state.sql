-- Clients can be disabled (their keys refused until enabled again) and
-- deleted (their keys dead for good; the ledger keeps their rows, and the id
-- stays taken so that old rows are never attributed to a new client).

ALTER TABLE clients ADD COLUMN disabled_at BIGINT;
ALTER TABLE clients ADD COLUMN deleted_at BIGINT;
