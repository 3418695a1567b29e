from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, OptionalTimestamp, PublicId, Sha256Hex, Timestamp, UTCDateTime


class SsoSession(Base):
    """A signed-in browser. The cookie holds a random secret; only its hash is stored."""

    __tablename__ = "sso_sessions"

    # Public handle shown on the account page ("end this session"); not the cookie value.
    id: Mapped[PublicId]
    token_hash: Mapped[Sha256Hex]
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[Timestamp]
    last_seen_at: Mapped[Timestamp]
    # Absolute end; the idle end is last_seen_at + idle lifetime.
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # When the user last proved who they are, and how (RFC 8176 amr values).
    auth_time: Mapped[Timestamp]
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(512), nullable=True)
    ended_at: Mapped[OptionalTimestamp]
    end_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
