"""What every mailed one-time link (reset, email change) checks before it may be used."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.crypto.tokens import sha256_hex
from idp.db import utcnow
from idp.models import EmailToken, User


def find_link(
    db: Session, token: str, purpose: str, *, also: Callable[[EmailToken, User], str | None] = lambda _r, _u: None
) -> tuple[EmailToken | None, User | None, str | None]:
    """The stored link behind ``token`` (looked up by its SHA-256), its account, and why
    it cannot be used, or None when it can. ``also`` adds the purpose's own check, run
    after the expiry check (e.g. the reset's "mailed to an address the account no
    longer has")."""
    record = db.scalar(select(EmailToken).where(EmailToken.token_hash == sha256_hex(token),
                                                EmailToken.purpose == purpose))
    user = db.get(User, record.user_id) if record is not None else None
    if record is None or user is None:
        return record, user, "unknown"
    if record.used_at is not None:
        return record, user, "used"  # spent, superseded by a later link, or never mailed
    if utcnow() >= record.expires_at:
        return record, user, "expired"
    if (reason := also(record, user)) is not None:
        return record, user, reason
    if not user.active:
        return record, user, "disabled"
    if user.password_changed_at is not None and user.password_changed_at > record.created_at:
        # The link dies with the password it was mailed under (a reset's notice to the
        # owner, an email change's notice to the old address, both say so).
        return record, user, "password_changed"
    return record, user, None
