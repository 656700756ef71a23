-- Times are integer milliseconds since the Unix epoch (UTC); booleans are 0/1 integers;
-- JSON is text. The same shapes on PostgreSQL keep one set of queries for both.
CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE idempotency_keys (
    scope_hash TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    response_status INTEGER,
    response_body TEXT,
    created_at INTEGER NOT NULL
);

CREATE TABLE agents (
    agent_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    draft_version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX agents_name ON agents (name);

CREATE TABLE agent_versions (
    agent_id TEXT NOT NULL REFERENCES agents (agent_id),
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    kind TEXT NOT NULL,
    config TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    published_at INTEGER,
    PRIMARY KEY (agent_id, version)
);

CREATE TABLE phone_numbers (
    phone_number TEXT PRIMARY KEY,
    inbound_agent_id TEXT REFERENCES agents (agent_id),
    inbound_agent_version INTEGER,
    outbound_agent_id TEXT REFERENCES agents (agent_id),
    outbound_agent_version INTEGER,
    active INTEGER NOT NULL,
    nickname TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE calls (
    call_id TEXT PRIMARY KEY,
    entry_point TEXT NOT NULL,
    direction TEXT NOT NULL,
    from_number TEXT,
    to_number TEXT,
    agent_id TEXT,
    agent_version INTEGER,
    config_hash TEXT,
    route TEXT NOT NULL,
    batch_id TEXT,
    workflow_id TEXT,
    status TEXT NOT NULL,
    disconnection_reason TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    ended_at INTEGER,
    duration_ms INTEGER,
    category TEXT,
    summary TEXT,
    extracted_fields TEXT NOT NULL,
    analysis TEXT,
    transfer TEXT,
    recording TEXT NOT NULL,
    audio_cache_hits INTEGER NOT NULL,
    audio_cache_misses INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
-- Keyset pagination: newest first by (created_at, call_id); one index per filter.
CREATE INDEX calls_created ON calls (created_at, call_id);
CREATE INDEX calls_entry_point ON calls (entry_point, created_at, call_id);
CREATE INDEX calls_status ON calls (status, created_at, call_id);
CREATE INDEX calls_agent ON calls (agent_id, agent_version, created_at, call_id);
CREATE INDEX calls_from ON calls (from_number, created_at, call_id);
CREATE INDEX calls_to ON calls (to_number, created_at, call_id);
CREATE INDEX calls_batch ON calls (batch_id, created_at, call_id);
CREATE INDEX calls_workflow ON calls (workflow_id, created_at, call_id);
CREATE INDEX calls_category ON calls (category, created_at, call_id);

CREATE TABLE call_turns (
    call_id TEXT NOT NULL REFERENCES calls (call_id),
    turn_index INTEGER NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    PRIMARY KEY (call_id, turn_index)
);

CREATE TABLE call_events (
    call_id TEXT NOT NULL REFERENCES calls (call_id),
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    offset_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE annotations (
    annotation_id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES calls (call_id),
    agent_id TEXT,
    agent_version INTEGER,
    turn_index INTEGER,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    suggestion TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX annotations_call ON annotations (call_id, created_at);
CREATE INDEX annotations_agent ON annotations (agent_id, agent_version, created_at, annotation_id);
CREATE INDEX annotations_created ON annotations (created_at, annotation_id);

-- One row per (call, destination, action); filled by the handoff issue, filtered on now.
CREATE TABLE handoffs (
    handoff_id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES calls (call_id),
    integration_id TEXT NOT NULL,
    action TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    reason TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX handoffs_call ON handoffs (call_id, status);
CREATE INDEX handoffs_status ON handoffs (status, call_id);

-- The durable work queue (DESIGN.md §3).
CREATE TABLE work_items (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    dedup_key TEXT UNIQUE,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    run_at INTEGER NOT NULL,
    lease_seq INTEGER NOT NULL,
    lease_owner TEXT,
    lease_expires_at INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX work_items_due ON work_items (state, run_at, id);
CREATE INDEX work_items_lease ON work_items (state, lease_expires_at);

CREATE TABLE work_attempts (
    item_id TEXT NOT NULL REFERENCES work_items (id),
    attempt INTEGER NOT NULL,
    lease_seq INTEGER NOT NULL,
    worker TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    outcome TEXT,
    error TEXT,
    PRIMARY KEY (item_id, attempt)
);
