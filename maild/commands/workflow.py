"""The workflow as commands see it: which status and priority names exist (aliases in any
case, with or without accents), which transitions are automatic, and who an agent named
in a command is. Built once at start from the Config."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from maild.commands.settings import NamedValue, Transitions
from maild.commands.text import name_key


@dataclass(frozen=True)
class AgentRef:
    email: str  # the primary address: what ``tickets.assignee`` holds
    name: str
    role: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Workflow:
    statuses: tuple[NamedValue, ...]
    priorities: tuple[NamedValue, ...]
    transitions: Transitions = Transitions()
    agents: tuple[AgentRef, ...] = ()
    managers_only: frozenset[str] = frozenset()
    _status_keys: dict[str, str] = field(default_factory=dict, repr=False)
    _priority_keys: dict[str, str] = field(default_factory=dict, repr=False)
    _agent_keys: dict[str, AgentRef | None] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, statuses: Sequence[NamedValue], priorities: Sequence[NamedValue],
              transitions: Transitions, agents: Sequence[Any], managers_only: Sequence[str] = ()) -> Workflow:
        refs = tuple(AgentRef(a.email, a.name, a.role, tuple(a.addresses)) for a in agents)
        agent_keys: dict[str, AgentRef | None] = {}
        # Addresses first (exact); then full names, local parts and first names, which
        # become None (ambiguous) when two agents share them.
        for ref in refs:
            for address in ref.addresses:
                agent_keys[address] = ref
        loose: dict[str, set[str]] = {}
        for ref in refs:
            words = name_key(ref.name).split()
            for key in {name_key(ref.name), *(name_key(a.split("@")[0]) for a in ref.addresses),
                        *(words[:1])}:
                loose.setdefault(key, set()).add(ref.email)
        by_email = {r.email: r for r in refs}
        for key, emails in loose.items():
            if key not in agent_keys:
                agent_keys[key] = by_email[next(iter(emails))] if len(emails) == 1 else None
        return cls(tuple(statuses), tuple(priorities), transitions, refs,
                   frozenset(n.lstrip("/") for n in managers_only),
                   _keys(statuses), _keys(priorities), agent_keys)

    @classmethod
    def from_config(cls, config: Any) -> Workflow:
        wf = config.workflow
        return cls.build(wf.statuses, wf.priorities, wf.transitions, config.agents, config.commands.managers_only)

    def status(self, text: str) -> str | None:
        return self._status_keys.get(name_key(text))

    def priority(self, text: str) -> str | None:
        return self._priority_keys.get(name_key(text))

    def status_names(self) -> list[str]:
        return [s.name for s in self.statuses]

    def priority_names(self) -> list[str]:
        return [p.name for p in self.priorities]

    def label(self, status: str) -> str:
        return next((s.label or s.name for s in self.statuses if s.name == status), status)

    def agent(self, text: str) -> tuple[AgentRef | None, str]:
        """The agent an ``AGENT`` argument names, or None and why not."""
        raw = text.strip().strip("<>").lower()
        if raw in self._agent_keys and self._agent_keys[raw] is not None:
            return self._agent_keys[raw], ""
        key = name_key(text)
        if key in self._agent_keys:
            found = self._agent_keys[key]
            return (found, "") if found else (None, f"{text!r} names more than one agent; use the address")
        return None, f"unknown agent {text!r}"

    def agent_by_address(self, email: str) -> AgentRef | None:
        for ref in self.agents:
            if email in ref.addresses:
                return ref
        return None


def _keys(values: Sequence[NamedValue]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for value in values:
        for alias in (value.name, value.label, *value.aliases):
            if name_key(alias):
                keys[name_key(alias)] = value.name
    return keys
