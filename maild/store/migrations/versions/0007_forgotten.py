"""agent notification counters: one row per (agent address, window)

``notify_counters`` makes the per-agent cap O(1) per mail and holds what a capped agent
missed until the window's summary mail. (Forgotten addresses need no table: the erasure
record's HMAC is the tombstone.)

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notify_counters",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("summary_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("address", "window_start"),
    )


def downgrade() -> None:
    op.drop_table("notify_counters")
