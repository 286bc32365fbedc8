"""Mails to the control address (``helpdesk.control_address``): commands about many tickets,
answered with one report mail. Never opens a ticket of its own.

One command per line (a leading ``/`` is allowed); when the body has none, the subject is
read as one. Parsing stops at the first blank line after a command, at a signature
(``-- ``) or at quoted text (``>``)::

    close 12 13 14                       every ticket command: VERB IDS... [ARGS]
    tag 12 +vip -spam                    (status, reopen, assign, take, invite, tag, priority,
    assign 12 ana                         type, subtype, category, subject, next, visible,
    merge 12 45                           block, link, merge, clone — merge/link: the first
                                          id is the ticket, the rest its targets)
    list status:new tag:vip assignee:me  filters: status tag assignee(me|none|AGENT) priority from
    show 12
    stats
    get 12 ficha.pdf                     a file of the ticket, attached to the report up to
                                          outbound.notify_attachments_max_bytes (else: its size
                                          and the `maild tickets attachment` command)
    search vazamento banheiro            full-text search, best match first
    new maria@example.com "Vazamento no banheiro"
    The customer called about ...        (lines right after `new`: the request, kept as a note)

Pure: reads go through :class:`ControlLookup`; the result is a value the processor
applies and reports.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from maild.commands.grammar import Command, parse_address, ticket_number
from maild.commands.interpret import ALIASES, COMMANDS, Context, TicketView, interpret
from maild.commands.queries import Filters, TicketLine
from maild.commands.workflow import AgentRef, Workflow
from maild.domain import ops
from maild.domain.files import FileRef
from maild.text import human_size
from maild.threading.subject import strip_prefixes

REPORT_VERBS = ("list", "show", "stats", "new", "help", "get", "search")


class ControlLookup(Protocol):
    def resolve_ticket(self, ticket_id: int) -> int | None: ...
    def draft_of(self, ticket_id: int) -> tuple[int, str] | None: ...
    def requester_of(self, ticket_id: int) -> str: ...
    def status_of(self, ticket_id: int) -> str: ...
    def find(self, filters: Filters, limit: int) -> tuple[list[TicketLine], int]: ...
    def detail(self, ticket_id: int) -> dict[str, Any] | None: ...
    def counts(self) -> dict[str, int]: ...
    def counts_by_assignee(self) -> dict[str | None, int]: ...
    def file(self, ticket_id: int, name: str) -> FileRef | None: ...
    def file_names(self, ticket_id: int) -> list[str]: ...
    def search(self, query: str, limit: int) -> list[tuple[TicketLine, tuple[str, ...]]]: ...  # with tag texts


@dataclass(frozen=True)
class Section:
    command: str
    applied: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    output: tuple[str, ...] = ()
    files: tuple[FileRef, ...] = ()  # attached to the report (``get``)


@dataclass(frozen=True)
class ControlResult:
    sections: tuple[Section, ...]
    changes: tuple[tuple[int, int, tuple[ops.Op, ...]], ...] = ()  # (section index, ticket id, ops)
    new_tickets: tuple[tuple[int, ops.NewTicket], ...] = ()  # (section index, what)
    sends: tuple[tuple[int, tuple[int, str]], ...] = ()  # `send 12`: (ticket id, its saved draft)

    @property
    def rejected(self) -> bool:
        return any(s.rejected for s in self.sections)


@dataclass
class _Run:
    workflow: Workflow
    actor: AgentRef
    lookup: ControlLookup
    now: datetime
    tz: ZoneInfo
    max_lines: int
    max_file_bytes: int | None  # `get` attaches files up to this size; None: any size
    sections: list[Section] = field(default_factory=list)
    changes: list[tuple[int, int, tuple[ops.Op, ...]]] = field(default_factory=list)
    new_tickets: list[tuple[int, ops.NewTicket]] = field(default_factory=list)
    sends: list[tuple[int, tuple[int, str]]] = field(default_factory=list)


def command_lines(subject: str, body: str) -> list[tuple[str, list[str]]]:
    """(command line, the plain lines that follow it) from the body, else the subject."""
    found: list[tuple[str, list[str]]] = []
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for line in lines:
        text = line.strip()
        if text.startswith(">") or line.rstrip() == "--" or line.startswith("-- "):
            break
        if not text:
            if found:
                break
            continue
        word = text.lstrip("/").split(maxsplit=1)[0].lower() if text.lstrip("/") else ""
        verb = ALIASES.get(word, word)
        if found and found[-1][0].lstrip("/").lower().startswith("new") and verb not in COMMANDS \
                and verb not in REPORT_VERBS:
            found[-1][1].append(line.rstrip())  # the request text under `new`
        else:
            found.append((text, []))
    if not found and strip_prefixes(subject).strip():
        found.append((strip_prefixes(subject).strip(), []))
    return found


EMPTY = Section("(empty)", rejected=("no command found; write e.g. `stats` or `help`",))


def run_line(line: str, extra: list[str], *, workflow: Workflow, actor: AgentRef, lookup: ControlLookup,
             now: datetime, tz: ZoneInfo, max_lines: int = 100, max_file_bytes: int | None = None) -> ControlResult:
    """One command line (and the plain lines under it). The caller applies each result
    before the next line, so ``close 12`` then ``stats`` counts #12 as closed."""
    r = _Run(workflow, actor, lookup, now, tz, max_lines, max_file_bytes)
    _one(r, line, extra)
    return ControlResult(tuple(r.sections), tuple(r.changes), tuple(r.new_tickets), tuple(r.sends))


