"""Rate limits and attack protection (issue 6). See README.md in this folder.

``Protection`` is the process-wide part (counters, metrics, the rules, device cookies),
built once per app by the registry; ``init_app`` wires the web side and must be called
last in ``create_app``, after every blueprint is registered, because the rate limits are
applied by endpoint name to whatever views exist at that moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from idp.crypto.kek import Kek
from idp.protection.attack import AttackProtection, Thresholds
from idp.protection.counters import FallbackCounters, MemoryCounters, build_counters
from idp.protection.devices import DeviceCookies
from idp.protection.metrics import Metrics
from idp.settings import Settings

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["Protection", "init_app"]


@dataclass(kw_only=True)
class Protection:
    metrics: Metrics
    counters: MemoryCounters | FallbackCounters
    attack: AttackProtection
    devices: DeviceCookies

    @classmethod
    def build(cls, settings: Settings, kek: Kek) -> Protection:
        metrics = Metrics()
        counters = build_counters(redis_url=settings.redis_url, prefix=settings.redis_prefix, metrics=metrics)
        attack = AttackProtection(
            counters=counters,
            metrics=metrics,
            thresholds=Thresholds(
                ip_user_failures=settings.ip_user_failure_limit,
                ip_user_block_seconds=settings.ip_user_block_seconds,
                ip_capacity=settings.ip_failure_capacity,
                ip_regain_seconds=settings.ip_failure_regain_seconds,
                account_failures=settings.account_failure_limit,
                account_window_seconds=settings.account_failure_window_seconds,
            ),
            key=kek.derive("attack-protection-keys"),
        )
        devices = DeviceCookies(
            key=kek.derive("device-cookie"),
            max_age_seconds=settings.device_cookie_days * 24 * 60 * 60,
            local_http=settings.is_local_http,
        )
        return cls(metrics=metrics, counters=counters, attack=attack, devices=devices)


def init_app(app: Flask) -> None:
    from idp.protection import ratelimits
    from idp.web import protection as web_protection

    web_protection.init_app(app)  # its blueprint first, so that its views are limited too
    ratelimits.init_app(app)
