"""Threading that never answers the wrong customer, and hostile text kept off terminals,
outbound headers and spreadsheets: pure functions, the real processor, the CLI."""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime, timezone
from email import message_from_bytes

import pytest
from sqlalchemy import select

from conftest import AGENT, HELPDESK, Env, mail
from maild.contacts.csvfile import formula_escape, formula_unescape
from maild.domain.match import Match
from maild.ingest.parse import parse
from maild.outbound.compose import OutboundMail, address, to_bytes
from maild.store.models import OutboxRow
from maild.text import escape_c1, for_terminal, one_line
from maild.threading.match import ThreadContext, thread
from maild.threading.signing import Signer
from test_contacts import cli, config_of

MARIA = "maria@cliente.example.com.br"
STRANGER = "joao@outro.example"


# -- pure: text ------------------------------------------------------------------------------
def test_one_line_and_for_terminal_drop_every_control() -> None:
    hostile = "a\x1b[2Jb\x07c\r\nBcc: x\x9bd\x7f\te"
    assert one_line(hostile) == "a [2Jb c Bcc: x d e"
    assert for_terminal("line1\r\nline2\x1b]0;title\x07\tx\n") == "line1\nline2\ufffd]0;title\ufffd\tx\n"
    assert escape_c1('{"s": "a\x9bb\x85"}') == '{"s": "a\\u009bb\\u0085"}'


# -- pure: addresses ---------------------------------------------------------------------------
def _from(value: str) -> tuple[str, str] | None:
    parsed = parse(f"From: {value}\r\nTo: {HELPDESK}\r\nSubject: x\r\n\r\nbody\r\n".encode())
    return (parsed.from_.email, parsed.from_.name) if parsed.from_ else None


@pytest.mark.parametrize(("value", "expected"), [
    ("=?utf-8?q?Evil=0D=0ABcc:_victim@x?= <a@b.example>", ("a@b.example", "Evil Bcc: victim@x")),
    ("=?utf-8?q?a=3Cevil=40x.example=3E?= <real@x.example>", ("real@x.example", "a<evil@x.example>")),
    ("=?utf-8?q?x=2C_y=40evil.example?= <real@x.example>", ("real@x.example", "x, y@evil.example")),
    ("\"Smith, John\" <john@x.example>", ("john@x.example", "Smith, John")),
    ("\"unbalanced <u@x.example>", ("u@x.example", "")),
    ("fake@evil.example <real@x.example>", ("real@x.example", "")),
    ("=?utf-8?b?TWFyaWEbWzMxbQ==?= <m@x.example>", ("m@x.example", "Maria [31m")),
    ("=?utf-8?q?only=40name.example?=", None),
    ("no address at all", None),
])
def test_a_hostile_from_yields_the_real_addr_spec_or_no_sender(value: str, expected: tuple[str, str] | None) -> None:
    got = _from(value)
    assert got == expected
    assert got is None or not any(ch in got[1] for ch in "\r\n\x1b\x07")


def test_to_and_cc_lists_keep_only_real_addresses() -> None:
    parsed = parse((f"From: a@x.example\r\nTo: =?utf-8?q?Bob=2C_eve=40evil.example?= <bob@x.example>, "
                    f"{HELPDESK}\r\nCc: \"Q, R\" <q@x.example>, =?utf-8?q?z=40evil.example?=\r\n"
                    "Subject: =?utf-8?q?Oi=1B[2J=0D=0AX-Bad:_1?=\r\n\r\nb\r\n").encode())
    assert [a.email for a in parsed.to] == ["bob@x.example", HELPDESK]
    assert [(a.name, a.email) for a in parsed.cc] == [("Q, R", "q@x.example")]
    assert parsed.subject == "Oi [2J X-Bad: 1"


# -- pure: outbound headers --------------------------------------------------------------------
def test_outbound_names_and_subject_never_inject_a_header() -> None:
    out = OutboundMail(kind="reply", automatic=False, ticket_id=1, message_id="<m@x>", envelope_from=HELPDESK,
                       recipients=("a@b.example",), from_header=address("Ana\r\nBcc: victim@x.example", HELPDESK),
                       to_header=address("Evil\x1b[2J\nCc: c@x.example", "a@b.example"),
                       subject="Re: hi\r\nBcc: victim@x.example\x07", body_text="text\n",
                       date=datetime(2026, 11, 2, tzinfo=timezone.utc))
    raw = to_bytes(out, HELPDESK)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\x1b" not in head and b"\x07" not in head
    parsed = message_from_bytes(raw)
    assert parsed["Bcc"] is None and parsed["Cc"] is None
    assert "victim@x.example" in parsed["Subject"] and "\n" not in parsed["Subject"]


