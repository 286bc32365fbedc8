"""``maild contacts import FILE.csv``: contacts from a spreadsheet, every bad row named.

Each record is checked on its own; a bad one is rejected with its line number and the
reason, and the rest go in. Rejected: no address or one that is not an address, more
cells than the header (an unquoted delimiter inside a value), an unreadable consent or
blocked value, and a second row for an address already in the file (the first one wins;
addresses are compared as contacts are keyed, so ``Maria@X`` and ``maria@x`` are one).
Existing contacts get missing names and phones filled, and groups added; ``overwrite``
replaces names and phones too. A dry run does all of it in a transaction it rolls back.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from maild.contacts import book
from maild.contacts.csvfile import Row, formula_unescape, read_rows
from maild.forms.extract import norm_label

ALIASES = {
    "email": ("e-mail", "mail", "endereço de e-mail", "endereco", "email address", "correio eletrônico"),
    "name": ("nome", "nome completo", "full name", "cliente", "contato", "contact"),
    "phone": ("telefone", "fone", "celular", "whatsapp", "phone number", "tel", "mobile"),
    "groups": ("grupos", "grupo", "group", "tags", "segmento"),
    "consent": ("consentimento", "lgpd", "aceite", "opt-in", "optin", "aceita contato", "aceita e-mails"),
    "blocked": ("bloqueado", "block", "bloqueio"),
}
ADDRESS = re.compile(r"[^@\s<>\"',;()]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_YES = frozenset({"sim", "s", "yes", "y", "true", "1", "x", "verdadeiro", "aceito", "on"})
_NO = frozenset({"nao", "n", "no", "false", "0", "falso", "off"})


@dataclass
class Report:
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)

    def as_dict(self) -> dict[str, object]:
        return {"read": self.read, "created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "rejected": [{"line": line, "reason": reason} for line, reason in self.rejected]}


def _flag(value: str | None) -> bool | None | str:
    if value is None or not value.strip():
        return None
    word = norm_label(value)
    if word in _YES:
        return True
    if word in _NO:
        return False
    return "unreadable"


def check(row: Row, key: Callable[[str], str]) -> book.ContactData | str:
    """The contact a row describes, or why it is rejected."""
    # A file ``contacts export`` wrote: its apostrophes before formula characters go.
    row = Row(row.line, {k: formula_unescape(v) for k, v in row.values.items()}, row.extra, row.width, row.expected)
    if row.width > row.expected:
        return f"{row.width} fields where the header has {row.expected} (an unquoted delimiter in a value?)"
    raw = row.values.get("email", "").strip().strip("<>").strip()
    if not raw:
        return "no e-mail address"
    if not ADDRESS.fullmatch(raw):
        return f"{raw[:80]!r} is not an e-mail address"
    flags: dict[str, bool | None] = {}
    for column in ("consent", "blocked"):
        value = _flag(row.values.get(column))
        if value == "unreadable":
            return f"{column} {row.values[column][:40]!r} is not yes/no (sim/não, 1/0, true/false)"
        flags[column] = value  # type: ignore[assignment]
    groups = row.values.get("groups")
    return book.ContactData(
        email=key(raw), name=" ".join(row.values.get("name", "").split()) or None,
        phone=" ".join(row.values.get("phone", "").split()) or None,
        groups=tuple(g.strip() for g in re.split(r"[,;|]", groups) if g.strip()) if groups else None,
        consent=flags["consent"], blocked=flags["blocked"])


def run_import(session: Session, rows: Iterable[Row], key: Callable[[str], str], now: datetime,
               overwrite: bool = False) -> Report:
    report = Report()
    first_line: dict[str, int] = {}
    for row in rows:
        report.read += 1
        data = check(row, key)
        if isinstance(data, str):
            report.rejected.append((row.line, data))
            continue
        if data.email in first_line:
            report.rejected.append((row.line, f"duplicate of line {first_line[data.email]} ({data.email})"))
            continue
        first_line[data.email] = row.line
        result = book.upsert(session, data, now, overwrite=overwrite)
        setattr(report, result, getattr(report, result) + 1)
    return report


def rows_of(path: Path) -> Iterable[Row]:
    return read_rows(path, ALIASES, required=("email",))
