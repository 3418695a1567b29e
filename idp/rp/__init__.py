"""idp.rp: what a relying service needs to accept the provider's access tokens.

Importable without the provider's server dependencies (only joserfc, and Flask for
``idp.rp.flask``): install with the ``rp`` extra. Nothing here imports another idp module.

    from idp.rp import JwksCache, TokenValidator, Introspector
    jwks = JwksCache(issuer + "/jwks.json")
    validator = TokenValidator(issuer=issuer, audience="https://wallet.example", jwks=jwks)
    claims = validator.validate(token, scope="wallet:pay", acr="urn:idp:acr:phr")
"""

from __future__ import annotations

from idp.rp.errors import (
    InsufficientAuthentication,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    ProviderUnavailable,
    TokenError,
)
from idp.rp.introspection import Introspector
from idp.rp.jwks import JwksCache
from idp.rp.validator import ACR_ORDER, TokenValidator

__all__ = [
    "ACR_ORDER",
    "InsufficientAuthentication",
    "InsufficientScope",
    "Introspector",
    "InvalidRequest",
    "InvalidToken",
    "JwksCache",
    "ProviderUnavailable",
    "TokenError",
    "TokenValidator",
]
