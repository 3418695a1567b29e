"""Counters for attack protection: one small interface, a memory twin and Redis.

Chosen by settings (``redis_url`` None: memory, one process only). Both give the same
answers; tests run every rule against both (tests/protection/).

Failure mode when Redis is away (a written decision, STYLE habit 10): the attack-
protection counters *fail over to process memory*, neither open nor closed.
- Not closed: refusing every sign-in while Redis is down would hand anyone who can
  knock Redis over a switch that locks every user out, the denial of service this
  issue exists to prevent.
- Not open: without counters a stuffing run during the outage would be unthrottled.
  Per-process counters still stop one address or one account being hammered through one
  instance; with N instances the budget is at most N times looser for the outage.
Each fallback answer increments ``idp_counter_storage_errors_total`` and logs once per
retry interval; Redis is tried again every ``RETRY_SECONDS``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

import redis

from idp.protection.metrics import Metrics

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0


class Counters(Protocol):
    def incr(self, key: str, *, ttl: int) -> int:
        """Add one; the key expires ``ttl`` seconds after its last increment."""

    def get(self, key: str) -> int: ...

    def delete(self, *keys: str) -> None: ...

    def add_once(self, key: str, *, ttl: int) -> bool:
        """True the first time within ``ttl`` seconds, False while the key lives."""

    def bucket_add(self, key: str, *, regain_seconds: int) -> float:
        """Leaky bucket: add one unit, minus one regained every ``regain_seconds``; the level."""

    def bucket_level(self, key: str, *, regain_seconds: int) -> float: ...


class MemoryCounters:
    """The in-process twin: a dict with expiry times, swept as it grows."""

    _SWEEP_EVERY = 10_000

    def __init__(self, *, clock=time.time) -> None:  # type: ignore[no-untyped-def]
        self._lock = threading.Lock()
        self._data: dict[str, tuple[float, float, float]] = {}  # key -> (value, stamp, expires_at)
        self._clock = clock
        self._writes = 0

    def _live(self, key: str, now: float) -> tuple[float, float, float] | None:
        item = self._data.get(key)
        if item is not None and item[2] <= now:
            del self._data[key]
            return None
        return item

    def _sweep(self, now: float) -> None:
        self._writes += 1
        if self._writes % self._SWEEP_EVERY == 0:
            for key in [k for k, v in self._data.items() if v[2] <= now]:
                del self._data[key]

    def incr(self, key: str, *, ttl: int) -> int:
        with self._lock:
            now = self._clock()
            item = self._live(key, now)
            value = (item[0] if item else 0) + 1
            self._data[key] = (value, now, now + ttl)
            self._sweep(now)
            return int(value)

    def get(self, key: str) -> int:
        with self._lock:
            item = self._live(key, self._clock())
            return int(item[0]) if item else 0

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._data.pop(key, None)

    def add_once(self, key: str, *, ttl: int) -> bool:
        with self._lock:
            now = self._clock()
            if self._live(key, now) is not None:
                return False
            self._data[key] = (1, now, now + ttl)
            self._sweep(now)
            return True

    def bucket_add(self, key: str, *, regain_seconds: int) -> float:
        with self._lock:
            now = self._clock()
            item = self._live(key, now)
            level = _drained(item[0], item[1], now, regain_seconds) if item else 0.0
            level += 1
            self._data[key] = (level, now, now + level * regain_seconds + 1)
            self._sweep(now)
            return level

    def bucket_level(self, key: str, *, regain_seconds: int) -> float:
        with self._lock:
            now = self._clock()
            item = self._live(key, now)
            return _drained(item[0], item[1], now, regain_seconds) if item else 0.0

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def _drained(level: float, stamp: float, now: float, regain_seconds: int) -> float:
    return max(0.0, level - (now - stamp) / regain_seconds)


# Redis time, not the instance's clock: every instance drains a bucket at the same rate.
_BUCKET_ADD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local regain = tonumber(ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'level', 'stamp')
local level = 0
if v[1] then
  level = math.max(0, tonumber(v[1]) - (now - tonumber(v[2])) / regain)
end
level = level + 1
redis.call('HSET', KEYS[1], 'level', tostring(level), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(level * regain) + 1)
return tostring(level)
"""

