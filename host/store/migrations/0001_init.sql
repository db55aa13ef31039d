-- Clients, their API keys and the usage ledger.
-- Kept to SQL that SQLite and PostgreSQL both accept: TEXT, BIGINT, BOOLEAN,
-- no autoincrement, times as UTC unix nanoseconds so range queries are exact.

CREATE TABLE clients (
    id         TEXT PRIMARY KEY,
    department TEXT NOT NULL,
    tier       TEXT NOT NULL,
    labels     TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES clients (id),
    prefix     TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE, -- lowercase hex SHA-256 of the key
    created_at BIGINT NOT NULL,
    revoked_at BIGINT                -- NULL while the key is active
);

CREATE INDEX api_keys_client ON api_keys (client_id);

CREATE TABLE usage_events (
    occurred_at       BIGINT NOT NULL,
    request_id        TEXT NOT NULL,
    client_id         TEXT NOT NULL, -- empty when the caller was not authenticated
    department        TEXT NOT NULL,
    key_id            TEXT NOT NULL,
    model             TEXT NOT NULL,
    endpoint          TEXT NOT NULL,
    stream            BOOLEAN NOT NULL,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    total_tokens      BIGINT NOT NULL,
    cost_micros       BIGINT NOT NULL,
    latency_ms        BIGINT NOT NULL,
    status            INTEGER NOT NULL,
    code              TEXT NOT NULL,
    findings          TEXT NOT NULL,
    usage_source      TEXT NOT NULL
);

CREATE INDEX usage_events_time ON usage_events (occurred_at);
CREATE INDEX usage_events_client_time ON usage_events (client_id, occurred_at);
-- Audit looks a request up by the id it returned in x-request-id.
CREATE INDEX usage_events_request ON usage_events (request_id);
