-- Integrations, handoffs with every attempt, review items, follow-ups, recurring reasons.
CREATE TABLE integrations (
    integration_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    rules TEXT NOT NULL,
    active BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

ALTER TABLE handoffs ADD COLUMN integration_kind TEXT;
ALTER TABLE handoffs ADD COLUMN payload TEXT;
ALTER TABLE handoffs ADD COLUMN attempts BIGINT;
ALTER TABLE handoffs ADD COLUMN next_attempt_at BIGINT;
ALTER TABLE handoffs ADD COLUMN external_id TEXT;
ALTER TABLE handoffs ADD COLUMN external_url TEXT;
ALTER TABLE handoffs ADD COLUMN evidence TEXT;
ALTER TABLE handoffs ADD COLUMN phase BIGINT;
ALTER TABLE handoffs ADD COLUMN rule_name TEXT;
CREATE INDEX handoffs_integration ON handoffs (integration_id, created_at);

CREATE TABLE handoff_attempts (
    handoff_id TEXT NOT NULL REFERENCES handoffs (handoff_id),
    attempt BIGINT NOT NULL,
    at BIGINT NOT NULL,
    status_code BIGINT,
    error TEXT,
    latency_ms BIGINT NOT NULL,
    exchanges TEXT NOT NULL,
    PRIMARY KEY (handoff_id, attempt)
);

CREATE TABLE review_items (
    review_id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES calls (call_id),
    handoff_id TEXT REFERENCES handoffs (handoff_id),
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    status TEXT NOT NULL,
    note TEXT,
    decided_by TEXT,
    decided_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX review_items_status ON review_items (status, created_at);
CREATE INDEX review_items_call ON review_items (call_id);

CREATE TABLE follow_ups (
    follow_up_id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES calls (call_id),
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    due_at BIGINT,
    created_at BIGINT NOT NULL,
    completed_at BIGINT,
    follow_up_key TEXT NOT NULL UNIQUE
);
CREATE INDEX follow_ups_status ON follow_ups (kind, status, created_at);

ALTER TABLE calls ADD COLUMN reason_key TEXT;
CREATE INDEX calls_reason ON calls (reason_key, created_at);
