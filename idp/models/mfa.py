"""Second factors and the short-lived state around them (issue 4).

Secrets never sit in the clear: TOTP seeds are encrypted under the KEK (purpose-bound),
recovery codes and mailed enrolment tokens are stored as keyed or plain SHA-256 hashes.
WebAuthn credentials are found by their credential id (unique index), never by looping
over a user's keys; the WebAuthn user handle is random, never the user's row or `sub`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, OptionalTimestamp, PublicId, Sha256Hex, Timestamp, UTCDateTime

_USER_FK = "users.id"


class TotpAuthenticator(Base):
    """An authenticator app (RFC 6238). Pending until a correct code confirms it."""

    __tablename__ = "mfa_totp"

    id: Mapped[PublicId]
    user_id: Mapped[str] = mapped_column(ForeignKey(_USER_FK, ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    # Kek.encrypt(base32 seed, purpose="mfa.totp:<id>"): bound to this row.
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[Timestamp]
    confirmed_at: Mapped[OptionalTimestamp]
    # RFC 6238 §5.2: a time step is accepted at most once (replay of a seen code fails).
    last_used_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_used_at: Mapped[OptionalTimestamp]


class WebAuthnUserHandle(Base):
    """The random user.id handed to authenticators (WebAuthn L3 §14.6.1: no personal data)."""

    __tablename__ = "mfa_webauthn_users"

    user_id: Mapped[str] = mapped_column(ForeignKey(_USER_FK, ondelete="CASCADE"), primary_key=True)
    # base64url of 64 random bytes (py_webauthn generate_user_handle).
    handle: Mapped[str] = mapped_column(String(96), unique=True)


class WebAuthnCredential(Base):
    """A passkey or security key registered to one user."""

    __tablename__ = "mfa_webauthn_credentials"

    id: Mapped[PublicId]
    user_id: Mapped[str] = mapped_column(ForeignKey(_USER_FK, ondelete="CASCADE"), index=True)
    # base64url credential id (at most 1023 bytes, WebAuthn L3 §5.1): the lookup key.
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE_Key
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(64))
    aaguid: Mapped[str | None] = mapped_column(String(36), nullable=True)
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[Timestamp]
    last_used_at: Mapped[OptionalTimestamp]


class WebAuthnChallenge(Base):
    """A ceremony's challenge, kept server-side and consumed once (deleted on use)."""

    __tablename__ = "mfa_webauthn_challenges"

    id: Mapped[PublicId]
    # register | signin | second_factor
    purpose: Mapped[str] = mapped_column(String(16))
    # None for usernameless sign-in (the authenticator tells us who).
    user_id: Mapped[str | None] = mapped_column(ForeignKey(_USER_FK, ondelete="CASCADE"), nullable=True)
    challenge: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class RecoveryCode(Base):
    """One single-use recovery code: HMAC-SHA256 under a KEK-derived key, never the code."""

    __tablename__ = "mfa_recovery_codes"

    id: Mapped[PublicId]
    user_id: Mapped[str] = mapped_column(ForeignKey(_USER_FK, ondelete="CASCADE"), index=True)
    code_hash: Mapped[Sha256Hex]
    created_at: Mapped[Timestamp]
    used_at: Mapped[OptionalTimestamp]


class EnrolmentProof(Base):
    """A one-time link mailed to the verified address before a factor may be bound.

    Bound to the SSO session that asked for it: it proves mailbox control *in this
    browser*, which a password alone (credential stuffing) never does.
    """

    __tablename__ = "mfa_enrolment_proofs"

    id: Mapped[PublicId]
    user_id: Mapped[str] = mapped_column(ForeignKey(_USER_FK, ondelete="CASCADE"), index=True)
    sso_session_id: Mapped[str] = mapped_column(ForeignKey("sso_sessions.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    token_hash: Mapped[Sha256Hex]
    created_at: Mapped[Timestamp]
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[OptionalTimestamp]


class MfaSessionState(Base):
    """Per SSO session: failed second-factor attempts and the last factor verified."""

    __tablename__ = "mfa_session_state"

    sso_session_id: Mapped[str] = mapped_column(ForeignKey("sso_sessions.id", ondelete="CASCADE"), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    # "totp:<id>", "passkey:<id>" or "recovery": what the last re-authentication used.
    last_factor: Mapped[str | None] = mapped_column(String(48), nullable=True)
    last_factor_at: Mapped[OptionalTimestamp]
