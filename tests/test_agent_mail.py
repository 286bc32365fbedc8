"""Agents working from their mail client, through the real processor (SQLite and PostgreSQL):
commands all or nothing, feedback past the automatic-mail caps, replying takes the ticket,
one thread per ticket, tickets opened on behalf of a customer, hidden tickets, clones, one
signature. The daemon-level proof is tests/test_agent_mail_e2e.py."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AGENT, Env
from test_commands import (
    BRUNO,
    CUSTOMER,
    agent,
    build,
    events,
    feedback,
    open_ticket,
    outbox,
    relays,
)

from maild.commands.forwarded import forwarded_sender
from maild.outbound.compose import signs_off

TRUSTED = {"agent_auth": {"trusted_authserv_ids": ["mx.support.example.com"]}}


@pytest.fixture
def cenv(tmp_path: Path, db_url: str) -> Iterator[Env]:
    built = build(tmp_path, db_url, security=TRUSTED)
    yield built
    built.app.db.dispose()


FORWARD = """\
/new
{extra}
---------- Forwarded message ---------
From: Maria Souza <maria@cliente.example.com.br>
Date: Mon, 2 Nov 2026 at 09:12
Subject: Vazamento no banheiro
To: Ana <ana@support.example.com>

Há água no chão do banheiro desde ontem.
"""


def forward(env: Env, extra: str = "", subject: str = "Fwd: Vazamento no banheiro", **kw: object) -> int:
    from conftest import mail
    from test_commands import TRUSTED_AR

    out = env.process(mail(subject, f"Ana <{AGENT}>", body=FORWARD.format(extra=extra),
                           headers={"Authentication-Results": TRUSTED_AR}, **kw))  # type: ignore[arg-type]
    assert out.status == "created", out
    return int(out.ticket_id)


# -- 1. all or nothing ---------------------------------------------------------------------------
def test_a_valid_close_with_a_rejected_cc_changes_nothing_and_says_what_would_have_happened(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/close\n/tag +vip\n/cc nobody-at-all\n\nOlá Maria, resolvido.\n")
    ticket = cenv.ticket(t)
    assert ticket["status"] == "new" and ticket["tags"] == [] and ticket["closed_at"] is None
    assert relays(cenv) == [] and ticket["assignee"] is None
    [fb] = feedback(cenv)
    body = fb.body_text
    assert "'nobody-at-all' is not an e-mail address" in body
    would = body.split("Would have been done (not done):")[1]
    assert "/close: status → closed" in would and "tags +vip" in would
    assert "your reply would have been sent to the customer" in would
    assert [e["kind"] for e in events(cenv, t, "held")] == ["held"]
    # The corrected mail then does it all.
    agent(cenv, t, "/close\n/tag +vip\n\nOlá Maria, resolvido.\n")
    assert cenv.ticket(t)["status"] == "closed" and cenv.ticket(t)["tags"] == ["vip"] and len(relays(cenv)) == 1


# -- 2. feedback past the automatic-mail caps ------------------------------------------------------
def test_feedback_reaches_an_agent_who_already_got_forty_notifications(tmp_path: Path, db_url: str) -> None:
    env = build(tmp_path, db_url, outbound={"limits": {"per_agent": {"count": 500, "minutes": 10}}})
    try:
        for n in range(41):
            open_ticket(env, f"Pedido {n}", sender=f"cliente{n}@cliente.example")
        assert len([r for r in outbox(env) if r.to_addr == AGENT and r.kind == "notify"]) == 41
        agent(env, 1, "/status nonsense\n")
        [fb] = feedback(env)
        assert fb.to_addr == AGENT and "unknown status 'nonsense'" in fb.body_text
    finally:
        env.app.db.dispose()


def test_control_reports_arrive_past_the_day_cap_of_automatic_mail(tmp_path: Path, db_url: str) -> None:
    from test_commands import control

    env = build(tmp_path, db_url, outbound={"limits": {"per_address_day": {"count": 2, "minutes": 1440}}})
    try:
        for n in range(3):
            open_ticket(env, f"Pedido {n}", sender=f"cliente{n}@cliente.example")
        assert len([r for r in outbox(env) if r.to_addr == AGENT]) == 3
        control(env, "stats\n")
        [report] = [r for r in outbox(env) if r.ticket_id is None and r.to_addr == AGENT]
        assert report.kind == "feedback" and "stats" in report.body_text
    finally:
        env.app.db.dispose()


def test_feedback_has_its_own_cap(tmp_path: Path, db_url: str) -> None:
    env = build(tmp_path, db_url, outbound={"limits": {"feedback": {"count": 2, "minutes": 60}}})
    try:
        t = open_ticket(env)
        for _ in range(3):
            agent(env, t, "/status nonsense\n")
        assert len(feedback(env)) == 2
        assert any("feedback mails and reports" in e["detail"] for e in events(env, t, "mail_held"))
    finally:
        env.app.db.dispose()


# -- 3. replying takes the ticket ------------------------------------------------------------------
def test_the_first_agent_who_replies_takes_the_ticket(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/tag +vip\n")  # commands only: no reply, nobody takes it
    assert cenv.ticket(t)["assignee"] is None
    agent(cenv, t, "Olá Maria, vamos verificar.\n", sender=BRUNO)
    assert cenv.ticket(t)["assignee"] == BRUNO
    agent(cenv, t, "Olá Maria, complementando.\n")  # a second agent does not take it over
    assert cenv.ticket(t)["assignee"] == BRUNO
    [change] = events(cenv, t, "assignee")
    assert (change["actor"], change["old"], change["new"]) == (BRUNO, None, BRUNO)


def test_assign_on_reply_can_be_switched_off(tmp_path: Path, db_url: str) -> None:
    env = build(tmp_path, db_url, workflow={"assign_on_reply": False})
    try:
        t = open_ticket(env)
        agent(env, t, "Olá Maria, vamos verificar.\n")
        assert env.ticket(t)["assignee"] is None and len(relays(env)) == 1
    finally:
        env.app.db.dispose()


# -- 4. one thread per ticket ----------------------------------------------------------------------
def test_every_mail_about_a_ticket_names_its_root(cenv: Env) -> None:
    from conftest import mail

    root = "<first@cliente.example>"
    out = cenv.process(mail("Vazamento", f"Maria <{CUSTOMER}>", message_id=root, body="Há água.\n"))
    t = int(out.ticket_id)
    agent(cenv, t, "/status nonsense\n")  # feedback
    agent(cenv, t, "Olá Maria, vamos verificar.\n", sender=BRUNO)  # relay, and a notice to Ana
    rows = [r for r in outbox(cenv) if r.ticket_id == t]
    assert {r.kind for r in rows} >= {"ack", "notify", "feedback", "reply"}
    for r in rows:
        assert r.references.split()[0] == root, (r.kind, r.references)
        assert r.in_reply_to, r.kind
    [notice] = [r for r in rows if r.kind == "notify" and r.to_addr == AGENT][:1]
    assert notice.in_reply_to == root


# -- 5. internal work ------------------------------------------------------------------------------
def test_forwarded_with_new_the_customer_is_the_requester_and_hears_of_it(cenv: Env) -> None:
    t = forward(cenv)
    ticket = cenv.ticket(t)
    assert ticket["requester"] == CUSTOMER and ticket["subject"] == "Vazamento no banheiro"
    assert "Há água no chão do banheiro" in ticket["messages"][0]["body_text"]
    assert "/new" not in ticket["messages"][0]["body_text"]
    assert [r.kind for r in outbox(cenv) if r.to_addr == CUSTOMER] == ["notice"]
    assert [e["new"] for e in events(cenv, t, "on_behalf")] == [CUSTOMER]


def test_on_behalf_hidden_ticket_sends_the_customer_nothing_until_made_visible(cenv: Env) -> None:
    t = forward(cenv, extra="/visible no\n")
    ticket = cenv.ticket(t)
    assert ticket["requester"] == CUSTOMER and ticket["visible"] is False
    assert [r for r in outbox(cenv) if r.to_addr == CUSTOMER] == []
    agent(cenv, t, "Olá Maria, o técnico passa amanhã.\n")
    assert relays(cenv) == []  # kept as an internal note
    [fb] = feedback(cenv)
    assert "hidden from the customer" in fb.body_text and "/visible yes" in fb.body_text
    assert cenv.ticket(t)["messages"][-1]["direction"] == "note"
    agent(cenv, t, "/visible yes\nOlá Maria, o técnico passa amanhã.\n")
    [relay] = relays(cenv)
    assert relay.to_addr == CUSTOMER


def test_new_without_a_forwarded_mail_or_address_is_refused(cenv: Env) -> None:
    from conftest import mail
    from test_commands import TRUSTED_AR

    out = cenv.process(mail("Ligação da Maria", f"Ana <{AGENT}>", body="/new\nEla ligou pedindo visita.\n",
                            headers={"Authentication-Results": TRUSTED_AR}))
    assert cenv.ticket(int(out.ticket_id))["requester"] == AGENT
    [fb] = feedback(cenv)
    assert "no customer found" in fb.body_text
    out = cenv.process(mail("Ligação da Maria", f"Ana <{AGENT}>", body=f"/on-behalf {CUSTOMER}\nEla ligou.\n",
                            headers={"Authentication-Results": TRUSTED_AR}))
    assert cenv.ticket(int(out.ticket_id))["requester"] == CUSTOMER


def test_clone_copies_the_conversation_and_has_an_owner(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "/clone\n")
    clone = max(x["id"] for x in cenv.tickets())
    copy = cenv.ticket(clone)
    assert copy["assignee"] == AGENT  # not an unowned "new" ticket for the inbox to announce again
    assert [m["body_text"] for m in copy["messages"]][:1] == ["Há água no chão.\n"]
    assert all(m["message_id"].startswith(f"<clone.{clone}.") for m in copy["messages"])


# -- 6. one signature, pure parts ------------------------------------------------------------------
@pytest.mark.parametrize(("text", "signed"), [
    ("Olá Maria,\n\nvamos verificar.\n\nAbraço,\nAna Souza\n", True),
    ("Olá Maria,\n\nvamos verificar.\n\nAtt.,\nANA\n", True),
    ("Olá\n\nAna Souza | Acme Imóveis\n", True),
    ("Olá Maria, o técnico vai amanhã.\n", False),
    ("Ligue para a central amanhã cedo por favor, Ana vai atender.\n", False),
])
def test_signs_off(text: str, signed: bool) -> None:
    assert signs_off(text, "Ana Souza") is signed


def test_a_reply_signed_by_the_agent_carries_the_name_once(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "Olá Maria, vamos verificar.\n\nAbraço,\nBruno\n", sender=BRUNO)
    agent(cenv, t, "Olá Maria, complementando.\n", sender=BRUNO)
    signed, unsigned = relays(cenv)
    assert signed.body_text.count("Bruno") == 1
    assert unsigned.body_text.count("Bruno Costa") == 1


@pytest.mark.parametrize(("text", "found"), [
    (FORWARD.format(extra=""), ("maria@cliente.example.com.br", "Maria Souza")),
    ("-----Mensagem original-----\nDe: Maria Souza [mailto:Maria@Cliente.example]\nEnviada em: segunda\n",
     ("maria@cliente.example", "Maria Souza")),
    ("Begin forwarded message:\n\nFrom: \"Souza, Maria\" <maria@x.example>\n", ("maria@x.example", "Souza, Maria")),
    ("Olá, segue.\nFrom: someone@x.example\n", None),  # no forward marker: not a forwarded mail
])
def test_forwarded_sender(text: str, found: tuple[str, str] | None) -> None:
    assert forwarded_sender(text) == found


def test_status_keeps_moving_on_a_plain_reply(cenv: Env) -> None:
    t = open_ticket(cenv)
    agent(cenv, t, "Olá Maria, vamos verificar.\n")
    assert cenv.ticket(t)["status"] == "waiting_customer" and cenv.ticket(t)["assignee"] == AGENT


# -- 7. a rule listing several events speaks of the one that happened ------------------------------
def test_a_rule_with_several_events_uses_the_template_of_the_event_that_happened() -> None:
    from maild.notify.rules import Rule

    named = Rule.model_validate({"on": ["ticket_created", "customer_replied"], "to": ["agents"],
                                 "template": "notify_new_ticket"})
    assert named.template_for("ticket_created") == "notify_new_ticket"
    assert named.template_for("customer_replied") == "notify_customer_reply"
    per_event = Rule.model_validate({"on": ["ticket_created", "customer_replied"], "to": ["agents"],
                                     "template": {"customer_replied": "my_reply"}})
    assert per_event.template_for("customer_replied") == "my_reply"
    assert per_event.template_for("ticket_created") == "notify_new_ticket"
    own = Rule.model_validate({"on": ["ticket_created", "customer_replied"], "to": ["agents"],
                               "template": "everything"})  # the admin's own template serves both
    assert own.template_for("customer_replied") == "everything"


def test_a_customer_reply_is_not_announced_as_a_new_ticket(tmp_path: Path, db_url: str) -> None:
    from conftest import mail

    rule = {"name": "all_news", "on": ["ticket_created", "customer_replied"], "to": ["agents"],
            "template": "notify_new_ticket"}
    env = build(tmp_path, db_url, triggers=[rule])
    try:
        first = env.process(mail("Vazamento", f"Maria <{CUSTOMER}>", body="Há água.\n"))
        env.process(mail("Re: Vazamento", CUSTOMER, body="Ainda há água.\n",
                         headers={"In-Reply-To": first.message_id or ""}))
        new, reply = [r for r in outbox(env) if r.to_addr == AGENT]
        assert new.subject == "[Support #1] Vazamento"  # notify_new_ticket
        assert reply.subject == "Re: [Support #1] Vazamento" and "Ainda há água" in reply.body_text
    finally:
        env.app.db.dispose()


# -- 8. no digest with nothing to report -----------------------------------------------------------
def test_no_digest_on_a_day_with_nothing_to_report(tmp_path: Path, db_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from scheduling import (
        ANA,
        Clock,
        last_id,
        outbox_rows,
        service,
        set_ticket,
        team_env,
    )
    from test_scheduler import DIGEST, new_ticket

    env = team_env(tmp_path, db_url, scheduler=DIGEST)
    try:
        tid = new_ticket(env, "Pedido")
        set_ticket(env, tid, status="closed")
        day = datetime(2026, 11, 5, 8, 0, tzinfo=UTC)
        clock = Clock(day)
        sched, mark = service(env, clock), last_id(env)
        assert sched.run_once().digests == 0 and outbox_rows(env, mark) == []
        set_ticket(env, tid, status="waiting_agent")  # open and nobody's: worth a digest again
        clock.set(day + timedelta(days=1))
        assert sched.run_once().digests == 3
        assert ANA in {r.to_addr for r in outbox_rows(env, mark)}
    finally:
        env.app.db.dispose()


def test_new_with_the_customer_mail_forwarded_as_an_attachment(cenv: Env) -> None:
    from email.message import EmailMessage

    from test_commands import TRUSTED_AR

    inner = EmailMessage()
    inner["From"], inner["To"], inner["Subject"] = "Maria Souza <maria@cliente.example.com.br>", AGENT, "Vazamento"
    inner.set_content("Há água no chão.\n")
    outer = EmailMessage()
    outer["From"], outer["To"], outer["Subject"] = f"Ana <{AGENT}>", "support@support.example.com", "Fwd: Vazamento"
    outer["Message-ID"], outer["Authentication-Results"] = "<fwd-att@support.example.com>", TRUSTED_AR
    outer.set_content("/new\n")
    outer.add_attachment(inner)
    out = cenv.process(outer.as_bytes())
    ticket = cenv.ticket(int(out.ticket_id))
    assert ticket["requester"] == CUSTOMER and feedback(cenv) == []
