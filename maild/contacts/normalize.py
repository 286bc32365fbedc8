"""The key a contact is found by: its address, normalized.

Always lower-case and trimmed (:func:`maild.ingest.identify.normalize_address`). With
``contacts.gmail_dots: true``, addresses at the listed domains also lose the dots in their
local part and anything after a ``+`` — Gmail delivers ``Maria.Silva+site@gmail.com`` and
``mariasilva@gmail.com`` to the same mailbox, so they are one customer. Off by default:
elsewhere dots and ``+`` are significant.
"""
from __future__ import annotations

from dataclasses import replace

from maild.domain.sender import Sender, normalize_address
from maild.forms.spec import Contacts


class AddressKey:
    def __init__(self, settings: Contacts) -> None:
        self.domains = frozenset(d.lower() for d in settings.gmail_domains) if settings.gmail_dots else frozenset()

    def __call__(self, address: str) -> str:
        address = normalize_address(address)
        if not self.domains:
            return address
        local, _, domain = address.rpartition("@")
        if domain not in self.domains:
            return address
        return f"{local.split('+', 1)[0].replace('.', '')}@{domain}"

    def customer(self, sender: Sender) -> Sender:
        """The sender with its contact key (agents are left as configured)."""
        if not self.domains or sender.is_agent:
            return sender
        key = self(sender.email)
        return sender if key == sender.email else replace(sender, email=key)
