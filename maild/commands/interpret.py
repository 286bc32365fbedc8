"""Commands → a :class:`Plan` for one ticket: what changes, what the mail is (reply, note,
draft ...), and one feedback line per command, applied or rejected with the reason.

Pure: the ticket's state, the clock and a small read-only lookup are passed in. The same
handlers serve ``/command`` lines in an agent's reply, subject keywords (also a customer's,
for keywords marked ``who: anyone``) and the control address (``close 12 13``), so a
command means the same thing wherever it is written.

A rejected command never stops the others; the decide stage holds back the customer reply
of a mail with any rejected command (a misspelt ``/note`` must not reach the customer).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from maild.commands.grammar import Command, parse_address, parse_bool, parse_when, ticket_number
from maild.commands.workflow import AgentRef, Workflow
from maild.domain import ops
from maild.domain.commands import DRAFT, LOG, NOTE, REPLY, SEND, Mode, Plan

_CLEAR = {"-", "none", "nobody", "off", "clear", "nenhum", "ninguem", "ninguém"}
_TAG = re.compile(r"[\w.&-]{1,100}")


class CommandLookup(Protocol):
    def resolve_ticket(self, ticket_id: int) -> int | None:
        """The live ticket for an id (following merges), or None."""
        ...

    def draft_of(self, ticket_id: int) -> tuple[int, str] | None:
        """The pending draft on a ticket: (message row id, text)."""
        ...


@dataclass(frozen=True)
class TicketView:
    id: int | None  # None while the ticket is being created
    status: str
    requester: str = ""


@dataclass(frozen=True)
class Context:
    workflow: Workflow
    actor_email: str
    actor: AgentRef | None  # None: a customer (keywords marked anyone only)
    ticket: TicketView
    lookup: CommandLookup
    now: datetime
    tz: ZoneInfo
    canned: frozenset[str] = frozenset()
    in_mail: bool = True  # False at the control address: no reply text, no /note etc.
    forwarded: tuple[str, str] | None = None  # a new ticket: the author of the mail the agent forwarded

    @property
    def is_manager(self) -> bool:
        return self.actor is not None and self.actor.role == "manager"


@dataclass
class _Builder:
    ctx: Context
    status: str | None = None
    ops: list[ops.Op] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    mode: Mode = REPLY
    note_text: str = ""
    canned: str | None = None
    cc: list[str] = field(default_factory=list)
    draft: tuple[int, str] | None = None
    requester: tuple[str, str] | None = None

    def ok(self, cmd: Command, what: str) -> None:
        self.applied.append(f"{cmd.line}: {what}")

    def no(self, cmd: Command, why: str) -> None:
        self.rejected.append(f"{cmd.line}: {why}")

    def set_status(self, cmd: Command, status: str) -> None:
        self.status = status
        self.ok(cmd, f"status → {status}")

    def set_mode(self, cmd: Command, mode: Mode) -> bool:
        if self.mode != REPLY and self.mode != mode:
            self.no(cmd, f"/{self.mode} was already given: one of /note, /log, /draft, /send per mail")
            return False
        self.mode = mode
        return True


Handler = Callable[[_Builder, Command], None]


# -- ticket commands (in a reply, as keywords, and at the control address) --------------------
def _status(b: _Builder, cmd: Command) -> None:
    status = b.ctx.workflow.status(cmd.args) if cmd.args else None
    if status is None:
        b.no(cmd, f"unknown status {cmd.args!r} (known: {', '.join(b.ctx.workflow.status_names())})")
    else:
        b.set_status(cmd, status)


def _close(b: _Builder, cmd: Command) -> None:
    b.set_status(cmd, "closed")


def _reopen(b: _Builder, cmd: Command) -> None:
    b.set_status(cmd, b.ctx.workflow.transitions.reopen)


def _assign(b: _Builder, cmd: Command) -> None:
    if cmd.args.lower() in ("me", "eu", "mim") and b.ctx.actor is not None:
        _take(b, cmd)
        return
    if cmd.args.lower() in _CLEAR:
        b.ops.append(ops.SetField("assignee", None))
        b.ok(cmd, "unassigned")
        return
    agent, why = b.ctx.workflow.agent(cmd.args) if cmd.args else (None, "which agent? /assign AGENT")
    if agent is None:
        b.no(cmd, why)
    else:
        b.ops.append(ops.SetField("assignee", agent.email))
        b.ok(cmd, f"assigned to {agent.name} <{agent.email}>")


def _take(b: _Builder, cmd: Command) -> None:
    if b.ctx.actor is None:
        b.no(cmd, "only agents can take tickets")
        return
    b.ops.append(ops.SetField("assignee", b.ctx.actor.email))
    b.ok(cmd, f"assigned to you ({b.ctx.actor.email})")


def _invite(b: _Builder, cmd: Command) -> None:
    agent, why = b.ctx.workflow.agent(cmd.args) if cmd.args else (None, "which agent? /invite AGENT")
    if agent is None:
        b.no(cmd, why)
    else:
        b.ops.append(ops.AddParticipant(agent.email, "watcher"))
        b.ok(cmd, f"{agent.name} <{agent.email}> watches the ticket")


def _tag(b: _Builder, cmd: Command) -> None:
    words = cmd.args.replace(",", " ").split()
    if not words:
        b.no(cmd, "which tags? /tag +a -b")
        return
    done, bad = [], []
    for word in words:
        add = not word.startswith("-")
        name = word.lstrip("+-").lstrip("#").lower()
        if not _TAG.fullmatch(name):
            bad.append(word)
            continue
        b.ops.append(ops.TagOp(name, add))
        done.append(("+" if add else "-") + name)
    if done:
        b.ok(cmd, "tags " + " ".join(done))
    if bad:
        b.no(cmd, f"bad tag name(s) {' '.join(bad)}: letters, digits, . _ & - only")


def _priority(b: _Builder, cmd: Command) -> None:
    priority = b.ctx.workflow.priority(cmd.args) if cmd.args else None
    if priority is None:
        b.no(cmd, f"unknown priority {cmd.args!r} (known: {', '.join(b.ctx.workflow.priority_names())})")
    else:
        b.ops.append(ops.SetField("priority", priority))
        b.ok(cmd, f"priority → {priority}")


def _classification(name: str) -> Handler:
    def handler(b: _Builder, cmd: Command) -> None:
        if not cmd.args:
            b.no(cmd, f"which {name}? /{name} TEXT (or /{name} - to clear)")
        elif cmd.args.lower() in _CLEAR:
            b.ops.append(ops.SetField(name, None))
            b.ok(cmd, f"{name} cleared")
        else:
            b.ops.append(ops.SetField(name, cmd.args[:200]))
            b.ok(cmd, f"{name} → {cmd.args[:200]}")
    return handler


def _subject(b: _Builder, cmd: Command) -> None:
    if not cmd.args:
        b.no(cmd, "the new subject is missing")
    else:
        b.ops.append(ops.SetField("subject", cmd.args[:2000]))
        b.ok(cmd, f"subject → {cmd.args[:2000]}")


def _next(b: _Builder, cmd: Command) -> None:
    if cmd.args.lower() in _CLEAR:
        b.ops.append(ops.SetField("next_action_at", None))
        b.ok(cmd, "next action cleared")
        return
    when, why = parse_when(cmd.args, b.ctx.now, b.ctx.tz)
    if when is None:
        b.no(cmd, why)
    else:
        b.ops.append(ops.SetField("next_action_at", when))
        b.ok(cmd, f"next action {when.astimezone(b.ctx.tz):%Y-%m-%d %H:%M} ({b.ctx.tz.key})")


def _visible(b: _Builder, cmd: Command) -> None:
    value = parse_bool(cmd.args)
    if value is None:
        b.no(cmd, "use /visible yes or /visible no")
    else:
        b.ops.append(ops.SetField("visible", value))
        b.ok(cmd, "visible to the customer" if value else "hidden from the customer (no automatic mail)")


def _block(b: _Builder, cmd: Command) -> None:
    requester = b.ctx.ticket.requester
    if not requester or requester.endswith(".invalid") or b.ctx.workflow.agent_by_address(requester):
        b.no(cmd, f"the requester {requester or '(none)'} cannot be blocked")
    else:
        b.ops.append(ops.Block(requester))
        b.ok(cmd, f"{requester} blocked: later mail is kept but opens no ticket and gets no answer")


def _other_tickets(b: _Builder, cmd: Command) -> list[int]:
    found = []
    for word in cmd.args.replace(",", " ").split():
        number = ticket_number(word)
        live = b.ctx.lookup.resolve_ticket(number) if number is not None else None
        if number is None:
            b.no(cmd, f"{word!r} is not a ticket number")
        elif live is None:
            b.no(cmd, f"no ticket #{number}")
        elif live == b.ctx.ticket.id:
            b.no(cmd, f"#{number} is this ticket")
        else:
            found.append(live)
    if not cmd.args.split():
        b.no(cmd, "which ticket? e.g. 45")
    return found


def _link(b: _Builder, cmd: Command) -> None:
    for other in _other_tickets(b, cmd):
        b.ops.append(ops.Link(other, "related"))
        b.ok(cmd, f"linked to #{other}")


def _merge(b: _Builder, cmd: Command) -> None:
    targets = _other_tickets(b, cmd)
    if len(cmd.args.split()) > 1:
        b.no(cmd, "merge into one ticket at a time")
        return
    if targets:
        b.ops.append(ops.Link(targets[0], "merged_into"))
        b.set_status(cmd, "closed")
        b.applied[-1] = f"{cmd.line}: merged into #{targets[0]} (closed; later mail goes to #{targets[0]})"


def _clone(b: _Builder, cmd: Command) -> None:
    b.ops.append(ops.Clone())
    b.ok(cmd, "cloned into a new ticket, linked to this one")


def _on_behalf(b: _Builder, cmd: Command) -> None:
    """``/new`` / ``/on-behalf [ADDRESS]``: the ticket this mail opens is the customer's, not
    the agent's — the address given, else the author of the mail forwarded below."""
    if b.ctx.ticket.id is not None:
        b.no(cmd, "only in a mail that opens a ticket: forward the customer's mail to the helpdesk address")
        return
    person = b.ctx.forwarded
    if cmd.args:
        address = parse_address(cmd.args.split()[-1])
        if address is None:
            b.no(cmd, f"{cmd.args!r} is not an e-mail address")
            return
        person = (address, person[1] if person and person[0] == address else "")
    if person is None:
        b.no(cmd, "no customer found: forward the customer's mail below the command, "
                  "or write /new customer@example.com")
    elif b.ctx.workflow.agent_by_address(person[0]):
        b.no(cmd, f"{person[0]} is an agent; a ticket on behalf of someone needs the customer's address")
    else:
        b.requester = person
        b.ok(cmd, f"opened on behalf of {person[0]} (the requester)")


