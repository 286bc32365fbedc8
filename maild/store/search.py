"""Full-text search over tickets: their messages' subjects, texts and senders, and each
ticket's subject, requester and tags. Ranked best first, accent- and case-insensitive.

The index is kept by the database itself (migration 0010: FTS5 on SQLite, ``tsvector``
with the ``portuguese`` configuration on PostgreSQL), in the transaction of every write.
A query is words, all of which must occur in one message or in the ticket's own fields;
a ticket's best-ranked document ranks it. Takes a session, never commits.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from maild.domain.outcome import DELETED
from maild.store.models import Contact, Ticket
from maild.store.repo import tag_names

MAX_WORDS = 16  # a pasted paragraph is not a query; its first words are

# Ranking reads every candidate's words; for a word in half the messages of a big helpdesk
# that is most of the index. Only the newest CANDIDATES matches of each index are ranked:
# a query as common as that finds its best answers among the recent mail.
CANDIDATES = 2000

# A ticket's own fields count double: a word in the subject or a tag says more than one in a
# long thread. SQLite's bm25 is lower for better matches, PostgreSQL's ts_rank higher.
_SQLITE_CUT = {table: text(f"""
    SELECT rowid FROM {table} WHERE {table} MATCH :q ORDER BY rowid DESC LIMIT 1 OFFSET :n""")
    for table in ("message_search", "ticket_search")}
_SQLITE = text("""
    SELECT ticket_id, min(score) AS score FROM (
        SELECT m.ticket_id AS ticket_id, found.score AS score FROM (
            SELECT rowid AS id, bm25(message_search, 4.0, 1.0, 2.0, 2.0) AS score
            FROM message_search WHERE message_search MATCH :q AND rowid >= :mcut) AS found
        JOIN messages m ON m.id = found.id
        UNION ALL
        SELECT rowid AS ticket_id, 2.0 * bm25(ticket_search, 4.0, 2.0, 4.0) AS score
        FROM ticket_search WHERE ticket_search MATCH :q AND rowid >= :tcut
    ) AS found GROUP BY ticket_id ORDER BY score, ticket_id DESC LIMIT :limit""")

# PostgreSQL plans a search with the query's words as a constant (a tsquery made first), so
# its statistics choose: a rare word through the GIN index, a common one by walking the
# newest messages backwards until enough match.
_PG_QUERY = text("SELECT plainto_tsquery('portuguese', maild_fold(:q))::text")
_POSTGRESQL = text("""
    WITH messages_found AS (
        SELECT s.ticket_id, s.doc FROM message_search s WHERE s.doc @@ CAST(:tsq AS tsquery)
        ORDER BY s.message_id DESC LIMIT :n),
    tickets_found AS (
        SELECT s.ticket_id, s.doc FROM ticket_search s WHERE s.doc @@ CAST(:tsq AS tsquery)
        ORDER BY s.ticket_id DESC LIMIT :n)
    SELECT ticket_id, max(score) AS score FROM (
        SELECT f.ticket_id, ts_rank(f.doc, CAST(:tsq AS tsquery)) AS score FROM messages_found f
        UNION ALL
        SELECT f.ticket_id, 2 * ts_rank(f.doc, CAST(:tsq AS tsquery)) FROM tickets_found f
    ) AS found GROUP BY ticket_id ORDER BY score DESC, ticket_id DESC LIMIT :limit""")

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Hit:
    ticket_id: int
    score: float  # higher is better, on either backend
    subject: str
    status: str
    priority: str
    assignee: str | None
    requester: str
    updated_at: datetime
    tags: tuple[str, ...]


def words(query: str) -> list[str]:
    """The words of a query, as both indexes split text (letters and digits; an address
    is its parts)."""
    return _WORD.findall(query)[:MAX_WORDS]


def fts5_query(query: str) -> str:
    """An FTS5 MATCH expression: every word, each quoted (no operator or column filter can
    come from the user's text)."""
    return " ".join(f'"{w}"' for w in words(query))


def search(session: Session, query: str, limit: int = 20) -> list[Hit]:
    """Tickets matching every word of ``query``, best first; none for a query of no words.
    A deleted ticket is never found (its text was erased; its subject line may remain)."""
    found = words(query)
    if not found or limit <= 0:
        return []
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        q = fts5_query(query)
        cut = {table: conn.execute(statement, {"q": q, "n": CANDIDATES - 1}).scalar() or 0
               for table, statement in _SQLITE_CUT.items()}
        ranked = [(int(tid), -float(score)) for tid, score in conn.execute(
            _SQLITE, {"q": q, "mcut": cut["message_search"], "tcut": cut["ticket_search"], "limit": limit})]
    else:
        tsq = conn.execute(_PG_QUERY, {"q": " ".join(found)}).scalar()
        if not tsq:  # only stop words ("de a o")
            return []
        ranked = [(int(tid), float(score)) for tid, score in conn.execute(
            _POSTGRESQL, {"tsq": tsq, "n": CANDIDATES, "limit": limit})]
    if not ranked:
        return []
    ids = [tid for tid, _ in ranked]
    rows = {r.id: r for r in session.execute(
        select(Ticket.id, Ticket.subject, Ticket.status, Ticket.priority, Ticket.assignee,
               Contact.email.label("requester"), Ticket.updated_at)
        .join(Contact, Contact.id == Ticket.requester_id).where(Ticket.id.in_(ids), Ticket.status != DELETED))}
    tags = tag_names(session, ids)
    return [Hit(tid, score, rows[tid].subject, rows[tid].status, rows[tid].priority, rows[tid].assignee,
                rows[tid].requester, rows[tid].updated_at, tuple(tags.get(tid, ())))
            for tid, score in ranked if tid in rows]


INDEX_TABLES = ("message_search", "ticket_search")


def purge_deleted(session: Session) -> None:
    """Drop what rewritten or deleted rows left in the index (after an erasure): FTS5 keeps
    deleted words in its segments until they are merged; PostgreSQL's old row versions go
    with ``VACUUM`` of :data:`INDEX_TABLES`, like any other table's."""
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        for table in INDEX_TABLES:
            conn.execute(text(f"INSERT INTO {table}({table}) VALUES ('optimize')"))
