"""Full-text search on SQLite (FTS5) and PostgreSQL (tsvector): what it finds, in which
order, and that every writer keeps the index (new mail, tags, erasure-style rewrites)."""
from __future__ import annotations

import pytest
from conftest import Env, agent_address, mail
from sqlalchemy import text, update

from maild.store import search
from maild.store.models import Contact, Message, Tag


def found(env: Env, query: str, limit: int = 20) -> list[int]:
    with env.app.db.read() as session:
        return [h.ticket_id for h in search.search(session, query, limit)]


def index_pages(env: Env) -> bytes:
    """SQLite: the FTS5 index's own pages (the words, as stored)."""
    with env.app.db.read() as session:
        return b"".join(bytes(row[0]).lower() for table in ("message_search_data", "ticket_search_data")
                        for row in session.execute(text(f"SELECT block FROM {table}")))


def ticket(env: Env, subject: str, sender: str, body: str) -> int:
    outcome = env.process(mail(subject, sender, body=body))
    assert outcome.status == "created"
    return int(outcome.ticket_id or 0)


def test_query_words_are_quoted_for_fts5() -> None:
    assert search.words("ação: \"vazamento\" OR NEAR(x) maria@cliente.com") == [
        "ação", "vazamento", "OR", "NEAR", "x", "maria", "cliente", "com"]
    assert search.fts5_query('col:x* "a') == '"col" "x" "a"'
    assert search.words("...  --") == []


def test_search_finds_accents_requesters_bodies_and_ranks_subjects_first(env: Env) -> None:
    a = ticket(env, "Ação de despejo", "Maria Souza <maria@cliente.example.com.br>", "Preciso de ajuda.\n")
    b = ticket(env, "Conta de luz", "joao@exemplo.com.br", "Sobre a ação de cobrança que recebi.\n")
    c = ticket(env, "Infiltração", "Pedro <pedro@exemplo.com.br>", "Há água no teto da sala.\n")
    assert found(env, "acao") == [a, b]  # no accent finds the accent; the subject ranks first
    assert found(env, "AÇÃO") == [a, b]
    assert found(env, "agua teto") == [c] and found(env, "teto despejo") == []
    assert found(env, "maria@cliente.example.com.br") == [a]
    assert found(env, "souza") == [a]  # the requester's name
    assert found(env, "acao", limit=1) == [a]
    assert found(env, "") == [] and found(env, "zzzz") == []
    with env.app.db.read() as session:
        [hit] = search.search(session, "infiltracao")
    assert (hit.ticket_id, hit.subject, hit.status, hit.requester) == (c, "Infiltração", "new", "pedro@exemplo.com.br")
    assert hit.updated_at is not None and hit.updated_at.tzinfo is not None


def test_replies_tags_and_rewrites_keep_the_index(env: Env) -> None:
    a = ticket(env, "Vazamento", "maria@cliente.example.com.br", "Há água no chão.\n")
    # An agent's reply with a tag: its text and the tag are found at once.
    env.process(mail("Re: [Support #1] Vazamento", "ana@support.example.com",
                     body="/tag +hidraulica\nVamos mandar o encanador amanhã.\n", to=agent_address(env, a)))
    assert found(env, "encanador") == [a] and found(env, "hidraulica") == [a]
    with env.app.db.write() as session:  # as an erasure rewrites a message and renames a person
        session.execute(update(Message).where(Message.ticket_id == a).values(body_text="[erased]"))
        session.execute(update(Message).where(Message.from_addr == "maria@cliente.example.com.br")
                        .values(from_addr="erased-1@invalid"))
        session.execute(update(Contact).where(Contact.email == "maria@cliente.example.com.br")
                        .values(email="erased-1@invalid", name=""))
        session.execute(update(Tag).where(Tag.name == "hidraulica").values(name="agua"))
    assert found(env, "encanador") == [] and found(env, "maria") == [] and found(env, "chao") == []
    assert found(env, "erased") == [a] and found(env, "hidraulica") == [] and found(env, "agua") == [a]
    with env.app.db.write() as session:
        session.execute(text("DELETE FROM ticket_tags"))
    assert found(env, "agua") == []


def test_an_erased_person_is_no_longer_found_nor_kept_in_the_index(env: Env) -> None:
    from test_forget import MARIA, NAME, cli, config_of, maria_everywhere

    ids = maria_everywhere(env)
    assert ids["own"] in found(env, NAME) and ids["own"] in found(env, MARIA)
    assert not env.app.db.is_sqlite or b"souza" in index_pages(env)
    env.app.db.dispose()
    done = cli(config_of(env), "contacts", "forget", MARIA, "--vacuum", "--json")
    assert done.returncode == 0, done.stderr
    assert found(env, NAME) == [] and found(env, MARIA) == []
    assert found(env, "pedro") != []  # other people's words stay searchable
    if env.app.db.is_sqlite:  # FTS5 keeps deleted words in its pages until they are merged
        assert b"souza" not in index_pages(env)
    else:
        import json
        assert {"message_search", "ticket_search"} <= set(json.loads(done.stdout)["vacuumed"])


def test_a_very_common_word_ranks_only_the_newest_matches(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [ticket(env, f"Pedido {n}", f"c{n}@exemplo.com.br", "boleto atrasado\n") for n in range(4)]
    assert sorted(found(env, "boleto")) == ids
    monkeypatch.setattr(search, "CANDIDATES", 2)
    assert sorted(found(env, "boleto")) == ids[2:]  # the two newest messages' tickets
