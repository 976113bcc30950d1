-- >>> history (issue 18): put before finish.lua and maintain.lua (scripts.rs), which call these.
-- Per-minute outcome counters of a queue, per kind, in the hash `<queue prefix>h:<minute>` (minute =
-- ms since the epoch / 60000 on the caller's clock; `keys::QueueKeys::history`). Fields:
-- `<kind>|s` succeeded, `<kind>|r` retried, `<kind>|d` dead, `<kind>|f` failed (= r + d), and
-- `<kind>|l<b>` attempts whose enqueue-to-start latency fell in bucket b = floor(4 * log2(ms + 1))
-- (a quarter of an octave: percentiles within 19 %). A script adds each group of outcomes to a Lua
-- table of numbers per kind (nothing per outcome) and writes the table once (one HINCRBY per
-- distinct field, one EXPIRE), so a batch of a thousand outcomes of one kind costs a handful of writes.
-- Each hash lives 7 days and 1 hour.
local HISTORY_TTL = 608400
-- kind -> {succeeded, failed, retried, dead, {latency bucket (string) -> count}}
local history = {}
-- Adds `s` succeeded, `r` retried and `d` dead attempts of `kind` (failed = r + d). With `bucket` (a
-- bucket number as a string; '' or nil for none), also counts all of them in that enqueue-to-start
-- latency bucket. finish.lua calls it once per group of outcomes the worker sent together (same
-- kind and bucket: `Broker::finish` groups them), so the history costs a call per group, not per
-- outcome; the worker computed the bucket when it leased the job (`history::latency_bucket`:
-- started_at minus when the job became due, its enqueued_at or its next_run_at for a delayed job or
-- a retry), so neither script reads a time of the record for it. An attempt whose lease expired
-- (maintain) has no latency noted. The bucket stays a string: it is only a field name's suffix, and
-- Lua's `tonumber` of a string (strtod) costs more than the rest of the counting.
local function history_add(kind, bucket, s, r, d)
  kind = kind or '?'
  local c = history[kind]
  if not c then c = {0, 0, 0, 0, {}}; history[kind] = c end
  c[1] = c[1] + s
  c[2] = c[2] + r + d
  c[3] = c[3] + r
  c[4] = c[4] + d
  if bucket and bucket ~= '' then
    local l = c[5]
    l[bucket] = (l[bucket] or 0) + s + r + d
  end
end
-- The record's fields an attempt's entry needs: {kind, enqueued_at, next_run_at, started_at, worker,
-- attempts}, as read before the script changes the record.
local function attempt_fields(rk)
  return redis.call('HMGET', rk, 'kind', 'enqueued_at', 'next_run_at', 'started_at', 'worker',
    'attempts')
end
-- The record's entry for an attempt that ended in a retry or dead (`h` from `attempt_fields`),
-- written by the caller in the same HSET as the outcome under the field `at:<lease token>` (one field
-- per counted attempt; it expires with the record): attempt|worker|started_at|ended_at|outcome (R, D)
-- |error class|error (300 bytes at most). A success writes none: it is the record's last attempt, and
-- the record's own fields (attempts, worker, started_at, finished_at) say it (`record.rs`), since a
-- SUCCEEDED task never runs again.
local function attempt_entry(h, code, now, class, text)
  return table.concat({h[6] or '', h[5] or '', h[4] or '', now, code, class or '',
    string.sub(text or '', 1, 300)}, '|')
end
local HISTORY_SUFFIX = {'|s', '|f', '|r', '|d'}
-- Writes the noted outcomes into the minute of `now` (ms).
local function history_flush(kp, now)
  if next(history) == nil then return end
  local hk = kp .. 'h:' .. math.floor(tonumber(now) / 60000)
  for kind, c in pairs(history) do
    for i = 1, 4 do
      if c[i] > 0 then redis.call('HINCRBY', hk, kind .. HISTORY_SUFFIX[i], c[i]) end
    end
    for b, n in pairs(c[5]) do redis.call('HINCRBY', hk, kind .. '|l' .. b, n) end
  end
  redis.call('EXPIRE', hk, HISTORY_TTL)
end
-- <<< history
