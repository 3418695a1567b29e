"""OAuth 2.0 / OpenID Connect state: clients, codes, tokens, consents, signing keys.

Every secret a caller presents later (client secret, authorization code, refresh token)
is stored only as its SHA-256: they are 256 random bits, so a fast hash is enough and a
database leak yields nothing that can be replayed. Access tokens are JWTs (RFC 9068);
only their ``jti`` is kept, so that a replayed code, a reused refresh token, a revocation
or a logout can switch them off before they expire.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, OptionalTimestamp, PublicId, Sha256Hex, Timestamp, UTCDateTime


class OAuthClient(Base):
    """A relying party. ``secret_hash`` is None for public clients (RFC 6749 §2.1)."""

    __tablename__ = "oauth_clients"

    id: Mapped[PublicId]
    name: Mapped[str] = mapped_column(String(200))
    # SHA-256 hex of the client secret; None: public client (auth method "none" + PKCE).
    secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Exact strings (RFC 9700 §4.1.3), except RFC 8252 §7.3 loopback ports for public clients.
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Space-separated scopes the client may ask for.
    scope: Mapped[str] = mapped_column(String(1000), default="openid")
    # First-party clients (our own wallet, shop) skip the consent page.
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    # RFC 9068 access-token lifetime for this client.
    access_token_seconds: Mapped[int] = mapped_column(Integer, default=600)
    # ID-token signature algorithm (OIDC Registration id_token_signed_response_alg).
    id_token_alg: Mapped[str] = mapped_column(String(16), default="ES256")
    # The weakest acr this client accepts, whatever the request says (None: policy baseline).
    min_acr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # OIDC Back-Channel Logout 1.0 §2.2: where logout tokens are POSTed (None: not sent).
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    # ...and whether the logout token must carry `sid` (we always send it when known).
    backchannel_logout_session_required: Mapped[bool] = mapped_column(Boolean, default=True)
    # RFC 8707: the API this client serves as a resource server (e.g. the wallet's base
    # URL). Other clients ask for tokens with `resource=` this value; they carry it as
    # `aud`, and this client may introspect them.
    resource_uri: Mapped[str | None] = mapped_column(String(2048), nullable=True, unique=True, index=True)
    created_at: Mapped[Timestamp]
    disabled_at: Mapped[OptionalTimestamp]

    @property
    def public(self) -> bool:
        return self.secret_hash is None


class OAuthClientOrigin(Base):
    """A web origin allowed to call token, userinfo and JWKS from a browser (CORS)."""

    __tablename__ = "oauth_client_origins"
    __table_args__ = (UniqueConstraint("client_id", "origin"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    origin: Mapped[str] = mapped_column(String(300), index=True)


class AuthorizationCode(Base):
    """RFC 6749 §4.1.2: short-lived (60 s here), single use, bound to client and redirect URI."""

    __tablename__ = "oauth_codes"
    __table_args__ = (Index("ix_oauth_codes_client_nonce", "client_id", "nonce"),)

    id: Mapped[PublicId]
    code_hash: Mapped[Sha256Hex]
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The SSO session that approved it: logout revokes what it led to.
    session_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    scope: Mapped[str] = mapped_column(String(1000))
    nonce: Mapped[str | None] = mapped_column(String(512), nullable=True)
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(8))
    # RFC 8707 resource indicators asked for at /authorize (the tokens' audience).
    resource: Mapped[list[str]] = mapped_column(JSON, default=list)
    auth_time: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    acr: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[Timestamp]
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[OptionalTimestamp]


class RefreshToken(Base):
    """Opaque, rotated at every use; all generations of one grant share ``family_id``.

    A token presented after it was rotated means two parties hold it (RFC 9700 §4.14.2):
    the whole family is revoked.
    """

    __tablename__ = "oauth_refresh_tokens"

    id: Mapped[PublicId]
    token_hash: Mapped[Sha256Hex]
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    # The authorization code the family started from (code replay revokes the family).
    code_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    scope: Mapped[str] = mapped_column(String(1000))
    # RFC 8707 resources granted to the family (access tokens' audience).
    resource: Mapped[list[str]] = mapped_column(JSON, default=list)
    auth_time: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    acr: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[Timestamp]
    # The family's absolute end: rotation does not extend it.
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # Set when exchanged for its successor.
    used_at: Mapped[OptionalTimestamp]
    revoked_at: Mapped[OptionalTimestamp]


class IssuedAccessToken(Base):
    """The ``jti`` of every JWT access token, so that it can be revoked before ``exp``."""

    __tablename__ = "oauth_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True)
    session_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    code_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    family_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    issued_at: Mapped[Timestamp]
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    revoked_at: Mapped[OptionalTimestamp]


class Consent(Base):
    """What a user allowed a third-party client: remembered per client and scope set."""

    __tablename__ = "oauth_consents"
    __table_args__ = (UniqueConstraint("user_id", "client_id"),)

    id: Mapped[PublicId]
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    # Sorted, space-separated.
    scope: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class SigningKey(Base):
    """A JWS signing key. Lifecycle: next (published, not yet signing) -> active -> retired.

    The private key is a PKCS#8 PEM encrypted under the key-encryption key (AES-256-GCM,
    purpose-bound), so a database copy alone cannot sign anything.
    """

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    public_jwk: Mapped[dict[str, str]] = mapped_column(JSON)
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[Timestamp]
    # A `next` key starts signing at this moment (rotate: now + IDP_KEY_UPCOMING_SECONDS).
    activates_at: Mapped[OptionalTimestamp]
    activated_at: Mapped[OptionalTimestamp]
    # A superseded key stays published until every token it signed has expired, then is
    # retired automatically at this moment.
    retire_at: Mapped[OptionalTimestamp]
    retired_at: Mapped[OptionalTimestamp]
