"""Website contact forms through the real processor (SQLite and PostgreSQL): realistic form
mails from the site's no-reply sender become tickets for the customer the form names."""
from __future__ import annotations

import json
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from conftest import AGENT, Env, agent_address, make_env, mail
from maild.store.models import Contact, OutboxRow

SITE = "no-reply@imobiliaria.example.com.br"

FORMS = """\
forms:
  - name: fale-conosco
    match:
      from: '^(no-?reply|nao-?responda)@imobiliaria\\.example\\.com\\.br$'
      subject: 'fale conosco'
    fields:
      name: Nome
      email: [E-mail, Email]
      phone: [Telefone, WhatsApp, Celular]
      message: Mensagem
    ticket:
      type: Formulário Fale Conosco
      subtype: Solicitação de Informações Diversas
      tags: [site]
  - name: imovel
    match:
      from: '@imobiliaria\\.example\\.com\\.br$'
      header: {X-Form-Id: '^proposta-imovel$'}
    fields:
      name: Nome
      email: [E-mail, Email]
      phone: [Telefone, WhatsApp]
      message: Mensagem
      reference: [Código do imóvel, Imóvel]
      consent: [Aceito receber contato, lgpd]
    ticket:
      type: Formulário Proposta Imóvel
      subtype: Venda de Imóvel
      category: vendas
      tags: [site, imovel]
"""


def catalog_section(path: Path) -> str:
    return f"""\
catalog:
  path: {path}
  link: https://imobiliaria.example.com.br/imovel/{{ref}}
  currency: R$
"""


@pytest.fixture
def forms_env(tmp_path: Path, db_url: str) -> Any:
    built = make_env(tmp_path, db_url, forms=FORMS)
    yield built
    built.app.db.dispose()


def form_mail(body: str, subject: str = "Nova mensagem - Fale Conosco", sender: str = f"Site <{SITE}>",
              html: str | None = None, headers: dict[str, str] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@support.example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="imobiliaria.example.com.br")
    msg["Date"] = "Mon, 02 Nov 2026 10:00:00 -0300"
    for name, value in (headers or {}).items():
        msg[name] = value
    if html is not None:
        msg.set_content(html, subtype="html", charset="utf-8")
    else:
        msg.set_content(body, charset="utf-8", cte="quoted-printable")
    return msg.as_bytes()


FALE_CONOSCO = """\
Nova mensagem recebida pelo formulário Fale Conosco do site.

Nome: João da Conceição
E-mail: Joao.Conceicao@Exemplo.com.BR
Telefone: (11) 98765-4321
Mensagem: Olá, gostaria de saber o horário de atendimento.
Vocês abrem aos sábados?

Obrigado!
--
Enviado automaticamente por www.imobiliaria.example.com.br
"""

PROPERTY_HTML = """\
<html><body><p>Solicitação de informações sobre imóvel</p>
<table border="1">
<tr><td><b>Nome</b></td><td>Maria Aparecida Souza</td></tr>
<tr><td><b>E-mail</b></td><td><a href="mailto:maria@cliente.example.com.br">maria@cliente.example.com.br</a></td></tr>
<tr><td><b>WhatsApp</b></td><td>+55 21 99999-0000</td></tr>
<tr><td><b>Código do imóvel</b></td><td>AP-1234</td></tr>
<tr><td><b>Mensagem</b></td><td>Tenho interesse no apartamento.<br>Aceita financiamento?</td></tr>
<tr><td><b>Aceito receber contato</b></td><td>Sim</td></tr>
</table></body></html>
"""


def property_json(email: str, name: str = "Maria A.", phone: str = "", consent: str = "sim") -> str:
    return json.dumps({"form": "proposta-imovel", "fields": {
        "nome": name, "email": email, "telefone": phone, "imovel": "CA-77", "mensagem": "Posso visitar amanhã?",
        "lgpd": consent}}, ensure_ascii=False)


def outbox(env: Env) -> list[OutboxRow]:
    with env.app.db.read() as session:
        return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def contact(env: Env, email: str) -> Contact | None:
    with env.app.db.read() as session:
        return session.scalars(select(Contact).where(Contact.email == email)).first()


