"""Local validation of the provider's access tokens: RFC 9068 JWTs, RFC 8725 practices.

Order of checks, cheapest and most hostile-input-proof first: size and shape, the
header (``alg`` on the allow-list, ``typ`` ``at+jwt``, a ``kid``), the key by ``kid``,
``alg`` against that key (its own ``alg``, or what its ``kty``/``crv`` can sign), the
signature, then the claims ``iss aud exp nbf iat``, then scope and assurance (``acr``),
and last, only when asked, introspection (RFC 7662) to see a revocation at once.

``alg: none`` and every HMAC algorithm are refused outright: with public keys in a
JWK Set, "HS256 keyed with the public key" is the classic forgery (RFC 8725 §2.1).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwa import EdDSAAlgorithm
from joserfc.jws import JWSRegistry

from idp.rp import http
from idp.rp.errors import InsufficientAuthentication, InsufficientScope, InvalidToken, ProviderUnavailable
from idp.rp.introspection import Introspector
from idp.rp.jwks import KEY_ALGORITHMS, JwksCache

# The provider's assurance levels, weakest first (its discovery acr_values_supported).
ACR_ORDER = ("urn:idp:acr:pwd", "urn:idp:acr:mfa", "urn:idp:acr:phr")
DEFAULT_ALGORITHMS = ("ES256", "EdDSA")
SUPPORTED_ALGORITHMS = frozenset().union(*KEY_ALGORITHMS.values())
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})  # RFC 9068 §4
MAX_TOKEN_BYTES = 8192
# RFC 9068 §2.2: required in every access token.
REQUIRED_CLAIMS = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


class _EdDSA(EdDSAAlgorithm):
    # joserfc warns on every use of the polymorphic "EdDSA" name (RFC 9864). Here it only
    # ever meets Ed25519 keys (KEY_ALGORITHMS), the case RFC 9864 names "Ed25519".
    security_warning = None


class _Registry(JWSRegistry):
    algorithms = {**JWSRegistry.algorithms, "EdDSA": _EdDSA()}


class TokenValidator:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks: JwksCache,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        introspector: Introspector | None = None,
        acr_order: Sequence[str] = ACR_ORDER,
        leeway: float = 30.0,
        max_token_bytes: int = MAX_TOKEN_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        refused = [a for a in algorithms if a not in SUPPORTED_ALGORITHMS]
        if refused or not algorithms:
            raise ValueError(f"algorithms {refused or algorithms!r} not allowed: only {sorted(SUPPORTED_ALGORITHMS)}")
        if not issuer or not audience:
            raise ValueError("issuer and audience are required")
        self.issuer = issuer
        self.audience = audience
        self.jwks = jwks
        self.algorithms = frozenset(algorithms)
        self.introspector = introspector
        self.acr_order = tuple(acr_order)
        self.leeway = leeway
        self.max_token_bytes = max_token_bytes
        self._clock = clock
        self._registries = {alg: _Registry(algorithms=[alg]) for alg in self.algorithms}

    @classmethod
    def for_issuer(
        cls,
        issuer: str,
        audience: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        timeout: float = 5.0,
        **options: Any,
    ) -> TokenValidator:
        """Configured from the provider's discovery document (OIDC Discovery §4): the
        JWKS URI, the introspection endpoint (with client credentials) and the acr order."""
        url = http.check_url(issuer.rstrip("/") + "/.well-known/openid-configuration")
        response = http.request(url, timeout=timeout, max_bytes=64 * 1024)
        if response.status != 200:
            raise ProviderUnavailable(f"{url} answered {response.status}")
        metadata = response.json_object()
        # OIDC Discovery §4.3: the issuer in the document is exactly the one asked for.
        if metadata.get("issuer") != issuer:
            raise ValueError(f"discovery names issuer {metadata.get('issuer')!r}, not {issuer!r}")
        jwks_options = {k: options.pop(k) for k in list(options) if k in (
            "min_refetch_interval", "default_max_age", "max_age", "keep_stale_for", "max_keys")}
        jwks = JwksCache(str(metadata.get("jwks_uri")), timeout=timeout, **jwks_options)
        introspector = None
        endpoint = metadata.get("introspection_endpoint")
        if client_id and client_secret and isinstance(endpoint, str):
            introspector = Introspector(endpoint, client_id=client_id, client_secret=client_secret, timeout=timeout)
        acr_values = metadata.get("acr_values_supported")
        if isinstance(acr_values, list) and acr_values and all(isinstance(a, str) for a in acr_values):
            options.setdefault("acr_order", tuple(acr_values))
        return cls(issuer=issuer, audience=audience, jwks=jwks, introspector=introspector, **options)

    def validate(
        self,
        token: object,
        *,
        scope: str | Iterable[str] | None = None,
        acr: str | None = None,
        introspect: bool = False,
    ) -> dict[str, Any]:
        """The claims of a valid access token, or InvalidToken / InsufficientScope /
        InsufficientAuthentication (ProviderUnavailable when it cannot be checked now)."""
        claims = self._verified_claims(token)
        self._check_claims(claims)
        if scope is not None:
            self.require_scope(claims, scope)
        if acr is not None:
            self.require_acr(claims, acr)
        if introspect:
            if self.introspector is None:
                raise ValueError("introspect=True needs a TokenValidator with an introspector")
            answer = self.introspector.introspect(str(token))
            if answer.get("jti", claims["jti"]) != claims["jti"]:
                raise InvalidToken("introspection answered about another token")
        return claims

    def require_scope(self, claims: dict[str, Any], scope: str | Iterable[str]) -> None:
        needed = tuple(scope.split()) if isinstance(scope, str) else tuple(scope)
        granted = claims.get("scope", "")
        granted_set = set(granted.split()) if isinstance(granted, str) else set()
        if not set(needed) <= granted_set:
            raise InsufficientScope(needed)

    def require_acr(self, claims: dict[str, Any], acr: str) -> None:
        """RFC 9470: the token's ``acr`` at least as strong as ``acr``; an unknown or
        missing one is weaker than everything."""
        if acr not in self.acr_order:
            raise ValueError(f"unknown acr {acr!r}; known: {self.acr_order}")
        presented = claims.get("acr")
        if not isinstance(presented, str) or presented not in self.acr_order:
            raise InsufficientAuthentication(acr, f"acr {presented!r} unknown, {acr!r} required")
        if self.acr_order.index(presented) < self.acr_order.index(acr):
            raise InsufficientAuthentication(acr, f"acr {presented!r} weaker than {acr!r}")

    def _verified_claims(self, token: object) -> dict[str, Any]:
        if not isinstance(token, str):
            raise InvalidToken("not a string")
        if len(token) > self.max_token_bytes:
            raise InvalidToken(f"longer than {self.max_token_bytes} bytes")
        if not _COMPACT_JWS.fullmatch(token):
            raise InvalidToken("not a compact JWS")
        header = _json_part(token.split(".", 1)[0], "header")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise InvalidToken(f"algorithm {alg!r} not allowed")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise InvalidToken(f"typ {typ!r} is not an access token")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("no kid")
        key = self.jwks.get(kid)
        if key is None:
            raise InvalidToken("unknown kid")
        if alg not in key.algorithms:
            raise InvalidToken(f"algorithm {alg!r} does not match the key {kid!r}")
        try:
            signed = jws.deserialize_compact(token, key.key, algorithms=[alg], registry=self._registries[alg])
        except (JoseError, ValueError, TypeError):
            raise InvalidToken("signature does not verify") from None
        try:
            claims = json.loads(signed.payload)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise InvalidToken("payload is not JSON") from None
        if not isinstance(claims, dict):
            raise InvalidToken("payload is not a JSON object")
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        missing = [name for name in REQUIRED_CLAIMS if name not in claims]
        if missing:
            raise InvalidToken(f"missing claims {missing}")
        if claims["iss"] != self.issuer:
            raise InvalidToken("wrong issuer")
        aud = claims["aud"]
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if self.audience not in [a for a in audiences if isinstance(a, str)]:
            raise InvalidToken("wrong audience")
        now = self._clock()
        # exp is exact: skew may only make a token valid later, never longer (as the provider does).
        if _number(claims["exp"], "exp") <= now:
            raise InvalidToken("expired")
        if _number(claims["iat"], "iat") > now + self.leeway:
            raise InvalidToken("issued in the future")
        if "nbf" in claims and _number(claims["nbf"], "nbf") > now + self.leeway:
            raise InvalidToken("not yet valid")
        for name in ("sub", "client_id", "jti"):
            if not isinstance(claims[name], str):
                raise InvalidToken(f"{name} is not a string")


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidToken(f"{name} is not a number")
    try:
        number = float(value)
    except OverflowError:  # an integer of 400 digits
        raise InvalidToken(f"{name} is out of range") from None
    if not math.isfinite(number):
        raise InvalidToken(f"{name} is out of range")
    return number


def _json_part(encoded: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, UnicodeDecodeError, binascii.Error, RecursionError):
        raise InvalidToken(f"unreadable {what}") from None
    if not isinstance(value, dict):
        raise InvalidToken(f"{what} is not a JSON object")
    return value
