"""header hashes: index Message-IDs by their SHA-256, not by their value

A Message-ID may be 998 characters of UTF-8 (close to 3 KB), more than a PostgreSQL btree
entry holds (2,704 bytes): inserting such a mail failed on the index. ``messages``,
``outbox`` and ``raw_mails`` get a ``message_id_hash`` column (sha256 hex of the value),
backfilled here; the index (unique for messages and outbox) moves from the value to the
hash, and the full value stays, unindexed.

Revision ID: 0006
Revises: 0005
"""
import hashlib

from alembic import op
import sqlalchemy as sa


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# SQLite keeps the unnamed UNIQUE(message_id) of 0001/0002; this names it for batch mode.
_SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
_UNIQUE = ("messages", "outbox")


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


def _backfill(table: str) -> None:
    bind = op.get_bind()
    t = sa.table(table, sa.column("id", sa.Integer), sa.column("message_id", sa.String),
                 sa.column("message_id_hash", sa.String))
    rows = bind.execute(sa.select(t.c.id, t.c.message_id).where(t.c.message_id.is_not(None))).all()
    update = sa.update(t).where(t.c.id == sa.bindparam("row_id")).values(message_id_hash=sa.bindparam("h"))
    for start in range(0, len(rows), 5000):
        chunk = rows[start:start + 5000]
        bind.execute(update, [{"row_id": r.id, "h": _hash(r.message_id)} for r in chunk])


def _unique_name(table: str) -> str:
    # PostgreSQL named the inline constraint <table>_<column>_key; SQLite left it unnamed.
    return f"{table}_message_id_key" if op.get_bind().dialect.name == "postgresql" else f"uq_{table}_message_id"


def upgrade() -> None:
    for table in (*_UNIQUE, "raw_mails"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("message_id_hash", sa.String(length=64), nullable=True))
        _backfill(table)
    for table in _UNIQUE:
        with op.batch_alter_table(table, schema=None, naming_convention=_SQLITE_NAMES) as batch_op:
            batch_op.drop_constraint(_unique_name(table), type_="unique")
            batch_op.alter_column("message_id_hash", existing_type=sa.String(length=64), nullable=False)
            batch_op.create_index(f"ix_{table}_message_id_hash", ["message_id_hash"], unique=True)
    with op.batch_alter_table("raw_mails", schema=None) as batch_op:
        batch_op.drop_index("ix_raw_mails_message_id")
        batch_op.create_index("ix_raw_mails_message_id_hash", ["message_id_hash"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("raw_mails", schema=None) as batch_op:
        batch_op.drop_index("ix_raw_mails_message_id_hash")
        batch_op.create_index("ix_raw_mails_message_id", ["message_id"], unique=False)
        batch_op.drop_column("message_id_hash")
    for table in _UNIQUE:
        with op.batch_alter_table(table, schema=None, naming_convention=_SQLITE_NAMES) as batch_op:
            batch_op.drop_index(f"ix_{table}_message_id_hash")
            batch_op.create_unique_constraint(_unique_name(table), ["message_id"])
            batch_op.drop_column("message_id_hash")
