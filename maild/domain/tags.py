"""How a tag looks: the label and colour the YAML gives it (``tags:``), or just its name.

A tag the file does not define (an agent's ``/tag +novo``) has no colour and its name as
label. Everything that shows tickets — ``maild tickets show``, the digest, the control
address's reports — shows tags through :func:`looks`.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TagLook:
    name: str
    label: str
    colour: str | None = None  # "#rrggbb" (or "#rgb"), as the file writes it

    def text(self) -> str:
        """For plain-text mail and terminals: ``VIP (#d4af37)``, ``vip``."""
        label = self.label if self.label.casefold() == self.name.casefold() else f"{self.label} [{self.name}]"
        return f"{label} ({self.colour})" if self.colour else label

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "colour": self.colour, "text": self.text()}


def looks(names: Iterable[str], defined: Mapping[str, TagLook]) -> list[TagLook]:
    return [defined.get(name) or TagLook(name, name) for name in names]