# -- pure: threading rule -----------------------------------------------------------------------
class _Lookup:
    """Ticket 7: requester maria, participant pedro; <a1@x> was sent To maria, Cc ana-cc@x."""

    def ticket_of_message(self, message_id: str) -> int | None:
        return None

    def ticket_of_any(self, message_ids: Sequence[str]) -> int | None:
        return 7 if "<a1@x>" in message_ids else None

    def resolve_ticket(self, ticket_id: int) -> int | None:
        return ticket_id

    def is_participant(self, ticket_id: int, email: str) -> bool:
        return email in (MARIA, "pedro@x.example")

    def requester_of(self, ticket_id: int) -> str | None:
        return MARIA

    def addressed_in(self, ticket_id: int, email: str, message_ids: Sequence[str]) -> bool:
        return "<a1@x>" in message_ids and email == "cc@x.example"


def _thread(sender: str, *, cc: str = "", agent: bool = False, machine: bool = False) -> Match:
    extra = f"Cc: {cc}\r\n" if cc else ""
    raw = (f"From: {sender}\r\nTo: {HELPDESK}\r\n{extra}Subject: Re: x\r\nMessage-ID: <n@x>\r\n"
           "In-Reply-To: <a1@x>\r\nReferences: <a1@x>\r\n\r\nb\r\n").encode()
    return thread(ThreadContext(parse(raw), sender, agent, _Lookup(), Signer("s" * 32, "support", "x"), "Support",
                                machine=machine))


def test_headers_rule_lets_only_those_on_the_ticket_join() -> None:
    assert _thread(MARIA) == Match("headers", 7)
    assert _thread("pedro@x.example").ticket_id == 7
    assert _thread(AGENT, agent=True).ticket_id == 7
    assert _thread("daemon@x.example", machine=True).ticket_id == 7
    assert _thread("cc@x.example") == Match("headers", 7, joins="addressed by a message of the ticket")
    assert _thread(STRANGER, cc=MARIA) == Match("headers", 7, joins="wrote to the requester too")
    stranger = _thread(STRANGER)
    assert (stranger.rule, stranger.ticket_id, stranger.refers_to) == ("new", None, 7)


# -- through the processor -----------------------------------------------------------------------
def _outbox(env: Env) -> list[OutboxRow]:
    with env.app.db.read() as session:
        return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def test_a_stranger_replying_by_references_opens_a_linked_ticket(env: Env) -> None:
    first = env.process(mail("Vazamento", f"Maria <{MARIA}>", message_id="<m-1@cliente.example>"))
    before = len(_outbox(env))
    reply = env.process(mail("Re: Vazamento", f"João <{STRANGER}>", message_id="<j-1@outro.example>",
                             body="Sou o vizinho.\n",
                             headers={"In-Reply-To": "<m-1@cliente.example>", "References": "<m-1@cliente.example>"}))
    assert reply.status == "created" and reply.ticket_id != first.ticket_id
    new = env.ticket(reply.ticket_id)
    assert new["requester"] == STRANGER and new["links"] == [{"ticket": first.ticket_id, "kind": "refers_to"}]
    [linked] = [e for e in new["events"] if e["kind"] == "linked"]
    assert "non-participant" in linked["detail"]
    assert env.ticket(first.ticket_id)["message_count"] == 1
    sent = _outbox(env)[before:]
    assert MARIA not in " ".join(r.recipients for r in sent)
    assert any(r.recipients == STRANGER for r in sent)  # the acknowledgement goes to who wrote


def test_the_signed_reply_address_from_a_stranger_opens_a_linked_ticket(env: Env) -> None:
    first = env.process(mail("Assinatura", MARIA))
    leaked = env.app.processor.signer.reply_address(first.ticket_id)
    out = env.process(mail("Re: Assinatura", STRANGER, to=leaked))
    assert out.status == "created" and env.ticket(out.ticket_id)["links"] == [
        {"ticket": first.ticket_id, "kind": "refers_to"}]


