"""Table tests for the notification path's pure core: the events ``decide`` emits
(:func:`maild.ingest.decide.triggers`), who is told of them
(:func:`maild.notify.engine.deliveries`) and the one gate every automatic mail passes
(:func:`maild.outbound.policy.may_send_automatic`). Values in, values out; a fixed clock."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from maild.domain import ops
from maild.domain.decision import FEEDBACK, RELAY, Action, Decision, EventSpec, Outgoing
from maild.domain.events import TriggerEvent
from maild.domain.mail import Classification, Kind
from maild.domain.outcome import Direction
from maild.domain.sender import Sender
from maild.ingest.decide import triggers
from maild.notify.engine import (AgentInfo, Cause, Directory, Origin, Switches, TicketFacts, deliveries)
from maild.notify.rules import Rule
from maild.outbound.policy import Answering, Caps, Purpose, RecentMail, may_send_automatic

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
ANA, BRUNO, MARIA = "ana@helpdesk.example", "bruno@helpdesk.example", "maria@cliente.example"
DIRECTORY = Directory([AgentInfo(ANA, "Ana", (ANA,), (), True), AgentInfo(BRUNO, "Bruno", (BRUNO,))])
FACTS = TicketFacts(id=7, subject="Chave", status="new", requester=MARIA, requester_name="Maria",
                    requester_phone="+5511999990000", assignee=BRUNO)
RULES = [Rule.model_validate(r) for r in (
    {"name": "ack", "on": "ticket_created", "to": ["customer"], "template": "acknowledgement"},
    {"name": "sms", "on": "ticket_created", "to": ["customer"], "channel": "sms", "template": "acknowledgement"},
    {"name": "new", "on": "ticket_created", "to": ["agents"]},
    {"name": "reply", "on": "customer_replied", "to": ["assignee"]},
    {"name": "answered", "on": "agent_replied", "to": ["customer", "managers"]},
    {"name": "moved", "on": "status_changed", "to": ["customer"]},
)]
CREATED, REPLIED, AGENT_REPLIED = (TriggerEvent("ticket_created"), TriggerEvent("customer_replied"),
                                   TriggerEvent("agent_replied"))
MOVED = TriggerEvent("status_changed", "new", "closed")
ON, NO_ACK, NO_AGENTS = Switches(), Switches(acknowledge=False), Switches(notify_agents=False)
CUSTOMER_MAIL = Cause(MARIA, Origin.CUSTOMER_MAIL)
ACK_EMAIL, ACK_SMS, TO_ANA, TO_BRUNO = (MARIA, "email", True), (MARIA, "sms", False), (ANA, "email", False), \
    (BRUNO, "email", False)


@pytest.mark.parametrize(("events", "switches", "cause", "expected"), [
    # a customer's mail opens a ticket: the acknowledgement answers it, agents hear of it
    ([CREATED], ON, CUSTOMER_MAIL, [ACK_EMAIL, ACK_SMS, TO_ANA, TO_BRUNO]),
    ([CREATED], NO_ACK, CUSTOMER_MAIL, [ACK_SMS, TO_ANA, TO_BRUNO]),
    ([CREATED], NO_AGENTS, CUSTOMER_MAIL, [ACK_EMAIL, ACK_SMS]),
    ([CREATED], ON, Cause(MARIA, Origin.CUSTOMER_MAIL, answerable=False), [ACK_SMS, TO_ANA, TO_BRUNO]),
    # an agent's mail opens it for the customer: a notice, not an answer; notify_agents does not hold it
    ([CREATED], NO_AGENTS, Cause(ANA, Origin.AGENT_MAIL), [(MARIA, "email", False), ACK_SMS, TO_BRUNO]),
    ([CREATED], ON, Cause(MARIA, Origin.AGENT_MAIL), [ACK_SMS, TO_ANA, TO_BRUNO]),
    # the control address: the switches hold both
    ([CREATED], ON, Cause(ANA, Origin.CONTROL), [(MARIA, "email", False), ACK_SMS, TO_BRUNO]),
    ([CREATED], Switches(False, False), Cause(ANA, Origin.CONTROL), [ACK_SMS]),
    # a customer's reply: the assignee; with notify_agents off nobody, not even on a later event
    ([REPLIED, MOVED], ON, CUSTOMER_MAIL, [TO_BRUNO]),
    ([REPLIED], NO_AGENTS, CUSTOMER_MAIL, []),
    # the agent's reply was relayed: the customer gets no notice on top, the manager does
    ([AGENT_REPLIED, MOVED], ON, Cause(BRUNO, Origin.AGENT_MAIL, relayed=True), [TO_ANA]),
    ([AGENT_REPLIED, MOVED], ON, Cause(BRUNO, Origin.AGENT_MAIL), [(MARIA, "email", False), TO_ANA]),
])
def test_who_is_told(events: list[TriggerEvent], switches: Switches, cause: Cause,
                     expected: list[tuple[str, str, bool]]) -> None:
    got = deliveries(events, FACTS, RULES, DIRECTORY, switches, cause)
    assert [(d.person.email, d.channel, d.acknowledges) for d in got] == expected


def test_the_acknowledgement_keeps_its_rule_and_template() -> None:
    [ack] = [d for d in deliveries([CREATED], FACTS, RULES, DIRECTORY, ON, CUSTOMER_MAIL) if d.acknowledges]
    assert (ack.rule, ack.template, ack.event) == ("ack", "acknowledgement", CREATED)


NORMAL = Classification(Kind.NORMAL)
CUSTOMER = Sender(MARIA, "Maria")


@dataclass(frozen=True)
class _Agent:  # what a stage reads of a configured agent (maild.domain.sender.AgentProfile)
    email: str
    name: str
    role: str = "agent"


AGENT = Sender(BRUNO, "Bruno", _Agent(BRUNO, "Bruno"))


def _decision(action: Action, **kw: object) -> Decision:
    return Decision(action, 7 if action is Action.APPEND else None, "", (), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("decision", "kind", "sender", "expected"), [
    (_decision(Action.CREATE, status="new", events=(EventSpec("created", new="new"),)), NORMAL, CUSTOMER,
     [CREATED]),
    # a new ticket's status is part of ticket_created; a command's assignment is not
    (_decision(Action.CREATE, events=(EventSpec("status", "new", "closed"),),
               ops=(ops.SetField("assignee", ANA),)), NORMAL, AGENT,
     [CREATED, TriggerEvent("assigned", None, ANA)]),
    (_decision(Action.APPEND, events=(EventSpec("status", "new", "waiting_agent"),)), NORMAL, CUSTOMER,
     [REPLIED, TriggerEvent("status_changed", "new", "waiting_agent")]),
    (_decision(Action.APPEND), Classification(Kind.LIST), CUSTOMER, [REPLIED]),
    (_decision(Action.APPEND, events=(EventSpec("auto_reply"),)), Classification(Kind.AUTO_REPLY), CUSTOMER, []),
    (_decision(Action.APPEND, direction=Direction.NOTE), Classification(Kind.BOUNCE), CUSTOMER, []),
    (_decision(Action.APPEND, outgoing=(Outgoing(RELAY, text="ok"),)), NORMAL, AGENT, [AGENT_REPLIED]),
    (_decision(Action.APPEND, outgoing=(Outgoing(FEEDBACK),)), NORMAL, AGENT, []),
    # close then reopen in one mail is no move at all
    (_decision(Action.APPEND, events=(EventSpec("status", "open", "closed"), EventSpec("status", "closed", "open"))),
     NORMAL, AGENT, []),
])
def test_what_decide_emits(decision: Decision, kind: Classification, sender: Sender,
                           expected: list[TriggerEvent]) -> None:
    assert list(triggers(decision, kind, sender)) == expected


CAPS = Caps(per_ticket=(2, 60), per_address=(3, 60), per_address_day=(5, 1440))
OWN = frozenset({"support@helpdesk.example"})
NORMAL_MAIL = Answering(Kind.NORMAL, False)


@pytest.mark.parametrize(("purpose", "to", "recent", "answering", "reason"), [
    (Purpose.ACKNOWLEDGE, MARIA, RecentMail(), NORMAL_MAIL, ""),
    (Purpose.ACKNOWLEDGE, MARIA, RecentMail(), Answering(Kind.AUTO_REPLY, False), "the mail is auto_reply"),
    (Purpose.ACKNOWLEDGE, MARIA, RecentMail(), Answering(Kind.NORMAL, True), "empty reverse-path"),
    (Purpose.ACKNOWLEDGE, BRUNO, RecentMail(), Answering(Kind.NORMAL, False, from_agent=True), "is an agent"),
    (Purpose.ACKNOWLEDGE, "noreply@shop.example", RecentMail(), NORMAL_MAIL, "machine address"),
    (Purpose.ANSWER, MARIA, RecentMail(), Answering(Kind.LIST, False), ""),  # feedback answers any kind
    # feedback and reports: their own caps, never the other automatic mail's
    (Purpose.ANSWER, ANA, RecentMail(to_address=40, to_address_day=40, to_address_burst=9, on_ticket=9),
     NORMAL_MAIL, ""),
    (Purpose.ANSWER, ANA, RecentMail(feedback=200), NORMAL_MAIL, "200 feedback mails and reports in 1440 min"),
    (Purpose.ANSWER, ANA, RecentMail(feedback_burst=10), NORMAL_MAIL, "in 1 min (limit 10)"),
    (Purpose.ANSWER, ANA, RecentMail(undeliverable_until=NOW + timedelta(hours=1)), NORMAL_MAIL, "bounced"),
    (Purpose.NOTICE, "support@helpdesk.example", RecentMail(), None, "maild's own address"),
    (Purpose.NOTICE, MARIA, RecentMail(on_ticket=2), None, "per ticket"),
    (Purpose.NOTICE, MARIA, RecentMail(to_address_day=5), None, "per address per day"),
    (Purpose.NOTICE, MARIA, RecentMail(consent=False), None, "did not consent"),
    (Purpose.NOTICE, MARIA, RecentMail(undeliverable_until=NOW + timedelta(days=1)), None, "bounced permanently"),
    (Purpose.NOTICE, MARIA, RecentMail(undeliverable_until=NOW - timedelta(days=1)), None, ""),
    # agents: only the per-ticket cap and a permanent bounce, never the per-address ones
    (Purpose.AGENT, ANA, RecentMail(to_address=50, to_address_day=50), None, ""),
    (Purpose.AGENT, ANA, RecentMail(on_ticket=2), None, "about this ticket"),
    (Purpose.AGENT, ANA, RecentMail(undeliverable_until=NOW + timedelta(hours=1)), None, "bounced permanently"),
    (Purpose.PROOF, ANA, RecentMail(on_ticket=1), None, "already told today"),
    (Purpose.PROOF, ANA, RecentMail(to_address_day=5), None, "5 such notices today"),
    (Purpose.PROOF, ANA, RecentMail(to_address_day=4), None, ""),
])
def test_may_send_automatic(purpose: Purpose, to: str, recent: RecentMail, answering: Answering | None,
                            reason: str) -> None:
    verdict = may_send_automatic(purpose, to, recent, own=OWN, caps=CAPS, now=NOW, answering=answering)
    assert verdict.ok is (reason == "")
    assert reason in verdict.reason


# -- through the processor: the switches as a user sets them in maild.yaml ----------------------
@pytest.mark.parametrize(("acknowledge", "notify_agents", "on_new", "on_reply"), [
    ("true", "true", ["ack", "notify"], ["notify"]),
    ("false", "true", ["notify"], ["notify"]),
    ("true", "false", ["ack"], []),
])
def test_the_outbound_switches_through_the_processor(tmp_path: Path, acknowledge: str, notify_agents: str,
                                                      on_new: list[str], on_reply: list[str]) -> None:
    from conftest import make_env, mail

    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}",
                   outbound=f"outbound:\n  acknowledge: {acknowledge}\n  notify_agents: {notify_agents}\n")
    try:
        first = env.process(mail("Printer broken", body="it jams\n"))
        new_kinds = _kinds(env)
        env.process(mail("Re: Printer broken", body="still jams\n", headers={"In-Reply-To": first.message_id or ""}))
        assert new_kinds == on_new
        assert _kinds(env)[len(new_kinds):] == on_reply
    finally:
        env.app.db.dispose()


def _kinds(env: object) -> list[str]:
    from sqlalchemy import select

    from maild.store.models import OutboxRow
    with env.app.db.read() as session:  # type: ignore[attr-defined]
        return [r.kind for r in session.scalars(select(OutboxRow).order_by(OutboxRow.id))]


@pytest.mark.parametrize(("sent", "summarize"), [(19, False), (20, True), (35, True)])
def test_the_per_agent_window_holds_for_the_summary(sent: int, summarize: bool) -> None:
    caps = Caps(per_ticket=(2, 60), per_address=(3, 60), per_address_day=(5, 1440), per_agent=20)
    verdict = may_send_automatic(Purpose.AGENT, ANA, RecentMail(agent_window=sent), own=OWN, caps=caps, now=NOW)
    assert (verdict.ok, verdict.summarize) == (not summarize, summarize)
    if summarize:
        assert "cap reached: 20 notifications to a***@helpdesk.example in this window" in verdict.reason
    # the per-ticket cap comes first and is no summary's business
    held = may_send_automatic(Purpose.AGENT, ANA, RecentMail(on_ticket=2, agent_window=sent), own=OWN, caps=caps,
                              now=NOW)
    assert not held.ok and not held.summarize


@pytest.mark.parametrize(("purpose", "recent", "cap"), [
    (Purpose.NOTICE, RecentMail(on_ticket=2), "per_ticket"),
    (Purpose.NOTICE, RecentMail(to_address_burst=3), "per_address_burst"),
    (Purpose.NOTICE, RecentMail(to_address=3), "per_address"),
    (Purpose.NOTICE, RecentMail(to_address_day=5), "per_address_day"),
    (Purpose.AGENT, RecentMail(on_ticket=2), "per_ticket"),
    (Purpose.AGENT, RecentMail(agent_window=20), "per_agent"),
    (Purpose.PROOF, RecentMail(to_address_day=5), "proof_per_day"),
    (Purpose.NOTICE, RecentMail(consent=False), ""),  # held, but by no cap
    (Purpose.NOTICE, RecentMail(), ""),
])
def test_a_verdict_names_the_cap_that_held_the_mail(purpose: Purpose, recent: RecentMail, cap: str) -> None:
    caps = Caps(per_ticket=(2, 60), per_address=(3, 60), per_address_day=(5, 1440), per_address_burst=(3, 1),
                per_agent=20)
    to = ANA if purpose in (Purpose.AGENT, Purpose.PROOF) else MARIA
    assert may_send_automatic(purpose, to, recent, own=OWN, caps=caps, now=NOW).cap == cap
