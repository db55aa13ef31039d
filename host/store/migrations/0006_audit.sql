-- Every change an operator makes (clients, keys, reloads) is recorded: who,
-- what, on what, when, and the before and after of what changed. Never a
-- secret: a key is named by its id and prefix.

CREATE TABLE audit_events (
    occurred_at BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_events_time ON audit_events (occurred_at);
