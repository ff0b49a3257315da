"""per-queue preemption protection: a minimum runtime before a job may be preempted and a
preemption budget per job (None: the service's default runtime, no budget)

Revision ID: 0005_queue_protection
Revises: 0004_site_settings
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_queue_protection"
down_revision = "0004_site_settings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("queues") as batch:
        batch.add_column(sa.Column("min_runtime_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("preemption_budget", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("queues") as batch:
        batch.drop_column("preemption_budget")
        batch.drop_column("min_runtime_s")
