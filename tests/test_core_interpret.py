"""Table tests for ``interpret()``: command lines in, a Plan out, with a fixed clock and dict lookups."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from maild.commands.grammar import split_commands
from maild.commands.interpret import Context, TicketView, interpret
from maild.commands.settings import NamedValue, Transitions
from maild.commands.workflow import Workflow
from maild.domain import ops
from maild.domain.commands import Mode, Plan

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
TZ = ZoneInfo("America/Sao_Paulo")


@dataclass(frozen=True)
class Agent:
    email: str
    name: str
    role: str
    addresses: tuple[str, ...] = ()


BRUNO = Agent("bruno@support.example.com", "Bruno Lima", "agent", ("bruno@support.example.com",))
CARLA = Agent("carla@support.example.com", "Carla Dias", "manager", ("carla@support.example.com",))
WORKFLOW = Workflow.build(
    [NamedValue(name=n) for n in ("new", "waiting_agent", "waiting_customer", "closed")]
    + [NamedValue(name="on_hold", aliases=["em espera"])],
    [NamedValue(name=n) for n in ("low", "normal", "high")],
    Transitions(), [BRUNO, CARLA], managers_only=["merge"])


@dataclass
class DictLookup:
    merged_into: dict[int, int] = field(default_factory=lambda: {5: 4})
    live: set[int] = field(default_factory=lambda: {1, 2, 4})
    drafts: dict[int, tuple[int, str]] = field(default_factory=lambda: {1: (77, "Rascunho.\n")})

    def resolve_ticket(self, ticket_id: int) -> int | None:
        ticket_id = self.merged_into.get(ticket_id, ticket_id)
        return ticket_id if ticket_id in self.live else None

    def draft_of(self, ticket_id: int) -> tuple[int, str] | None:
        return self.drafts.get(ticket_id)


def context(actor: Agent | None = None, *, in_mail: bool = True) -> Context:
    ref = WORKFLOW.agent_by_address(actor.email) if actor else None
    return Context(workflow=WORKFLOW, actor_email=actor.email if actor else "maria@cliente.example", actor=ref,
                   ticket=TicketView(1, "waiting_agent", "maria@cliente.example"), lookup=DictLookup(),
                   now=NOW, tz=TZ, canned=frozenset({"boas-vindas"}), in_mail=in_mail)


def run(body: str, ctx: Context | None = None) -> Plan:
    commands, _text = split_commands(body)
    return interpret(commands, ctx or context(BRUNO))


CASES: list[tuple[str, str, dict[str, object]]] = [
    ("a status by alias", "/status em espera", {"status": "on_hold"}),
    ("an unknown status is rejected", "/status nowhere", {"rejected": 1, "status": None}),
    ("close", "/close", {"status": "closed"}),
    ("reopen uses the workflow's transition", "/reopen", {"status": "waiting_agent"}),
    ("assign by first name", "/assign bruno", {"ops": (ops.SetField("assignee", BRUNO.email),)}),
    ("assign to nobody", "/assign -", {"ops": (ops.SetField("assignee", None),)}),
    ("take", "/take", {"ops": (ops.SetField("assignee", BRUNO.email),)}),
    ("tags added and removed", "/tag +urgente -velho", {"ops": (ops.TagOp("urgente", True),
                                                                ops.TagOp("velho", False))}),
    ("a bad tag name", "/tag +a/b", {"rejected": 1, "ops": ()}),
    ("priority", "/priority high", {"ops": (ops.SetField("priority", "high"),)}),
    ("next action tomorrow at 9, local time", "/next 2026-03-03 09:00",
     {"ops": (ops.SetField("next_action_at", datetime(2026, 3, 3, 12, 0, tzinfo=UTC)),)}),
    ("link to a merged ticket follows the merge", "/link 5", {"ops": (ops.Link(4, "related"),)}),
    ("link to this ticket is refused", "/link 1", {"rejected": 1}),
    ("link to no ticket", "/link 99", {"rejected": 1}),
    ("merge is for managers only", "/merge 2", {"rejected": 1, "status": None}),
    ("a note", "/note ligou", {"mode": Mode.NOTE, "note_text": "ligou"}),
    ("one mode per mail", "/note a\n/draft", {"mode": Mode.NOTE, "rejected": 1}),
    ("send the saved draft", "/send", {"mode": Mode.SEND, "draft": (77, "Rascunho.\n")}),
    ("a known canned answer", "/canned boas-vindas", {"canned": "boas-vindas"}),
    ("an unknown canned answer", "/canned nada", {"rejected": 1, "canned": None}),
    ("cc addresses, each once", "/cc a@x.example, a@x.example", {"cc": ("a@x.example",)}),
    ("an unknown command never stops the others", "/frobnicate\n/close", {"rejected": 1, "status": "closed"}),
    ("Portuguese aliases", "/fechar", {"status": "closed"}),
    ("block the requester", "/block", {"ops": (ops.Block("maria@cliente.example"),)}),
]


@pytest.mark.parametrize(("body", "expected"), [(b, e) for _, b, e in CASES], ids=[n for n, _, _ in CASES])
def test_interpret(body: str, expected: dict[str, object]) -> None:
    plan = run(body)
    for name, value in expected.items():
        if name == "rejected":
            assert len(plan.rejected) == value, plan.rejected
        else:
            assert getattr(plan, name) == value, (name, plan)
    if "rejected" not in expected:
        assert plan.rejected == (), plan.rejected


def test_a_manager_may_merge() -> None:
    plan = run("/merge 2", context(CARLA))
    assert plan.status == "closed" and plan.ops == (ops.Link(2, "merged_into"),) and not plan.rejected


def test_reply_only_commands_are_refused_at_the_control_address() -> None:
    plan = run("/note x\n/close", replace(context(BRUNO), in_mail=False))
    assert plan.mode is Mode.REPLY and plan.status == "closed" and len(plan.rejected) == 1


def test_a_customer_cannot_take_a_ticket() -> None:
    plan = run("/take", context(None))
    assert plan.ops == () and plan.rejected == ("/take: only agents can take tickets",)
