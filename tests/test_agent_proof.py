"""Agent proof through the real processor (SQLite and PostgreSQL): which mail From an
agent's address may command, what happens to the rest, who is told, and what
`maild check-config` says about it."""
from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import yaml

from conftest import AGENT, HELPDESK, Env, agent_address, mail, write_config
from test_commands import BRUNO, CONTROL, CUSTOMER, build, control_reply, events, open_ticket, outbox

ATTACK = "/cc eve@evil.example\n/assign bruno\n/close\nPague na conta 666.\n"


def notices(env: Env) -> list:
    return [r for r in outbox(env) if r.kind == "proof"]


def test_mail_to_agents_carries_their_own_signed_reply_address(tmp_path: Path, db_url: str) -> None:
    env = build(tmp_path, db_url)
    t = open_ticket(env)
    by_kind = {(r.kind, r.to_addr): r.reply_to for r in outbox(env)}
    signer = env.app.processor.signer
    assert signer.agent_reply_address(t, AGENT) in by_kind[("notify", AGENT)]
    assert signer.agent_reply_address(t, BRUNO) in by_kind[("notify", BRUNO)]
    assert signer.reply_address(t) in by_kind[("ack", CUSTOMER)]  # the customer's: no agent in it
    env.app.db.dispose()


def test_forged_agent_on_the_tickets_own_address_runs_nothing_and_the_agent_is_told_once_a_day(
        tmp_path: Path, db_url: str) -> None:
    env = build(tmp_path, db_url)
    t = open_ticket(env)
    customer_address = env.app.processor.signer.reply_address(t)  # the acknowledgement's Reply-To
    before = len(outbox(env))
    for n in range(3):
        out = env.process(mail(f"Re: [Support #{t}] Vazamento", AGENT, body=ATTACK, to=customer_address))
        assert out.ticket_id == t
    ticket = env.ticket(t)
    assert ticket["status"] == "waiting_agent" and ticket["assignee"] is None
    assert [m["direction"] for m in ticket["messages"]] == ["in", "out", "in", "in", "in"]
    assert len(events(env, t, "flagged")) == 3 and events(env, t, "cc") == []
    new = outbox(env)[before:]
    assert {r.to_addr for r in new} <= {AGENT, BRUNO} and not any(r.kind in ("reply", "feedback") for r in new)
    [notice] = notices(env)
    assert notice.to_addr == AGENT and notice.ticket_id == t and notice.automatic
    assert env.app.processor.signer.agent_reply_address(t, AGENT) in notice.reply_to
    assert "Pague" not in notice.body_text and "not sent to the agent's signed reply address" in notice.body_text
    held = [e for e in events(env, t, "mail_held") if "proof notice" in e["new"]]
    assert len(held) == 2 and "already told today" in held[0]["detail"]
    # A day later a new forgery is worth a new notice.
    env.process(mail(f"Re: [Support #{t}] Vazamento", AGENT, body=ATTACK, to=customer_address),
                advance=timedelta(days=1, minutes=1))
    assert len(notices(env)) == 2
    env.app.db.dispose()


def test_a_signed_reply_address_proves_only_its_own_agent(tmp_path: Path, db_url: str) -> None:
    env = build(tmp_path, db_url)
    t = open_ticket(env)
    anas = agent_address(env, t)
    # Bruno (or anyone using his From) writing to Ana's address: no proof.
    env.process(mail(f"Re: [Support #{t}] Vazamento", BRUNO, body="/close\n", to=anas))
    assert env.ticket(t)["status"] != "closed" and [n.to_addr for n in notices(env)] == [BRUNO]
    # A customer who got hold of it: their mail does not thread by it, and runs nothing.
    leaked = env.process(mail("Oi", "eve@evil.example", body="/close\n", to=anas))
    assert leaked.ticket_id != t and env.ticket(t)["status"] != "closed"
    # Ana herself: it threads and her commands run.
    mine = env.process(mail("sem assunto", AGENT, body="/close\n", to=anas))
    assert mine.ticket_id == t and env.ticket(t)["status"] == "closed"
    env.app.db.dispose()


def test_control_address_needs_the_agents_own_signed_control_address(tmp_path: Path, db_url: str) -> None:
    env = build(tmp_path, db_url)
    t = open_ticket(env)
    assert env.process(mail("x", AGENT, body=f"close {t}\n", to=control_reply(env, BRUNO))).status == "ignored"
    [notice] = notices(env)
    assert notice.to_addr == AGENT and notice.ticket_id is None and control_reply(env, AGENT) in notice.reply_to
    assert env.ticket(t)["status"] == "new"
    done = env.process(mail("x", AGENT, body=f"close {t}\n", to=control_reply(env, AGENT)))
    assert done.status == "control" and env.ticket(t)["status"] == "closed"
    [report] = [r for r in outbox(env) if r.kind == "feedback" and r.ticket_id is None]
    assert report.reply_to == control_reply(env, AGENT)  # answering the report is proof again
    env.app.db.dispose()


def test_switched_off_explicitly_a_plain_from_runs_commands(tmp_path: Path, db_url: str) -> None:
    env = build(tmp_path, db_url, security={"agent_auth": {"require_proof": False}})
    t = open_ticket(env)
    env.process(mail(f"Re: [Support #{t}] Vazamento", AGENT, body="/close\n"))
    assert env.ticket(t)["status"] == "closed" and notices(env) == []
    env.app.db.dispose()


def check_config(tmp_path: Path, security: dict | None) -> subprocess.CompletedProcess[str]:
    path = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}")
    if security is not None:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["security"] = security
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "maild", "--config", str(path), "check-config"],
                          capture_output=True, text=True, timeout=120)


def test_check_config_explains_which_proof_is_on(tmp_path: Path) -> None:
    default = check_config(tmp_path, None)
    assert default.returncode == 0, default.stderr
    assert "agent proof  required: a reply to the agent's signed reply address\n" in default.stdout
    both = check_config(tmp_path, {"agent_auth": {"trusted_authserv_ids": ["mx.support.example.com"],
                                                  "verify_dkim": True}})
    assert "Authentication-Results from mx.support.example.com" in both.stdout
    assert "a valid DKIM signature of the agent's exact domain" in both.stdout
    off = check_config(tmp_path, {"agent_auth": {"require_proof": False}})
    assert "agent proof  OFF" in off.stdout and "WARNING" in off.stderr and "require_proof is false" in off.stderr
    assert HELPDESK in default.stdout and CONTROL not in default.stdout