def _one(r: _Run, line: str, extra: list[str]) -> None:
    text = line.lstrip("/")
    verb_word, _, rest = text.partition(" ")
    verb = ALIASES.get(verb_word.lower(), verb_word.lower())
    rest = rest.strip()
    if verb == "list":
        r.sections.append(_list(r, line, rest))
    elif verb == "show":
        r.sections.append(_show(r, line, rest))
    elif verb == "stats":
        r.sections.append(_stats(r, line))
    elif verb == "get":
        r.sections.append(_get(r, line, rest))
    elif verb == "search":
        r.sections.append(_search(r, line, rest))
    elif verb == "new":
        _new(r, line, rest, extra)
    elif verb == "send":
        r.sections.append(_send(r, line, rest))
    elif verb == "help":
        r.sections.append(Section(line, output=(
            "ticket commands: VERB IDS... [ARGS] with VERB one of " + ", ".join(
                c for c, (_, anywhere) in COMMANDS.items() if anywhere),
            "reports: list [status:S tag:T assignee:me|none|AGENT priority:P from:ADDRESS], show ID, stats",
            "send IDS...: send each ticket's saved /draft to its customer",
            "get ID NAME: the ticket's file NAME, attached to this report (a large one: its size and how to fetch it)",
            "search WORDS: tickets whose subject, texts, requester or tags hold every word, best first",
            'new ADDRESS "Subject" (the lines after it: the request)')))
    elif verb in COMMANDS and COMMANDS[verb][1]:
        _ticket_command(r, line, verb, rest)
    else:
        r.sections.append(Section(line, rejected=(
            f"unknown command {verb_word!r}; write `help` for the list",) if verb not in COMMANDS else (
            f"/{verb} works only in a reply on a ticket",)))


def _ticket_command(r: _Run, line: str, verb: str, rest: str) -> None:
    words = rest.split()
    ids: list[int] = []
    while words and ticket_number(words[0]) is not None:
        ids.append(ticket_number(words.pop(0)) or 0)
        if verb in ("link", "merge"):
            break  # the rest names the targets
    args = " ".join(words)
    applied: list[str] = []
    rejected: list[str] = []
    if not ids:
        r.sections.append(Section(line, rejected=(f"which tickets? e.g. `{verb} 12 13 ...`",)))
        return
    for number in ids:
        live = r.lookup.resolve_ticket(number)
        if live is None:
            rejected.append(f"#{number}: no such ticket")
            continue
        view = TicketView(live, r.lookup.status_of(live), r.lookup.requester_of(live))
        ctx = Context(r.workflow, r.actor.email, r.actor, view, r.lookup, r.now, r.tz, in_mail=False)
        plan = interpret([Command(verb, args, f"/{verb} {args}".strip())], ctx)
        changes = list(plan.ops)
        if plan.status and plan.status != view.status:
            changes.append(ops.SetStatus(plan.status, f"{line} (control address)"))
        applied += [f"#{live}: {a.split(': ', 1)[-1]}" for a in plan.applied]
        rejected += [f"#{live}: {x.split(': ', 1)[-1]}" for x in plan.rejected]
        if changes:
            r.changes.append((len(r.sections), live, tuple(changes)))
    r.sections.append(Section(line, tuple(applied), tuple(rejected)))


