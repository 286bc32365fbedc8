"""One line of a ticket's history that a mail or a command asks the store to write."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EventSpec:
    kind: str
    old: str | None = None
    new: str | None = None
    detail: str = ""