def test_fale_conosco_text_form_becomes_a_ticket_for_the_customer(forms_env: Env) -> None:
    outcome = forms_env.process(form_mail(FALE_CONOSCO))
    assert outcome.status == "created"
    ticket = forms_env.ticket(outcome.ticket_id)
    assert ticket["requester"] == "joao.conceicao@exemplo.com.br"
    assert (ticket["type"], ticket["subtype"]) == ("Formulário Fale Conosco", "Solicitação de Informações Diversas")
    assert ticket["origin"] == "form:fale-conosco" and ticket["tags"] == ["site"]
    assert ticket["references"] == []
    first = ticket["messages"][0]
    assert first["from"] == "joao.conceicao@exemplo.com.br"
    assert first["body_text"] == ("Olá, gostaria de saber o horário de atendimento.\nVocês abrem aos sábados?\n\n"
                                  "Obrigado!\n")
    joao = contact(forms_env, "joao.conceicao@exemplo.com.br")
    assert joao is not None and (joao.name, joao.phone) == ("João da Conceição", "(11) 98765-4321")
    assert contact(forms_env, SITE) is None  # the website is nobody's contact
    ack, notify = outbox(forms_env)
    assert (ack.kind, ack.to_addr) == ("ack", "joao.conceicao@exemplo.com.br")
    assert "João da Conceição" in ack.to_header and SITE not in ack.recipients
    assert (notify.kind, notify.to_addr) == ("notify", AGENT)
    assert "form" in [e["kind"] for e in ticket["events"]]


def test_property_inquiry_html_table_links_the_property(forms_env: Env) -> None:
    outcome = forms_env.process(form_mail("", subject="Receber informações do imóvel", html=PROPERTY_HTML,
                                          headers={"X-Form-Id": "proposta-imovel"}))
    ticket = forms_env.ticket(outcome.ticket_id)
    assert ticket["requester"] == "maria@cliente.example.com.br"
    assert (ticket["type"], ticket["subtype"], ticket["category"]) == (
        "Formulário Proposta Imóvel", "Venda de Imóvel", "vendas")
    assert ticket["references"] == ["AP-1234"] and ticket["tags"] == ["imovel", "site"]
    assert ticket["origin"] == "form:imovel"
    assert ticket["messages"][0]["body_text"] == "Tenho interesse no apartamento.\nAceita financiamento?\n"
    maria = contact(forms_env, "maria@cliente.example.com.br")
    assert maria is not None and (maria.name, maria.phone, maria.consent) == (
        "Maria Aparecida Souza", "+55 21 99999-0000", True)


def test_second_form_from_the_same_person_joins_the_same_contact(forms_env: Env) -> None:
    first = forms_env.process(form_mail("", subject="Receber informações", html=PROPERTY_HTML,
                                        headers={"X-Form-Id": "proposta-imovel"}))
    # Same address in other case, another name spelling, from a JSON form: one contact,
    # the name the book already has is kept (the form may not overwrite it).
    second = forms_env.process(form_mail(property_json("MARIA@Cliente.example.com.br", "Maria A.", "0000"),
                                         subject="Proposta", headers={"X-Form-Id": "proposta-imovel"}))
    assert second.status == "created" and second.ticket_id != first.ticket_id
    assert [t["id"] for t in forms_env.tickets(requester="maria@cliente.example.com.br")] == [
        first.ticket_id, second.ticket_id]
    with forms_env.app.db.read() as session:
        assert len(list(session.scalars(select(Contact).where(Contact.email.like("maria%"))))) == 1
    maria = contact(forms_env, "maria@cliente.example.com.br")
    assert (maria.name, maria.phone) == ("Maria Aparecida Souza", "+55 21 99999-0000")
    assert forms_env.ticket(second.ticket_id)["references"] == ["CA-77"]


def test_form_without_a_usable_email_still_makes_a_flagged_ticket(forms_env: Env) -> None:
    body = FALE_CONOSCO.replace("E-mail: Joao.Conceicao@Exemplo.com.BR", "E-mail: joao arroba exemplo")
    outcome = forms_env.process(form_mail(body))
    assert outcome.status == "created"
    ticket = forms_env.ticket(outcome.ticket_id)
    assert ticket["type"] == "Formulário Fale Conosco"
    flagged = [e for e in ticket["events"] if e["kind"] == "flagged"]
    assert flagged and "'joao arroba exemplo' is not an address" in flagged[-1]["detail"]
    kinds = [r.kind for r in outbox(forms_env)]
    assert "ack" not in kinds and kinds == ["notify"]  # agents hear of it; nobody is acknowledged
    assert all(SITE not in r.recipients for r in outbox(forms_env))


