"""The Lua script that keeps the counters in Redis: one atomic check-and-take per call, settling,
holders' heartbeats and resynchronisation (see redis.py for the protocol around it).

Each counter is a hash. A bucket keeps `l` (its level) and `t` (when it had that level), in
Redis's own clock (TIME), so nodes' clocks do not matter. A gauge keeps one field `h:<holder>`
per worker holding some of it; a budget keeps `s` (spent) and its holders' reservations. A
holder's share counts only while its key `<prefix>holder:<id>` lives (refreshed every second,
gone 15 s after its worker stopped): a worker or node that dies cannot leak what it held.

ARGV[1] is the operation, ARGV[2] the holder, ARGV[3] the key prefix:
- A n1 (kind amount limit rate until)*n1 n2 ...: admit each call's demands, all or nothing per
  call; KEYS are every demand's counter in order. Answers per call:
  {admitted, failed index, retry-after ms, used...} (numbers as strings where fractional).
- S batch-id (kind give-back spend rate until)*: settle, once per batch id (a batch resent
  after a lost connection is not applied twice). Answers {index, spent before, after} per
  budget that spent.
- Y (amount)*: set this holder's share of each counter (KEYS) to what it really holds.
- H node: heartbeat; answers the number of live nodes.
"""

SCRIPT = r"""
local op = ARGV[1]
local holder = ARGV[2]
local prefix = ARGV[3]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local field = 'h:' .. holder
local EPSILON = 1e-9

local function held(key)
  local fields = redis.call('HGETALL', key)
  local total = 0
  for i = 1, #fields, 2 do
    local name = fields[i]
    if string.sub(name, 1, 2) == 'h:' then
      local value = tonumber(fields[i + 1])
      if redis.call('EXISTS', prefix .. 'holder:' .. string.sub(name, 3)) == 1 then
        total = total + value
      else
        redis.call('HDEL', key, name)
      end
    end
  end
  return total
end

local function level_of(key, rate)
  local state = redis.call('HMGET', key, 'l', 't')
  local level = tonumber(state[1]) or 0
  local at = tonumber(state[2]) or now
  level = level - (now - at) * rate
  if level < 0 then level = 0 end
  return level
end

local function set_level(key, level, rate)
  redis.call('HSET', key, 'l', tostring(level), 't', tostring(now))
  local ms = 1000
  if rate > 0 then ms = math.ceil(level / rate * 1000) + 1000 end
  redis.call('PEXPIRE', key, ms)
end

local function hold(key, amount)
  local value = tonumber(redis.call('HINCRBYFLOAT', key, field, amount))
  if value <= EPSILON then redis.call('HDEL', key, field) end
end

if op == 'A' then
  local answers = {}
  local p = 4
  local k = 1
  local calls = tonumber(ARGV[p]); p = p + 1
  for c = 1, calls do
    local n = tonumber(ARGV[p]); p = p + 1
    local used = {}
    local failed = -1
    local retry = 0
    for i = 0, n - 1 do
      local at = p + i * 5
      local kind = tonumber(ARGV[at])
      local amount = tonumber(ARGV[at + 1])
      local limit = tonumber(ARGV[at + 2])
      local rate = tonumber(ARGV[at + 3])
      local key = KEYS[k + i]
      if kind == 0 then
        local level = level_of(key, rate)
        local need = amount
        if need > limit then need = limit end
        used[i + 1] = level
        if level + need > limit then
          failed = i
          if rate > 0 then retry = (level + need - limit) / rate else retry = 0 end
          break
        end
      elseif kind == 1 then
        local taken = held(key)
        used[i + 1] = taken
        if taken + amount > limit then failed = i; retry = 1; break end
      else
        local taken = (tonumber(redis.call('HGET', key, 's')) or 0) + held(key)
        used[i + 1] = taken
        if taken >= limit then
          failed = i
          retry = tonumber(ARGV[at + 4]) - now
          if retry < 1 then retry = 1 end
          break
        end
      end
    end
    if failed < 0 then
      for i = 0, n - 1 do
        local at = p + i * 5
        local kind = tonumber(ARGV[at])
        local amount = tonumber(ARGV[at + 1])
        local rate = tonumber(ARGV[at + 3])
        local key = KEYS[k + i]
        if kind == 0 then
          set_level(key, used[i + 1] + amount, rate)
        elseif kind == 1 then
          hold(key, amount)
          redis.call('PEXPIRE', key, 86400000)
        else
          hold(key, amount)
          redis.call('PEXPIREAT', key, math.ceil((tonumber(ARGV[at + 4]) + 86400) * 1000))
        end
        used[i + 1] = used[i + 1] + amount
      end
    end
    local answer = {failed < 0 and 1 or 0, failed, math.ceil(retry * 1000)}
    for i = 1, #used do answer[#answer + 1] = tostring(used[i]) end
    answers[c] = answer
    p = p + n * 5
    k = k + n
  end
  return answers
end

if op == 'S' then
  if not redis.call('SET', prefix .. 'batch:' .. ARGV[4], '1', 'NX', 'PX', 3600000) then
    return {}
  end
  local spent = {}
  for i = 1, #KEYS do
    local at = 5 + (i - 1) * 5
    local kind = tonumber(ARGV[at])
    local give_back = tonumber(ARGV[at + 1])
    local spend = tonumber(ARGV[at + 2])
    local rate = tonumber(ARGV[at + 3])
    local until_ = tonumber(ARGV[at + 4])
    local key = KEYS[i]
    if kind == 0 then
      local level = level_of(key, rate) - give_back
      if level < 0 then level = 0 end
      set_level(key, level, rate)
    else
      if give_back ~= 0 and redis.call('HEXISTS', key, field) == 1 then
        hold(key, -give_back)
      end
      if kind == 2 and spend ~= 0 then
        local before = tonumber(redis.call('HGET', key, 's')) or 0
        local after = tonumber(redis.call('HINCRBYFLOAT', key, 's', spend))
        spent[#spent + 1] = {i - 1, tostring(before), tostring(after)}
      end
      if kind == 2 and until_ > 0 then
        redis.call('PEXPIREAT', key, math.ceil((until_ + 86400) * 1000))
      end
    end
  end
  return spent
end

if op == 'Y' then
  for i = 1, #KEYS do
    local amount = tonumber(ARGV[3 + i])
    if amount > EPSILON then
      redis.call('HSET', KEYS[i], field, tostring(amount))
    else
      redis.call('HDEL', KEYS[i], field)
    end
  end
  return #KEYS
end

if op == 'H' then
  redis.call('SET', prefix .. 'holder:' .. holder, '1', 'PX', 15000)
  local nodes = prefix .. 'nodes'
  redis.call('ZADD', nodes, now, ARGV[4])
  redis.call('ZREMRANGEBYSCORE', nodes, '-inf', now - 15)
  return redis.call('ZCARD', nodes)
end

if op == 'D' then
  -- seed a budget's spend unless its period has begun
  if redis.call('HSETNX', KEYS[1], 's', ARGV[4]) == 1 then
    redis.call('PEXPIREAT', KEYS[1], math.ceil((tonumber(ARGV[5]) + 86400) * 1000))
    return 1
  end
  return 0
end

return redis.error_reply('unknown operation ' .. tostring(op))
"""