def _send(r: _Run, line: str, rest: str) -> Section:
    """``send 12 13``: each ticket's saved ``/draft`` goes to its customer (seed 004)."""
    applied: list[str] = []
    rejected: list[str] = []
    numbers = [(word, ticket_number(word)) for word in rest.split()]
    if not numbers:
        return Section(line, rejected=("which tickets? e.g. `send 12 13 ...`",))
    for word, number in numbers:
        live = r.lookup.resolve_ticket(number) if number is not None else None
        draft = r.lookup.draft_of(live) if live is not None else None
        if live is None:
            rejected.append(f"{word}: no such ticket")
        elif draft is None:
            rejected.append(f"#{live}: no saved draft on this ticket")
        else:
            r.sends.append((live, draft))
            applied.append(f"#{live}: the saved draft is sent to the customer")
    return Section(line, tuple(applied), tuple(rejected))


def _list(r: _Run, line: str, rest: str) -> Section:
    values: dict[str, Any] = {"open_only": True}
    rejected = []
    for word in rest.split():
        key, _, value = word.partition(":")
        key = key.lower()
        if not value:
            rejected.append(f"{word!r}: write filters as key:value")
        elif key == "status":
            if value.lower() in ("all", "any", "todos"):
                values["open_only"] = False
            elif (status := r.workflow.status(value.replace("_", " "))) is None:
                rejected.append(f"unknown status {value!r}")
            else:
                values["status"] = status
        elif key == "tag":
            values["tag"] = value.lstrip("#").lower()
        elif key in ("assignee", "assigned"):
            if value.lower() == "me":
                values["assignee"] = r.actor.email
            elif value.lower() in ("none", "nobody", "-"):
                values["assignee"] = ""
            else:
                agent, why = r.workflow.agent(value)
                if agent is None:
                    rejected.append(why)
                else:
                    values["assignee"] = agent.email
        elif key == "priority":
            if (priority := r.workflow.priority(value)) is None:
                rejected.append(f"unknown priority {value!r}")
            else:
                values["priority"] = priority
        elif key in ("from", "contact", "requester", "customer"):
            values["requester"] = (parse_address(value) or value).lower()
        else:
            rejected.append(f"unknown filter {key!r} (status, tag, assignee, priority, from)")
    if rejected:
        return Section(line, rejected=tuple(rejected))
    found, total = r.lookup.find(Filters(**values), r.max_lines)
    out = [_line(r, t) for t in found]
    out.append(f"{total} ticket(s)" + (f", first {len(found)} shown" if total > len(found) else ""))
    return Section(line, output=tuple(out))


def _show(r: _Run, line: str, rest: str) -> Section:
    out: list[str] = []
    rejected: list[str] = []
    for word in rest.split() or ["?"]:
        number = ticket_number(word)
        data = r.lookup.detail(r.lookup.resolve_ticket(number) or 0) if number is not None else None
        if data is None:
            rejected.append(f"{word}: no such ticket")
            continue
        when = datetime.fromisoformat(data["next_action_at"]).astimezone(r.tz).strftime("%Y-%m-%d %H:%M") \
            if data["next_action_at"] else "-"
        out += [f"#{data['id']} {data['subject']}",
                f"  status {data['status']} ({r.workflow.label(data['status'])})  priority {data['priority']}  "
                f"assignee {data['assignee'] or '-'}",
                f"  requester {data['requester']}  tags {', '.join(t['text'] for t in data['tag_details']) or '-'}  "
                f"next action {when}",
                f"  type {data['type'] or '-'} / {data['subtype'] or '-'}  category {data['category'] or '-'}  "
                f"visible {'yes' if data['visible'] else 'no'}  messages {data['message_count']}"]
        if data["links"]:
            out.append("  links " + ", ".join(f"{x['kind']} #{x['ticket']}" for x in data["links"]))
        for m in [m for m in data["messages"] if m["direction"] in ("in", "out", "note")][-3:]:
            first = next((s.strip() for s in m["body_text"].splitlines() if s.strip()), "")
            out.append(f"  [{m['direction']}] {m['created_at'][:16].replace('T', ' ')} {m['from']}: {first[:100]}")
    return Section(line, rejected=tuple(rejected), output=tuple(out))


