"""LGPD erasure that leaves no trace: ``maild contacts forget`` run from the command line on
mail that names the person in every encoding a mail client uses, then every byte maild
stored (database rows, the database file, raw mails and attachments decompressed) is
searched for the address, the name and the phone, plain and base64/quoted-printable."""
from __future__ import annotations

import base64
import json
import quopri
import re
import zlib
from pathlib import Path

import pytest
from sqlalchemy import MetaData, select, text

from conftest import AGENT, HELPDESK, Env, _reset_pg, make_env, mail
from maild.contacts import book
from maild.contacts.redact import Person, mentions, redact
from maild.store.models import OutboxRow
from test_contacts import cli, config_of

MARIA = "maria.souza@cliente.example.com.br"
NAME = "Maria Souza"
PHONE = "(21) 99999-0000"
PHONE_RE = re.compile(r"(?<!\d)2\D{0,3}1\D{0,3}9\D?9\D?9\D?9\D?9\D{0,3}0\D?0\D?0\D?0(?!\d)")


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode()


def b64_lines(text: str) -> str:
    data = base64.b64encode(text.encode("utf-8")).decode()
    return "\r\n".join(data[i:i + 76] for i in range(0, len(data), 76))


def encoded_forms(needle: str) -> set[bytes]:
    """How a needle may sit in stored bytes without being plain text: the stable middle of its
    base64 at each of the three alignments, and its quoted-printable / encoded-word forms."""
    forms = set()
    for variant in {needle, needle.lower(), needle.upper()}:
        data = variant.encode("utf-8")
        for pad in range(3):
            enc = base64.b64encode(b"\0" * pad + data)
            start = -(-pad * 4 // 3) + 1
            core = enc[start:len(enc) - 4]
            if len(core) >= 8:
                forms.add(core)
        forms.add(quopri.encodestring(data).strip().lower())
        forms.add(variant.replace(" ", "_").encode().lower())
        forms.add(variant.replace(" ", "=20").encode().lower())
    return forms


def traces(data: bytes) -> list[str]:
    text = data.decode("utf-8", errors="replace").lower() + data.decode("latin-1").lower()
    found = [n for n in (MARIA, NAME.lower(), "maria  souza") if n in text]
    if PHONE_RE.search(text):
        found.append("phone")
    forms = encoded_forms(MARIA) | encoded_forms(NAME) | encoded_forms("21999990000") | encoded_forms("99999-0000")
    found += [f.decode() for f in forms if f in data or f in data.lower()]
    return found


def dump(env: Env) -> bytes:
    """Every row of every table (the database "grep")."""
    meta = MetaData()
    meta.reflect(env.app.db.engine)
    with env.app.db.engine.connect() as conn:
        return "\n".join(repr(tuple(row)) for table in meta.sorted_tables
                         for row in conn.execute(table.select())).encode("utf-8")


def files(directory: Path) -> dict[str, bytes]:
    out = {}
    for path in directory.rglob("*"):
        if path.is_file() and path.name != "maild.yaml":
            data = path.read_bytes()
            out[str(path)] = zlib.decompress(data) if path.name.endswith(".eml.z") else data
    return out


def _pedro() -> bytes:
    """Another customer's mail naming Maria in an encoded-word Cc, a base64 body, a QP part,
    an RFC 2231 file name and a base64 attachment."""
    boundary = "b0undary"
    return ("\r\n".join([
        "From: Pedro Lima <pedro@x.example>",
        f"To: {HELPDESK}",
        f"Cc: =?utf-8?B?{b64(NAME)}?= <{MARIA}>",
        "Subject: =?utf-8?Q?Condom=C3=ADnio_da_Maria_Souza?=",
        "Message-ID: <pedro-1@x.example>",
        "Date: Mon, 02 Nov 2026 10:00:00 +0000",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: base64",
        "",
        b64_lines(f"Bom dia, copiei a vizinha ({MARIA.upper()}), telefone +55 21 99999-0000.\n"),
        f"--{boundary}",
        "Content-Type: text/html; charset=iso-8859-1",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        "<p>A sra. Maria Sou=\r\nza j=E1 sabe. Liga=E7=E3o: 21 9999=\r\n9-0000</p>",
        f"--{boundary}",
        "Content-Type: application/pdf",
        f"Content-Disposition: attachment; filename*=utf-8''Contrato%20{NAME.replace(' ', '%20')}.pdf",
        "Content-Transfer-Encoding: base64",
        "",
        b64_lines(f"%PDF-1.4 contrato de {NAME} <{MARIA}> tel {PHONE}\n"),
        f"--{boundary}--",
        "",
    ])).encode("utf-8")


def _joana_forward() -> bytes:
    """A third customer forwards Maria's mail as an attachment (message/rfc822)."""
    inner = (f"From: =?iso-8859-1?Q?Maria_Souza?= <{MARIA}>\r\nTo: joana@y.example\r\n"
             "Subject: Vaga\r\nContent-Type: text/plain; charset=utf-8\r\n"
             f"Content-Transfer-Encoding: base64\r\n\r\n{b64_lines('Meu celular: 21999990000')}\r\n")
    return ("From: Joana <joana@y.example>\r\n"
            f"To: {HELPDESK}\r\nSubject: Fwd: Vaga\r\nMessage-ID: <joana-1@y.example>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
            "--zz\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nVeja abaixo.\r\n"
            "--zz\r\nContent-Type: message/rfc822\r\n\r\n" + inner + "--zz--\r\n").encode("utf-8")


def _notification_for(env: Env, ticket_id: int) -> OutboxRow:
    with env.app.db.read() as session:
        return session.scalars(select(OutboxRow).where(OutboxRow.ticket_id == ticket_id,
                                                       OutboxRow.to_addr == AGENT)
                               .order_by(OutboxRow.id.desc())).first()


def agent_reply(env: Env, ticket_id: int, body: str) -> None:
    """The agent answers the notification the way a mail client does."""
    note = _notification_for(env, ticket_id)
    to = note.reply_to.split("<")[1].rstrip(">") if note.reply_to else HELPDESK
    env.process(mail(f"Re: {note.subject}", f"Ana <{AGENT}>", body=body, to=to,
                     headers={"In-Reply-To": note.message_id, "References": note.message_id}))


def maria_everywhere(env: Env) -> dict[str, int]:
    with env.app.db.write() as session:
        book.upsert(session, book.ContactData(MARIA, NAME, PHONE), env.now)
    own = env.process(mail("Contrato", f"{NAME} <{MARIA}>", body=f"Meu telefone é {PHONE}.\n"))
    pedro = env.process(_pedro())
    joana = env.process(_joana_forward())
    agent_reply(env, pedro.ticket_id, f"Pedro, falei com a {NAME} ({PHONE}), ela vai ligar.\n")
    agent_reply(env, own.ticket_id, f"Oi {NAME}, recebido.\n")
    assert {own.status, pedro.status, joana.status} == {"created"}
    return {"own": own.ticket_id, "pedro": pedro.ticket_id, "joana": joana.ticket_id}


def test_the_person_is_found_in_every_encoding_before_forget(sqlite_env: Env) -> None:
    person = Person.of(MARIA, NAME, PHONE)
    for raw in (_pedro(), _joana_forward()):
        assert mentions(raw, person)  # the decoded search finds her in every encoding
    hidden = (f"From: x@y.example\r\nSubject: =?utf-8?B?{b64(NAME)}?=\r\nContent-Type: text/plain\r\n"
              f"Content-Transfer-Encoding: base64\r\n\r\n{b64_lines('tel 21999990000')}\r\n").encode()
    assert NAME.lower() not in hidden.decode().lower() and not PHONE_RE.search(hidden.decode())  # only encoded
    assert mentions(hidden, Person.of("other@x.example", NAME, "")) and mentions(hidden, Person.of(MARIA, "", PHONE))
    assert not mentions(mail("Outro", "x@y.example", body="Nada a ver, Mario Sousa 21 99999-0001\n"), person)


def test_redacted_mail_keeps_its_structure(sqlite_env: Env) -> None:
    person = Person.of(MARIA, NAME, PHONE)
    new = redact(_pedro(), person)
    assert new is not None and not mentions(new, person)
    import email
    import email.policy

    msg = email.message_from_bytes(new, policy=email.policy.default)
    parts = [p.get_content_type() for p in msg.walk()]
    assert parts == ["multipart/mixed", "text/plain", "text/html", "application/pdf"]
    assert "Bom dia, copiei a vizinha" in msg.get_body(("plain",)).get_content()
    assert msg["From"].addresses[0].addr_spec == "pedro@x.example"
    assert list(msg.iter_attachments())[0].get_filename() == "Contrato [erased].pdf"


def test_forget_leaves_no_trace_in_any_row_file_or_encoding(env: Env) -> None:
    ids = maria_everywhere(env)
    before = dump(env) + b"".join(files(env.directory).values())
    assert traces(before)  # the search does find her before
    env.app.db.dispose()
    done = cli(config_of(env), "contacts", "forget", MARIA.upper(), "--json")
    assert done.returncode == 0, done.stderr

    found = {"database rows": traces(dump(env))}
    found.update({path: traces(data) for path, data in files(env.directory).items()})
    assert {where: hits for where, hits in found.items() if hits} == {}
    # Other customers' tickets and mail keep their own words.
    pedro = env.ticket(ids["pedro"])
    assert "Bom dia, copiei a vizinha ([erased]), telefone [erased]." in pedro["messages"][0]["body_text"]
    assert pedro["requester"] == "pedro@x.example" and pedro["subject"] == "Condomínio da [erased]"
    assert "falei com a [erased] ([erased])" in pedro["messages"][-1]["body_text"]


@pytest.mark.parametrize("name", ["Ana", ""])
def test_short_or_missing_names_are_not_erased_from_other_peoples_text(name: str) -> None:
    person = Person.of(MARIA, name, "")
    assert person.erase("Ana respondeu") == "Ana respondeu"


def test_on_postgresql_forget_names_the_tables_to_vacuum_and_vacuum_runs_it(tmp_path: Path, pg_database: str) -> None:
    url = pg_database
    env = make_env(tmp_path, url)
    _reset_pg(url)
    try:
        maria_everywhere(env)
        told = cli(config_of(env), "contacts", "forget", MARIA)
        assert told.returncode == 0, told.stderr
        line = next(li for li in told.stdout.splitlines() if "dead row versions until VACUUM" in li)
        named = line.split("runs on: ")[1].split(", ")
        assert {"messages", "raw_mails", "outbox", "contacts", "events"} <= set(named)

        env.process(mail("De novo", f"{NAME} <{MARIA}>", body=f"Tel {PHONE}\n"))
        done = cli(config_of(env), "contacts", "forget", MARIA, "--vacuum", "--json")
        assert done.returncode == 0, done.stderr
        vacuumed = json.loads(done.stdout)["vacuumed"]
        assert "messages" in vacuumed and "contacts" in vacuumed
        with env.app.db.engine.connect() as conn:
            last = dict(conn.execute(text("SELECT relname, last_vacuum FROM pg_stat_user_tables")).all())
        assert all(last[t] is not None for t in vacuumed)
        assert last["tags"] is None  # only the tables forget changed
    finally:
        env.app.db.dispose()


def _forget(env: Env, address: str = MARIA) -> None:
    env.app.db.dispose()
    done = cli(config_of(env), "contacts", "forget", address)
    assert done.returncode == 0, done.stderr


def _outbox_to(env: Env, address: str) -> list[OutboxRow]:
    with env.app.db.read() as session:
        return list(session.scalars(select(OutboxRow).where(OutboxRow.to_addr == address)))


def test_forgotten_sender_comes_back_as_a_new_person_without_automatic_mail(sqlite_env: Env) -> None:
    first = sqlite_env.process(mail("Contrato", f"{NAME} <{MARIA}>"))
    assert len(_outbox_to(sqlite_env, MARIA)) == 1  # the acknowledgement, before
    _forget(sqlite_env)
    # A reply to her old (now anonymized) ticket opens a new ticket for a new contact.
    back = sqlite_env.process(mail(f"Re: [Support #{first.ticket_id}] Contrato", f"{NAME} <{MARIA}>",
                                   headers={"In-Reply-To": "<whatever@x>"}))
    assert back.status == "created" and back.ticket_id != first.ticket_id
    ticket = sqlite_env.ticket(back.ticket_id)
    assert ticket["requester"] == MARIA
    assert [e["kind"] for e in ticket["events"]].count("forgotten_sender") == 1
    with sqlite_env.app.db.read() as session:
        assert book.find(session, MARIA).consent is False
    assert _outbox_to(sqlite_env, MARIA) == []  # no acknowledgement (the old one's address was erased)
    assert _outbox_to(sqlite_env, AGENT)  # agents still hear of it
    # The contact exists again: later mail is ordinary mail on her new ticket.
    again = sqlite_env.process(mail(f"Re: [Support #{back.ticket_id}] Contrato", MARIA))
    assert (again.status, again.ticket_id) == ("appended", back.ticket_id)


def test_forgotten_sender_ignored_even_for_mail_already_in_the_spool(tmp_path: Path) -> None:
    from maild.ingest.spool import SpoolWorker

    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}",
                   contacts="contacts:\n  forgotten: ignore\n")
    try:
        env.process(mail("Contrato", f"{NAME} <{MARIA}>"))
        env.app.spool.put(mail("Mais uma coisa", f"{NAME} <{MARIA}>"), "smtp")  # arrived, not yet processed
        _forget(env)
        worker = SpoolWorker(env.app.spool, env.app.processor.process_batch, lambda: env.now)
        assert worker.drain() == 1
        raws = env.raw_rows()
        assert (raws[-1].status, raws[-1].ticket_id) == ("ignored", None)
        assert "erased on request" in raws[-1].reason
        assert len(env.tickets()) == 1  # only the anonymized old one
        with env.app.db.read() as session:
            assert book.find(session, MARIA) is None
        assert _outbox_to(env, MARIA) == []
        assert env.process(mail("Outro", "someone.else@x.example")).status == "created"
    finally:
        env.app.db.dispose()
