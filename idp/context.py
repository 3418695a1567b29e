"""Who is asking: the few request facts that services record, without importing Flask."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestContext:
    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def system(cls) -> RequestContext:
        """Actions taken by the operator's CLI or by the provider itself."""
        return cls(ip=None, user_agent="idp-cli")
