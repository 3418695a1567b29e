"""Admin-API answers: JSON bodies, ``no-store``, and RFC 6750 challenges on 401/403.

Every error is ``{"error", "error_description"}``. A 401 or 403 also carries
``WWW-Authenticate: Bearer realm=..., error=..., error_description=...`` (RFC 6750 §3),
plus ``scope`` for insufficient_scope (§3.1) and ``acr_values`` for RFC 9470's
insufficient_user_authentication, so a client knows what to ask /authorize for.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from idp.errors import IdpError
from idp.web.requests import settings


class ApiError(IdpError):
    """An admin-API refusal. ``challenge``: the WWW-Authenticate attributes (401/403)."""

    def __init__(self, status: int, code: str, description: str, *, challenge: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.challenge = challenge
        self.headers = headers or {}


def json_response(payload: Any, status: int = 200) -> Response:
    response = jsonify(payload)
    response.status_code = status
    # Account data and one-time client secrets: nothing in between may keep them.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def error_response(status: int, code: str, description: str, *, challenge: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    response = json_response({"error": code, "error_description": description}, status)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    if challenge is not None or status in (401, 403):
        response.headers["WWW-Authenticate"] = bearer_challenge(challenge or {})
    return response


def bearer_challenge(attributes: dict[str, str]) -> str:
    """``Bearer realm="...", k="v", ...``: values are quoted-strings, so anything that could
    break out of the quotes (a quote, a backslash, a control character) is dropped."""
    parts = {"realm": settings().admin_audience, **attributes}
    return "Bearer " + ", ".join(f'{k}="{_quotable(v)}"' for k, v in parts.items())


def _quotable(value: str) -> str:
    # RFC 6750 §3: error_description and scope use %x20-21 / %x23-5B / %x5D-7E only.
    return "".join(ch for ch in value if " " <= ch <= "~" and ch not in '"\\')
