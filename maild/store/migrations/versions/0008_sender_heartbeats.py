"""outbox senders' heartbeats; outbox rows that may have been delivered before a retake

``outbox_senders`` holds one row per live sender (node, pid, last heartbeat): a claim
whose sender stopped beating is taken again within seconds. ``outbox.maybe_delivered``
marks a row taken from a sender that died, which may already have handed it over.

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_senders",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("node", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("maybe_delivered", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("maybe_delivered")
    op.drop_table("outbox_senders")
