-- Workflow progress (chains, groups, callbacks). Prepended to finish.lua, maintain.lua and admin.lua:
-- the scripts that make a task SUCCEEDED, DEAD or CANCELLED call wf_step in the same call when the
-- task's record has `wf`, so progress moves atomically with the task's state (exactly once: a stale
-- attempt changes no state and never reaches wf_step; the `:res` hash's HSETNX counts a step once).
-- A workflow's keys share its queue's hash tag (every step lives in one queue; docs/decisions.md):
--   <kp>wf:<id>       hash: type (chain|group), n, on_failure, state (RUNNING|SUCCEEDED|FAILED), done,
--                     failed, keep (ms: the latest expiry of its tasks' records), queue, finished_at;
--                     a chain's later steps id<j> k<j> a<j> m<j> o<j>; a group's callback cb ck ca cm co
--   <kp>wf:<id>:ids   list: the steps' task ids in order
--   <kp>wf:<id>:res   hash: step index (or `cb`) -> {"task_id","state","result"} at its first final state
-- They expire with the longest-lived record of the workflow's tasks (PEXPIREAT keep at its end).

local function wf_finish(wk, state, now)
  redis.call('HSET', wk, 'state', state, 'finished_at', now)
  local keep = tonumber(redis.call('HGET', wk, 'keep'))
  if keep then
    for _, key in ipairs({wk, wk .. ':ids', wk .. ':res'}) do redis.call('PEXPIREAT', key, keep) end
  end
end

-- Args (a JSON object's text) with one more field in front.
local function wf_splice(args, name, value)
  if string.match(args, '^%s*{%s*}%s*$') then return '{"' .. name .. '":' .. value .. '}' end
  local at = string.find(args, '{', 1, true)
  return '{"' .. name .. '":' .. value .. ',' .. string.sub(args, at + 1)
end

-- Creates a PENDING task of the workflow in its queue.
local function wf_enqueue(kp, pending, stats, queue, wf, idx, id, kind, args, max, owner, now)
  local rk = kp .. 't:' .. id
  redis.call('HSET', rk, 'kind', kind, 'queue', queue, 'args', args, 'state', 'PENDING',
    'attempts', 0, 'max_attempts', max, 'enqueued_at', now, 'queued', 1, 'wf', wf, 'wf_i', idx)
  if owner ~= '' then redis.call('HSET', rk, 'owner', owner) end
  redis.call('RPUSH', pending, id)
  redis.call('HINCRBY', stats, 'enqueued', 1)
end

-- A task of workflow `wf` reached its final `state` (`text`: its result when SUCCEEDED); its record
-- expires after `ttl` seconds.
local function wf_step(kp, pending, stats, id, wf, state, text, now, ttl)
  local wk = kp .. 'wf:' .. wf
  local w = redis.call('HMGET', wk, 'type', 'n', 'on_failure', 'keep', 'queue')
  if not w[1] then return end
  local idx = redis.call('HGET', kp .. 't:' .. id, 'wf_i')
  if not idx then return end
  local result = 'null'
  if state == 'SUCCEEDED' and text ~= '' then result = text end
  local entry = '{"task_id":"' .. id .. '","state":"' .. state .. '","result":' .. result .. '}'
  if redis.call('HSETNX', wk .. ':res', idx, entry) == 0 then return end
  local exp = tonumber(now) + tonumber(ttl) * 1000
  if exp > (tonumber(w[4]) or 0) then redis.call('HSET', wk, 'keep', exp) end
  if idx == 'cb' then
    if state == 'SUCCEEDED' then wf_finish(wk, 'SUCCEEDED', now) else wf_finish(wk, 'FAILED', now) end
    return
  end
  local n = tonumber(w[2])
  if w[1] == 'chain' then
    local j = tonumber(idx) + 1
    if state ~= 'SUCCEEDED' then
      wf_finish(wk, 'FAILED', now)
    elseif j >= n then
      wf_finish(wk, 'SUCCEEDED', now)
    else
      local s = redis.call('HMGET', wk, 'id' .. j, 'k' .. j, 'a' .. j, 'm' .. j, 'o' .. j)
      wf_enqueue(kp, pending, stats, w[5], wf, j, s[1], s[2], wf_splice(s[3], 'previous', result), s[4], s[5], now)
    end
    return
  end
  local done = redis.call('HINCRBY', wk, 'done', 1)
  local failed = 0
  if state ~= 'SUCCEEDED' then failed = redis.call('HINCRBY', wk, 'failed', 1)
  else failed = tonumber(redis.call('HGET', wk, 'failed')) or 0 end
  if done < n then return end
  local cb = redis.call('HMGET', wk, 'cb', 'ck', 'ca', 'cm', 'co')
  if not cb[1] or (failed > 0 and w[3] == 'skip') then
    if failed > 0 then wf_finish(wk, 'FAILED', now) else wf_finish(wk, 'SUCCEEDED', now) end
    return
  end
  -- Every member finished: the callback gets their entries in the group's order, read in chunks
  -- (unpack has a stack limit).
  local parts = {}
  for from = 0, n - 1, 1000 do
    local fields = {}
    for k = from, math.min(from + 999, n - 1) do fields[#fields + 1] = tostring(k) end
    local vals = redis.call('HMGET', wk .. ':res', unpack(fields))
    for _, v in ipairs(vals) do parts[#parts + 1] = v or 'null' end
  end
  local members = '[' .. table.concat(parts, ',') .. ']'
  wf_enqueue(kp, pending, stats, w[5], wf, 'cb', cb[1], cb[2], wf_splice(cb[3], 'members', members), cb[4], cb[5], now)
end

