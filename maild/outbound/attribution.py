"""The lines mail clients put above a quoted mail, in the languages maild's users write.

Attribution lines ("On … wrote:", "Em … escreveu:"), Outlook header blocks ("De: …
Enviado: … Para: … Assunto: …") and separators ("-----Mensagem original-----",
"---------- Forwarded message ---------", a row of underscores). Shared by the reply
cutter (:mod:`maild.outbound.quotes`), which cuts below the first one, and the copy finder
(:mod:`maild.outbound.copies`), which removes the one above a copy of maild's own mail.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

ATTRIBUTION_START = re.compile(r"^\s*(on|em|am|le|el|il|op|på|den|w dniu)\b", re.I)
ATTRIBUTION_VERB = re.compile(
    r"\b(wrote|escreveu|schrieb|a\s+écrit|escribió|ha\s+scritto|schreef|skrev|napisał|kirjoitti|írta)\b", re.I)
DELIMITER = re.compile(r"^\s*(--|__)\s*$")
SEPARATOR = re.compile(
    r"^\s*(-{2,}\s*(original message|mensagem original|mensaje original|ursprüngliche nachricht"
    r"|message d'origine|messaggio originale|oorspronkelijk bericht|forwarded message|mensagem encaminhada)\s*-{2,}"
    r"|_{20,})\s*$", re.I)
HEADER_LINE = re.compile(
    r"^\s*\*?(from|de|von|van|da|från|sent|enviado|enviada em|enviada|gesendet|envoyé|inviato|date|data|datum"
    r"|verzonden|to|para|an|aan|à|a|cc|subject|assunto|asunto|betreff|objet|oggetto|onderwerp)\s*\*?\s*:", re.I)
FROM_LINE = re.compile(r"^\s*\*?(from|de|von|van|da|från)\s*\*?\s*:", re.I)


def attribution_length(lines: Sequence[str], i: int) -> int:
    """How many lines an "On <date>, <name> wrote:" attribution starting at line i spans (0: none)."""
    if not ATTRIBUTION_START.match(lines[i]):
        return 0
    for end in range(i, min(i + 3, len(lines))):
        chunk = " ".join(x.strip() for x in lines[i:end + 1])
        if chunk.endswith(":") and ATTRIBUTION_VERB.search(chunk) and len(chunk) < 400:
            return end - i + 1
    return 0


def header_block_starts(lines: Sequence[str], i: int) -> bool:
    """Does a "From: … Sent: …" header block (two header lines or more) start at line i?"""
    return bool(FROM_LINE.match(lines[i])) and sum(bool(HEADER_LINE.match(x)) for x in lines[i:i + 5]) >= 2


def header_block_top(lines: Sequence[str], last: int) -> int | None:
    """The first line of a header block whose last line is ``last`` (None: no such block).

    Two header lines or more, one of them naming the sender; in any order, as Thunderbird's
    forward puts Subject first.
    """
    top = last
    while top >= 0 and HEADER_LINE.match(lines[top]):
        top -= 1
    top += 1
    block = lines[top:last + 1]
    return top if len(block) >= 2 and any(FROM_LINE.match(x) for x in block) else None


def is_separator(line: str) -> bool:
    return bool(SEPARATOR.match(line))


def is_loose_attribution(line: str) -> bool:
    """An attribution line in a form the patterns do not know: it ends with a colon and names
    an address or says "wrote" ("пн, 2 нояб. 2026 г. в 10:00, Helpdesk <support@…>:")."""
    stripped = line.strip()
    return stripped.endswith(":") and len(stripped) < 400 and ("@" in stripped or bool(ATTRIBUTION_VERB.search(stripped)))
