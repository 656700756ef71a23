-- A number's optional inbound hook: asked at each inbound call for variables or another agent version.
ALTER TABLE phone_numbers ADD COLUMN inbound_hook_url TEXT;
