"""goodput and node health: measured attempts, job failures attributed to nodes, node drains

Revision ID: 0006_goodput_health
Revises: 0005_queue_protection
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_goodput_health"
down_revision = "0005_queue_protection"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attempt_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("team", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("first_step_at", sa.Float(), nullable=True),
        sa.Column("checkpoint_at", sa.Float(), nullable=True),
        sa.Column("checkpoints", sa.Integer(), nullable=False),
        sa.Column("checkpoint_write_s", sa.Float(), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "attempt", name="uq_attempt_records_job"),
    )
    with op.batch_alter_table("attempt_records", schema=None) as b:
        b.create_index(b.f("ix_attempt_records_job_id"), ["job_id"], unique=False)
        b.create_index(b.f("ix_attempt_records_team"), ["team"], unique=False)
        b.create_index(b.f("ix_attempt_records_ended_at"), ["ended_at"], unique=False)
    op.create_table(
        "node_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("strike", sa.Boolean(), nullable=False),
        sa.Column("spent", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("node_failures", schema=None) as b:
        b.create_index(b.f("ix_node_failures_node"), ["node"], unique=False)
        b.create_index(b.f("ix_node_failures_at"), ["at"], unique=False)
    op.create_table(
        "node_drains",
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("by", sa.String(length=16), nullable=False),
        sa.Column("drained_at", sa.Float(), nullable=False),
        sa.Column("return_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("node"),
    )


def downgrade() -> None:
    op.drop_table("node_drains")
    with op.batch_alter_table("node_failures", schema=None) as b:
        b.drop_index(b.f("ix_node_failures_at"))
        b.drop_index(b.f("ix_node_failures_node"))
    op.drop_table("node_failures")
    with op.batch_alter_table("attempt_records", schema=None) as b:
        b.drop_index(b.f("ix_attempt_records_ended_at"))
        b.drop_index(b.f("ix_attempt_records_team"))
        b.drop_index(b.f("ix_attempt_records_job_id"))
    op.drop_table("attempt_records")
