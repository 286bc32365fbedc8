"""Subject keywords and bracketed assignments → commands.

Admins map keywords to actions in YAML (``"#urgente": {tags: [urgente], priority: high,
who: anyone}``); agents may also write ``[status=closed] [tag=+vip,-spam] [assign=ana]``
in a subject. Matching ignores case and accents (``#URGÊNCIA`` matches ``#urgencia``);
a keyword is a whole token (``#urgente`` does not match ``#urgentemente``).

What a keyword does is turned into the same :class:`~maild.commands.grammar.Command`
values as ``/command`` lines, so one interpreter checks and applies both. A keyword the
sender may use is cut out of the subject the ticket is filed under; a customer's
agents-only keyword is left alone (it is just text to them).

The table is compiled once at start. For customer mail the scan runs only when some
keyword is marked ``who: anyone`` (one regex search over the folded subject).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from maild.commands.grammar import Command
from maild.commands.settings import KeywordAction
from maild.commands.text import fold, fold_with_map

_ASSIGNMENT = re.compile(
    r"\[\s*(status|tags?|assign|priority|type|subtype|category|next|visible)\s*=\s*([^\[\]]*?)\s*\]", re.I)
_VERB = {"tags": "tag"}

CUSTOMER, AGENT, MANAGER = "customer", "agent", "manager"


@dataclass(frozen=True)
class SubjectScan:
    subject: str  # the subject without the keywords the sender used
    commands: tuple[Command, ...] = ()
    rejected: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.commands or self.rejected)


def _commands(keyword: str, action: KeywordAction) -> tuple[Command, ...]:
    line = f"subject keyword {keyword}"
    out = []
    if action.status:
        out.append(Command("status", action.status, line))
    if action.tags:
        out.append(Command("tag", " ".join(t if t[:1] in "+-" else f"+{t}" for t in action.tags), line))
    for verb in ("priority", "assign", "type", "subtype", "category"):
        value = getattr(action, verb)
        if value:
            out.append(Command(verb, value, line))
    return tuple(out)


def _pattern(words: list[str]) -> re.Pattern[str] | None:
    if not words:
        return None
    parts = []
    for word in sorted(words, key=len, reverse=True):
        parts.append(r"(?<!\w)" + re.escape(word) + r"(?!\w)")  # a whole token: no letters glued on
    return re.compile("|".join(parts))


class KeywordTable:
    def __init__(self, keywords: Mapping[str, KeywordAction]) -> None:
        self._entries: dict[str, tuple[str, KeywordAction, tuple[Command, ...]]] = {
            fold(word): (word, action, _commands(word, action)) for word, action in keywords.items()}
        self._all = _pattern(list(self._entries))
        self._public = _pattern([k for k, (_, a, _c) in self._entries.items() if a.who == "anyone"])

    @property
    def has_public(self) -> bool:
        return self._public is not None

    def scan(self, subject: str, role: str) -> SubjectScan:
        """The commands a subject carries for a sender of this role (customer|agent|manager)."""
        pattern = self._public if role == CUSTOMER else self._all
        spans: list[tuple[int, int]] = []
        commands: list[Command] = []
        rejected: list[str] = []
        if pattern is not None:
            folded, index = fold_with_map(subject)
            for found in pattern.finditer(folded):
                word, action, produced = self._entries[found.group(0)]
                spans.append((index[found.start()], index[found.end() - 1] + 1))
                if action.who == "managers" and role != MANAGER:
                    rejected.append(f"subject keyword {word}: permission: only managers may use it")
                else:
                    commands.extend(produced)
        if role != CUSTOMER:
            for found in _ASSIGNMENT.finditer(subject):
                spans.append(found.span())
                key = found.group(1).lower()
                value = found.group(2).replace(",", " ") if key.startswith("tag") else found.group(2)
                commands.append(Command(_VERB.get(key, key), value.strip(), found.group(0)))
        if not spans:
            return SubjectScan(subject)
        spans.sort()
        kept, last = [], 0
        for start, end in spans:
            if start >= last:
                kept.append(subject[last:start])
                last = end
        kept.append(subject[last:])
        return SubjectScan(" ".join("".join(kept).split()), tuple(commands), tuple(rejected))
