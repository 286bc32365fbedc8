"""commands and workflow by e-mail

tickets.draft_pending (a /draft reply waits for /send) and an index on
raw_mails.message_id (a control-address mail makes no message row; its redelivery is
recognised by the raw mail's Message-ID).

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("draft_pending", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("raw_mails", schema=None) as batch_op:
        batch_op.create_index("ix_raw_mails_message_id", ["message_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("raw_mails", schema=None) as batch_op:
        batch_op.drop_index("ix_raw_mails_message_id")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("draft_pending")
