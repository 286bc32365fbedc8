"""Commands by e-mail through the real processor (SQLite and PostgreSQL): one test per
command — mail in, ticket state and history out — subject keywords, forged agent mail,
drafts, merges and the control address."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from conftest import AGENT, HELPDESK, Env, mail, write_config
from maild.app import App
from maild.config import load_config
from maild.store.models import Contact, OutboxRow

CUSTOMER = "maria@cliente.example.com.br"
BRUNO = "bruno@support.example.com"
CONTROL = "control@support.example.com"
TRUSTED_AR = "mx.support.example.com; dkim=pass header.d=support.example.com header.s=s1; spf=pass " \
             "smtp.mailfrom=ana@support.example.com"


def commands_config(path: Path, **changes: Any) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["helpdesk"].update(control_address=CONTROL, timezone="America/Sao_Paulo")
    data["agents"].append({"email": BRUNO, "name": "Bruno Costa", "role": "agent"})
    data["keywords"] = {
        "#urgente": {"tags": ["urgente"], "priority": "high", "who": "anyone"},
        "[fechar]": {"status": "finalizado"},
        "#spam": {"tags": ["-vip", "spam"], "who": "managers"},
    }
    data["commands"] = {"managers_only": ["block"]}
    for key, value in changes.items():
        data[key] = value
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def build(tmp_path: Path, db_url: str, **changes: Any) -> Env:
    path = write_config(tmp_path, db_url)
    commands_config(path, **changes)
    config = load_config(path, base_dir=tmp_path)
    return Env(App(config), config, tmp_path)


@pytest.fixture
def cenv(tmp_path: Path, db_url: str) -> Iterator[Env]:
    built = build(tmp_path, db_url)
    yield built
    built.app.db.dispose()


def outbox(env: Env) -> list[OutboxRow]:
    with env.app.db.read() as session:
        return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def open_ticket(env: Env, subject: str = "Vazamento no banheiro", sender: str = CUSTOMER) -> int:
    outcome = env.process(mail(subject, f"Maria <{sender}>", body="Há água no chão.\n"))
    assert outcome.status == "created"
    return outcome.ticket_id


def agent(env: Env, ticket: int, body: str, sender: str = AGENT, subject: str = "", **kw: Any) -> Any:
    """A reply to the notification about ``ticket``: to its Reply-To, the sender's signed address."""
    kw.setdefault("to", env.app.processor.planner.reply_address(ticket, sender))
    return env.process(mail(subject or f"Re: [Support #{ticket}] Vazamento", sender, body=body, **kw))


def events(env: Env, ticket: int, kind: str) -> list[dict[str, Any]]:
    return [e for e in env.ticket(ticket)["events"] if e["kind"] == kind]


def feedback(env: Env) -> list[OutboxRow]:
    return [r for r in outbox(env) if r.kind == "feedback"]


def relays(env: Env) -> list[OutboxRow]:
    return [r for r in outbox(env) if r.kind == "reply"]


# -- one test per command ------------------------------------------------------------------
def test_status_by_alias_records_who_when_old_new_and_which_mail(cenv: Env) -> None:
    t = open_ticket(cenv)
    out = agent(cenv, t, "/status Aguardando Cliente\n", message_id="<cmd-1@support.example.com>")
    ticket = cenv.ticket(t)
    assert ticket["status"] == "waiting_customer"
    [event] = events(cenv, t, "status")
    assert (event["actor"], event["old"], event["new"]) == (AGENT, "new", "waiting_customer")
    assert event["message_id"] == "<cmd-1@support.example.com>" and event["at"] == cenv.now.isoformat()
    assert out.status == "appended" and relays(cenv) == [] and feedback(cenv) == []


