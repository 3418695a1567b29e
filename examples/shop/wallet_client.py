"""The shop's side of the wallet API: pay, read the balance, read a refusal.

A refusal's meaning is in ``WWW-Authenticate`` (RFC 6750 §3): ``insufficient_user_authentication``
with ``acr_values`` (RFC 9470 §3) means "bring a token from a stronger sign-in", and the
shop sends the person back to the provider with exactly those values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import requests

TIMEOUT = 10
# auth-param = token BWS "=" BWS ( token / quoted-string )  (RFC 9110 §11.2)
_PARAM = re.compile(r'([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def bearer_challenge(header: str) -> dict[str, str]:
    """The parameters of a ``Bearer`` challenge (empty if there is none)."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return {}
    params: dict[str, str] = {}
    for match in _PARAM.finditer(rest):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params.setdefault(match.group(1).lower(), re.sub(r"\\(.)", r"\1", value))
    return params


@dataclass
class Outcome:
    status: int  # 0: the wallet could not be reached
    body: dict[str, Any] = field(default_factory=dict)
    challenge: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in (200, 201)

    @property
    def error(self) -> str:
        return self.challenge.get("error") or str(self.body.get("error") or ("unreachable" if not self.status else ""))

    @property
    def step_up(self) -> bool:
        return self.status == 401 and self.error == "insufficient_user_authentication"

    @property
    def acr_values(self) -> str | None:
        return self.challenge.get("acr_values")

    @property
    def max_age(self) -> str | None:
        value = self.challenge.get("max_age")
        return value if value and value.isdigit() else None


class WalletClient:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _call(self, method: str, path: str, token: str, **kwargs: Any) -> Outcome:
        try:
            with requests.Session() as http:
                http.trust_env = False  # the wallet is reached directly, never through a proxy from the environment
                answer = http.request(method, self.base_url + path, headers={"Authorization": f"Bearer {token}"},
                                      timeout=TIMEOUT, allow_redirects=False, **kwargs)
        except requests.RequestException:
            return Outcome(status=0)
        try:
            body = answer.json()
        except ValueError:
            body = {}
        return Outcome(
            status=answer.status_code,
            body=body if isinstance(body, dict) else {},
            challenge=bearer_challenge(answer.headers.get("WWW-Authenticate", "")),
        )

    def pay(self, token: str, *, amount: int, reference: str) -> Outcome:
        return self._call("POST", "/payments", token, json={"amount": amount, "reference": reference})

    def balance(self, token: str) -> Outcome:
        return self._call("GET", "/balance", token)
