-- Indexes for the job queue's hot queries. Portable SQL like 0001.

-- A poll claims a server's oldest queued job:
--   WHERE assigned_server = ? AND state = 'queued' ORDER BY created_at_ms, id LIMIT 1
-- With only jobs_assigned(assigned_server, state), SQLite sorted every
-- queued job of the server on every claim: O(queue) per hand-out, O(n^2)
-- to drain a queue of n (a 2,000-job queue spent most of the coordinator's
-- CPU in that sort). This index serves the filter and the order; it also
-- covers every query jobs_assigned served, so that one goes.
CREATE INDEX jobs_queue ON jobs(assigned_server, state, created_at_ms, id);
DROP INDEX jobs_assigned;

-- Enqueueing looks for an open job with the same kind and spec (a PUT of a
-- secret variable, a re-sent request) before adding one; without an index
-- that scanned every open job.
CREATE INDEX jobs_spec ON jobs(kind, spec);
