-- GCRA rate limit of one sender, shared by every gateway instance.
-- Mirrors gcra::decide in gcra.rs (keep the two in step) and adds the claim of
-- the one over-limit notice, so that two gateways never both send it.
--
-- KEYS[1]  the sender's hash: field tI is the theoretical arrival time of tier
--          I, field n the time before which no new notice is sent (Unix ms).
-- ARGV[1]  now, Unix ms (from the calling gateway's clock)
-- ARGV[2]  notice cooldown, ms
-- ARGV[3], ARGV[4], ...  per tier: emission interval (ms), capacity
--
-- Returns {allowed, retry_at, noticed, noticed_until}. allowed is 1 or 0; when
-- 0, retry_at is when every tier allows again and noticed is 1 for the one
-- caller that sends the notice. noticed_until is when a new notice may be sent.
-- The hash expires once it is the same as no state at all.
local key = KEYS[1]
local now = tonumber(ARGV[1])
local cooldown = tonumber(ARGV[2])
local tiers = (#ARGV - 2) / 2

local retry_at = now
local expires = now
local next_tats = {}
for i = 1, tiers do
  local interval = tonumber(ARGV[1 + 2 * i])
  local capacity = tonumber(ARGV[2 + 2 * i])
  local tat = tonumber(redis.call('HGET', key, 't' .. i)) or now
  if tat > expires then expires = tat end
  if tat < now then tat = now end
  next_tats[i] = tat + interval
  local allow_at = next_tats[i] - capacity * interval
  if allow_at > retry_at then retry_at = allow_at end
end

local noticed_until = tonumber(redis.call('HGET', key, 'n')) or 0
local allowed = 0
local noticed = 0
if retry_at <= now then
  allowed = 1
  retry_at = 0
  for i = 1, tiers do
    redis.call('HSET', key, 't' .. i, string.format('%.0f', next_tats[i]))
    if next_tats[i] > expires then expires = next_tats[i] end
  end
elseif noticed_until <= now then
  noticed = 1
  noticed_until = math.max(retry_at, now + cooldown)
  redis.call('HSET', key, 'n', string.format('%.0f', noticed_until))
end
if noticed_until > expires then expires = noticed_until end
if expires > now then
  redis.call('PEXPIRE', key, string.format('%.0f', expires - now))
end
return {allowed, retry_at, noticed, noticed_until}
