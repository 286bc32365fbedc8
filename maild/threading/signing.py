"""HMAC signatures that let maild recognise its own reply addresses and Message-IDs.

``support+42-k3j5x9q2ab@example.com`` and ``<maild.42.<random>.<sig>@example.com>``
name ticket 42; only someone who holds ``helpdesk.secret`` can forge them.

An agent's own reply address, ``support+a42-<sig>@example.com``, also names the agent:
the signature covers the ticket and the agent's (configured, lower-case) address, so a
reply sent to it from that address proves the agent wrote it (only mail maild sent to
that agent carries it). ``control+<sig>@example.com`` does the same for the control
address. These signatures are longer: they grant the right to run commands.

Every mail maild sends carries its own envelope sender (VERP, as Mailman 3 does):
``support+bounce-<outbox id>-<sig>@example.com``; a bounce sent to it names the outbox
row whatever its body says. The listener refuses the ``bounce-`` form unsigned.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

_SIG_LEN = 10
_AGENT_SIG_LEN = 16  # 80 bits: guessing one by mail is hopeless


@dataclass(frozen=True)
class Signer:
    secret: bytes
    local_part: str
    domain: str

    def _sig(self, text: str, length: int = _SIG_LEN) -> str:
        digest = hmac.new(self.secret, text.encode(), hashlib.sha256).digest()
        return base64.b32encode(digest).decode().lower()[:length]

    # reply addresses --------------------------------------------------------------
    def reply_address(self, ticket_id: int) -> str:
        return f"{self.local_part}+{ticket_id}-{self._sig(f'ticket:{ticket_id}')}@{self.domain}"

    def ticket_from_address(self, address: str) -> int | None:
        pattern = rf"{re.escape(self.local_part)}\+(\d{{1,12}})-([a-z2-7]{{{_SIG_LEN}}})@{re.escape(self.domain)}"
        found = re.fullmatch(pattern, address.strip().lower())
        if not found:
            return None
        ticket_id = int(found.group(1))
        ok = hmac.compare_digest(found.group(2), self._sig(f"ticket:{ticket_id}"))
        return ticket_id if ok else None

    # bounce (VERP) addresses ------------------------------------------------------
    def bounce_address(self, outbox_id: int) -> str:
        """The envelope sender of outbox row ``outbox_id``: bounces come back to it."""
        return f"{self.local_part}+bounce-{outbox_id}-{self._sig(f'bounce:{outbox_id}')}@{self.domain}"

    def is_bounce_form(self, address: str) -> bool:
        """Shaped like a bounce address (signed or not): the listener checks these."""
        return address.strip().lower().startswith(f"{self.local_part}+bounce-")

    def outbox_from_bounce_address(self, address: str) -> int | None:
        """The outbox row a signed bounce address names; None when unsigned or forged."""
        pattern = rf"{re.escape(self.local_part)}\+bounce-(\d{{1,12}})-([a-z2-7]{{{_SIG_LEN}}})@{re.escape(self.domain)}"
        found = re.fullmatch(pattern, address.strip().strip("<>").lower())
        if not found:
            return None
        outbox_id = int(found.group(1))
        return outbox_id if hmac.compare_digest(found.group(2), self._sig(f"bounce:{outbox_id}")) else None

    # an agent's own addresses ---------------------------------------------------------
    def agent_reply_address(self, ticket_id: int, agent: str) -> str:
        """The Reply-To of maild's mail to ``agent`` about a ticket (``agent``: the configured address)."""
        sig = self._sig(f"agent-reply:{ticket_id}:{agent.lower()}", _AGENT_SIG_LEN)
        return f"{self.local_part}+a{ticket_id}-{sig}@{self.domain}"

    def agent_reply_ticket(self, address: str, agent: str) -> int | None:
        """The ticket ``address`` names, if it is ``agent``'s signed reply address."""
        pattern = (rf"{re.escape(self.local_part)}\+a(\d{{1,12}})-([a-z2-7]{{{_AGENT_SIG_LEN}}})"
                   rf"@{re.escape(self.domain)}")
        found = re.fullmatch(pattern, address.strip().lower())
        if not found:
            return None
        ticket_id = int(found.group(1))
        expected = self._sig(f"agent-reply:{ticket_id}:{agent.lower()}", _AGENT_SIG_LEN)
        return ticket_id if hmac.compare_digest(found.group(2), expected) else None

    def agent_control_address(self, control: str, agent: str) -> str:
        """The Reply-To of a control report to ``agent``: ``control+<sig>@domain``."""
        local, _, domain = control.lower().partition("@")
        return f"{local}+{self._sig(f'agent-control:{control.lower()}:{agent.lower()}', _AGENT_SIG_LEN)}@{domain}"

    def is_agent_control_address(self, address: str, control: str, agent: str) -> bool:
        return hmac.compare_digest(address.strip().lower(), self.agent_control_address(control, agent))

    # message ids --------------------------------------------------------------------
    def message_id(self, ticket_id: int) -> str:
        nonce = secrets.token_hex(8)
        return f"<maild.{ticket_id}.{nonce}.{self._sig(f'mid:{ticket_id}.{nonce}')}@{self.domain}>"

    def ticket_from_message_id(self, message_id: str) -> int | None:
        found = re.fullmatch(r"<maild\.(\d{1,12})\.([0-9a-f]{16})\.([a-z2-7]+)@[^>]+>", message_id.strip())
        if not found:
            return None
        ticket_id, nonce, sig = int(found.group(1)), found.group(2), found.group(3)
        return ticket_id if hmac.compare_digest(sig, self._sig(f"mid:{ticket_id}.{nonce}")) else None
