-- Single-use, expiring tokens that let a browser join its web call.
CREATE TABLE web_call_tokens (
    token_hash TEXT PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES calls (call_id),
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX web_call_tokens_call ON web_call_tokens (call_id);
