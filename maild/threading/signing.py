"""HMAC signatures that let maild recognise its own reply addresses and Message-IDs.

``support+42-k3j5x9q2ab@example.com`` and ``<maild.42.<random>.<sig>@example.com>``
name ticket 42; only someone who holds ``helpdesk.secret`` can forge them.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

_SIG_LEN = 10


@dataclass(frozen=True)
class Signer:
    secret: bytes
    local_part: str
    domain: str

    def _sig(self, text: str) -> str:
        digest = hmac.new(self.secret, text.encode(), hashlib.sha256).digest()
        return base64.b32encode(digest).decode().lower()[:_SIG_LEN]

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