def test_reply_all_to_the_requester_joins_and_the_notification_names_the_real_sender(env: Env) -> None:
    first = env.process(mail("Reforma", f"Maria <{MARIA}>", message_id="<m-1@cliente.example>"))
    before = len(_outbox(env))
    out = env.process(mail("Re: Reforma", f"Pedro Vizinho <{STRANGER}>", body="Também tenho o problema.\n",
                           headers={"Cc": MARIA, "In-Reply-To": "<m-1@cliente.example>"}))
    assert (out.status, out.ticket_id) == ("appended", first.ticket_id)
    ticket = env.ticket(first.ticket_id)
    assert {"email": STRANGER, "role": "cc"} in ticket["participants"]
    [notify] = [r for r in _outbox(env)[before:] if r.kind == "notify"]
    assert notify.recipients == AGENT
    assert f"Pedro Vizinho <{STRANGER}> wrote on" in notify.body_text
    assert f"Maria <{MARIA}> wrote" not in notify.body_text and f"customer is Maria <{MARIA}>" in notify.body_text


def test_someone_the_customer_put_in_cc_later_joins_when_answering(env: Env) -> None:
    first = env.process(mail("Chaves", MARIA, message_id="<m-1@cliente.example>"))
    env.process(mail("Re: Chaves", MARIA, message_id="<m-2@cliente.example>",
                     headers={"Cc": "Irmã <irma@x.example>", "In-Reply-To": "<m-1@cliente.example>"}))
    out = env.process(mail("Re: Chaves", "irma@x.example", headers={"In-Reply-To": "<m-2@cliente.example>"}))
    assert out.ticket_id == first.ticket_id
    assert {"email": "irma@x.example", "role": "cc"} in env.ticket(first.ticket_id)["participants"]


# -- CLI --------------------------------------------------------------------------------------------
def test_cli_listings_carry_no_control_characters(sqlite_env: Env) -> None:
    sqlite_env.process(mail("=?utf-8?q?Boleto=1B]0;pwned=07=1B[2J?=", "=?utf-8?q?Ev=1Bil?= <e@x.example>",
                            body="linha\x1b[31m vermelha\n"))
    config = config_of(sqlite_env)
    for args in (("tickets", "list"), ("tickets", "show", "1"), ("contacts", "show", "e@x.example"),
                 ("outbox", "list"), ("quarantine", "list"), ("tickets", "list", "--json")):
        out = cli(config, *args)
        assert out.returncode == 0, out.stderr
        assert not any(ord(ch) < 32 and ch not in "\n\t" or 0x7f <= ord(ch) <= 0x9f for ch in out.stdout), args
    assert "Boleto" in cli(config, "tickets", "list").stdout


def test_contacts_export_escapes_formulas_and_import_round_trips(sqlite_env: Env) -> None:
    source = sqlite_env.directory / "in.csv"
    source.write_text("email,name,phone\nf@x.example,=HYPERLINK(\"http://evil\"),+55 21 9999\n"
                      "g@x.example,@SUM(A1),-1\nh@x.example,'quoted,\n", encoding="utf-8")
    config = config_of(sqlite_env)
    assert cli(config, "contacts", "import", str(source)).returncode == 0
    out = cli(config, "contacts", "export")
    rows = {r["email"]: r for r in csv.DictReader(io.StringIO(out.stdout))}
    assert rows["f@x.example"]["name"] == "'=HYPERLINK(\"http://evil\")"
    assert rows["f@x.example"]["phone"] == "'+55 21 9999"
    assert (rows["g@x.example"]["name"], rows["g@x.example"]["phone"]) == ("'@SUM(A1)", "'-1")
    assert rows["h@x.example"]["name"] == "'quoted"  # not a formula: left as written
    exported = sqlite_env.directory / "out.csv"
    exported.write_text(out.stdout, encoding="utf-8")
    env2 = sqlite_env.directory / "again"
    env2.mkdir()
    from conftest import make_env

    other = make_env(env2, f"sqlite:///{env2 / 'maild.db'}")
    try:
        assert cli(config_of(other), "contacts", "import", str(exported)).returncode == 0
        again = {r["email"]: r for r in csv.DictReader(io.StringIO(cli(config_of(other), "contacts", "export").stdout))}
        fields = ("name", "phone", "groups", "consent", "blocked")
        assert {e: [r[f] for f in fields] for e, r in again.items()} == {e: [r[f] for f in fields] for e, r in rows.items()}
        shown = cli(config_of(other), "contacts", "show", "f@x.example").stdout
        assert shown.startswith("=HYPERLINK(\"http://evil\") <f@x.example>")
    finally:
        other.app.db.dispose()


def test_formula_escape_and_unescape_are_inverse() -> None:
    for cell in ("=1+1", "+55", "-", "@x", "\tx", "\rx", "plain", "'quote", "", "''=x"):
        assert formula_unescape(formula_escape(cell)) == cell
    assert [formula_escape(c) for c in ("=1", "plain", "'q")] == ["'=1", "plain", "'q"]
