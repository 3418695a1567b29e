"""Token introspection as a protected resource: RFC 7662 §2, client_secret_basic.

For services that must see a revocation at once (a payment after a forced password
reset): the provider answers ``active: false`` for a revoked token whose signature and
``exp`` still look fine locally. One round trip per call, no caching: a cached
"active" would hide exactly the revocation this is for.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote, urlencode

from idp.rp import http
from idp.rp.errors import InvalidToken, ProviderUnavailable


class Introspector:
    def __init__(
        self,
        endpoint: str,
        *,
        client_id: str,
        client_secret: str,
        timeout: float = 5.0,
        max_bytes: int = 64 * 1024,
    ) -> None:
        self.endpoint = http.check_url(endpoint)
        self.timeout = timeout
        self.max_bytes = max_bytes
        # RFC 6749 §2.3.1: id and secret form-urlencoded before the Basic encoding.
        pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode()
        self._authorization = "Basic " + base64.b64encode(pair).decode("ascii")

    def introspect(self, token: str) -> dict[str, Any]:
        """The provider's answer for an active token; InvalidToken when it is not active."""
        response = http.request(
            self.endpoint,
            timeout=self.timeout,
            max_bytes=self.max_bytes,
            data=urlencode({"token": token, "token_type_hint": "access_token"}).encode("ascii"),
            headers={
                "Authorization": self._authorization,
                "Content-Type": "application/x-www-form-urlencoded",
                "Cache-Control": "no-store",
            },
        )
        if response.status != 200:
            # 401 here means *our* credentials are wrong: a configuration problem, not the token's.
            raise ProviderUnavailable(f"introspection answered {response.status}")
        answer = response.json_object()
        if answer.get("active") is not True:
            raise InvalidToken("not active (introspection)")
        return answer
