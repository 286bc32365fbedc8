"""IMAP UIDVALIDITY/UID checkpoints kept in the database."""
from __future__ import annotations

from maild.store.db import Database
from maild.store.models import ImapCheckpoint


class DbCheckpoints:
    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self, account: str, folder: str) -> tuple[int, int] | None:
        with self.db.read() as session:
            row = session.get(ImapCheckpoint, (account, folder))
            return (row.uidvalidity, row.last_uid) if row else None

    def save(self, account: str, folder: str, uidvalidity: int, last_uid: int) -> None:
        with self.db.write() as session:
            row = session.get(ImapCheckpoint, (account, folder))
            if row is None:
                session.add(ImapCheckpoint(account=account, folder=folder, uidvalidity=uidvalidity, last_uid=last_uid))
            else:
                row.uidvalidity, row.last_uid = uidvalidity, last_uid
