"""Placeholder: OpenID Connect Back-Channel Logout 1.0 is being built (issue 7)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class BackchannelLogout:
    def __init__(self, **_kwargs: Any) -> None:
        pass

    def sessions_ended(self, session_ids: Sequence[str]) -> None:
        return None
