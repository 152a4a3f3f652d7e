//! The Lua scripts of the Redis backend (RB-06, RB-11): each namespace operation is one
//! script on the keys of one namespace (one hash slot), so it is atomic across every gateway
//! sharing the Redis. Texts are documented in the README with the key layout.
//!
//! Values are stored as `"<size>:<encoding>"`: `size` is the Data Broker size of the value
//! (DB-13: bytes of a string, else its encoding), so a script can refuse a value that does not
//! fit the reader's buffer without taking it.

/// Helpers every script starts with: the time in ms from Redis' clock (one clock for all
/// gateways), key escaping as in `keys::escape`, attachment counting with leases (RB-14).
const PRELUDE: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function esc(s)
  return (string.gsub(s, '[%%{}:]', {['%'] = '%25', ['{'] = '%7B', ['}'] = '%7D', [':'] = '%3A'}))
end
-- Live attachments: entries whose lease ran out belong to a gateway that died; drop them.
local function live(att, now)
  local total = 0
  local all = redis.call('HGETALL', att)
  for i = 1, #all, 2 do
    local c, exp = string.match(all[i + 1], '^(%d+):(%d+)$')
    if tonumber(exp) < now then
      redis.call('HDEL', att, all[i])
    else
      total = total + tonumber(c)
    end
  end
  return total
end
local function add_att(att, gw, delta, lease, now)
  local cur = redis.call('HGET', att, gw)
  local c = 0
  if cur then c = tonumber(string.match(cur, '^(%d+):')) end
  c = c + delta
  if c <= 0 then
    redis.call('HDEL', att, gw)
  else
    redis.call('HSET', att, gw, c .. ':' .. (now + lease))
  end
  return c
end
local function drop_all(meta, att, names, tprefix)
  for _, n in ipairs(redis.call('SMEMBERS', names)) do
    redis.call('DEL', tprefix .. esc(n))
  end
  redis.call('DEL', meta, att, names)
end
-- The names of tuples with values; names whose tuple a plain LPOP emptied go now.
local function tuple_names(names, tprefix)
  local out = {}
  for _, n in ipairs(redis.call('SMEMBERS', names)) do
    if redis.call('EXISTS', tprefix .. esc(n)) == 1 then
      out[#out + 1] = n
    else
      redis.call('SREM', names, n)
    end
  end
  return out
end
local function info(meta, att, names, now)
  local m = redis.call('HMGET', meta, 'level', 'groups', 'marked')
  local total = 0
  local live_names = tuple_names(names, KEYS[4])
  for _, n in ipairs(live_names) do
    total = total + redis.call('LLEN', KEYS[4] .. esc(n))
  end
  return {'OK', m[1], m[2], m[3], live(att, now), #live_names, total}
end
"#;

/// KEYS meta, att, names, tuple prefix; ARGV level, groups, gateway, lease ms.
pub(crate) const CREATE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return {'EXISTS'} end
local now = now_ms()
redis.call('HSET', KEYS[1], 'level', ARGV[1], 'groups', ARGV[2], 'marked', '0', 'created', now)
add_att(KEYS[2], ARGV[3], 1, tonumber(ARGV[4]), now)
return info(KEYS[1], KEYS[2], KEYS[3], now)
"#;

/// KEYS meta, att, names, tuple prefix; ARGV gateway, lease ms.
pub(crate) const ATTACH: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'UNAVAIL'} end
local now = now_ms()
add_att(KEYS[2], ARGV[1], 1, tonumber(ARGV[2]), now)
return info(KEYS[1], KEYS[2], KEYS[3], now)
"#;

/// KEYS meta, att, names, tuple prefix.
pub(crate) const QUERY: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'UNAVAIL'} end
return info(KEYS[1], KEYS[2], KEYS[3], now_ms())
"#;

/// Gives up one attachment of this gateway; with `ARGV[3] == '1'` marks the namespace for
/// deletion first. Deletes everything once a marked namespace has no live attachment.
/// KEYS meta, att, names, tuple prefix; ARGV gateway, lease ms, mark.
pub(crate) const DETACH: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NSINVAL'} end
local now = now_ms()
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'marked', '1') end
add_att(KEYS[2], ARGV[1], -1, tonumber(ARGV[2]), now)
local total = live(KEYS[2], now)
if total == 0 and redis.call('HGET', KEYS[1], 'marked') == '1' then
  drop_all(KEYS[1], KEYS[2], KEYS[3], KEYS[4])
  return {'DELETED'}
