"""progress in a row: the newest checkpoint time a job's tooling reported through the API, and
the job's self-requeues (unasked exits 75) since its last run that kept work, both on the job
row (drive/runs.py judge_exit reads them; a restart must keep them). A job already stored has
no reported checkpoint (its reports were in memory and are gone) and starts from every
self-requeue in its history, the count the old rule judged it by (an upper bound)

Revision ID: 0011_progress_in_a_row
Revises: 0010_failures_in_a_row
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_progress_in_a_row"
down_revision = "0010_failures_in_a_row"
branch_labels = None
depends_on = None

# drive/runs.py SELF_REQUEUE, as the requeue reasons stored so far begin (copied: a migration
# keeps the text it was written against).
SELF_REQUEUE = "exited 75 without a stop request"


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as b:
        b.add_column(sa.Column("checkpoint_reported_at", sa.Float(), nullable=True))
        b.add_column(
            sa.Column("self_requeues_in_a_row", sa.Integer(), server_default="0", nullable=False)
        )
    op.execute(
        sa.text(
            "UPDATE jobs SET self_requeues_in_a_row = (SELECT COUNT(*) FROM job_transitions t"
            " WHERE t.job_id = jobs.id AND t.dst = 'requeued' AND t.reason LIKE :prefix)"
        ).bindparams(prefix=SELF_REQUEUE + "%")
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as b:
        b.drop_column("self_requeues_in_a_row")
        b.drop_column("checkpoint_reported_at")