def _get(r: _Run, line: str, rest: str) -> Section:
    number_word, _, name = rest.partition(" ")
    number = ticket_number(number_word)
    name = name.strip().strip('"')
    if number is None or not name:
        return Section(line, rejected=("write `get TICKET NAME`, e.g. `get 12 ficha.pdf`",))
    live = r.lookup.resolve_ticket(number)
    if live is None:
        return Section(line, rejected=(f"#{number}: no such ticket",))
    found = r.lookup.file(live, name)
    if found is None:
        known = r.lookup.file_names(live)
        return Section(line, rejected=(f"#{live} has no file {name!r}" + (
            f"; its files: {', '.join(known)}" if known else "; it has no files"),))
    if r.max_file_bytes is not None and found.size > r.max_file_bytes:
        return Section(line, output=(
            f"#{live}: {found.filename} ({human_size(found.size)}) is larger than {human_size(r.max_file_bytes)}, "
            f"so it is not attached; fetch it with `maild tickets attachment {live} {shlex.quote(found.filename)}`",))
    return Section(line, output=(f"#{live}: {found.filename} ({human_size(found.size)}) is attached",),
                   files=(found,))


def _search(r: _Run, line: str, rest: str) -> Section:
    if not rest:
        return Section(line, rejected=("write `search WORDS`, e.g. `search vazamento banheiro`",))
    found = r.lookup.search(rest, r.max_lines)
    out = [_line(r, t) + (f"  [{', '.join(tags)}]" if tags else "") for t, tags in found]
    out.append(f"{len(found)} ticket(s), best match first" if found else "no ticket matches")
    return Section(line, output=tuple(out))


def _line(r: _Run, t: TicketLine) -> str:
    return f"#{t.id:<5} {r.workflow.label(t.status):<20} {t.priority:<7} {(t.assignee or '-'):<24} {t.requester:<28} {t.subject}"


def _stats(r: _Run, line: str) -> Section:
    counts = r.lookup.counts()
    out = [f"{r.workflow.label(s)} ({s}): {counts.get(s, 0)}" for s in r.workflow.status_names()]
    out += [f"{s}: {n}" for s, n in sorted(counts.items()) if s not in r.workflow.status_names()]
    out.append(f"total: {sum(counts.values())}")
    for assignee, n in sorted(r.lookup.counts_by_assignee().items(), key=lambda kv: kv[0] or ""):
        out.append(f"open, assigned to {assignee or 'nobody'}: {n}")
    return Section(line, output=tuple(out))


def _new(r: _Run, line: str, rest: str, extra: list[str]) -> None:
    try:
        words = shlex.split(rest)
    except ValueError:
        words = rest.split()
    address = parse_address(words[0]) if words else None
    subject = " ".join(words[1:]).strip()
    if address is None:
        r.sections.append(Section(line, rejected=('write `new customer@example.com "Subject"`',)))
        return
    if r.workflow.agent_by_address(address):
        r.sections.append(Section(line, rejected=(f"{address} is an agent, not a customer",)))
        return
    text = "\n".join(extra).strip("\n")
    r.new_tickets.append((len(r.sections), ops.NewTicket(address, subject or "(no subject)", text)))
    r.sections.append(Section(line, applied=(f"a new ticket for {address}: {subject or '(no subject)'}",)))
