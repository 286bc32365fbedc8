"""An agent's reply through ``Processor.process``: the copy of maild's notification is cut
by its known text, a command-only reply relays nothing, and internal text never goes out."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from conftest import AGENT, Env, mail
from maild.outbound.copies import norm
from maild.store.models import OutboxRow
from test_reply_privacy import gmail_pt, html_only, no_attribution, outlook_pt, thunderbird

CUSTOMER = "maria@cliente.example.com.br"
CUSTOMER_TEXT = "Há água no chão do banheiro desde ontem.\nO apartamento é o 42 do bloco B.\n"
STYLES: dict[str, Callable[[str, str], str]] = {
    "gmail_pt": gmail_pt, "outlook_pt": outlook_pt, "thunderbird": thunderbird, "no_attribution": no_attribution,
    "html_only": html_only,
}


def rows(env: Env) -> list[OutboxRow]:
    with env.app.db.read() as session:
        return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def open_ticket(env: Env) -> tuple[int, OutboxRow]:
    outcome = env.process(mail("Vazamento no banheiro", f"Maria <{CUSTOMER}>", body=CUSTOMER_TEXT))
    [notice] = [r for r in rows(env) if r.kind == "notify" and r.to_addr == AGENT and r.ticket_id == outcome.ticket_id]
    return outcome.ticket_id, notice


def answer(env: Env, notice: OutboxRow, body: str) -> None:
    """The agent's client answers ``notice``: to its Reply-To, threaded on its Message-ID."""
    env.process(mail(f"Re: {notice.subject}", f"Ana <{AGENT}>", body=body, to=notice.reply_to,
                     headers={"In-Reply-To": notice.message_id, "References": notice.message_id}))


def sent_to_customer(env: Env) -> list[OutboxRow]:
    return [r for r in rows(env) if r.kind == "reply"]


def internal_lines(notice: OutboxRow) -> list[str]:
    customer = {norm(line) for line in CUSTOMER_TEXT.split("\n")}
    return [n for line in notice.body_text.split("\n") if (n := norm(line)) and n not in customer]


@pytest.mark.parametrize("style", sorted(STYLES))
def test_commands_on_top_of_the_notification_relay_nothing_and_keep_the_status(env: Env, style: str) -> None:
    t, notice = open_ticket(env)
    answer(env, notice, STYLES[style]("/take\n/priority high", notice.body_text))
    ticket = env.ticket(t)
    assert ticket["assignee"] == AGENT and ticket["priority"] == "high"  # the commands applied
    assert ticket["status"] != "waiting_customer"
    assert sent_to_customer(env) == []
    assert [r for r in rows(env) if r.kind == "feedback"] == []  # a command mail: no "empty reply" feedback


@pytest.mark.parametrize("style", sorted(STYLES))
def test_text_on_top_reaches_the_customer_without_any_line_of_the_notification(env: Env, style: str) -> None:
    t, notice = open_ticket(env)
    answer(env, notice, STYLES[style]("/take\nOi Maria, o técnico vai amanhã às 9h.\nAna", notice.body_text))
    [relay] = sent_to_customer(env)
    assert relay.to_addr == CUSTOMER
    assert relay.body_text.startswith("Oi Maria, o técnico vai amanhã às 9h.\n")
    sent = {norm(line) for line in relay.body_text.split("\n")}
    assert not [line for line in notice.body_text.split("\n") if norm(line) and norm(line) in sent]
    assert env.ticket(t)["status"] == "waiting_customer"


def test_pasted_internal_text_is_removed_before_relaying_and_the_history_says_so(env: Env) -> None:
    t, notice = open_ticket(env)
    # No threading headers, the notification pasted below without any attribution: only the
    # agent's reply address ties it to the ticket, and nothing says "quote".
    env.process(mail(f"Re: {notice.subject}", f"Ana <{AGENT}>", to=notice.reply_to,
                     body=f"Oi Maria, já estamos vendo.\n\n{notice.body_text}"))
    [relay] = sent_to_customer(env)
    sent = {norm(line) for line in relay.body_text.split("\n")}
    assert "Oi Maria, já estamos vendo." in sent
    assert not [line for line in internal_lines(notice) if line in sent]
    [event] = [e for e in env.ticket(t)["events"] if e["kind"] == "privacy"]
    assert "removed from the reply" in event["detail"]


def test_a_reply_of_only_internal_text_is_held_and_the_agent_told(env: Env) -> None:
    t, notice = open_ticket(env)
    head = "\n".join(notice.body_text.split("\n")[:2])  # "New ticket … from …" and "Reply to this mail …"
    env.process(mail(f"Re: {notice.subject}", f"Ana <{AGENT}>", body=f"{head}\n", to=notice.reply_to))
    assert sent_to_customer(env) == []
    [fb] = [r for r in rows(env) if r.kind == "feedback"]
    assert fb.to_addr == AGENT and "internal mails" in fb.body_text
    [event] = [e for e in env.ticket(t)["events"] if e["kind"] == "privacy"]
    assert "nothing was relayed" in event["detail"]
    assert env.ticket(t)["status"] != "waiting_customer"
