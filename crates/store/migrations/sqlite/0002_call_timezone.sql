-- The caller's timezone: relative times in the transcript ("3pm yesterday") resolve in it.
ALTER TABLE calls ADD COLUMN timezone TEXT;
