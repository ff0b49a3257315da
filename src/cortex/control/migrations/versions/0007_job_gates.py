"""job gates: holds, afterok dependencies, job-array limits and time limits

Revision ID: 0007_job_gates
Revises: 0006_goodput_health
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_job_gates"
down_revision = "0006_goodput_health"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_gates",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("after_ok", sa.JSON(), nullable=False),
        sa.Column("array_key", sa.String(length=64), nullable=True),
        sa.Column("array_index", sa.Integer(), nullable=True),
        sa.Column("array_limit", sa.Integer(), nullable=True),
        sa.Column("time_limit_s", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_index("ix_job_gates_array_key", "job_gates", ["array_key"])


def downgrade() -> None:
    op.drop_index("ix_job_gates_array_key", table_name="job_gates")
    op.drop_table("job_gates")
