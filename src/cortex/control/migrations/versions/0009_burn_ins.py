"""burn-in runs: a node back from a drain runs a diagnostic before it takes work

Revision ID: 0009_burn_ins
Revises: 0008_queue_flavor_quotas
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_burn_ins"
down_revision = "0008_queue_flavor_quotas"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "burn_ins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("deadline", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("handle", sa.JSON(), nullable=True),
        sa.Column("stopping", sa.String(length=16), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_burn_ins_node", "burn_ins", ["node"])
    op.create_index("ix_burn_ins_state", "burn_ins", ["state"])


def downgrade() -> None:
    op.drop_index("ix_burn_ins_state", table_name="burn_ins")
    op.drop_index("ix_burn_ins_node", table_name="burn_ins")
    op.drop_table("burn_ins")
