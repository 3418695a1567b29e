"""What a resource server tells a client about its access token: RFC 6750 §3.1, RFC 9470 §3.

Each error knows its HTTP status and its ``error`` code; ``str(error)`` is the specific
reason for the service's own log, ``description`` the generic text a client may see
(what failed is not the client's business beyond the error code).
"""

from __future__ import annotations

from collections.abc import Iterable


def _words(value: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    return tuple(str(v) for v in value)


class TokenError(Exception):
    status = 401
    error = "invalid_token"
    description = "The access token is invalid"


class InvalidToken(TokenError):
    """Malformed, wrongly signed, expired, for another issuer or audience, or revoked."""


class ProviderUnavailable(InvalidToken):
    """The keys or the introspection answer could not be had from the provider.

    An ``InvalidToken``, so that whoever catches only that fails closed; a web layer
    answers 503 instead of 401, or every client would throw away a good token.
    """

    status = 503
    error = "temporarily_unavailable"
    description = "The token cannot be checked at the moment"


class InvalidRequest(TokenError):
    """RFC 6750 §3.1: a malformed Authorization header, or the token sent twice."""

    status = 400
    error = "invalid_request"
    description = "The request is malformed"


class InsufficientScope(TokenError):
    """RFC 6750 §3.1: the token lacks a scope this resource needs (403)."""

    status = 403
    error = "insufficient_scope"
    description = "The access token lacks a required scope"

    def __init__(self, scope: str | Iterable[str], message: str | None = None) -> None:
        self.scopes = _words(scope)
        self.scope = " ".join(self.scopes)
        super().__init__(message or f"scope {self.scope!r} required")


class InsufficientAuthentication(TokenError):
    """RFC 9470 §3: the person must authenticate more strongly, at ``acr_values``, and/or
    more recently, within ``max_age`` seconds."""

    status = 401
    error = "insufficient_user_authentication"
    description = "A stronger authentication is required"

    def __init__(self, acr_values: str | Iterable[str] = (), message: str | None = None, *,
                 max_age: int | None = None) -> None:
        self.acr_values_list = _words(acr_values)
        self.acr_values = " ".join(self.acr_values_list)
        self.max_age = max_age
        super().__init__(message or f"acr {self.acr_values!r} / max_age {max_age} required")
