from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, OptionalTimestamp, PublicId, Sha256Hex, Timestamp, UTCDateTime


class User(Base):
    __tablename__ = "users"

    # Doubles as the OIDC `sub`: random, stable, never the email or a row number.
    id: Mapped[PublicId]
    # Normalised (NFKC, lower-case, IDNA domain): the unique, case-insensitive sign-in name.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    email_verified_at: Mapped[OptionalTimestamp]
    # argon2id PHC string; None means no usable password (forced reset, not yet set).
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    password_changed_at: Mapped[OptionalTimestamp]
    # Set when the password must be replaced before any token is issued (breach, admin).
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[Timestamp]
    disabled_at: Mapped[OptionalTimestamp]
    # May hold admin-API scopes (idp/admin); still needs a phishing-resistant session.
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


class EmailToken(Base):
    """A one-time secret sent by mail (verification now; reset and email change later).

    Only the SHA-256 of the token is stored: it is 256 random bits, so a fast hash is
    enough, and a database leak yields nothing usable.
    """

    __tablename__ = "email_tokens"

    id: Mapped[PublicId]
    purpose: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The address the token was mailed to (for email change it differs from users.email).
    email: Mapped[str] = mapped_column(String(320))
    token_hash: Mapped[Sha256Hex]
    created_at: Mapped[Timestamp]
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[OptionalTimestamp]
