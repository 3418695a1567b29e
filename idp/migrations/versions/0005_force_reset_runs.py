"""force reset: progress of `idp users force-reset --all`

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import idp.db

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('force_reset_runs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('started_at', idp.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', idp.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cursor', sa.String(length=32), nullable=True),
    sa.Column('mailed_through', sa.String(length=32), nullable=True),
    sa.Column('mailing', sa.Boolean(), nullable=False),
    sa.Column('users_done', sa.Integer(), nullable=False),
    sa.Column('mails_sent', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('force_reset_runs')
