"""the shared inbound queue counts a mail's failed processing attempts on its row

``inbound_queue.failures`` and ``last_error``: a mail that makes processing fail is counted
wherever it was tried, so ``spool.max_attempts`` holds for the cluster, not per node.
Additive only (``ALTER TABLE … ADD COLUMN`` with a default): nodes of the previous version
run on beside it and leave the columns alone.

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa


revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inbound_queue", sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("inbound_queue", sa.Column("last_error", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("inbound_queue") as batch:
        batch.drop_column("last_error")
        batch.drop_column("failures")
