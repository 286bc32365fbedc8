"""The YAML sections for commands and workflow: ``workflow:`` statuses and transitions,
``keywords:``, ``commands:`` and ``security.agent_auth``.

Only the shapes live here; :func:`check` cross-checks them (a keyword naming a status that
does not exist is a configuration error, reported with the key path, at start).
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from maild.commands.names import COMMAND_NAMES
from maild.commands.text import name_key
from maild.domain.outcome import DELETED


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NamedValue(_Strict):
    """A status or priority: its name in commands and the database, a label, aliases."""

    name: str
    label: str = ""
    aliases: list[str] = []

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", value):
            raise ValueError(f"{value!r}: use lower-case letters, digits and _ (e.g. waiting_customer)")
        return value


DEFAULT_STATUSES = [
    NamedValue(name="new", label="New", aliases=["novo", "pendente de retorno", "pendente"]),
    NamedValue(name="answered_pending", label="Answered, not sent (draft)",
               aliases=["respondido pendente", "draft saved", "rascunho"]),
    NamedValue(name="answered", label="Answered", aliases=["respondido", "respondido baixado"]),
    NamedValue(name="waiting_agent", label="Waiting for an agent", aliases=["aguardando resposta"]),
    NamedValue(name="waiting_customer", label="Waiting for the customer", aliases=["aguardando cliente"]),
    NamedValue(name="closed", label="Closed", aliases=["finalizado", "fechado", "encerrado", "resolvido"]),
]
DEFAULT_PRIORITIES = [
    NamedValue(name="low", label="Low", aliases=["baixa"]),
    NamedValue(name="normal", label="Normal", aliases=["media", "média"]),
    NamedValue(name="high", label="High", aliases=["alta"]),
    NamedValue(name="urgent", label="Urgent", aliases=["urgente"]),
]
# With ``helpdesk.language: pt-BR`` and no ``workflow.statuses`` / ``priorities`` of the
# admin's own, the same names carry Portuguese labels (the seeds' screens); the English
# labels stay aliases, so `--status closed` and `--status finalizado` both work.
PT_BR_LABELS = {
    "new": "Novo", "answered_pending": "Respondido pendente", "answered": "Respondido",
    "waiting_agent": "Aguardando resposta", "waiting_customer": "Aguardando cliente", "closed": "Finalizado",
    "low": "Baixa", "normal": "Média", "high": "Alta", "urgent": "Urgente",
}


def localized(values: list[NamedValue], language: str) -> list[NamedValue]:
    """The default statuses or priorities with the labels of ``language``."""
    if language != "pt-BR":
        return values
    out = []
    for value in values:
        label = PT_BR_LABELS.get(value.name, value.label)
        aliases = [a for a in (value.label, *value.aliases) if name_key(a) != name_key(label)]
        out.append(NamedValue(name=value.name, label=label, aliases=aliases))
    return out


class Transitions(_Strict):
    """Automatic status changes; ``null`` turns one off."""

    customer_mail: str | None = "waiting_agent"  # a customer wrote (also reopens a closed ticket)
    agent_reply: str | None = "waiting_customer"  # an agent's reply was sent to the customer
    reopen: str = "waiting_agent"  # what /reopen (and `reopen N` at the control address) sets
    # /draft saved a reply without sending it (seed 004's "Respondido pendente"); /send
    # then moves the ticket on as agent_reply says. Ignored when the workflow has no such
    # status and the admin did not name one.
    draft: str | None = "answered_pending"


class KeywordAction(_Strict):
    """What a subject keyword does, and who may use it."""

    status: str | None = None
    tags: list[str] = []  # "vip" or "+vip" adds, "-spam" removes
    priority: str | None = None
    assign: str | None = None  # an agent's address or name
    type: str | None = None
    subtype: str | None = None
    category: str | None = None
    who: Literal["agents", "managers", "anyone"] = "agents"

    @model_validator(mode="after")
    def _does_something(self) -> KeywordAction:
        if not (self.status or self.tags or self.priority or self.assign or self.type or self.subtype
                or self.category):
            raise ValueError("a keyword must set at least one of status, tags, priority, assign, type, "
                             "subtype, category")
        return self


class Commands(_Strict):
    # Commands only agents with role "manager" may use, e.g. [block, merge].
    managers_only: list[str] = []
    max_report_lines: int = Field(default=100, gt=0)  # `list` at the control address


class AgentAuth(_Strict):
    """Proof that a mail from an agent's address really comes from the agent
    (:mod:`maild.commands.auth`, docs/COMMANDS.md).

    ``require_proof`` (on by default): an agent's mail runs commands only with proof. A
    reply to the agent's signed reply address is always proof; ``trusted_authserv_ids``
    adds ``Authentication-Results`` from these servers (DKIM or DMARC pass for exactly the
    agent's domain; your MX must remove such headers arriving from outside);
    ``verify_dkim`` adds a DKIM signature of the agent's domain checked with dkimpy (DNS).
    """

    require_proof: bool = True
    trusted_authserv_ids: list[str] = []
    verify_dkim: bool = False

    @field_validator("trusted_authserv_ids")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [v.strip().lower() for v in value if v.strip()]

    def describe(self) -> str:
        """What check-config prints: which proofs are accepted."""
        if not self.require_proof:
            return ("OFF (require_proof: false): anyone who writes From an agent's address runs commands and "
                    "has text relayed to customers")
        proofs = ["a reply to the agent's signed reply address"]
        if self.trusted_authserv_ids:
            proofs.append(f"DKIM/DMARC pass for the agent's exact domain in Authentication-Results from "
                          f"{', '.join(self.trusted_authserv_ids)}")
        if self.verify_dkim:
            proofs.append("a valid DKIM signature of the agent's exact domain")
        return "required: " + "; or ".join(proofs)


class Security(_Strict):
    agent_auth: AgentAuth = AgentAuth()


def check(statuses: list[NamedValue], priorities: list[NamedValue], transitions: Transitions,
          keywords: dict[str, KeywordAction], commands: Commands, agents: list[Any]) -> None:
    """Cross-checks between the sections; raise ValueError with the key path in the text."""
    for label, values in (("workflow.statuses", statuses), ("workflow.priorities", priorities)):
        seen: dict[str, str] = {}
        for value in values:
            for alias in [value.name, value.label, *value.aliases]:
                key = name_key(alias)
                if key and seen.get(key, value.name) != value.name:
                    raise ValueError(f"{label}: {alias!r} names both {seen[key]} and {value.name}")
                if key:
                    seen[key] = value.name
    names = {s.name for s in statuses}
    if DELETED in names:
        raise ValueError(f"workflow.statuses: {DELETED!r} is reserved for deleted tickets (maild tickets delete)")
    for required in ("new", "closed"):
        if required not in names:
            raise ValueError(f"workflow.statuses: the status {required!r} is required")
    for key in ("customer_mail", "agent_reply", "reopen", "draft"):
        value = getattr(transitions, key)
        if key == "draft" and key not in transitions.model_fields_set:
            continue  # the default: used only when the workflow has that status
        if value is not None and value not in names:
            raise ValueError(f"workflow.transitions.{key}: unknown status {value!r}")
    priority_names = {p.name for p in priorities}
    agent_keys = {k for a in agents for k in (a.email, *a.aliases, name_key(a.name))}
    for word, action in keywords.items():
        if not word.strip() or word != word.strip():
            raise ValueError(f"keywords: {word!r}: a keyword may not be empty or start/end with spaces")
        if action.status and name_key(action.status) not in {name_key(a) for s in statuses
                                                             for a in (s.name, s.label, *s.aliases)}:
            raise ValueError(f"keywords.{word}.status: unknown status {action.status!r}")
        if action.priority and action.priority not in priority_names:
            raise ValueError(f"keywords.{word}.priority: unknown priority {action.priority!r}")
        if action.assign and action.assign.lower() not in agent_keys and name_key(action.assign) not in agent_keys:
            raise ValueError(f"keywords.{word}.assign: no agent {action.assign!r}")
    for name in commands.managers_only:
        if name.lstrip("/") not in COMMAND_NAMES:
            raise ValueError(f"commands.managers_only: unknown command {name!r}")
