"""work done: a job's work kept by its checkpoints (reference seconds) and the restart overhead
it owes at its next start, booked as each run ends (control/loop_exits.py, by the rule of
drive/run_estimate.py) and read back into the loop's job at a restart; backfill's runtime
estimate starts from them. A job already stored starts from none of either, the estimate the
old rule gave it (its whole duration_s: an upper bound)

Revision ID: 0012_work_done
Revises: 0011_progress_in_a_row
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_work_done"
down_revision = "0011_progress_in_a_row"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as b:
        b.add_column(sa.Column("work_done_s", sa.Float(), server_default="0", nullable=False))
        b.add_column(sa.Column("restart_owed_s", sa.Float(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as b:
        b.drop_column("restart_owed_s")
        b.drop_column("work_done_s")
