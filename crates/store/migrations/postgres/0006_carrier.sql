-- A phone call's leg at its carrier: the carrier's own call id and raw status, kept apart
-- from DialNexa's call status (callbacks repeat and reorder; the raw status never moves back).
CREATE TABLE carrier_calls (
    call_id TEXT PRIMARY KEY REFERENCES calls (call_id),
    carrier TEXT NOT NULL,
    carrier_sid TEXT,
    raw_status TEXT NOT NULL,
    status_rank INTEGER NOT NULL DEFAULT 0,
    answered_by TEXT,
    ringing_at BIGINT,
    answered_at BIGINT,
    details TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX carrier_calls_sid ON carrier_calls (carrier, carrier_sid);
CREATE INDEX carrier_calls_open ON carrier_calls (status_rank, created_at);