# -- commands that only make sense in a reply --------------------------------------------
def _note(b: _Builder, cmd: Command) -> None:
    if b.set_mode(cmd, NOTE):
        b.note_text = cmd.args
        b.ok(cmd, "internal note, not sent to the customer")


def _log(b: _Builder, cmd: Command) -> None:
    if b.set_mode(cmd, LOG):
        b.note_text = cmd.args
        b.ok(cmd, "interaction recorded, not sent to the customer")


def _draft(b: _Builder, cmd: Command) -> None:
    if b.set_mode(cmd, DRAFT):
        b.ok(cmd, "reply saved as a draft, not sent; send it later with /send")


def _send(b: _Builder, cmd: Command) -> None:
    if b.ctx.ticket.id is None:
        b.no(cmd, "no saved draft")
        return
    draft = b.ctx.lookup.draft_of(b.ctx.ticket.id)
    if draft is None:
        b.no(cmd, "no saved draft on this ticket")
    elif b.set_mode(cmd, SEND):
        b.draft = draft
        b.ok(cmd, "the saved draft is sent to the customer")


def _canned(b: _Builder, cmd: Command) -> None:
    name = cmd.args.strip().lower()
    if name not in b.ctx.canned:
        known = ", ".join(sorted(b.ctx.canned)) or "none; put them in templates/<language>/canned/NAME.j2"
        b.no(cmd, f"unknown standard answer {cmd.args!r} (known: {known})")
    elif b.canned is not None:
        b.no(cmd, "one /canned per mail")
    else:
        b.canned = name
        b.ok(cmd, f"standard answer {name}")