def test_form_marked_automatic_by_the_site_still_opens_a_ticket(forms_env: Env) -> None:
    raw = form_mail(FALE_CONOSCO, headers={"Auto-Submitted": "auto-generated", "Precedence": "bulk"})
    outcome = forms_env.process(raw)
    assert outcome.status == "created"
    assert [r.kind for r in outbox(forms_env)] == ["ack", "notify"]


def test_no_consent_on_the_form_means_no_automatic_mail(forms_env: Env) -> None:
    raw = form_mail(property_json("pedro@cliente.example.com.br", consent="não"), subject="Proposta",
                    headers={"X-Form-Id": "proposta-imovel"})
    outcome = forms_env.process(raw)
    assert contact(forms_env, "pedro@cliente.example.com.br").consent is False
    assert [r.kind for r in outbox(forms_env)] == ["notify"]
    held = [e for e in forms_env.ticket(outcome.ticket_id)["events"] if e["kind"] == "mail_held"]
    assert "did not consent" in held[0]["detail"]


def test_other_mail_from_the_site_is_not_a_form(forms_env: Env) -> None:
    outcome = forms_env.process(mail("Relatório semanal do site", "Site <relatorio@imobiliaria.example.com.br>"))
    ticket = forms_env.ticket(outcome.ticket_id)
    assert ticket["origin"] == "pipe" and ticket["type"] is None
    assert ticket["requester"] == "relatorio@imobiliaria.example.com.br"


def test_blocked_customer_form_is_kept_but_opens_nothing(forms_env: Env) -> None:
    from maild.contacts.book import set_blocked

    with forms_env.app.db.write() as session:
        set_blocked(session, "joao.conceicao@exemplo.com.br", True, forms_env.now)
    outcome = forms_env.process(form_mail(FALE_CONOSCO))
    assert outcome.status == "ignored" and forms_env.tickets() == []
    assert outbox(forms_env) == []


def test_redelivered_form_mail_is_one_ticket(forms_env: Env) -> None:
    raw = form_mail(FALE_CONOSCO)
    first, again = forms_env.process(raw), forms_env.process(raw, channel="imap:box")
    assert (first.status, again.status) == ("created", "duplicate") and len(forms_env.tickets()) == 1


def test_customer_reply_to_the_acknowledgement_threads_into_the_form_ticket(forms_env: Env) -> None:
    first = forms_env.process(form_mail(FALE_CONOSCO))
    [ack] = [r for r in outbox(forms_env) if r.kind == "ack"]
    reply = forms_env.process(mail("Re: Fale conosco", "joao.conceicao@exemplo.com.br",
                                   headers={"In-Reply-To": ack.message_id}))
    assert reply.status == "appended" and reply.ticket_id == first.ticket_id


def test_gmail_dots_join_one_contact_only_when_configured(tmp_path: Path, db_url: str) -> None:
    env = make_env(tmp_path, db_url, forms=FORMS, contacts="contacts:\n  gmail_dots: true\n")
    try:
        env.process(mail("Um", "Ana Paula <Ana.Paula+site@gmail.com>"))
        env.process(mail("Dois", "anapaula@gmail.com"))
        env.process(mail("Três", "ana.paula@empresa.example.com"))
        assert [t["requester"] for t in env.tickets()] == [
            "anapaula@gmail.com", "anapaula@gmail.com", "ana.paula@empresa.example.com"]
    finally:
        env.app.db.dispose()


def test_property_acknowledgement_lists_the_catalog_item(tmp_path: Path, db_url: str) -> None:
    catalog = tmp_path / "imoveis.csv"
    catalog.write_bytes("\ufeffCódigo;Título;Preço;Bairro\nAP-1234;Apartamento 3 quartos;450000;Centro\n"
                        .encode("utf-8"))
    env = make_env(tmp_path, db_url, forms=FORMS, catalog=catalog_section(catalog))
    try:
        env.process(form_mail("", subject="Receber informações", html=PROPERTY_HTML,
                              headers={"X-Form-Id": "proposta-imovel"}))
        [ack] = [r for r in outbox(env) if r.kind == "ack"]
        assert "AP-1234 Apartamento 3 quartos" in ack.body_text
        assert "R$ 450,000.00" in ack.body_text
        assert "https://imobiliaria.example.com.br/imovel/AP-1234" in ack.body_text
    finally:
        env.app.db.dispose()


