"""Trigger rules: the pure engine (merge, actor, visibility, conditions), the default set,
rules through the real pipeline, and SMS through a real HTTP server on loopback."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from conftest import ROOT, mail
from maild.config import ConfigError, load_config
from maild.notify.engine import AgentInfo, Directory, Event, TicketFacts, resolve
from maild.notify.rules import DEFAULT_TRIGGERS, Rule
from maild.notify.sms import HttpGateway, SmsSender, listing
from scheduling import ANA, BRUNO, CARLA, CUSTOMER, add_watcher, outbox_rows, set_ticket, team_config, team_env

DIRECTORY = Directory([
    AgentInfo(ANA, "Ana", (ANA, "ana.silva@gmail.example"), ("vendas",), True),
    AgentInfo(BRUNO, "Bruno", (BRUNO,), ("vendas", "locacao")),
    AgentInfo(CARLA, "Carla", (CARLA,), ("locacao",)),
])
FACTS = TicketFacts(id=7, subject="Chave", status="new", category="Vendas", subtype="Aluguel", origin="smtp",
                    requester=CUSTOMER, requester_name="Maria", tags=("vip",))


def rules(*data: dict[str, Any]) -> list[Rule]:
    return [Rule.model_validate(d) for d in data]


def who(deliveries: list) -> list[tuple[str, str, str]]:
    return [(d.person.email, d.channel, d.rule) for d in deliveries]


# -- the engine -----------------------------------------------------------------------------
def test_manager_team_member_and_named_recipient_gets_one_mail() -> None:
    rs = rules({"name": "managers", "on": "ticket_created", "to": ["managers"]},
               {"name": "team", "on": "ticket_created", "when": {"category": "vendas"}, "to": ["team:vendas"]},
               {"name": "named", "on": "ticket_created", "to": ["Ana", "ana.silva@gmail.example"]},
               {"name": "sms", "on": "ticket_created", "to": ["managers"], "channel": "sms"})
    got = resolve([Event("ticket_created")], FACTS, rs, DIRECTORY, CUSTOMER)
    assert who(got) == [(ANA, "email", "managers"), (BRUNO, "email", "team"), (ANA, "sms", "sms")]


def test_one_mail_per_person_across_the_events_of_one_change() -> None:
    rs = rules({"name": "reply", "on": "customer_replied", "to": ["assignee", "watchers"]},
               {"name": "status", "on": "status_changed", "to": ["assignee", "watchers", "managers"]})
    facts = TicketFacts(**{**FACTS.__dict__, "assignee": BRUNO, "watchers": (CARLA, BRUNO)})
    got = resolve([Event("customer_replied"), Event("status_changed", "waiting_customer", "waiting_agent")],
                  facts, rs, DIRECTORY, CUSTOMER)
    assert who(got) == [(BRUNO, "email", "reply"), (CARLA, "email", "reply"), (ANA, "email", "status")]


def test_the_actor_is_not_told_of_their_own_action() -> None:
    rs = rules({"on": "status_changed", "to": ["agents"]})
    got = resolve([Event("status_changed", "new", "closed")], FACTS, rs, DIRECTORY, "ANA.SILVA@gmail.example")
    assert [d.person.email for d in got] == [BRUNO, CARLA]  # Ana acted, from her alias


def test_customer_only_for_a_visible_ticket_but_acknowledged_as_actor() -> None:
    rs = rules({"on": ["ticket_created", "status_changed"], "to": ["customer"]})
    assert who(resolve([Event("ticket_created")], FACTS, rs, DIRECTORY, CUSTOMER))[0][0] == CUSTOMER
    assert resolve([Event("status_changed", "a", "b")], FACTS, rs, DIRECTORY, CUSTOMER) == []  # actor
    assert len(resolve([Event("status_changed", "a", "b")], FACTS, rs, DIRECTORY, ANA)) == 1
    hidden = TicketFacts(**{**FACTS.__dict__, "visible": False})
    assert resolve([Event("status_changed", "a", "b")], hidden, rs, DIRECTORY, ANA) == []


@pytest.mark.parametrize("when,fires", [
    ({"category": ["vendas", "x"]}, True), ({"category": "Outro"}, False),
    ({"subcategory": "Aluguel"}, True), ({"subcategory": "Venda"}, False),
    ({"origin": "smtp"}, True), ({"origin": ["imap", "form"]}, False),
    ({"priority": "normal"}, True), ({"priority": "high"}, False),
    ({"tags": ["vip", "x"]}, True), ({"tags": "spam"}, False),
    ({"visible": True}, True), ({"visible": False}, False),
    ({"status_from": "new", "status_to": "closed"}, True), ({"status_to": "waiting_agent"}, False),
])
def test_conditions(when: dict[str, Any], fires: bool) -> None:
    rs = rules({"on": "status_changed", "when": when, "to": ["Carla"]})
    assert bool(resolve([Event("status_changed", "new", "closed")], FACTS, rs, DIRECTORY, ANA)) is fires


def test_fallback_stands_in_for_a_missing_assignee() -> None:
    rs = rules({"on": "reminder_due", "to": ["assignee", "Carla"], "fallback": ["managers"]})
    assert [d.person.email for d in resolve([Event("reminder_due")], FACTS, rs, DIRECTORY, None)] == [ANA, CARLA]
    assigned = TicketFacts(**{**FACTS.__dict__, "assignee": BRUNO})
    assert [d.person.email for d in resolve([Event("reminder_due")], assigned, rs, DIRECTORY, None)] == [BRUNO, CARLA]


def test_default_rules_are_the_embedded_config_and_yaml_on_is_read() -> None:
    data = yaml.safe_load((ROOT / "config" / "maild.yaml").read_text(encoding="utf-8"))
    assert True in data["triggers"][0]  # YAML 1.1 turns the key `on` into true...
    assert tuple(Rule.model_validate(r) for r in data["triggers"]) == DEFAULT_TRIGGERS  # ...and we read it back
    names = {e for r in DEFAULT_TRIGGERS for e in r.on}
    assert names == {"ticket_created", "customer_replied", "agent_replied", "status_changed", "assigned",
                     "reminder_due", "unaccepted"}


@pytest.mark.parametrize("rule,error", [
    ("{on: ticket_created, to: [nobody@x.example]}", "neither a keyword"),
    ("{on: ticket_created, to: ['team:marketing']}", "no agent is in team"),
    ("{on: ticket_created, to: [managers], channel: sms}", "no sms: gateway"),
    ("{on: ticket_opened, to: [managers]}", "triggers.0.on"),
])
def test_bad_rules_are_config_errors(tmp_path: Path, rule: str, error: str) -> None:
    path = team_config(tmp_path, "sqlite:///x.db", triggers=f"triggers:\n  - {rule}\n")
    with pytest.raises(ConfigError, match=error.replace(".", r"\.")):
        load_config(path)


def test_rule_needs_recipients() -> None:
    with pytest.raises(ValidationError):
        Rule.model_validate({"on": "ticket_created", "to": []})


# -- through the pipeline ---------------------------------------------------------------------
ONE_MAIL_RULES = """\
    triggers:
      - {name: managers, on: ticket_created, to: [managers]}
      - {name: team, on: ticket_created, to: ['team:vendas']}
      - {name: named, on: ticket_created, to: [Ana]}
      - {name: everyone, on: ticket_created, to: [assignee], fallback: [agents]}
    """


def test_rule_set_naming_one_agent_three_times_mails_them_once(tmp_path: Path, db_url: str) -> None:
    env = team_env(tmp_path, db_url, triggers=ONE_MAIL_RULES)
    env.process(mail("Chave", f"Maria <{CUSTOMER}>"))
    rows = outbox_rows(env)
    assert sorted(r.to_addr for r in rows) == sorted([ANA, BRUNO, CARLA])  # no ack: no customer rule
    env.app.db.dispose()


def test_default_rules_on_a_conversation(tmp_path: Path, db_url: str) -> None:
    env = team_env(tmp_path, db_url)
    first = env.process(mail("Chave", f"Maria <{CUSTOMER}>", message_id="<c1@cliente.example>"))
    tid = first.ticket_id
    assert tid is not None
    rows = outbox_rows(env)
    assert [(r.kind, r.to_addr) for r in rows] == [("ack", CUSTOMER), ("notify", ANA), ("notify", BRUNO),
                                                   ("notify", CARLA)]
    set_ticket(env, tid, assignee=BRUNO)
    add_watcher(env, tid, CARLA)
    notify = rows[1]  # Ana's own notification
    # Ana (not the assignee) answers: Bruno (assignee) and Carla (watcher) hear of it, Ana does not.
    reply_to = notify.reply_to.split("<")[1].rstrip(">")
    env.process(mail("Re: " + notify.subject, f"Ana <{ANA}>", body="Pode retirar na portaria.\n", to=reply_to,
                     headers={"In-Reply-To": notify.message_id}))
    after_reply = outbox_rows(env, rows[-1].id)
    assert sorted((r.kind, r.to_addr) for r in after_reply) == [("notify", BRUNO), ("notify", CARLA),
                                                                ("reply", CUSTOMER)]
    assert all("Ana answered" in r.body_text for r in after_reply if r.kind == "notify")
    # The customer writes again (status waiting_customer → waiting_agent): one mail each.
    mark = after_reply[-1].id
    env.process(mail("Re: Chave", CUSTOMER, to=reply_to.replace("support+", "support+"),
                     headers={"In-Reply-To": after_reply[0].message_id}))
    again = outbox_rows(env, mark)
    assert sorted(r.to_addr for r in again) == [BRUNO, CARLA]
    assert all(r.subject.startswith("Re: [Support") and "wrote on" in r.body_text for r in again)
    env.app.db.dispose()


def test_a_flood_on_one_ticket_reaches_the_assignee_only_up_to_the_ticket_cap(tmp_path: Path, db_url: str) -> None:
    env = team_env(tmp_path, db_url)
    first = env.process(mail("Chave", f"Maria <{CUSTOMER}>", message_id="<f0@cliente.example>"))
    set_ticket(env, first.ticket_id, assignee=BRUNO)
    for n in range(1, 16):  # fifteen replies within a few minutes
        env.process(mail("Re: Chave", CUSTOMER, message_id=f"<f{n}@cliente.example>",
                         headers={"In-Reply-To": "<f0@cliente.example>"}), advance=timedelta(seconds=10))
    to_bruno = [r for r in outbox_rows(env) if r.to_addr == BRUNO]
    assert len(to_bruno) == env.config.outbound.limits.per_ticket.count == 10
    held = [e for e in env.ticket(first.ticket_id)["events"] if e["kind"] == "mail_held"]
    assert held and "about this ticket" in held[-1]["detail"]
    # Later, the window has passed: Bruno hears of the next reply again.
    env.process(mail("Re: Chave", CUSTOMER, message_id="<f99@cliente.example>",
                     headers={"In-Reply-To": "<f0@cliente.example>"}), advance=timedelta(minutes=15))
    assert len([r for r in outbox_rows(env) if r.to_addr == BRUNO]) == 11
    env.app.db.dispose()


def test_customer_rules_respect_consent_through_the_policy(tmp_path: Path, db_url: str) -> None:
    rules_yaml = """\
    triggers:
      - {name: customer_status, on: assigned, to: [customer], template: notify_status_changed}
    """
    env = team_env(tmp_path, db_url, scheduler="scheduler: {unaccepted_minutes: 0, digest: {enabled: false}}\n",
                   triggers=rules_yaml, workflow="workflow: {autoclose_days: 3}\n")
    from sqlalchemy import update

    from maild.store.models import Contact
    from scheduling import Clock, service

    a = env.process(mail("Oi", CUSTOMER)).ticket_id
    b = env.process(mail("Oi", "joao@cliente.example")).ticket_id
    with env.app.db.write() as session:
        session.execute(update(Contact).where(Contact.email == CUSTOMER).values(consent=False))
    for tid in (a, b):
        set_ticket(env, tid, status="waiting_customer", updated_at=env.now)
    service(env, Clock(env.now + timedelta(days=4))).run_once()  # auto-close: a closing mail each?
    assert [r.to_addr for r in outbox_rows(env) if r.kind == "notice"] == ["joao@cliente.example"]
    held = [e for e in env.ticket(a)["events"] if e["kind"] == "mail_held"]
    assert held and "did not consent" in held[0]["detail"]
    env.app.db.dispose()


def test_no_customer_mail_to_the_actor_or_on_an_invisible_ticket(tmp_path: Path, db_url: str) -> None:
    rules_yaml = """\
    triggers:
      - {name: customer_status, on: status_changed, to: [customer], template: notify_status_changed}
      - {name: managers_vip, on: customer_replied, when: {tags: [vip]}, to: [managers]}
    """
    env = team_env(tmp_path, db_url, triggers=rules_yaml)
    tid = env.process(mail("Oi", CUSTOMER, message_id="<v1@cliente.example>")).ticket_id
    assert outbox_rows(env) == []
    set_ticket(env, tid, status="waiting_customer", visible=False)
    env.process(mail("Re: Oi", CUSTOMER, headers={"In-Reply-To": "<v1@cliente.example>"}))
    assert outbox_rows(env) == []  # the customer acted, and the ticket is not visible anyway
    env.app.db.dispose()


# -- SMS through a real HTTP server -----------------------------------------------------------
class Gateway:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if gateway.fail_next:
                    gateway.fail_next -= 1
                    self.send_response(503)
                    self.end_headers()
                    self.wfile.write(b"busy")
                    return
                gateway.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'{"id": "ok"}')

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    g = Gateway()
    yield g
    g.stop()


def test_sms_rule_posts_the_rendered_body_to_the_gateway(tmp_path: Path, db_url: str, gateway: Gateway,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMS_TOKEN", "Bearer s3cret")
    sections = {
        "sms": f"""\
    sms:
      url: "http://127.0.0.1:{gateway.port}/send?to={{{{ phone|urlencode }}}}"
      headers: {{X-Account: helpdesk}}
      headers_env: {{Authorization: TEST_SMS_TOKEN}}
      body: '{{"to": {{{{ phone|tojson }}}}, "text": {{{{ text|tojson }}}}}}'
    """,
        "triggers": """\
    triggers:
      - {name: urgent_sms, on: ticket_created, when: {tags: [vip]}, to: [managers], channel: sms}
      - {name: new_sms, on: ticket_created, to: [managers, Bruno], channel: sms, template: notify_new_ticket}
      - {name: mail, on: ticket_created, to: [managers]}
    """,
        "outbound": """\
    outbound:
      retry: {first_seconds: 1, max_seconds: 2}
    """,
    }
    env = team_env(tmp_path, db_url, **sections)
    tid = env.process(mail("Vazamento urgente", f"Maria <{CUSTOMER}>")).ticket_id
    assert gateway.requests == []  # nothing leaves on the ingest path
    assert [r.to_addr for r in outbox_rows(env)] == [ANA]
    with env.app.db.read() as session:
        queued = [(r.phone, r.rule, r.state) for r in listing(session)]
    assert queued == [("+5511999990001", "new_sms", "queued")]  # Bruno has no phone: held, with a reason
    held = [e for e in env.ticket(tid)["events"] if e["kind"] == "mail_held"]
    assert held and "bruno@support.example.com has no phone number" in held[0]["detail"]

    gateway.fail_next = 1
    clock = [datetime(2026, 11, 2, 13, 0, tzinfo=timezone.utc)]
    sender = SmsSender(env.app.db, HttpGateway(env.config.sms), env.config.outbound.retry, lambda: clock[0])
    assert sender.run_once() == 1 and gateway.requests == []  # 503: retried later
    assert sender.run_once() == 0
    clock[0] += timedelta(seconds=2)
    assert sender.run_once() == 1
    [request] = gateway.requests
    assert request["path"] == "/send?to=%2B5511999990001"
    assert request["headers"]["Authorization"] == "Bearer s3cret" and request["headers"]["X-Account"] == "helpdesk"
    assert request["headers"]["Content-Type"] == "application/json"
    payload = json.loads(request["body"])
    assert payload == {"to": "+5511999990001", "text": f"[Support #{tid}] Vazamento urgente"}
    with env.app.db.read() as session:
        [row] = listing(session)
    assert (row.state, row.attempts) == ("sent", 2)
    env.app.db.dispose()


def test_check_config_fails_on_a_rule_naming_a_missing_template(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from maild.cli import main

    path = team_config(tmp_path, "sqlite:///x.db",
                       triggers="triggers:\n  - {name: x, on: assigned, to: [Carla], template: nope}\n")
    assert main(["--config", str(path), "check-config"]) == 78
    assert "trigger x: template en/nope.j2 not found" in capsys.readouterr().out
