"""Mail in → ticket, through the real processor, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from conftest import AGENT, AGENT_AR, HELPDESK, TRUSTING_MX, Env, make_env, mail


def test_new_mail_opens_a_ticket_for_the_customer(env: Env) -> None:
    outcome = env.process(mail("Vazamento no banheiro", "Maria <Maria@Cliente.Example.com.br>"))
    assert outcome.status == "created"
    [ticket] = env.tickets()
    assert ticket["subject"] == "Vazamento no banheiro"
    assert ticket["requester"] == "maria@cliente.example.com.br"
    assert ticket["status"] == "new"
    assert ticket["message_count"] == 1


def test_same_mail_twice_changes_nothing(env: Env) -> None:
    raw = mail("Once", message_id="<once@x.example>")
    first = env.process(raw)
    again = env.process(raw, channel="imap:other")
    assert (first.status, again.status) == ("created", "duplicate")
    assert again.ticket_id == first.ticket_id
    assert len(env.tickets()) == 1
    assert env.ticket(first.ticket_id)["message_count"] == 1


def test_same_message_id_through_two_channels_is_one_message(env: Env) -> None:
    raw = mail("Two paths", message_id="<two@x.example>")
    relayed = b"Received: from mx2 by mx1; Mon, 02 Nov 2026 10:00:01 +0000\r\n" + raw
    env.process(raw, channel="smtp")
    outcome = env.process(relayed, channel="imap:box")
    assert outcome.status == "duplicate"
    assert len(env.tickets()) == 1


def test_missing_message_id_gets_a_deterministic_one(env: Env) -> None:
    raw = b"From: joao@x.example\r\nTo: support@support.example.com\r\nSubject: sem id\r\n\r\nOi\r\n"
    first = env.process(raw)
    assert first.status == "created" and first.message_id.endswith("@maild.invalid>")
    assert env.process(raw).status == "duplicate"  # a redelivery is still recognised
    other = env.process(raw.replace(b"Oi", b"Tchau"))
    assert other.status == "created" and other.message_id != first.message_id


def test_reply_threads_by_in_reply_to_and_sets_waiting_agent(env: Env) -> None:
    first = env.process(mail("Pedido 77", message_id="<p77@x.example>"))
    reply = env.process(mail("Re: Pedido 77", headers={"In-Reply-To": "<p77@x.example>"}))
    assert reply.status == "appended" and reply.ticket_id == first.ticket_id
    ticket = env.ticket(first.ticket_id)
    assert ticket["status"] == "waiting_agent"
    assert ticket["message_count"] == 2
    assert [e["kind"] for e in ticket["events"]] == ["created", "status", "message"]


def test_reply_threads_by_references_when_in_reply_to_is_unknown(env: Env) -> None:
    first = env.process(mail("Contrato", message_id="<c1@x.example>"))
    reply = env.process(mail("RES: Contrato", headers={"In-Reply-To": "<unknown@else>",
                                                      "References": "<c1@x.example> <unknown@else>"}))
    assert reply.ticket_id == first.ticket_id


def test_subject_tag_with_prefixes_threads_for_the_requester(env: Env) -> None:
    first = env.process(mail("Boleto"))
    outcome = env.process(mail(f"RES: AW: Re: [EXTERNAL] [Support #{first.ticket_id}] Boleto"))
    assert outcome.status == "appended" and outcome.ticket_id == first.ticket_id


def test_subject_tag_from_a_stranger_opens_a_linked_ticket(env: Env) -> None:
    first = env.process(mail("Meu contrato", "maria@cliente.example.com.br", body="dados privados\n"))
    intruder = env.process(mail(f"Fwd: [Support #{first.ticket_id}] Meu contrato", "intruso@other.example"))
    assert intruder.status == "created" and intruder.ticket_id != first.ticket_id
    assert env.ticket(first.ticket_id)["message_count"] == 1
    links = env.ticket(intruder.ticket_id)["links"]
    assert links == [{"ticket": first.ticket_id, "kind": "refers_to"}]


def test_subject_tag_from_an_agent_threads(tmp_path: Path, db_url: str) -> None:
    env = make_env(tmp_path, db_url, security=TRUSTING_MX)  # the agent proven by the MX's DKIM result
    first = env.process(mail("Chave do apartamento"))
    outcome = env.process(mail(f"Re: [Support #{first.ticket_id}] Chave", f"Ana <{AGENT}>", headers=AGENT_AR))
    assert outcome.ticket_id == first.ticket_id
    env.app.db.dispose()


def test_subject_text_alone_never_threads(env: Env) -> None:
    env.process(mail("Fwd: Invoice", "a@one.example"))
    other = env.process(mail("Fwd: Invoice", "b@two.example"))
    assert other.status == "created"
    assert len(env.tickets()) == 2


def test_cc_customers_become_participants_and_may_use_the_tag(env: Env) -> None:
    raw = mail("Condomínio").replace(b"To: ", b"Cc: Pedro <pedro@x.example>, support@support.example.com\r\nTo: ", 1)
    first = env.process(raw)
    assert env.ticket(first.ticket_id)["participants"] == [{"email": "pedro@x.example", "role": "cc"}]
    outcome = env.process(mail(f"Re: [Support #{first.ticket_id}] Condomínio", "pedro@x.example"))
    assert outcome.ticket_id == first.ticket_id


def test_signed_reply_address_threads_and_a_forged_one_does_not(env: Env) -> None:
    first = env.process(mail("Assinatura"))
    good = env.app.processor.signer.reply_address(first.ticket_id)
    assert env.process(mail("anything", to=good)).ticket_id == first.ticket_id
    forged = good.rsplit("-", 1)[0] + "-aaaaaaaaaa@support.example.com"
    assert env.process(mail("anything", "x@y.example", to=forged)).status == "created"


def test_auto_reply_never_opens_a_ticket(env: Env) -> None:
    outcome = env.process(mail("Resposta automática: Olá", headers={"Auto-Submitted": "auto-replied"}))
    assert outcome.status == "ignored"
    assert env.tickets() == []
    assert [r.status for r in env.raw_rows()] == ["ignored"]


def test_auto_reply_in_a_thread_is_kept_without_changing_status(env: Env) -> None:
    first = env.process(mail("Visita", message_id="<v1@x.example>"))
    ooo = env.process(mail("Automatic reply: Visita", headers={"Auto-Submitted": "auto-replied",
                                                              "In-Reply-To": "<v1@x.example>"}))
    assert ooo.status == "appended"
    assert env.ticket(first.ticket_id)["status"] == "new"


def test_mail_from_maild_itself_is_dropped(env: Env) -> None:
    outcome = env.process(mail("loop", HELPDESK, headers={"X-Maild-Loop": HELPDESK}))
    assert outcome.status == "ignored" and env.tickets() == []


def test_reply_to_closed_ticket_reopens_within_window_else_new_linked(env: Env) -> None:
    from maild.store.models import Ticket

    first = env.process(mail("Chaves", message_id="<k1@x.example>"))
    with env.app.db.write() as session:
        ticket = session.get(Ticket, first.ticket_id)
        ticket.status, ticket.closed_at = "closed", env.now
    reopened = env.process(mail("Re: Chaves", message_id="<k2@x.example>", headers={"In-Reply-To": "<k1@x.example>"}))
    assert reopened.ticket_id == first.ticket_id
    assert env.ticket(first.ticket_id)["status"] == "waiting_agent"

    with env.app.db.write() as session:
        ticket = session.get(Ticket, first.ticket_id)
        ticket.status, ticket.closed_at = "closed", env.now
    late = env.process(mail("Re: Chaves", headers={"In-Reply-To": "<k2@x.example>"}), advance=timedelta(days=31))
    assert late.status == "created" and late.ticket_id != first.ticket_id
    assert env.ticket(late.ticket_id)["links"] == [{"ticket": first.ticket_id, "kind": "refers_to"}]
    assert env.ticket(first.ticket_id)["status"] == "closed"


def test_unparseable_mail_is_kept_and_quarantined_with_reason(env: Env) -> None:
    outcome = env.process(b"\x00\x01\x02 not a mail at all \xff\xfe")
    assert outcome.status == "quarantined" and outcome.reason
    [row] = env.raw_rows()
    assert row.status == "quarantined" and row.reason == outcome.reason
    assert env.app.blobs.get_raw(row.sha256) == b"\x00\x01\x02 not a mail at all \xff\xfe"


def test_raw_bytes_are_kept_before_parsing(env: Env) -> None:
    raw = mail("Guarde isto", body="conteúdo\n")
    env.process(raw)
    [row] = env.raw_rows()
    assert env.app.blobs.get_raw(row.sha256) == raw


def test_windows_paths_are_stored_exactly(env: Env) -> None:
    body = "Salvei em C:\\Users\\anna\\new_folder\\teste.txt e \\\\server\\u00e9\\t\n"
    outcome = env.process(mail("Caminho", body=body))
    assert env.ticket(outcome.ticket_id)["messages"][0]["body_text"] == body


def test_a_mail_that_breaks_processing_is_quarantined_and_the_batch_goes_on(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import maild.ingest.processor as processor

    real_identify = processor.identify

    def identify(mail, agents):  # type: ignore[no-untyped-def]
        if mail.subject == "poison":
            raise ValueError("a bug that only this mail triggers")
        return real_identify(mail, agents)

    monkeypatch.setattr(processor, "identify", identify)
    raws = [mail("antes"), mail("poison", body="veneno\n"), mail("depois")]
    outcomes = env.app.processor.process_batch([(raw, "smtp") for raw in raws], env.now)
    assert [o.status for o in outcomes] == ["created", "quarantined", "created"]
    assert "ValueError: a bug that only this mail triggers" in outcomes[1].reason
    assert sorted(t["subject"] for t in env.tickets()) == ["antes", "depois"]
    [row] = [r for r in env.raw_rows() if r.status == "quarantined"]
    assert env.app.blobs.get_raw(row.sha256) == raws[1]


def test_text_the_database_refuses_does_not_stall_anything(env: Env) -> None:
    # NUL bytes in a header: PostgreSQL refuses them in text columns.
    raw = mail("nul").replace(b"Subject: nul", b"Subject: n\x00ul")
    outcome = env.process(raw)
    assert outcome.status in ("created", "quarantined")
    assert env.process(mail("seguinte")).status == "created"


def test_reprocess_turns_a_quarantined_mail_into_a_ticket_after_a_fix(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import maild.ingest.processor as processor

    real_identify = processor.identify

    def broken(mail, agents):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug in this version")

    monkeypatch.setattr(processor, "identify", broken)
    assert env.process(mail("Consertado depois")).status == "quarantined"
    monkeypatch.setattr(processor, "identify", real_identify)  # the "fixed" release
    [row] = env.raw_rows()
    [outcome] = env.app.processor.reprocess([(row.sha256, row.channel)], env.now)
    assert outcome.status == "created"
    assert [t["subject"] for t in env.tickets()] == ["Consertado depois"]
    assert [r.status for r in env.raw_rows()] == ["processed"]
