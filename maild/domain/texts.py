"""The texts of maild's own mails on a ticket, as the reply cutter and the guard compare with."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownTexts:
    """Texts of a ticket's mails, as the cutter and the guard compare a reply with them."""

    answered: tuple[str, ...] = ()  # the maild mail(s) this reply answers: their copy is cut exactly
    internal: tuple[str, ...] = ()  # what maild sent only to agents on the ticket: never relayed
    public: tuple[str, ...] = ()  # what the customer wrote or received: no secret, never removed as internal
