"""per-flavor queue quotas (a Kueue resource group's flavors): nominal quota and borrowing
limit per flavor, as a fleet file's `flavor_quotas` (None: the queue's shares everywhere)

Revision ID: 0008_queue_flavor_quotas
Revises: 0007_job_gates
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_queue_flavor_quotas"
down_revision = "0007_job_gates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("queues") as batch:
        batch.add_column(sa.Column("flavor_quotas", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("queues") as batch:
        batch.drop_column("flavor_quotas")
