"""The contact book as an admin uses it: `maild contacts …` in a subprocess, mail through the
real processor; `forget` checked by reading every byte maild stored."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zlib
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import MetaData, select

from conftest import AGENT, Env, agent_address, make_env, mail
from maild.contacts.forget import forget
from maild.store.models import Contact, Erasure, OutboxRow
from test_forms import FALE_CONOSCO, FORMS, form_mail

MAILD = [sys.executable, "-m", "maild"]
MARIA = "maria.souza@cliente.example.com.br"

MESSY = (
    "\ufeffNome;E-mail;Telefone;Grupos;LGPD\r\n"
    "Maria Souza;maria@cliente.example.com.br;(21) 99999-0000;compradores, vip;sim\r\n"  # 2
    "João;JOAO@Exemplo.com.br;;;não\r\n"  # 3
    "Sem Email;;1234;;\r\n"  # 4: no address
    "Maria S.;Maria@Cliente.example.com.br;;;sim\r\n"  # 5: duplicate of line 2
    "\"Ana; Paula\";ana@x.example.com;;;\r\n"  # 6: quoted delimiter is fine
    "Pedro;pedro(at)example.com;;;\r\n"  # 7: not an address
    "Carla;carla@x.example.com;;;talvez\r\n"  # 8: consent unreadable
    "Zé;ze@x.example.com;1;2;sim;extra\r\n"  # 9: more fields than the header
    "\"Rua\r\nmulti\";multi@x.example.com;;;\r\n"  # 10-11: a quoted line break
    "\r\n"  # 12: blank
    "Bruno;bruno@x.example.com;;;\r\n"  # 13
)


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MAILD, "--config", str(config), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def sqlite_forms(tmp_path: Path) -> Env:
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", forms=FORMS)
    yield env
    env.app.db.dispose()


def config_of(env: Env) -> Path:
    return env.directory / "maild.yaml"


def test_import_of_a_messy_csv_reports_exactly_the_bad_lines(sqlite_forms: Env) -> None:
    source = sqlite_forms.directory / "contatos.csv"
    source.write_bytes(MESSY.encode("utf-8"))
    dry = cli(config_of(sqlite_forms), "contacts", "import", str(source), "--dry-run", "--json")
    assert dry.returncode == 65, dry.stderr
    report = json.loads(dry.stdout)
    assert [r["line"] for r in report["rejected"]] == [4, 5, 7, 8, 9]
    assert report["rejected"][1]["reason"] == "duplicate of line 2 (maria@cliente.example.com.br)"
    assert (report["created"], report["dry_run"]) == (5, True)
    with sqlite_forms.app.db.read() as session:
        assert list(session.scalars(select(Contact))) == []  # a dry run writes nothing

    done = cli(config_of(sqlite_forms), "contacts", "import", str(source))
    assert done.returncode == 65
    assert "5 created, 0 updated, 0 unchanged, 5 rejected" in done.stdout
    assert "line 7: 'pedro(at)example.com' is not an e-mail address" in done.stdout
    shown = json.loads(cli(config_of(sqlite_forms), "contacts", "show", "Maria@CLIENTE.example.com.br",
                           "--json").stdout)
    assert (shown["name"], shown["phone"], shown["groups"], shown["consent"]) == (
        "Maria Souza", "(21) 99999-0000", ["compradores", "vip"], True)
    joao = json.loads(cli(config_of(sqlite_forms), "contacts", "show", "joao@exemplo.com.br", "--json").stdout)
    assert joao["consent"] is False
    again = cli(config_of(sqlite_forms), "contacts", "import", str(source), "--json")
    assert json.loads(again.stdout)["unchanged"] == 5


def test_export_round_trips_through_import(sqlite_forms: Env, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("email,name,groups\nana@x.example.com,Ana Paula,\"a|b\"\nbia@x.example.com,Bia,\n")
    assert cli(config_of(sqlite_forms), "contacts", "import", str(source)).returncode == 0
    sqlite_forms.process(mail("Olá", "Carlos <carlos@x.example.com>"))
    out = cli(config_of(sqlite_forms), "contacts", "export", "--delimiter", ";")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout), delimiter=";"))
    assert [(r["email"], r["name"], r["groups"], r["tickets"]) for r in rows] == [
        ("ana@x.example.com", "Ana Paula", "a|b", "0"), ("bia@x.example.com", "Bia", "", "0"),
        ("carlos@x.example.com", "Carlos", "", "1")]
    exported = tmp_path / "out.csv"
    assert cli(config_of(sqlite_forms), "contacts", "export", "-o", str(exported)).returncode == 0
    assert exported.read_bytes().startswith(b"\xef\xbb\xbf")  # Excel opens it as UTF-8
    report = json.loads(cli(config_of(sqlite_forms), "contacts", "import", str(exported), "--json").stdout)
    assert (report["unchanged"], report["rejected"]) == (3, [])


def test_show_lists_the_tickets_of_a_contact(sqlite_forms: Env) -> None:
    sqlite_forms.process(form_mail(FALE_CONOSCO))
    sqlite_forms.process(mail("Outra dúvida", "joao.conceicao@exemplo.com.br"))
    sqlite_forms.process(mail("Não é dele", "outra@exemplo.com.br"))
    shown = cli(config_of(sqlite_forms), "contacts", "show", "Joao.Conceicao@exemplo.com.br")
    assert shown.returncode == 0, shown.stderr
    assert "João da Conceição <joao.conceicao@exemplo.com.br>" in shown.stdout
    assert "(11) 98765-4321" in shown.stdout and "2 ticket(s)" in shown.stdout
    assert "Outra dúvida" in shown.stdout and "Não é dele" not in shown.stdout
    assert cli(config_of(sqlite_forms), "contacts", "show", "nobody@x.example").returncode == 65


def test_block_and_unblock_from_the_command_line(sqlite_forms: Env) -> None:
    blocked = cli(config_of(sqlite_forms), "contacts", "block", "Spam@Example.com")
    assert blocked.returncode == 0 and "spam@example.com blocked" in blocked.stdout
    assert sqlite_forms.process(mail("Compre já", "spam@example.com")).status == "ignored"
    assert cli(config_of(sqlite_forms), "contacts", "unblock", "spam@example.com").returncode == 0
    assert sqlite_forms.process(mail("Agora sim", "spam@example.com")).status == "created"


def _maria_everywhere(env: Env) -> tuple[int, int]:
    """Maria's own ticket (with an attachment, an ack and an agent reply) and a mention of her
    on someone else's ticket, where she is in Cc."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = f"Maria Souza <{MARIA}>", "support@support.example.com", "Contrato"
    msg["Message-ID"] = "<contrato-1@cliente.example.com.br>"
    msg.set_content(f"Segue o contrato. Meu telefone é 21 99999-0000. {MARIA}\n")
    msg.add_attachment(b"%PDF-1.4 contrato de Maria Souza " + MARIA.encode(), maintype="application",
                       subtype="pdf", filename="contrato-maria.pdf")
    own = env.process(msg.as_bytes())
    env.process(mail(f"Re: [Support #{own.ticket_id}] Contrato", f"Ana <{AGENT}>",
                     body="Recebemos, Maria. Obrigado!\n", to=agent_address(env, own.ticket_id)))
    other = mail("Condomínio", "Pedro <pedro@x.example>", body=f"Copiei a Maria ({MARIA.upper()}) aqui.\n")
    other = other.replace(b"To: ", f"Cc: Maria <{MARIA}>\r\nTo: ".encode(), 1)
    theirs = env.process(other)
    return own.ticket_id, theirs.ticket_id


