"""Minting and checking our JWTs: RFC 9068 access tokens and OpenID Connect ID tokens.

Access tokens carry ``typ: at+jwt`` and ``iss sub aud exp iat jti client_id scope``,
plus ``auth_time acr amr`` when a person signed in: acr and amr are exactly what the
SSO session proved (idp/assurance.py), never more. ``sub`` is users.id, a random id.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from authlib.oidc.core.util import create_half_hash

from idp.assurance import with_mfa_marker
from idp.keys import KeyService
from idp.keys import jose
from idp.keys.jose import InvalidJwt
from idp.keys.service import SIGNING_CHECK_SECONDS
from idp.clients.service import ClientInfo
from idp.db import random_id
from idp.models import User

ACCESS_TOKEN_TYP = "at+jwt"
ID_TOKEN_SECONDS = 600
# Clock skew between instances tolerated for iat (exp is exact: no token outlives its exp).
LEEWAY_SECONDS = 30


@dataclass(frozen=True)
class Subject:
    """The signed-in person as a grant sees them: who, and how they proved it.

    Authlib calls this "user"; ``get_user_id`` is the one method it needs. ``user`` is
    the account row when claims about the person are needed (ID token); a refresh grant,
    which mints only an access token, gives ``user_id`` instead and loads nothing.
    """

    user: User | None = field(repr=False)
    session_id: str | None
    auth_time: dt.datetime
    amr: list[str]
    acr: str
    user_id: str = ""

    def __post_init__(self) -> None:
        if not self.user_id:
            if self.user is None:
                raise ValueError("a Subject needs the user or the user id")
            object.__setattr__(self, "user_id", self.user.id)

    def get_user_id(self) -> str:
        return self.user_id

    @property
    def id(self) -> str:
        return self.user_id


def is_client_token(claims: dict[str, Any]) -> bool:
    """An access token issued to a client itself (client_credentials), not to a person:
    ``access_token`` below gives a person's token auth_time, acr and amr, and a client's
    token its own id as ``sub``. Anything else counts as a person's token (which must
    have a live record), so a doubtful token fails closed."""
    return "auth_time" not in claims and claims.get("sub") == claims.get("client_id")


@dataclass(frozen=True)
class MintedAccessToken:
    token: str
    jti: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    expires_in: int


def user_claims(user: User, scope: str) -> dict[str, Any]:
    """Claims about the person for the granted scope (OIDC Core §5.4)."""
    claims: dict[str, Any] = {"sub": user.id}
    if "email" in scope.split():
        claims["email"] = user.email
        claims["email_verified"] = user.email_verified
    return claims


class TokenMinter:
    def __init__(self, *, keys: KeyService, issuer: str) -> None:
        self.keys = keys
        self.issuer = issuer

    def access_token(
        self, *, client: ClientInfo, subject: Subject | None, scope: str, resource: list[str] | None = None
    ) -> MintedAccessToken:
        now = int(time.time())
        lifetime = client.access_token_seconds
        jti = random_id()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            # RFC 9068 §3 and RFC 8707: the API(s) the client asked for; without a
            # resource indicator, the client itself.
            "aud": (resource[0] if len(resource) == 1 else list(resource)) if resource else client.id,
            "sub": subject.id if subject else client.id,
            "client_id": client.id,
            "iat": now,
            "exp": now + lifetime,
            "jti": jti,
            "scope": scope,
        }
        if subject is not None:
            claims["auth_time"] = int(subject.auth_time.timestamp())
            claims["acr"] = subject.acr
            claims["amr"] = with_mfa_marker(subject.amr)
        # Signing may use a ring checked against the database up to a few seconds ago
        # (idp/keys/service.py): not one query per token; verifying checks every time.
        key = self.keys.ring(max_unchecked_seconds=SIGNING_CHECK_SECONDS).signer(jose.DEFAULT_ALGORITHM)
        token = jose.sign(claims, key=key.private, alg=key.alg, kid=key.kid, typ=ACCESS_TOKEN_TYP)
        return MintedAccessToken(
            token=token,
            jti=jti,
            issued_at=dt.datetime.fromtimestamp(now, dt.UTC),
            expires_at=dt.datetime.fromtimestamp(now + lifetime, dt.UTC),
            expires_in=lifetime,
        )

    def id_token(
        self,
        *,
        client: ClientInfo,
        subject: Subject,
        scope: str,
        nonce: str | None,
        access_token: str | None,
    ) -> str:
        """OIDC Core §2 and §3.1.3.6: signed with the client's registered algorithm."""
        alg = client.id_token_alg if client.id_token_alg in jose.ALGORITHMS else jose.DEFAULT_ALGORITHM
        key = self.keys.ring(max_unchecked_seconds=SIGNING_CHECK_SECONDS).signer(alg)
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": client.id,
            "iat": now,
            "exp": now + ID_TOKEN_SECONDS,
            "auth_time": int(subject.auth_time.timestamp()),
            "acr": subject.acr,
            "amr": with_mfa_marker(subject.amr),
        }
        if subject.session_id:
            claims["sid"] = subject.session_id
        if nonce:
            claims["nonce"] = nonce
        if access_token:
            # OIDC Core §3.1.3.6: left half of the hash that matches the JWS alg
            # (SHA-256 for ES256, SHA-512 for EdDSA with Ed25519).
            claims["at_hash"] = create_half_hash(access_token, alg).decode()
        if subject.user is None:
            raise ValueError("an ID token needs the account row")
        claims.update(user_claims(subject.user, scope))
        return jose.sign(claims, key=key.private, alg=key.alg, kid=key.kid, typ="JWT")

    def verify(self, token: object, *, typ: str | None = ACCESS_TOKEN_TYP, check_exp: bool = True) -> dict[str, Any]:
        """Claims of a JWT we signed with a key we still publish; InvalidJwt otherwise."""
        if not isinstance(token, str):
            raise InvalidJwt("not a token")
        header = jose.unverified_header(token)
        key = self.keys.ring().verifier(header.get("kid"))
        if key is None:
            raise InvalidJwt("unknown or retired key")
        if header.get("alg") != key.alg:
            raise InvalidJwt("algorithm does not match the key")
        if typ is not None and str(header.get("typ", "")).lower() not in (typ, "application/" + typ):
            raise InvalidJwt("wrong token type")
        _, claims = jose.verify(token, key=key.private, alg=key.alg)
        now = int(time.time())
        if claims.get("iss") != self.issuer:
            raise InvalidJwt("wrong issuer")
        exp = claims.get("exp")
        if not isinstance(exp, int) or (check_exp and exp <= now):
            raise InvalidJwt("expired")
        iat = claims.get("iat")
        if not isinstance(iat, int) or iat - LEEWAY_SECONDS > now:
            raise InvalidJwt("issued in the future")
        return claims
