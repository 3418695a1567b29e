"""The counter store behind attack protection: the same answers from memory and Redis.

This file runs once per suite run: memory in the SQLite run, Redis in the PostgreSQL run
(the ``redis_url`` fixture), each test under its own random key prefix, flushed after.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest

from idp.protection.counters import FallbackCounters, MemoryCounters, RedisCounters, build_counters
from idp.protection.metrics import Metrics


@pytest.fixture
def counters(redis_url: str | None) -> Iterator[MemoryCounters | FallbackCounters]:
    store = build_counters(redis_url=redis_url, prefix=f"idp-test-{secrets.token_hex(4)}", metrics=Metrics())
    if redis_url is not None:
        assert isinstance(store, FallbackCounters)
        store.primary.client.ping()  # a missing Redis fails here, loudly
    else:
        assert isinstance(store, MemoryCounters)
    yield store
    store.clear()


def test_incr_counts_and_expires_after_the_last_increment(counters):
    assert counters.get("a") == 0
    assert [counters.incr("a", ttl=1) for _ in range(3)] == [1, 2, 3]
    assert counters.get("a") == 3
    time.sleep(1.2)
    assert counters.get("a") == 0


def test_delete_forgets(counters):
    counters.incr("a", ttl=60)
    counters.incr("b", ttl=60)
    counters.delete("a", "b", "never-set")
    assert counters.get("a") == counters.get("b") == 0


def test_add_once_is_true_only_the_first_time_within_its_lifetime(counters):
    assert counters.add_once("seen", ttl=1) is True
    assert counters.add_once("seen", ttl=1) is False
    time.sleep(1.2)
    assert counters.add_once("seen", ttl=1) is True


def test_bucket_fills_by_one_and_drains_slowly(counters):
    levels = [counters.bucket_add("ip", regain_seconds=1) for _ in range(3)]
    assert levels[0] == pytest.approx(1, abs=0.05)
    assert levels[2] == pytest.approx(3, abs=0.1)
    time.sleep(1.0)
    assert counters.bucket_level("ip", regain_seconds=1) == pytest.approx(2, abs=0.2)
    assert counters.bucket_level("never", regain_seconds=1) == 0


def test_every_key_lives_under_the_prefix_and_expires(counters, redis_url):
    counters.incr("x", ttl=30)
    counters.add_once("y", ttl=30)
    counters.bucket_add("z", regain_seconds=10)
    if redis_url is None:  # memory run: the twin's own table
        assert sorted(counters._data) == ["x", "y", "z"]
        assert all(0 < item[2] - time.time() <= 30 for item in counters._data.values())
        return
    store = counters.primary  # Redis run: what is really in Redis
    keys = sorted(k.decode() for k in store.client.scan_iter(match=store.prefix + "*"))
    assert keys == [store.prefix + k for k in ("x", "y", "z")]
    assert all(0 < store.client.ttl(k) <= 30 for k in keys)
    counters.clear()
    assert list(store.client.scan_iter(match=store.prefix + "*")) == []


def test_redis_outage_falls_back_to_process_memory_and_is_counted():
    """The written decision: neither open nor closed, but per-process counters."""
    metrics = Metrics()
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    store = FallbackCounters(RedisCounters("redis://127.0.0.1:1/0", prefix="idp-test-down"), metrics=metrics)
    assert [store.incr("k", ttl=60) for _ in range(3)] == [1, 2, 3]
    assert store.get("k") == 3
    assert metrics.value("idp_counter_storage_errors_total", store="attack_protection") >= 4
