"""full-text search: an index of messages (subject, text, sender) and of tickets (subject,
requester, tags), kept by the database's own triggers in the transaction that writes the row

The triggers make every writer keep the index — a new mail, an agent's tag, an erasure that
rewrites a message — with nothing to forget. Existing rows are indexed here.

* SQLite: FTS5, ``unicode61 remove_diacritics 2`` (``acao`` finds ``ação``); the message
  index has the messages table as its external content (it stores no second copy).
* PostgreSQL: ``tsvector`` columns with GIN indexes, the ``portuguese`` configuration, over
  ``maild_fold(text)``: ``unaccent`` when the extension can be created, else lower-case and
  a translation of the Latin accents.

A later migration that rebuilds one of these tables on SQLite (batch mode: copy, drop,
rename) drops its triggers with it and must create them again.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The ticket's document: subject, requester (address and name), tag names.
_SQLITE_TICKET_DOC = """
    INSERT INTO ticket_search(rowid, subject, requester, tags)
    SELECT t.id, t.subject, c.email || ' ' || c.name,
           coalesce((SELECT group_concat(g.name, ' ') FROM ticket_tags tt JOIN tags g ON g.id = tt.tag_id
                     WHERE tt.ticket_id = t.id), '')
    FROM tickets t JOIN contacts c ON c.id = t.requester_id WHERE {where};"""

SQLITE = [
    """CREATE VIRTUAL TABLE message_search USING fts5(
           subject, body_text, from_addr, from_name, content='messages', content_rowid='id',
           tokenize='unicode61 remove_diacritics 2')""",
    """CREATE VIRTUAL TABLE ticket_search USING fts5(
           subject, requester, tags, tokenize='unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER message_search_ai AFTER INSERT ON messages BEGIN
           INSERT INTO message_search(rowid, subject, body_text, from_addr, from_name)
           VALUES (new.id, new.subject, new.body_text, new.from_addr, new.from_name);
       END""",
    """CREATE TRIGGER message_search_ad AFTER DELETE ON messages BEGIN
           INSERT INTO message_search(message_search, rowid, subject, body_text, from_addr, from_name)
           VALUES ('delete', old.id, old.subject, old.body_text, old.from_addr, old.from_name);
       END""",
    """CREATE TRIGGER message_search_au AFTER UPDATE OF subject, body_text, from_addr, from_name ON messages BEGIN
           INSERT INTO message_search(message_search, rowid, subject, body_text, from_addr, from_name)
           VALUES ('delete', old.id, old.subject, old.body_text, old.from_addr, old.from_name);
           INSERT INTO message_search(rowid, subject, body_text, from_addr, from_name)
           VALUES (new.id, new.subject, new.body_text, new.from_addr, new.from_name);
       END""",
    f"""CREATE TRIGGER ticket_search_ai AFTER INSERT ON tickets BEGIN
           {_SQLITE_TICKET_DOC.format(where="t.id = new.id")}
       END""",
    f"""CREATE TRIGGER ticket_search_au AFTER UPDATE OF subject, requester_id ON tickets BEGIN
           DELETE FROM ticket_search WHERE rowid = new.id;
           {_SQLITE_TICKET_DOC.format(where="t.id = new.id")}
       END""",
    """CREATE TRIGGER ticket_search_ad AFTER DELETE ON tickets BEGIN
           DELETE FROM ticket_search WHERE rowid = old.id;
       END""",
    f"""CREATE TRIGGER ticket_search_tag_ai AFTER INSERT ON ticket_tags BEGIN
           DELETE FROM ticket_search WHERE rowid = new.ticket_id;
           {_SQLITE_TICKET_DOC.format(where="t.id = new.ticket_id")}
       END""",
    f"""CREATE TRIGGER ticket_search_tag_ad AFTER DELETE ON ticket_tags BEGIN
           DELETE FROM ticket_search WHERE rowid = old.ticket_id;
           {_SQLITE_TICKET_DOC.format(where="t.id = old.ticket_id")}
       END""",
    f"""CREATE TRIGGER ticket_search_contact_au AFTER UPDATE OF email, name ON contacts BEGIN
           DELETE FROM ticket_search WHERE rowid IN (SELECT id FROM tickets WHERE requester_id = new.id);
           {_SQLITE_TICKET_DOC.format(where="t.requester_id = new.id")}
       END""",
    f"""CREATE TRIGGER ticket_search_tagname_au AFTER UPDATE OF name ON tags BEGIN
           DELETE FROM ticket_search WHERE rowid IN (SELECT ticket_id FROM ticket_tags WHERE tag_id = new.id);
           {_SQLITE_TICKET_DOC.format(where="t.id IN (SELECT ticket_id FROM ticket_tags WHERE tag_id = new.id)")}
       END""",
    # Backfill: the external-content index reads the messages table; tickets are copied.
    "INSERT INTO message_search(message_search) VALUES ('rebuild')",
    _SQLITE_TICKET_DOC.format(where="1 = 1"),
]

_FOLD_UNACCENT = "SELECT public.unaccent('public.unaccent'::regdictionary, lower($1))"
_FOLD_TRANSLATE = ("SELECT translate(lower($1), 'áàâãäåéèêëíìîïóòôõöúùûüçñýÿ', "
                   "'aaaaaaeeeeiiiiooooouuuucnyy')")

POSTGRESQL = [
    """CREATE FUNCTION maild_message_doc(subject text, body text, addr text, name text) RETURNS tsvector
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
         SELECT setweight(to_tsvector('portuguese', maild_fold(coalesce(subject, ''))), 'A')
             || setweight(to_tsvector('portuguese', maild_fold(coalesce(name, '') || ' ' || coalesce(addr, '') || ' '
                          || translate(coalesce(addr, ''), '@.', '  '))), 'B')
             || setweight(to_tsvector('portuguese', maild_fold(left(coalesce(body, ''), 200000))), 'C')
       $$""",
    """CREATE FUNCTION maild_ticket_doc(subject text, email text, name text, tags text) RETURNS tsvector
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
         SELECT setweight(to_tsvector('portuguese', maild_fold(coalesce(subject, ''))), 'A')
             || setweight(to_tsvector('portuguese', maild_fold(coalesce(name, '') || ' ' || coalesce(email, '') || ' '
                          || translate(coalesce(email, ''), '@.', '  '))), 'B')
             || setweight(to_tsvector('portuguese', maild_fold(coalesce(tags, ''))), 'A')
       $$""",
    """CREATE TABLE message_search (
         message_id integer PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
         ticket_id integer NOT NULL,
         doc tsvector NOT NULL)""",
    "CREATE INDEX ix_message_search_doc ON message_search USING gin (doc)",
    """CREATE TABLE ticket_search (
         ticket_id integer PRIMARY KEY REFERENCES tickets(id) ON DELETE CASCADE,
         doc tsvector NOT NULL)""",
    "CREATE INDEX ix_ticket_search_doc ON ticket_search USING gin (doc)",
    """CREATE FUNCTION maild_ticket_search_refresh(tids integer[]) RETURNS void LANGUAGE sql AS $$
         INSERT INTO ticket_search (ticket_id, doc)
         SELECT t.id, maild_ticket_doc(t.subject, c.email, c.name,
                  (SELECT string_agg(g.name, ' ') FROM ticket_tags tt JOIN tags g ON g.id = tt.tag_id
                   WHERE tt.ticket_id = t.id))
         FROM tickets t JOIN contacts c ON c.id = t.requester_id WHERE t.id = ANY(tids)
         ON CONFLICT (ticket_id) DO UPDATE SET doc = EXCLUDED.doc
       $$""",
    """CREATE FUNCTION maild_message_search_write() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         INSERT INTO message_search (message_id, ticket_id, doc)
         VALUES (NEW.id, NEW.ticket_id, maild_message_doc(NEW.subject, NEW.body_text, NEW.from_addr, NEW.from_name))
         ON CONFLICT (message_id) DO UPDATE SET ticket_id = EXCLUDED.ticket_id, doc = EXCLUDED.doc;
         RETURN NULL;
       END $$""",
    """CREATE TRIGGER message_search_write AFTER INSERT OR UPDATE OF subject, body_text, from_addr, from_name, ticket_id
       ON messages FOR EACH ROW EXECUTE FUNCTION maild_message_search_write()""",
    """CREATE FUNCTION maild_ticket_search_write() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_TABLE_NAME = 'tickets' THEN
           PERFORM maild_ticket_search_refresh(ARRAY[NEW.id]);
         ELSIF TG_TABLE_NAME = 'ticket_tags' THEN
           PERFORM maild_ticket_search_refresh(ARRAY[CASE WHEN TG_OP = 'DELETE' THEN OLD.ticket_id ELSE NEW.ticket_id END]);
         ELSIF TG_TABLE_NAME = 'contacts' THEN
           PERFORM maild_ticket_search_refresh(ARRAY(SELECT id FROM tickets WHERE requester_id = NEW.id));
         ELSIF TG_TABLE_NAME = 'tags' THEN
           PERFORM maild_ticket_search_refresh(ARRAY(SELECT ticket_id FROM ticket_tags WHERE tag_id = NEW.id));
         END IF;
         RETURN NULL;
       END $$""",
    """CREATE TRIGGER ticket_search_write AFTER INSERT OR UPDATE OF subject, requester_id ON tickets
       FOR EACH ROW EXECUTE FUNCTION maild_ticket_search_write()""",
    """CREATE TRIGGER ticket_search_write AFTER INSERT OR DELETE ON ticket_tags
       FOR EACH ROW EXECUTE FUNCTION maild_ticket_search_write()""",
    """CREATE TRIGGER ticket_search_write AFTER UPDATE OF email, name ON contacts
       FOR EACH ROW EXECUTE FUNCTION maild_ticket_search_write()""",
    """CREATE TRIGGER ticket_search_write AFTER UPDATE OF name ON tags
       FOR EACH ROW EXECUTE FUNCTION maild_ticket_search_write()""",
    # Backfill.
    """INSERT INTO message_search (message_id, ticket_id, doc)
       SELECT id, ticket_id, maild_message_doc(subject, body_text, from_addr, from_name) FROM messages""",
    "SELECT maild_ticket_search_refresh(ARRAY(SELECT id FROM tickets))",
]


def _fold_function(bind: sa.engine.Connection) -> str:
    """``maild_fold``: unaccent when the extension is there or may be created, else translate()."""
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public"))
        body = _FOLD_UNACCENT
    except sa.exc.DBAPIError:
        body = _FOLD_TRANSLATE
    return f"CREATE FUNCTION maild_fold(text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$ {body} $$"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        statements = SQLITE
    else:
        statements = [_fold_function(bind), *POSTGRESQL]
    for statement in statements:
        bind.execute(sa.text(statement))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for trigger in ("message_search_ai", "message_search_ad", "message_search_au", "ticket_search_ai",
                        "ticket_search_au", "ticket_search_ad", "ticket_search_tag_ai", "ticket_search_tag_ad",
                        "ticket_search_contact_au", "ticket_search_tagname_au"):
            bind.execute(sa.text(f"DROP TRIGGER IF EXISTS {trigger}"))
        bind.execute(sa.text("DROP TABLE IF EXISTS message_search"))
        bind.execute(sa.text("DROP TABLE IF EXISTS ticket_search"))
        return
    for table in ("tickets", "ticket_tags", "contacts", "tags"):
        bind.execute(sa.text(f"DROP TRIGGER IF EXISTS ticket_search_write ON {table}"))
    bind.execute(sa.text("DROP TRIGGER IF EXISTS message_search_write ON messages"))
    bind.execute(sa.text("DROP TABLE IF EXISTS message_search, ticket_search"))
    for function in ("maild_ticket_search_write()", "maild_message_search_write()",
                     "maild_ticket_search_refresh(integer[])", "maild_ticket_doc(text, text, text, text)",
                     "maild_message_doc(text, text, text, text)", "maild_fold(text)"):
        bind.execute(sa.text(f"DROP FUNCTION IF EXISTS {function}"))
