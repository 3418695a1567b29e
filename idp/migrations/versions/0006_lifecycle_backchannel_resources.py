"""issue 7 and 8: signing-key lifecycle dates, back-channel logout URIs, RFC 8707
resources, admin users

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 02:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import idp.db

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('signing_keys') as batch:
        batch.add_column(sa.Column('activates_at', idp.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('retire_at', idp.db.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('oauth_clients') as batch:
        batch.add_column(sa.Column('backchannel_logout_uri', sa.String(length=2048), nullable=True))
        batch.add_column(sa.Column('backchannel_logout_session_required', sa.Boolean(), nullable=False,
                                   server_default=sa.true()))
        batch.add_column(sa.Column('resource_uri', sa.String(length=2048), nullable=True))
        batch.create_index('ix_oauth_clients_resource_uri', ['resource_uri'], unique=True)
    with op.batch_alter_table('oauth_codes') as batch:
        batch.add_column(sa.Column('resource', sa.JSON(), nullable=False, server_default='[]'))
    with op.batch_alter_table('oauth_refresh_tokens') as batch:
        batch.add_column(sa.Column('resource', sa.JSON(), nullable=False, server_default='[]'))
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('is_admin', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('is_admin')
    with op.batch_alter_table('oauth_refresh_tokens') as batch:
        batch.drop_column('resource')
    with op.batch_alter_table('oauth_codes') as batch:
        batch.drop_column('resource')
    with op.batch_alter_table('oauth_clients') as batch:
        batch.drop_index('ix_oauth_clients_resource_uri')
        batch.drop_column('resource_uri')
        batch.drop_column('backchannel_logout_session_required')
        batch.drop_column('backchannel_logout_uri')
    with op.batch_alter_table('signing_keys') as batch:
        batch.drop_column('retire_at')
        batch.drop_column('activates_at')
