-- Exactly once, retries and pagination (issue 8).
-- The work item that currently carries a handoff: at most one live item per handoff.
ALTER TABLE handoffs ADD COLUMN work_item_id TEXT;
CREATE INDEX handoffs_work_item ON handoffs (work_item_id);
-- Attempts that do not spend the item's error budget (rate limits, waits for enrichment):
-- an item is dead when attempts - free_attempts reaches max_attempts.
ALTER TABLE work_items ADD COLUMN free_attempts BIGINT NOT NULL DEFAULT 0;
-- What the destination asked for and what was done with it.
ALTER TABLE handoff_attempts ADD COLUMN rate_limited BIGINT NOT NULL DEFAULT 0;
ALTER TABLE handoff_attempts ADD COLUMN retry_after_ms BIGINT;
ALTER TABLE handoff_attempts ADD COLUMN note TEXT;
-- Keyset pagination of the review queue and follow-ups.
CREATE INDEX review_items_status_page ON review_items (status, created_at, review_id);
CREATE INDEX review_items_created ON review_items (created_at, review_id);
CREATE INDEX follow_ups_created ON follow_ups (created_at, follow_up_id);
-- started_after / started_before filter on the start time.
CREATE INDEX calls_started ON calls (started_at, call_id);