# -- pure: extraction and configuration --------------------------------------------------

def _spec(**fields: Any) -> Any:
    from maild.forms.spec import FormSpec

    return FormSpec.model_validate({"name": "f", "match": {"subject": "x"},
                                    "fields": fields or {"name": "Nome", "email": "E-mail", "phone": "Telefone",
                                                         "message": "Mensagem", "reference": "Imóvel"}})


def _parsed(raw: bytes) -> Any:
    from maild.ingest.parse import parse

    return parse(raw)


def test_labels_match_loosely_and_the_message_spans_paragraphs() -> None:
    from maild.forms.extract import extract

    body = ("**NOME:** Ana Lúcia\nE-MAIL : <ana@x.example.com>\ntelefone: 11 5555-0000\nImovel: ap 12\n"
            "mensagem:\nPrimeiro parágrafo.\n\nSegundo: com dois-pontos.\n--\nrodapé do site\n")
    data = extract(_parsed(form_mail(body)), _spec())
    assert (data.name, data.email, data.phone, data.reference) == ("Ana Lúcia", "ana@x.example.com",
                                                                  "11 5555-0000", "ap 12")
    assert data.message == "Primeiro parágrafo.\n\nSegundo: com dois-pontos." and data.source == "text"


def test_json_label_value_items_and_nested_objects() -> None:
    from maild.forms.extract import extract

    body = json.dumps({"form": {"id": 3}, "data": [{"label": "Nome", "value": "Zé"},
                                                   {"label": "E-mail", "value": "ze@x.example.com"},
                                                   {"label": "Mensagem", "value": "Oi"}]})
    data = extract(_parsed(form_mail(body)), _spec())
    assert (data.name, data.email, data.message, data.source) == ("Zé", "ze@x.example.com", "Oi", "json")


def test_a_bad_form_regex_or_a_missing_catalog_stops_maild_with_the_line(tmp_path: Path) -> None:
    from conftest import write_config
    from maild.config import ConfigError, load_config

    bad = write_config(tmp_path, "sqlite:///x.db", forms=FORMS.replace("'fale conosco'", "'fale (conosco'"))
    with pytest.raises(ConfigError, match=r"maild.yaml:\d+: forms.0.match.subject: .*not a valid regular"):
        load_config(bad)
    no_email = write_config(tmp_path, "sqlite:///x.db", forms=FORMS.replace("      email: [E-mail, Email]\n", "", 1))
    with pytest.raises(ConfigError, match="needs an email field"):
        load_config(no_email)
    missing = write_config(tmp_path, "sqlite:///x.db", catalog=catalog_section(tmp_path / "nope.csv"))
    with pytest.raises(ConfigError, match="nope.csv is not a file"):
        load_config(missing)


def test_the_embedded_default_config_loads_with_its_example_forms() -> None:
    from maild.config import DEFAULT_CONFIG, load_config

    config = load_config(DEFAULT_CONFIG)
    assert [f.name for f in config.forms] == ["fale-conosco", "proposta-imovel"]
    assert config.forms[1].ticket.subtype == "Venda de Imóvel"


def test_agent_reply_with_listing_shows_the_items_to_the_customer(tmp_path: Path, db_url: str) -> None:
    catalog = tmp_path / "imoveis.yaml"
    catalog.write_text("- código: CA-77\n  título: Casa térrea\n  preço: Consulte\n", encoding="utf-8")
    env = make_env(tmp_path, db_url, forms=FORMS, catalog=catalog_section(catalog))
    try:
        first = env.process(mail("Procuro casa", "Bia <bia@cliente.example.com.br>"))
        env.process(mail(f"Re: [Support #{first.ticket_id}] Procuro casa", f"Ana <{AGENT}>",
                         body="/listing CA-77\nBia, esta casa combina com o que procura.\n",
                         to=agent_address(env, first.ticket_id)))
        [reply] = [r for r in outbox(env) if r.kind == "reply"]
        assert reply.to_addr == "bia@cliente.example.com.br"
        assert "Bia, esta casa combina com o que procura." in reply.body_text
        assert "- CA-77 Casa térrea — Consulte" in reply.body_text
        assert "https://imobiliaria.example.com.br/imovel/CA-77" in reply.body_text
        assert env.ticket(first.ticket_id)["references"] == ["CA-77"]
    finally:
        env.app.db.dispose()
