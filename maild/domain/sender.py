"""Who sent a mail: a configured agent, or a customer known by normalized address."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

UNKNOWN_SENDER = "unknown-sender@maild.invalid"


class AgentProfile(Protocol):
    """What a stage reads of a configured agent (``maild.config.Agent`` is one)."""

    @property
    def email(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def role(self) -> str: ...


@dataclass(frozen=True)
class Sender:
    email: str  # normalized
    name: str
    agent: AgentProfile | None = None

    @property
    def is_agent(self) -> bool:
        return self.agent is not None

    @property
    def is_known(self) -> bool:
        return self.email != UNKNOWN_SENDER


def normalize_address(address: str) -> str:
    """Lower-case, trimmed; the domain without a trailing dot."""
    address = address.strip().strip("<>").strip().lower()
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.rstrip('.')}" if local else address
