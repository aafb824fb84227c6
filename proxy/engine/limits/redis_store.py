"""The fleet-wide store: the same counters in Redis, each admission and settle one Lua script.

Per counter, a hash ``<key>`` holds ``spent`` and ``reserved`` (integers) and a sorted set
``<key>:holds`` the holds, as members ``<hold id>:<amount>`` scored by their expiry (ms). A
script first drops expired holds, so a sidecar that died mid-request frees what it held once
the request's deadline has passed. Keys expire ``GRACE_S`` after their window (or their last
hold), so Redis forgets old windows by itself. Every key of a request shares the hash tag
``{limits}``, so the multi-key scripts also run on Redis Cluster. Times come from the
gateway's clock (all sidecars read the same UTC windows), never from ``TIME``.

No float ever enters Redis: amounts are integers, ``HINCRBY`` only.
"""

from __future__ import annotations

from redis.asyncio import Redis

from proxy.engine.limits.store import GRACE_S, Admission, Charge, Op

_PURGE = """
local function purge(h, z, now)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if #gone > 0 then
    local freed = 0
    for _, m in ipairs(gone) do freed = freed + tonumber(string.match(m, ':(%d+)$')) end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
    redis.call('HINCRBY', h, 'reserved', -freed)
  end
end
"""

ADMIT = (
    _PURGE
    + """
local now, hold_id, hold_until = ARGV[1], ARGV[2], ARGV[3]
local n = #KEYS / 2
local spent, refused = {}, {}
for i = 1, n do
  local h, z, a = KEYS[2*i-1], KEYS[2*i], 3 + (i-1)*4
  local limit, amount, kind = tonumber(ARGV[a+1]), tonumber(ARGV[a+2]), tonumber(ARGV[a+3])
  purge(h, z, now)
  local s = tonumber(redis.call('HGET', h, 'spent') or '0')
  local r = tonumber(redis.call('HGET', h, 'reserved') or '0')
  spent[i] = s
  local ok
  if kind == 0 then ok = s + r + amount <= limit
  elseif kind == 1 then ok = s < limit
  else ok = s + amount <= limit end
  if not ok then refused[#refused + 1] = i - 1 end
end
if #refused > 0 then return {0, spent, refused} end
for i = 1, n do
  local h, z, a = KEYS[2*i-1], KEYS[2*i], 3 + (i-1)*4
  local amount, kind, expire = ARGV[a+2], tonumber(ARGV[a+3]), ARGV[a+4]
  if kind == 0 and tonumber(amount) > 0 then
    redis.call('HINCRBY', h, 'reserved', amount)
    redis.call('ZADD', z, hold_until, hold_id .. ':' .. amount)
  elseif kind == 2 then
    spent[i] = redis.call('HINCRBY', h, 'spent', amount)
  end
  redis.call('PEXPIREAT', h, expire)
  redis.call('PEXPIREAT', z, expire)
end
return {1, spent, refused}
"""
)

SETTLE = """
local hold_id = ARGV[1]
local n = #KEYS / 2
local spent = {}
for i = 1, n do
  local h, z, a = KEYS[2*i-1], KEYS[2*i], 2 + (i-1)*3
  local held, charge, expire = ARGV[a+1], ARGV[a+2], ARGV[a+3]
  if tonumber(held) > 0 and redis.call('ZREM', z, hold_id .. ':' .. held) == 1 then
    redis.call('HINCRBY', h, 'reserved', '-' .. held)
  end
  if tonumber(charge) > 0 then
    spent[i] = redis.call('HINCRBY', h, 'spent', charge)
  else
    spent[i] = tonumber(redis.call('HGET', h, 'spent') or '0')
  end
  if redis.call('PTTL', h) < tonumber(expire) - tonumber(ARGV[2]) then
    redis.call('PEXPIREAT', h, expire)
  end
end
return spent
"""

READ = (
    _PURGE
    + """
local out = {}
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2*i-1], KEYS[2*i]
  purge(h, z, ARGV[1])
  out[i] = {tonumber(redis.call('HGET', h, 'spent') or '0'),
            tonumber(redis.call('HGET', h, 'reserved') or '0')}
end
return out
"""
)


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class RedisStore:
    """One Redis connection pool per URL; ``timeout_s`` bounds every call."""

    def __init__(self, url: str, timeout_s: float, prefix: str) -> None:
        self.client = Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self._prefix = f"{prefix}:{{limits}}:"
        self._admit = self.client.register_script(ADMIT)
        self._settle = self.client.register_script(SETTLE)
        self._read = self.client.register_script(READ)

    def _keys(self, keys: list[str]) -> list[str]:
        out = []
        for key in keys:
            full = self._prefix + key
            out += (full, full + ":holds")
        return out

    async def admit(self, ops: list[Op], hold_id: str, hold_until: float, now: float) -> Admission:
        args: list[int | str] = [_ms(now), hold_id, _ms(hold_until)]
        for op in ops:
            expire = _ms(max(op.expires_at, hold_until) + GRACE_S)
            args += (op.limit, op.amount, op.kind, expire)
        ok, spent, refused = await self._admit(keys=self._keys([op.key for op in ops]), args=args)
        return Admission(bool(ok), [int(s) for s in spent], [int(i) for i in refused])

    async def settle(self, charges: list[Charge], hold_id: str, now: float) -> list[int]:
        args: list[int | str] = [hold_id, _ms(now)]
        for item in charges:
            args += (item.held, item.charge, _ms(item.expires_at + GRACE_S))
        spent = await self._settle(keys=self._keys([c.key for c in charges]), args=args)
        return [int(s) for s in spent]

    async def read(self, keys: list[str], now: float) -> list[tuple[int, int]]:
        if not keys:
            return []
        rows = await self._read(keys=self._keys(keys), args=[_ms(now)])
        return [(int(spent), int(reserved)) for spent, reserved in rows]

    async def close(self) -> None:
        await self.client.aclose()
