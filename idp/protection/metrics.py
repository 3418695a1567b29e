"""Process-local counters exposed at /metrics in the Prometheus text format (0.0.4).

Deliberately tiny: monotonically increasing counters with labels, nothing else. Each
instance exposes its own; Prometheus sums them across instances (``sum by (rule)``).
"""

from __future__ import annotations

import threading
from collections import defaultdict

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# name -> help text; a counter must be declared to be incremented (typos fail loudly).
DECLARED: dict[str, str] = {
    "idp_signin_failures_total": "Password sign-in attempts that failed (wrong password or unknown account).",
    "idp_signin_blocked_total": "Sign-in attempts refused before the password was tried, by rule.",
    "idp_protection_triggered_total": "Attack-protection rules that started blocking, by rule.",
    "idp_rate_limited_total": "Requests refused with 429 by a named rate limit.",
    "idp_new_device_signins_total": "Correct passwords from a device not recognised for the account.",
    "idp_signin_links_total": "Sign-in links mailed and used, by outcome.",
    "idp_counter_storage_errors_total": "Counter storage (Redis) errors answered from the memory fallback.",
    "idp_backchannel_logout_total": "Back-channel logout deliveries of this process, by outcome.",
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        if name not in DECLARED:
            raise KeyError(f"undeclared metric {name!r}")
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._values[name]
            series[key] = series.get(key, 0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        """For counters kept elsewhere and copied in when /metrics is read."""
        if name not in DECLARED:
            raise KeyError(f"undeclared metric {name!r}")
        with self._lock:
            self._values[name][tuple(sorted(labels.items()))] = value

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values.get(name, {}).get(tuple(sorted(labels.items())), 0)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, help_text in DECLARED.items():
                lines.append(f"# HELP {name} {help_text}")
                lines.append(f"# TYPE {name} counter")
                for key, value in sorted(self._values.get(name, {}).items()):
                    label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in key)
                    lines.append(f"{name}{{{label_text}}} {value:g}" if label_text else f"{name} {value:g}")
        return "\n".join(lines) + "\n"
