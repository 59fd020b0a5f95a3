//! The Lua version guard: versions only move forward, checked on the server.
//!
//! `KEYS` are the record keys; `ARGV[1]` is the key TTL in milliseconds (`0`
//! for none); `ARGV[i + 1]` is the encoded record for `KEYS[i]`. For each key,
//! in order, the script reads the stored value and writes the new one only if
//! the new version is strictly higher. It returns one integer per key: `1`
//! written, `0` skipped (the store holds the same or a newer version).
//!
//! The codec puts the version at bytes 1..9 (0-based) as 8 bytes big-endian,
//! so Lua compares `string.sub(v, 2, 9)` of the stored and the new value byte
//! by byte: big-endian bytes order like the numbers they hold. No number
//! conversion (Lua numbers are doubles and lose integers above 2^53) and no
//! locale-dependent string comparison. A stored value that is not a string
//! (wrong type), shorter than the header, or has a format byte the codec does
//! not know counts as older and is replaced.
//!
//! The whole script runs atomically on the server, so concurrent writers of
//! the same key cannot interleave between the read and the write.

use std::sync::LazyLock;

pub(crate) const VERSION_GUARD_LUA: &str = r#"
local ttl = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local new = ARGV[i + 1]
  local cur = redis.pcall('GET', key)
  local newer = true
  if type(cur) == 'string' and #cur >= 9 then
    local fmt = string.byte(cur, 1)
    if fmt == 1 or fmt == 2 then
      local held = string.sub(cur, 2, 9)
      local want = string.sub(new, 2, 9)
      newer = false
      for j = 1, 8 do
        local a, b = string.byte(want, j), string.byte(held, j)
        if a ~= b then
          newer = a > b
          break
        end
      end
    end
  end
  if newer then
    if ttl > 0 then
      redis.call('SET', key, new, 'PX', ttl)
    else
      redis.call('SET', key, new)
    end
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"#;

/// The script object: its SHA1 is computed once; `invoke_async` sends
/// EVALSHA and, on NOSCRIPT (first use, or a restarted / flushed server),
/// loads the source with SCRIPT LOAD and retries once.
pub(crate) static VERSION_GUARD: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(VERSION_GUARD_LUA));