def test_close_and_reopen(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/close\n")
    assert cenv.ticket(t)["status"] == "closed" and cenv.ticket(t)["closed_at"]
    agent(cenv, t, "/reopen\n")
    ticket = cenv.ticket(t)
    assert ticket["status"] == "waiting_agent" and ticket["closed_at"] is None
    assert [(e["old"], e["new"]) for e in events(cenv, t, "status")] == [("new", "closed"), ("closed", "waiting_agent")]


def test_status_unknown_is_rejected_with_feedback_and_nothing_is_sent(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/status finalizadissimo\n\nOlá Maria, resolvido.\n")
    assert cenv.ticket(t)["status"] == "new"
    [fb] = feedback(cenv)
    assert fb.to_addr == AGENT and "unknown status 'finalizadissimo'" in fb.body_text
    assert "NOT sent to the customer" in fb.body_text and relays(cenv) == []


def test_assign_by_name_take_and_invite(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/assign bruno\n")
    assert cenv.ticket(t)["assignee"] == BRUNO
    agent(cenv, t, "/take\n/invite Bruno Costa\n")
    ticket = cenv.ticket(t)
    assert ticket["assignee"] == AGENT
    assert {"email": BRUNO, "role": "watcher"} in ticket["participants"]
    assert [(e["old"], e["new"]) for e in events(cenv, t, "assignee")] == [(None, BRUNO), (BRUNO, AGENT)]


def test_assign_unknown_agent_gets_feedback(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/assign carlos\n/tag +vip\n")
    ticket = cenv.ticket(t)
    assert ticket["assignee"] is None and ticket["tags"] == []  # all or nothing: the valid one waits too
    [fb] = feedback(cenv)
    assert "unknown agent 'carlos'" in fb.body_text and "tags +vip" in fb.body_text
    assert "Would have been done (not done)" in fb.body_text


def test_tags_add_and_remove(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/tag +vip spam\n")
    agent(cenv, t, "/tag -spam +Locação\n")
    assert cenv.ticket(t)["tags"] == sorted(["vip", "locação"])
    assert [e["new"] for e in events(cenv, t, "tag")] == ["+vip", "+spam", "-spam", "+locação"]


def test_priority_type_subtype_category(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/priority Alta\n/type Atendimento Presencial/Telefone\n"
                   "/subtype Solicitação de Informações Diversas\n/category Vendas\n")
    ticket = cenv.ticket(t)
    assert (ticket["priority"], ticket["type"], ticket["subtype"], ticket["category"]) == (
        "high", "Atendimento Presencial/Telefone", "Solicitação de Informações Diversas", "Vendas")
    assert [e["kind"] for e in cenv.ticket(t)["events"] if e["kind"] in ("priority", "type", "subtype", "category")] \
        == ["priority", "type", "subtype", "category"]
    agent(cenv, t, "/priority gigantesca\n")
    assert "unknown priority" in feedback(cenv)[0].body_text


def test_subject(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/subject Vazamento no apto 12 (bloco B)\n")
    assert cenv.ticket(t)["subject"] == "Vazamento no apto 12 (bloco B)"
    [e] = events(cenv, t, "subject")
    assert (e["old"], e["new"]) == ("Vazamento no banheiro", "Vazamento no apto 12 (bloco B)")


def test_next_absolute_in_helpdesk_timezone_relative_and_bad(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/next 2026-12-01 14:00\n")
    # America/Sao_Paulo is UTC-3 in December
    assert cenv.ticket(t)["next_action_at"] == datetime(2026, 12, 1, 17, 0, tzinfo=timezone.utc).isoformat()
    agent(cenv, t, "/next +90m\n")
    assert cenv.ticket(t)["next_action_at"] == (cenv.now + timedelta(minutes=90)).isoformat()
    agent(cenv, t, "/next +3d\n")
    assert cenv.ticket(t)["next_action_at"] == (cenv.now + timedelta(days=3)).isoformat()
    agent(cenv, t, "/next amanhã cedo\n")
    assert "bad date" in feedback(cenv)[0].body_text
    agent(cenv, t, "/next 2026-02-30 10:00\n")
    assert len(feedback(cenv)) == 2
    assert len(events(cenv, t, "next_action_at")) == 3


def test_note_and_log_are_never_sent(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/note Cliente liga amanhã.\n")
    agent(cenv, t, "/log\nLigou às 10h, confirmou a visita.\n")
    ticket = cenv.ticket(t)
    assert [m["direction"] for m in ticket["messages"]][-2:] == ["note", "note"]
    assert ticket["messages"][-2]["body_text"] == "Cliente liga amanhã.\n"
    assert ticket["messages"][-1]["body_text"] == "Ligou às 10h, confirmou a visita.\n"
    assert events(cenv, t, "interaction") and relays(cenv) == [] and ticket["status"] == "new"


def test_reply_with_commands_strips_them_from_what_the_customer_sees(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/tag +visita\n/priority high\n\nOlá Maria, o técnico vai amanhã.\n\n> Há água no chão.\n")
    [relay] = relays(cenv)
    assert relay.body_text.startswith("Olá Maria, o técnico vai amanhã.\n") and "/tag" not in relay.body_text
    ticket = cenv.ticket(t)
    assert ticket["status"] == "waiting_customer" and ticket["tags"] == ["visita"] and ticket["priority"] == "high"


def test_draft_then_send(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/draft\nOlá Maria, segue a proposta revisada.\n")
    ticket = cenv.ticket(t)
    # seed 004's "Respondido pendente": a status of its own, counted and filtered like any other
    assert relays(cenv) == [] and ticket["status"] == "answered_pending" and ticket["draft_pending"] is True
    assert ticket["messages"][-1]["direction"] == "draft"
    assert [(e["old"], e["new"], e["detail"]) for e in ticket["events"] if e["kind"] == "status"] == [
        ("new", "answered_pending", "draft saved")]
    agent(cenv, t, "/send\n")
    [relay] = relays(cenv)
    assert relay.to_addr == CUSTOMER and relay.body_text.startswith("Olá Maria, segue a proposta revisada.\n")
    ticket = cenv.ticket(t)
    assert ticket["status"] == "waiting_customer" and ticket["draft_pending"] is False
    agent(cenv, t, "/send\n")  # the draft went once; a second /send has nothing to send
    assert len(relays(cenv)) == 1 and "no saved draft" in feedback(cenv)[0].body_text


def test_draft_keeps_the_status_when_the_workflow_has_no_draft_status(tmp_path: Path, db_url: str) -> None:
    statuses = [{"name": n} for n in ("new", "waiting_customer", "waiting_agent")] + [
        {"name": "closed", "aliases": ["finalizado"]}]
    env = build(tmp_path, db_url, workflow={"statuses": statuses})
    try:
        t = open_ticket(env)
        agent(env, t, "/draft\nOlá Maria, segue a proposta revisada.\n")
        ticket = env.ticket(t)
        assert ticket["status"] == "new" and ticket["draft_pending"] is True
    finally:
        env.app.db.dispose()


def test_a_named_draft_status_must_exist(tmp_path: Path) -> None:
    from maild.config import ConfigError

    path = write_config(tmp_path, "sqlite://")
    commands_config(path, workflow={"transitions": {"draft": "rascunho_salvo"}})
    with pytest.raises(ConfigError, match="transitions.draft: unknown status 'rascunho_salvo'"):
        load_config(path, base_dir=tmp_path)


def test_canned_answer(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/canned thanks\n")
    [relay] = relays(cenv)
    assert relay.body_text.startswith("Hello Maria,\n\nthank you for your message.")
    agent(cenv, t, "/canned nao-existe\nTexto.\n")
    assert len(relays(cenv)) == 1 and "unknown standard answer" in feedback(cenv)[0].body_text


def test_cc_copy_to_a_third_party_is_recorded(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/cc sindico@predio.example\nPrezados, segue o orçamento.\n")
    [relay] = relays(cenv)
    assert relay.recipients == f"{CUSTOMER}, sindico@predio.example"
    [e] = events(cenv, t, "cc")
    assert e["new"] == "sindico@predio.example" and e["actor"] == AGENT
    agent(cenv, t, "Sem cópia desta vez.\n")
    assert relays(cenv)[1].recipients == CUSTOMER  # a one-off copy


def test_link_and_clone(cenv: Env) -> None:
    a, b = open_ticket(cenv), open_ticket(cenv, "Outro problema")
    agent(cenv, a, f"/link {b}\n")
    assert {"ticket": b, "kind": "related"} in cenv.ticket(a)["links"]
    assert {"ticket": a, "kind": "related"} in cenv.ticket(b)["links"]
    agent(cenv, a, "/tag +vip\n/clone\n")
    clone = max(x["id"] for x in cenv.tickets())
    copy = cenv.ticket(clone)
    assert copy["subject"] == "Vazamento no banheiro" and copy["requester"] == CUSTOMER and copy["tags"] == ["vip"]
    assert {"ticket": a, "kind": "cloned_from"} in copy["links"]
    agent(cenv, a, "/link 999\n")
    assert "no ticket #999" in feedback(cenv)[0].body_text


def test_merge_then_a_reply_to_the_merged_ticket_lands_in_the_target(cenv: Env) -> None:
    first = cenv.process(mail("Chave", CUSTOMER, message_id="<k1@cliente.example>"))
    target = open_ticket(cenv, "Chave da portaria")
    agent(cenv, first.ticket_id, f"/merge {target}\n")
    merged = cenv.ticket(first.ticket_id)
    count = merged["message_count"]
    assert merged["status"] == "closed" and {"ticket": target, "kind": "merged_into"} in merged["links"]
    assert any(e["kind"] == "merged" for e in cenv.ticket(target)["events"])
    later = cenv.process(mail("Re: Chave", CUSTOMER, headers={"In-Reply-To": "<k1@cliente.example>"}))
    assert later.ticket_id == target
    tagged = cenv.process(mail(f"Re: [Support #{first.ticket_id}] Chave", CUSTOMER))
    assert tagged.ticket_id == target
    assert cenv.ticket(first.ticket_id)["message_count"] == count  # nothing more on the merged one


def test_visible(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/visible no\n")
    assert cenv.ticket(t)["visible"] is False
    agent(cenv, t, "/visible sim\n")
    assert cenv.ticket(t)["visible"] is True
    agent(cenv, t, "/visible talvez\n")
    assert "use /visible yes" in feedback(cenv)[0].body_text


def test_block_is_manager_only_and_stops_later_mail(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/block\n", sender=BRUNO)
    assert "permission: only managers" in feedback(cenv)[0].body_text
    agent(cenv, t, "/block\n")
    with cenv.app.db.read() as session:
        assert session.scalar(select(Contact.blocked).where(Contact.email == CUSTOMER)) is True
    assert events(cenv, t, "blocked")
    later = cenv.process(mail("Mais uma", CUSTOMER))
    assert later.status == "ignored" and len(cenv.tickets()) == 1


def test_listing_links_catalog_references(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/listing AP-1234 CA-77\nSeguem opções.\n")
    assert cenv.ticket(t)["references"] == ["AP-1234", "CA-77"]
    assert "AP-1234" in relays(cenv)[0].body_text


def test_unknown_command_is_rejected_and_the_reply_held(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/nota interna\n/nte cliente difícil\nTexto interno.\n")
    assert relays(cenv) == []
    [fb] = feedback(cenv)
    assert "/nte cliente difícil: unknown command" in fb.body_text


# -- subject keywords ---------------------------------------------------------------------
@pytest.mark.parametrize("subject", ["#urgente Vazamento no banheiro", "#URGÊNTE Vazamento no banheiro",
                                     "Vazamento no banheiro #Urgente"])
def test_customer_keyword_marked_anyone_with_and_without_accents(cenv: Env, subject: str) -> None:
    t = open_ticket(cenv, subject)
    ticket = cenv.ticket(t)
    assert ticket["subject"] == "Vazamento no banheiro"
    assert ticket["tags"] == ["urgente"] and ticket["priority"] == "high"


def test_customer_cannot_use_agent_keywords_or_assignments(cenv: Env) -> None:
    t = open_ticket(cenv, "[fechar] [status=closed] [assign=ana] Pedido")
    ticket = cenv.ticket(t)
    assert ticket["status"] == "new" and ticket["assignee"] is None
    assert ticket["subject"] == "[fechar] [status=closed] [assign=ana] Pedido"  # just text for a customer
    assert feedback(cenv) == []


def test_agent_keywords_and_bracketed_assignments(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "Obrigado!\n", subject=f"Re: [Support #{t}] Vazamento [FECHAR] [tag=+vip,-spam] [assign=bruno]")
    ticket = cenv.ticket(t)
    assert ticket["status"] == "closed" and ticket["tags"] == ["vip"] and ticket["assignee"] == BRUNO
    assert relays(cenv)[0].subject == f"Re: [Support #{t}] Vazamento no banheiro"


def test_manager_keyword_refused_for_an_agent(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/tag +vip\n", sender=BRUNO)
    agent(cenv, t, "ok\n", sender=BRUNO, subject=f"Re: [Support #{t}] #spam")
    assert cenv.ticket(t)["tags"] == ["vip"]
    assert "only managers may use it" in feedback(cenv)[0].body_text


# -- who may command --------------------------------------------------------------------------
def test_forged_agent_mail_changes_nothing(tmp_path: Path, db_url: str) -> None:
    env = build(tmp_path, db_url, security={"agent_auth": {"trusted_authserv_ids": ["mx.support.example.com"]}})
    t = open_ticket(env)
    forged = agent(env, t, "/close\n/assign bruno\nFechando.\n", to=HELPDESK, headers={
        "Authentication-Results": "mx.support.example.com; dkim=fail header.d=support.example.com; spf=fail "
                                  "smtp.mailfrom=ana@support.example.com"})
    ticket = env.ticket(t)
    assert ticket["status"] == "new" and ticket["assignee"] is None and ticket["message_count"] == 1
    # Stored as customer mail; as a customer it may not use the subject tag of someone else's ticket.
    stored = env.ticket(forged.ticket_id)
    assert forged.ticket_id != t and stored["links"] == [{"ticket": t, "kind": "refers_to"}]
    assert stored["messages"][0]["direction"] == "in" and stored["status"] == "new"
    [flag] = events(env, forged.ticket_id, "flagged")
    assert AGENT == flag["actor"] and "no DKIM or DMARC pass for exactly support.example.com" in flag["detail"]
    assert relays(env) == [] and feedback(env) == []
    # In reply to the notification (threads by In-Reply-To): still customer mail, no command run.
    notify = next(r for r in outbox(env) if r.kind == "notify" and r.ticket_id == t)
    forged = agent(env, t, "/close\n/assign bruno\n", to=HELPDESK, headers={"In-Reply-To": notify.message_id})
    assert forged.ticket_id == t and env.ticket(t)["status"] == "waiting_agent" and env.ticket(t)["assignee"] is None
    assert env.ticket(t)["messages"][-1]["direction"] == "in" and events(env, t, "flagged")
    # A header from a server that is not trusted proves nothing either.
    agent(env, t, "/close\n", to=HELPDESK, headers={
        "Authentication-Results": "evil.example; dkim=pass header.d=support.example.com",
        "In-Reply-To": notify.message_id})
    assert env.ticket(t)["status"] == "waiting_agent"
    agent(env, t, "/close\n", to=HELPDESK, headers={"Authentication-Results": TRUSTED_AR})
    assert env.ticket(t)["status"] == "closed"
    env.app.db.dispose()


# -- the control address ----------------------------------------------------------------------
def control(env: Env, body: str, subject: str = "comandos", sender: str = AGENT, **kw: Any) -> Any:
    """A mail to the control address; from an agent, to the Reply-To of the reports they get."""
    kw.setdefault("to", control_reply(env, sender) if sender in (AGENT, BRUNO) else CONTROL)
    return env.process(mail(subject, sender, body=body, **kw))


def control_reply(env: Env, agent_address: str = AGENT) -> str:
    return env.app.processor.signer.agent_control_address(CONTROL, agent_address)


def report(env: Env) -> OutboxRow:
    return [r for r in outbox(env) if r.ticket_id is None][-1]


def test_control_closes_three_tickets_and_answers_stats(cenv: Env) -> None:
    ids = [open_ticket(cenv, f"Pedido {n}") for n in range(4)]
    out = control(cenv, f"close {ids[0]} {ids[1]} #{ids[2]}\nstats\n\n-- \nAna\n")
    assert out.status == "control" and out.ticket_id is None
    assert [cenv.ticket(i)["status"] for i in ids] == ["closed", "closed", "closed", "new"]
    assert all(events(cenv, i, "status")[0]["actor"] == AGENT for i in ids[:3])
    body = report(cenv).body_text
    assert report(cenv).to_addr == AGENT and "Closed (closed): 3" in body and "New (new): 1" in body
    assert "total: 4" in body and f"#{ids[0]}: status → closed" in body
    assert len(cenv.tickets()) == 4  # the control mail opened none


def test_control_tag_list_show_and_errors(cenv: Env) -> None:
    a, b = open_ticket(cenv, "Aluguel"), open_ticket(cenv, "Venda")
    control(cenv, f"tag {a} +vip\nassign {a} me\nassign {b} ana\nlist tag:vip assignee:ana\nshow {a}\n"
                  "close 999\nfrobnicate\nlist status:xyz\n")
    body = report(cenv).body_text
    assert cenv.ticket(a)["tags"] == ["vip"] and cenv.ticket(b)["assignee"] == AGENT
    assert f"#{a:<5} New" in body and "1 ticket(s)" in body and "#1 Aluguel" in body  # by its label
    assert "#999: no such ticket" in body and "unknown command 'frobnicate'" in body
    assert "unknown status 'xyz'" in body
    assert report(cenv).subject.endswith("(with errors)")


def test_control_new_ticket_for_a_phone_request(cenv: Env) -> None:
    control(cenv, 'new joao@cliente.example "Visita ao apto 31"\nLigou pedindo visita no sábado.\n')
    [ticket] = cenv.tickets()
    detail = cenv.ticket(ticket["id"])
    assert detail["requester"] == "joao@cliente.example" and detail["subject"] == "Visita ao apto 31"
    assert detail["origin"] == "control" and detail["messages"][0]["body_text"] == "Ligou pedindo visita no sábado.\n"
    assert f"opened [Support #{ticket['id']}]" in report(cenv).body_text


def test_control_from_a_customer_or_a_forged_agent_runs_nothing(tmp_path: Path, db_url: str) -> None:
    env = build(tmp_path, db_url, security={"agent_auth": {"trusted_authserv_ids": ["mx.support.example.com"]}})
    t = open_ticket(env)
    assert control(env, f"close {t}\n", sender=CUSTOMER).status == "ignored"
    assert control(env, f"close {t}\n", to=CONTROL).status == "ignored"  # no Authentication-Results
    # The real agent is told once why; the customer hears nothing.
    assert env.ticket(t)["status"] == "new" and [(r.kind, r.to_addr) for r in outbox(env) if r.ticket_id is None] \
        == [("proof", AGENT)]
    ok = control(env, f"close {t}\n", to=CONTROL, headers={"Authentication-Results": TRUSTED_AR},
                 message_id="<c1@x>")
    assert ok.status == "control" and env.ticket(t)["status"] == "closed"
    again = control(env, f"close {t}\nstats\n", to=CONTROL,
                    headers={"Authentication-Results": TRUSTED_AR, "X-Relay": "2"}, message_id="<c1@x>")
    assert again.status == "duplicate" and len([r for r in outbox(env) if r.ticket_id is None]) == 2
    env.app.db.dispose()


def test_control_subject_only_and_auto_replies(cenv: Env) -> None:
    open_ticket(cenv)
    assert control(cenv, "", subject="stats").status == "control"
    assert "New (new): 1" in report(cenv).body_text
    assert control(cenv, "stats\n", headers={"Auto-Submitted": "auto-replied"}).status == "ignored"


def test_feedback_is_rate_limited(cenv: Env) -> None:
    t = open_ticket(cenv)
    limit = cenv.config.outbound.limits.per_ticket.count
    for n in range(limit + 5):
        agent(cenv, t, f"/frobnicate {n}\n")
    assert 0 < len(feedback(cenv)) <= limit
    assert any(e["kind"] == "mail_held" and "cap reached" in e["detail"] for e in cenv.ticket(t)["events"])


def test_smtp_listener_accepts_the_control_address(cenv: Env) -> None:
    table = cenv.app.recipients()
    assert table.accepts(CONTROL) and table.accepts(HELPDESK) and not table.accepts("other@support.example.com")


def test_control_address_in_the_envelope_only_bcc_runs_the_commands(cenv: Env) -> None:
    import smtplib

    from conftest import free_port
    from maild.app import utc_now
    from maild.ingest.smtp import Listener, SpoolingHandler
    from maild.ingest.spool import SpoolWorker

    ids = [open_ticket(cenv, f"Pedido {n}") for n in range(2)]
    port = free_port()
    listener = Listener(SpoolingHandler(cenv.app.spool, cenv.app.recipients(), "smtp"), "127.0.0.1", port,
                        lmtp=False, max_size=100000)
    listener.start()
    try:
        with smtplib.SMTP("127.0.0.1", port) as smtp:  # To: the agent herself, Bcc: control
            smtp.sendmail(AGENT, [control_reply(cenv)], mail("fechar", AGENT, body=f"close {ids[0]} {ids[1]}\n",
                                                             to=AGENT))
    finally:
        listener.stop()
    SpoolWorker(cenv.app.spool, cenv.app.processor.process_batch, utc_now).drain()
    assert [cenv.ticket(i)["status"] for i in ids] == ["closed", "closed"]
    assert len(cenv.tickets()) == 2


# -- the control address runs the trigger rules -------------------------------------------------
def since(env: Env, mark: int) -> list[tuple[str, str, int | None]]:
    """(kind, to, ticket) of the outbox rows after ``mark``, the control report left out."""
    return [(r.kind, r.to_addr, r.ticket_id) for r in outbox(env) if r.id > mark and r.ticket_id is not None]


def last_id(env: Env) -> int:
    return max((r.id for r in outbox(env)), default=0)


def test_control_close_tells_each_assignee_once_and_not_the_actor(cenv: Env) -> None:
    a, b = open_ticket(cenv, "Pedido A"), open_ticket(cenv, "Pedido B")
    control(cenv, f"assign {a} {b} bruno\n")
    mark = last_id(cenv)
    control(cenv, f"close {a} {b}\n")
    assert since(cenv, mark) == [("notify", BRUNO, a), ("notify", BRUNO, b)]  # status_changed; Ana acted
    rows = [r for r in outbox(cenv) if r.id > mark and r.ticket_id is not None]
    assert all(r.subject.endswith(": Closed") and f"New -> Closed ({AGENT})" in r.body_text for r in rows)
    assert report(cenv).to_addr == AGENT
    mark = last_id(cenv)
    control(cenv, f"close {a}\n")  # already closed: nothing changed, nobody is told
    assert since(cenv, mark) == []


def test_control_assign_sends_the_assigned_notice(cenv: Env) -> None:
    a, b = open_ticket(cenv, "Pedido A"), open_ticket(cenv, "Pedido B")
    mark = last_id(cenv)
    control(cenv, f"assign {a} bruno\nassign {b} me\n")
    [row] = [r for r in outbox(cenv) if r.id > mark and r.ticket_id is not None]
    assert (row.kind, row.to_addr, row.ticket_id) == ("notify", BRUNO, a)
    assert row.subject.endswith(": assigned to you") and f"(by {AGENT})" in row.body_text
    # Two lines about one ticket: one merged delivery set, so Bruno gets one mail (the assignment).
    mark = last_id(cenv)
    control(cenv, f"assign {b} bruno\nstatus {b} aguardando cliente\n")
    [row] = [r for r in outbox(cenv) if r.id > mark and r.ticket_id is not None]
    assert (row.to_addr, row.ticket_id) == (BRUNO, b) and row.subject.endswith(": assigned to you")


def test_control_new_ticket_notifies_like_a_mailed_in_one_except_the_actor(cenv: Env) -> None:
    mailed = open_ticket(cenv, "Pedido por e-mail")
    assert since(cenv, 0) == [("ack", CUSTOMER, mailed), ("notify", AGENT, mailed), ("notify", BRUNO, mailed)]
    mark = last_id(cenv)
    control(cenv, 'new joao@cliente.example "Visita ao apto 31"\nLigou pedindo visita no sábado.\n')
    phone = max(t["id"] for t in cenv.tickets())
    assert since(cenv, mark) == [("notice", "joao@cliente.example", phone), ("notify", BRUNO, phone)]
    rows = {r.to_addr: r for r in outbox(cenv) if r.id > mark and r.ticket_id == phone}
    ack, notify = rows["joao@cliente.example"], rows[BRUNO]
    assert ack.subject == f"Re: [Support #{phone}] Visita ao apto 31" and "opened ticket" in ack.body_text
    assert "Ligou" not in ack.body_text  # the request is an internal note
    assert notify.subject == f"[Support #{phone}] Visita ao apto 31" and "Ligou pedindo visita" in notify.body_text
    assert [m["direction"] for m in cenv.ticket(phone)["messages"]] == ["note", "out"]


def test_control_new_ticket_respects_the_outbound_switches(tmp_path: Path, db_url: str) -> None:
    env = build(tmp_path, db_url, outbound={"acknowledge": False, "notify_agents": False})
    control(env, 'new joao@cliente.example "Visita"\n')
    assert since(env, 0) == [] and report(env).to_addr == AGENT
    env.app.db.dispose()


def test_the_config_knows_exactly_the_commands_the_interpreter_handles():
    from maild.commands.interpret import COMMANDS
    from maild.commands.names import COMMAND_NAMES

    assert set(COMMANDS) == COMMAND_NAMES


def test_a_drafts_files_go_out_with_send_in_a_reply(cenv: Env) -> None:
    from email.message import EmailMessage

    t = open_ticket(cenv)
    draft = EmailMessage()
    draft["From"], draft["Subject"] = AGENT, f"Re: [Support #{t}] Vazamento"
    draft["To"] = cenv.app.processor.planner.reply_address(t, AGENT)
    draft.set_content("/draft\nOlá Maria, segue o orçamento.\n")
    draft.add_attachment(b"%PDF-1.4 orcamento", maintype="application", subtype="pdf", filename="orcamento.pdf")
    cenv.process(draft.as_bytes())
    assert relays(cenv) == [] and cenv.ticket(t)["draft_pending"] is True
    agent(cenv, t, "/send\n")
    [relay] = relays(cenv)
    assert "orcamento.pdf" in relay.attachments and relay.body_text.startswith("Olá Maria, segue o orçamento.")
    kept = [(m["direction"], a["filename"]) for m in cenv.ticket(t)["messages"] for a in m["attachments"]]
    assert ("out", "orcamento.pdf") in kept  # kept on the reply that went out
