"""Progress of ``idp users force-reset --all`` (idp/accounts/force_reset.py)."""

from __future__ import annotations

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, OptionalTimestamp, PublicId, Timestamp


class ForceResetRun(Base):
    __tablename__ = "force_reset_runs"

    id: Mapped[PublicId]
    # Also the cut-off: accounts created later are not part of the run.
    started_at: Mapped[Timestamp]
    finished_at: Mapped[OptionalTimestamp]
    # Last users.id done (keyset cursor), moved in the same transaction as its batch.
    cursor: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Last users.id whose mail is known to have left.
    mailed_through: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # True from a batch's commit until its mail is out: still True after a hard kill.
    mailing: Mapped[bool] = mapped_column(Boolean, default=False)
    users_done: Mapped[int] = mapped_column(Integer, default=0)
    mails_sent: Mapped[int] = mapped_column(Integer, default=0)
