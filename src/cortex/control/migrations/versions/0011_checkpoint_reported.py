"""checkpoint reported: the newest checkpoint time a job's tooling reported through the API,
kept on the job row so that a restart keeps what decides whether a run kept work (drive/runs.py
judge_exit); a job already stored has none (its reports, if any, were in memory and are gone)

Revision ID: 0011_checkpoint_reported
Revises: 0010_failures_in_a_row
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_checkpoint_reported"
down_revision = "0010_failures_in_a_row"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as b:
        b.add_column(sa.Column("checkpoint_reported_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as b:
        b.drop_column("checkpoint_reported_at")