end
return {'OK', total}
"#;

/// Renews this gateway's lease with its current count (0 removes it).
/// KEYS att; ARGV gateway, count, lease ms.
pub(crate) const RENEW: &str = r#"
local c = tonumber(ARGV[2])
if c <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], c .. ':' .. (now_ms() + tonumber(ARGV[3])))
end
return {'OK'}
"#;

/// Appends (or, with `ARGV[4] == 'head'`, puts back at the head) a value and wakes waiters.
/// A new tuple's name joins the names set (a tuple's name stays there while it has values;
/// one emptied by a plain `LPOP` leaves when the set is next read).
/// KEYS meta, names, tuple; ARGV name, stored value, wake channel, where, publish command.
pub(crate) const PUT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NSINVAL'} end
local n
if ARGV[4] == 'head' then
  n = redis.call('LPUSH', KEYS[3], ARGV[2])
else
  n = redis.call('RPUSH', KEYS[3], ARGV[2])
end
if n == 1 then redis.call('SADD', KEYS[2], ARGV[1]) end
redis.call(ARGV[5], ARGV[3], ARGV[1])
return {'OK'}
"#;

/// Reads (`ARGV[1] == 'read'`, element `ARGV[2]`) or takes (`'get'`, the head) a value;
/// one larger than the capacity `ARGV[3]` (-1: any) is returned as `BIG` and not taken.
/// KEYS meta, names, tuple; ARGV kind, index, capacity, name.
pub(crate) const TAKE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NSINVAL'} end
local v = redis.call('LINDEX', KEYS[3], tonumber(ARGV[2]))
if not v then return {'NONE'} end
local size = tonumber(string.match(v, '^(%d+):'))
local cap = tonumber(ARGV[3])
if cap >= 0 and size > cap then return {'BIG', v} end
if ARGV[1] == 'get' then
  redis.call('LPOP', KEYS[3])
  if redis.call('LLEN', KEYS[3]) == 0 then redis.call('SREM', KEYS[2], ARGV[4]) end
end
return {'OK', v}
"#;

/// The names of the tuples with values (and the namespace's existence).
/// KEYS meta, names, tuple prefix.
pub(crate) const NAMES: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'UNAVAIL'} end
return {'OK', tuple_names(KEYS[2], KEYS[3])}
"#;

/// KEYS meta, names, tuple; ARGV name.
pub(crate) const REMOVE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NSINVAL'} end
if redis.call('DEL', KEYS[3]) == 0 then return {'UNAVAIL'} end
redis.call('SREM', KEYS[2], ARGV[1])
return {'OK'}
"#;

/// RB-13, first step of a move, in the source's slot: the values leave the tuple for a
/// journal entry of the move (renamed, so atomically), recorded with its destination and
/// the time (for the recovery of a move whose gateway died).
/// KEYS meta, names, tuple, moving, journal; ARGV name, move id, destination record.
pub(crate) const MOVE_OUT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NSINVAL'} end
if redis.call('EXISTS', KEYS[3]) == 0 then return {'UNAVAIL'} end
redis.call('RENAME', KEYS[3], KEYS[4])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[5], ARGV[2], ARGV[3] .. '\31' .. now_ms())
return redis.call('LRANGE', KEYS[4], 0, -1)
"#;

/// RB-13, second step, in the destination's slot: the values arrive (appended: a tuple that
/// appeared meanwhile keeps its values first) and waiters wake.
/// KEYS meta, names, tuple; ARGV name, wake channel, publish command, values...
pub(crate) const MOVE_IN: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NSINVAL'} end
for i = 4, #ARGV do redis.call('RPUSH', KEYS[3], ARGV[i]) end
if #ARGV >= 4 then
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call(ARGV[3], ARGV[2], ARGV[1])
end
return {'OK'}
"#;

/// RB-13, last step, in the source's slot: the journal entry goes.
/// KEYS moving, journal; ARGV move id.
pub(crate) const MOVE_DONE: &str = r#"
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return {'OK'}
"#;

/// A script's full text: the prelude and its body.
pub(crate) fn text(body: &str) -> String {
    format!("{PRELUDE}\n{body}")
}
