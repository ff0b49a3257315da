"""failures in a row: a job's own failures since its last run that kept work, the retries it
has spent (drive/runs.py judge_exit); a job already in the table starts from its total

Revision ID: 0010_failures_in_a_row
Revises: 0009_burn_ins
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_failures_in_a_row"
down_revision = "0009_burn_ins"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as b:
        b.add_column(
            sa.Column("failures_in_a_row", sa.Integer(), server_default="0", nullable=False)
        )
    # A job in flight at the upgrade was judged by its total: that total is an upper bound on
    # its failures in a row, so it gets no retry the old rule would have refused, and its
    # next run that keeps work resets the count.
    op.execute("UPDATE jobs SET failures_in_a_row = failures")


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as b:
        b.drop_column("failures_in_a_row")