def _cc(b: _Builder, cmd: Command) -> None:
    words = cmd.args.replace(",", " ").replace(";", " ").split()
    if not words:
        b.no(cmd, "which address? /cc someone@example.com")
    for word in words:
        address = parse_address(word)
        if address is None:
            b.no(cmd, f"{word!r} is not an e-mail address")
        else:
            b.cc.append(address)
            b.ok(cmd, f"a copy of the reply goes to {address}")


def _listing(b: _Builder, cmd: Command) -> None:
    refs = cmd.args.replace(",", " ").split()
    if not refs:
        b.no(cmd, "which items? /listing REF ...")
    else:
        b.ops.append(ops.AttachRefs(tuple(refs)))
        b.ok(cmd, f"linked to the ticket and listed in replies: {', '.join(refs)}")


# The order here is the order of the help text; (handler, usable at the control address).
COMMANDS: dict[str, tuple[Handler, bool]] = {
    "status": (_status, True), "close": (_close, True), "reopen": (_reopen, True),
    "assign": (_assign, True), "take": (_take, True), "invite": (_invite, True), "tag": (_tag, True),
    "priority": (_priority, True), "type": (_classification("type"), True),
    "subtype": (_classification("subtype"), True), "category": (_classification("category"), True),
    "subject": (_subject, True), "next": (_next, True), "note": (_note, False), "log": (_log, False),
    "draft": (_draft, False), "send": (_send, False), "canned": (_canned, False), "cc": (_cc, False),
    "link": (_link, True), "merge": (_merge, True), "clone": (_clone, True), "visible": (_visible, True),
    "block": (_block, True), "listing": (_listing, True), "new": (_on_behalf, False),
    "on-behalf": (_on_behalf, False),
}
ALIASES = {"tags": "tag", "nota": "note", "fechar": "close", "finalizar": "close", "reabrir": "reopen",
           "atribuir": "assign", "assumir": "take", "rascunho": "draft", "enviar": "send", "proxima": "next",
           "próxima": "next", "onbehalf": "on-behalf", "em-nome": "on-behalf", "novo": "new"}


def interpret(commands: Sequence[Command], ctx: Context) -> Plan:
    b = _Builder(ctx)
    for cmd in commands:
        verb = ALIASES.get(cmd.verb, cmd.verb)
        entry = COMMANDS.get(verb)
        if entry is None:
            b.no(cmd, "unknown command (known: " + ", ".join("/" + c for c in COMMANDS) + ")")
            continue
        handler, anywhere = entry
        if not anywhere and not ctx.in_mail:
            b.no(cmd, "only in a reply on a ticket, not at the control address")
        elif verb in ctx.workflow.managers_only and not ctx.is_manager:
            b.no(cmd, f"permission: only managers may use /{verb}")
        else:
            handler(b, cmd)
    return Plan(b.status, tuple(b.ops), tuple(b.applied), tuple(b.rejected), b.mode, b.note_text, b.canned,
                tuple(dict.fromkeys(b.cc)), b.draft, b.requester)
