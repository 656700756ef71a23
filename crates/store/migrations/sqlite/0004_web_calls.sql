-- Single-use, expiring tokens that let a browser join its web call.
CREATE TABLE web_call_tokens (
    token_hash TEXT PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES calls (call_id),
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX web_call_tokens_call ON web_call_tokens (call_id);
