-- The kind of upstream that answered a request: openai, azure_openai,
-- anthropic, bedrock, gemini or mock; '' when no upstream was called, as
-- for deployment. Rows written before this column are ''.

ALTER TABLE usage_events ADD COLUMN upstream_type TEXT NOT NULL DEFAULT '';
