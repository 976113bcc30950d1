-- >>> history (issue 18): put before finish.lua and maintain.lua (scripts.rs), which call these.
-- Per-minute outcome counters of a queue, per kind, in the hash `<queue prefix>h:<minute>` (minute =
-- ms since the epoch / 60000 on the caller's clock; `keys::QueueKeys::history`). Fields:
-- `<kind>|s` succeeded, `<kind>|r` retried, `<kind>|d` dead, `<kind>|f` failed (= r + d), and
-- `<kind>|l<b>` attempts whose enqueue-to-start latency fell in bucket b = floor(4 * log2(ms + 1))
-- (a quarter of an octave: percentiles within 19 %). A script notes each outcome in a Lua table and
-- writes the table once (one HINCRBY per distinct field, one EXPIRE), so a batch of a thousand
-- outcomes of one kind costs a handful of writes. Each hash lives 7 days and 1 hour.
local HISTORY_TTL = 608400
local history = {}
local function history_add(field, n)
  history[field] = (history[field] or 0) + n
end
-- Notes the outcome `code` of an attempt: S succeeded, R retried (failed), D dead (failed). `h` holds
-- the record's {kind, enqueued_at, next_run_at, started_at, worker, attempts} as read before the
-- script changed it (finish.lua reads them in the HMGET it makes anyway, so an outcome costs no
-- extra read); `latency` adds the attempt's enqueue-to-start time (started_at minus when it became
-- due: enqueued_at, or next_run_at for a delayed job or a retry). Returns `h` for `attempt_entry`.
local function history_note(h, code, latency)
  local kind = h[1] or '?'
  if code == 'S' then
    history_add(kind .. '|s', 1)
  else
    history_add(kind .. '|f', 1)
    if code == 'R' then history_add(kind .. '|r', 1) else history_add(kind .. '|d', 1) end
  end
  local started = tonumber(h[4])
  if latency and started then
    local ready = math.max(tonumber(h[2]) or 0, tonumber(h[3]) or 0)
    local ms = math.max(0, started - ready)
    history_add(kind .. '|l' .. math.floor(4 * math.log(ms + 1) / math.log(2)), 1)
  end
  return h
end
-- The same for the record at `rk`, read here (maintain's reaping, which has not read it).
local function history_note_at(rk, code, latency)
  return history_note(redis.call('HMGET', rk, 'kind', 'enqueued_at', 'next_run_at', 'started_at',
    'worker', 'attempts'), code, latency)
end
-- The record's entry for the attempt that just ended, written by the caller in the same HSET as the
-- outcome under the field `at:<lease token>` (one field per counted attempt; it expires with the
-- record): attempt|worker|started_at|ended_at|outcome (S, R, D)|error class|error (300 bytes at most).
local function attempt_entry(h, code, now, class, text)
  return table.concat({h[6] or '', h[5] or '', h[4] or '', now, code, class or '',
    string.sub(text or '', 1, 300)}, '|')
end
-- Writes the noted outcomes into the minute of `now` (ms).
local function history_flush(kp, now)
  if next(history) == nil then return end
  local hk = kp .. 'h:' .. math.floor(tonumber(now) / 60000)
  for field, n in pairs(history) do redis.call('HINCRBY', hk, field, n) end
  redis.call('EXPIRE', hk, HISTORY_TTL)
end
-- <<< history
