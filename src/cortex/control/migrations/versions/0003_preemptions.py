"""preemption records: the preemptor, the rule, the work at stake, the expected requeue

Revision ID: 0003_preemptions
Revises: 0002_edge
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_preemptions"
down_revision = "0002_edge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "preemptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("preemptor_id", sa.Integer(), nullable=True),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("since_checkpoint_s", sa.Float(), nullable=True),
        sa.Column("checkpoint_step", sa.Integer(), nullable=True),
        sa.Column("requeue_by", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("preemptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_preemptions_job_id"), ["job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("preemptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_preemptions_job_id"))
    op.drop_table("preemptions")
