-- Record the outcomes of a batch of attempts.
-- KEYS[1] leased zset, KEYS[2] scheduled zset, KEYS[3] dead zset, KEYS[4] stats hash, KEYS[5] pending list
-- ARGV[1] now (ms), ARGV[2] result ttl (s), ARGV[3] dead ttl (s), ARGV[4] key prefix of the queue,
-- then groups of outcomes: a group is the job's kind and its enqueue-to-start latency bucket
-- (history.lua; '' for none), both as the worker's leases had them, and the number n of its
-- outcomes, followed by 6 values per outcome: id, token, code, text, class, at (ms)
--   code S = succeeded (text = result), R = retry at `at`, D = dead, Z = snooze until `at` (attempt given back)
-- (`Broker::finish` groups a batch's outcomes by kind and bucket, so the history is counted once per
-- group, not per outcome.)
-- Fencing: an outcome applies only when its token is the record's, i.e. it comes from the job's latest
-- lease. A stale one (a paused worker whose job was leased again) changes nothing and is counted
-- (`stale` in the stats). A failure whose lease expired but was not leased again is ignored too (the
-- requeued job runs again); a late success of the latest lease still counts.
-- Each recorded outcome is also counted in the queue's per-minute history (history.lua, prepended);
-- a retried or dead attempt is written in the record as its attempt's entry (`at:<token>`,
-- `attempt_entry`; a success needs none).
-- Returns {succeeded, retried, dead, then id and current token of each stale outcome}
local now, rttl, dttl, kp = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local s, r, d = 0, 0, 0
local stale = {}
local wfq = {} -- tasks of a workflow that reached a final state (workflows block below)
-- Set by wf_start.lua in the stats hash of a queue that has carried a workflow's steps; a queue that
-- never did reads no `wf` field per outcome (a missing field costs a scan of the whole record).
local wfon = redis.call('HGET', KEYS[4], 'workflows')
local g = 5 -- the group's first value
while g <= #ARGV do
  local gkind, gbucket, gs, gr, gd = ARGV[g], ARGV[g+1], s, r, d
  local first = g + 3
  g = first + 6 * tonumber(ARGV[g+2])
  for i = first, g - 1, 6 do
    local id, token, code, text, class, at = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4], ARGV[i+5]
    local rk = kp .. 't:' .. id
    -- token, state and, in a queue that has carried workflow steps, the workflow (one read per
    -- outcome; history's kind and latency come with the group)
    local v
    if wfon then v = redis.call('HMGET', rk, 'token', 'state', 'wf') else v = redis.call('HMGET', rk, 'token', 'state') end
    if v[1] ~= token then
      stale[#stale+1] = id; stale[#stale+1] = v[1] or ''
    else
      local held = redis.call('ZREM', KEYS[1], id)
      local st = v[2]
      if code == 'S' then
        if st == 'RUNNING' or st == 'PENDING' or st == 'SCHEDULED' then
          -- fetch.lua cleared next_run_at when it leased the job; a late success of a job that is
          -- SCHEDULED again clears it here (an empty next_run_at reads as none: cheaper than HDEL).
          if st == 'SCHEDULED' then
            redis.call('ZREM', KEYS[2], id)
            redis.call('HSET', rk, 'next_run_at', '')
          end
          redis.call('HSET', rk, 'state', 'SUCCEEDED', 'finished_at', now, 'result', text)
          redis.call('EXPIRE', rk, rttl)
          s = s + 1
          if v[3] then wfq[#wfq+1] = {id, v[3], 'SUCCEEDED', text, rttl} end
        end
      elseif held == 1 then
        if code == 'R' then
          local h = attempt_fields(rk)
          redis.call('HSET', rk, 'state', 'SCHEDULED', 'next_run_at', at, 'error', text, 'error_class', class,
            'at:' .. token, attempt_entry(h, 'R', now, class, text))
          redis.call('ZADD', KEYS[2], at, id)
          r = r + 1
        elseif code == 'Z' then
          redis.call('HSET', rk, 'state', 'SCHEDULED', 'next_run_at', at)
          redis.call('HINCRBY', rk, 'attempts', -1)
          redis.call('ZADD', KEYS[2], at, id)
        else
          local h = attempt_fields(rk)
          redis.call('HSET', rk, 'state', 'DEAD', 'finished_at', now, 'error', text, 'error_class', class, 'next_run_at', '',
            'at:' .. token, attempt_entry(h, 'D', now, class, text))
          redis.call('ZADD', KEYS[3], now, id)
          redis.call('EXPIRE', rk, dttl)
          d = d + 1
          if v[3] then wfq[#wfq+1] = {id, v[3], 'DEAD', '', dttl} end
        end
      end
    end
  end
  history_add(gkind, gbucket, s - gs, r - gr, d - gd) -- history (issue 18): the group's recorded outcomes
end
-- workflows: begin (chains, groups, callbacks: lua/workflow.lua)
for _, e in ipairs(wfq) do wf_step(kp, KEYS[5], KEYS[4], e[1], e[2], e[3], e[4], now, e[5]) end
-- workflows: end
if s > 0 then redis.call('HINCRBY', KEYS[4], 'succeeded', s) end
if r > 0 then redis.call('HINCRBY', KEYS[4], 'retried', r); redis.call('HINCRBY', KEYS[4], 'failed', r) end
if d > 0 then redis.call('HINCRBY', KEYS[4], 'dead', d); redis.call('HINCRBY', KEYS[4], 'failed', d) end
history_flush(kp, now) -- history (issue 18)
if #stale > 0 then redis.call('HINCRBY', KEYS[4], 'stale', #stale / 2) end
local out = {s, r, d}
for _, x in ipairs(stale) do out[#out+1] = x end
return out