_BUCKET_LEVEL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = redis.call('HMGET', KEYS[1], 'level', 'stamp')
if not v[1] then return '0' end
return tostring(math.max(0, tonumber(v[1]) - (now - tonumber(v[2])) / tonumber(ARGV[1])))
"""


class RedisCounters:
    """Shared by every instance. Keys are ``<prefix>:ap:<key>``; all of them expire."""

    def __init__(self, url: str, *, prefix: str) -> None:
        # Short timeouts: a sign-in must not hang on a dead Redis (see the fallback).
        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.prefix = f"{prefix}:ap:"
        self._bucket_add = self.client.register_script(_BUCKET_ADD)
        self._bucket_level = self.client.register_script(_BUCKET_LEVEL)

    def _k(self, key: str) -> str:
        return self.prefix + key

    def incr(self, key: str, *, ttl: int) -> int:
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(self._k(key))
        pipe.expire(self._k(key), ttl)
        value, _ = pipe.execute()
        return int(value)

    def get(self, key: str) -> int:
        value = self.client.get(self._k(key))
        return int(value) if value is not None else 0

    def delete(self, *keys: str) -> None:
        if keys:
            self.client.delete(*(self._k(k) for k in keys))

    def add_once(self, key: str, *, ttl: int) -> bool:
        return bool(self.client.set(self._k(key), 1, nx=True, ex=ttl))

    def bucket_add(self, key: str, *, regain_seconds: int) -> float:
        return float(self._bucket_add(keys=[self._k(key)], args=[regain_seconds]))

    def bucket_level(self, key: str, *, regain_seconds: int) -> float:
        return float(self._bucket_level(keys=[self._k(key)], args=[regain_seconds]))

    def clear(self) -> None:
        """Delete this prefix's keys only (tests share one Redis)."""
        for key in self.client.scan_iter(match=self.prefix + "*", count=1000):
            self.client.delete(key)


class FallbackCounters:
    """Redis, answered from a memory twin while Redis is unreachable (decision above)."""

    def __init__(self, primary: RedisCounters, *, metrics: Metrics, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.primary = primary
        self.fallback = MemoryCounters()
        self.metrics = metrics
        self._clock = clock
        self._down_until = 0.0

    def _call(self, method: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self._clock() >= self._down_until:
            try:
                return getattr(self.primary, method)(*args, **kwargs)
            except redis.RedisError as error:
                self._down_until = self._clock() + RETRY_SECONDS
                log.error("attack-protection counters: Redis unreachable (%s); using process memory", error)
        self.metrics.inc("idp_counter_storage_errors_total", store="attack_protection")
        return getattr(self.fallback, method)(*args, **kwargs)

    def incr(self, key: str, *, ttl: int) -> int:
        return self._call("incr", key, ttl=ttl)  # type: ignore[no-any-return]

    def get(self, key: str) -> int:
        return self._call("get", key)  # type: ignore[no-any-return]

    def delete(self, *keys: str) -> None:
        self._call("delete", *keys)

    def add_once(self, key: str, *, ttl: int) -> bool:
        return self._call("add_once", key, ttl=ttl)  # type: ignore[no-any-return]

    def bucket_add(self, key: str, *, regain_seconds: int) -> float:
        return self._call("bucket_add", key, regain_seconds=regain_seconds)  # type: ignore[no-any-return]

    def bucket_level(self, key: str, *, regain_seconds: int) -> float:
        return self._call("bucket_level", key, regain_seconds=regain_seconds)  # type: ignore[no-any-return]

    def clear(self) -> None:
        self.primary.clear()
        self.fallback.clear()


def build_counters(*, redis_url: str | None, prefix: str, metrics: Metrics) -> MemoryCounters | FallbackCounters:
    if redis_url is None:
        return MemoryCounters()
    return FallbackCounters(RedisCounters(redis_url, prefix=prefix), metrics=metrics)
