"""several nodes on one PostgreSQL: the shared inbound queue, blobs in the database, node heartbeats

``inbound_queue`` holds mail a listener acknowledged (``spool.backend: database``) until
some node has processed it; ``nodes`` one row per running ``maild run`` (its heartbeat,
what it holds), whose id starts the claim tokens of its queue rows; ``blobs`` the raw
mails and attachments (``storage.backend: database``), zlib-compressed, by SHA-256;
``awaited_parents`` the Message-IDs a reply that opened its own ticket answers, so the
ticket is linked to its parent's when the parent arrives after it.
Additive only: nodes of the previous version run on beside them.

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_queue",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("message_id_hash", sa.String(length=64), nullable=True),
        sa.Column("parents", sa.Text(), nullable=False, server_default=""),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claim_token", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("node", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_inbound_queue_message_id_hash", "inbound_queue", ["message_id_hash"])
    op.create_index("ix_inbound_queue_state_next", "inbound_queue", ["state", "next_attempt_at"])
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queue_depth", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("holds", sa.Text(), nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "awaited_parents",
        sa.Column("parent_hash", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("parent_hash", "ticket_id"),
    )
    op.create_table(
        "blobs",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "sha256"),
    )


def downgrade() -> None:
    op.drop_table("blobs")
    op.drop_table("awaited_parents")
    op.drop_table("nodes")
    op.drop_index("ix_inbound_queue_state_next", table_name="inbound_queue")
    op.drop_index("ix_inbound_queue_message_id_hash", table_name="inbound_queue")
    op.drop_table("inbound_queue")
