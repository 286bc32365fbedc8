"""Folding text so that matching ignores case and accents ("Finalizado" = "finalizado",
"#URGÊNCIA" = "#urgencia"), keeping a map back to the original characters so a matched
keyword can be cut out of the text as it was written."""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_SEPARATORS = re.compile(r"[\s_\-]+")


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    decomposed = unicodedata.normalize("NFKD", ch)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def fold(text: str) -> str:
    """Lower-case without accents: ``"Aguardando Clíente"`` → ``"aguardando cliente"``."""
    if text.isascii():
        return text.lower()
    return "".join(_fold_char(ch) for ch in text)


def fold_with_map(text: str) -> tuple[str, list[int]]:
    """The folded text and, for each folded character, the index of its original character."""
    if text.isascii():
        return text.lower(), list(range(len(text)))
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        folded = _fold_char(ch)
        out.append(folded)
        index.extend([i] * len(folded))
    return "".join(out), index


def name_key(text: str) -> str:
    """A name as typed in a command: folded, ``_``/``-``/spaces all one space."""
    return _SEPARATORS.sub(" ", fold(text)).strip()
