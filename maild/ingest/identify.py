"""Who sent a mail: a configured agent, or a customer known by normalized address."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from maild.config import Agent
from maild.mail import ParsedMail

UNKNOWN_SENDER = "unknown-sender@maild.invalid"


@dataclass(frozen=True)
class Sender:
    email: str  # normalized
    name: str
    agent: Agent | None = None

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


def identify(mail: ParsedMail, agents: Mapping[str, Agent]) -> Sender:
    """The sender: From, else Reply-To, else the Sender/Return-Path headers."""
    candidates = [mail.from_] if mail.from_ else []
    candidates += list(mail.reply_to)
    for address in candidates:
        if address and "@" in address.email:
            email = normalize_address(address.email)
            return Sender(email=email, name=address.name, agent=agents.get(email))
    for header in ("sender", "return-path"):
        value = normalize_address(mail.header(header))
        if "@" in value:
            return Sender(email=value, name="", agent=agents.get(value))
    return Sender(email=UNKNOWN_SENDER, name="")
