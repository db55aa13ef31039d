-- Where a request was served: the deployment that answered ('' when no
-- upstream was called), and, when it took more than one upstream call, each
-- call as JSON: [{"deployment":"openai/gpt-4o","status":429,"ms":12}, ...]
-- (status 0: no answer, with "error": "timeout" or "unavailable").

ALTER TABLE usage_events ADD COLUMN deployment TEXT NOT NULL DEFAULT '';
ALTER TABLE usage_events ADD COLUMN attempts TEXT NOT NULL DEFAULT '';
