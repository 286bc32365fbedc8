"""Who sent a mail: a configured agent, or a customer known by normalized address."""
from __future__ import annotations

from collections.abc import Mapping

from maild.config import Agent
from maild.domain.mail import ParsedMail
from maild.domain.sender import UNKNOWN_SENDER, Sender, normalize_address

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
