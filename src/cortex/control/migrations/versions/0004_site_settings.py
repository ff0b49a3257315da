"""site settings an operator changed through the API (the facility cap, the outdoor temperature),
kept across restarts

Revision ID: 0004_site_settings
Revises: 0003_preemptions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_site_settings"
down_revision = "0003_preemptions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site_settings",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("configured", sa.Float(), nullable=True),
        sa.Column("set_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("site_settings")