def _all_text(env: Env) -> str:
    """Every row of every table, as text (the database "grep")."""
    meta = MetaData()
    meta.reflect(env.app.db.engine)
    with env.app.db.engine.connect() as conn:
        return "\n".join(repr(tuple(row)) for table in meta.sorted_tables
                         for row in conn.execute(table.select()))


def test_forget_erases_the_person_and_keeps_the_statistics(env: Env) -> None:
    own, theirs = _maria_everywhere(env)
    assert MARIA in _all_text(env).lower()
    with env.app.db.write() as session:
        report = forget(session, env.app.blobs, MARIA, secret=b"s", now=env.now, actor="cli:test")
    assert report.tickets == 1 and report.contact and report.raw_erased >= 2
    dump = _all_text(env).lower()
    for trace in (MARIA, "maria souza", "99999-0000"):
        assert trace not in dump, trace
    mine, other = env.ticket(own), env.ticket(theirs)
    assert (mine["status"], mine["message_count"], mine["subject"]) == ("waiting_customer", 2, "[erased]")
    assert mine["requester"].endswith("@maild.invalid") and mine["events"][-1]["kind"] == "erased"
    assert "Copiei a Maria ([erased]) aqui." in other["messages"][0]["body_text"]
    assert other["participants"] == []
    with env.app.db.read() as session:
        assert session.scalar(select(Erasure.subject_hmac)) is not None
        assert {r.state for r in session.scalars(select(OutboxRow).where(OutboxRow.ticket_id == own))} <= {
            "failed", "sent"}


def test_forget_leaves_no_trace_in_the_database_file_or_storage(sqlite_forms: Env) -> None:
    own, _ = _maria_everywhere(sqlite_forms)
    sqlite_forms.process(form_mail(FALE_CONOSCO.replace("Joao.Conceicao@Exemplo.com.BR", MARIA)))
    sqlite_forms.app.db.dispose()
    done = cli(config_of(sqlite_forms), "contacts", "forget", MARIA.upper())
    assert done.returncode == 0, done.stderr
    assert "1 ticket(s)" not in done.stdout and "2 ticket(s) anonymized" in done.stdout
    needle = MARIA.encode()
    found = []
    for path in sqlite_forms.directory.rglob("*"):
        if not path.is_file() or path.name == "maild.yaml":
            continue
        data = path.read_bytes()
        if path.name.endswith(".eml.z"):
            data = zlib.decompress(data)
        if needle in data.lower() or b"maria souza" in data.lower():
            found.append(str(path))
    assert found == []
    listing = json.loads(cli(config_of(sqlite_forms), "tickets", "list", "--json").stdout)
    assert len(listing) == 3  # the statistics stay: every ticket is still counted
    again = sqlite_forms.process(mail("Voltei", MARIA))  # she may write again: a new contact
    assert again.status == "created"


def test_catalog_show_renders_an_item(tmp_path: Path) -> None:
    catalog = tmp_path / "imoveis.yaml"
    catalog.write_text("AP-1234:\n  título: Apartamento 3 quartos\n  preço: 450000\n  bairro: Centro\n",
                       encoding="utf-8")
    config = make_env(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}",
                      catalog=f"catalog:\n  path: {catalog}\n  link: https://site.example/imovel/{{ref}}\n"
                              "  currency: R$\n")
    config.app.db.dispose()
    shown = cli(config_of(config), "catalog", "show", "ap-1234", "XX-9")
    assert "- AP-1234 Apartamento 3 quartos — R$ 450,000.00" in shown.stdout
    assert "https://site.example/imovel/AP-1234" in shown.stdout
    assert shown.returncode == 65 and "not in the catalog: XX-9" in shown.stderr


def test_form_mail_through_the_pipe_and_tickets_show_json(sqlite_forms: Env) -> None:
    sqlite_forms.app.db.dispose()
    raw = form_mail(FALE_CONOSCO)
    done = subprocess.run([*MAILD, "--config", str(config_of(sqlite_forms)), "ingest", "--now"], input=raw,
                          capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith(b"created ticket=1"), done.stderr
    shown = json.loads(cli(config_of(sqlite_forms), "tickets", "show", "1", "--json").stdout)
    assert {k: shown[k] for k in ("requester", "type", "subtype", "category", "origin", "references")} == {
        "requester": "joao.conceicao@exemplo.com.br", "type": "Formulário Fale Conosco",
        "subtype": "Solicitação de Informações Diversas", "category": None, "origin": "form:fale-conosco",
        "references": []}
