"""What an agent actually wrote: the reply without the quoted history below it.

The maintained ``email-reply-parser`` (GitHub's algorithm) does the common work: ``>``
quotes, English "On … wrote:" lines, signatures and "Sent from my …". A thin fallback then
cuts the attribution lines and Outlook header blocks the library does not know (Portuguese
"Em … escreveu:", "-----Mensagem original-----", "De: … Enviado: …", and the German, French,
Spanish and Italian forms).

Two safety rules: if the agent wrote *between or below* quoted lines (an inline reply), the
whole text is kept, quotes and all, rather than lose their words; and if cutting would
leave nothing, the whole text is kept too.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from email_reply_parser import EmailReplyParser

_ATTRIBUTION_START = re.compile(r"^\s*(on|em|am|le|el|il|op|på|den|w dniu)\b", re.I)
_ATTRIBUTION_VERB = re.compile(
    r"\b(wrote|escreveu|schrieb|a\s+écrit|escribió|ha\s+scritto|schreef|skrev|napisał|kirjoitti|írta)\b", re.I)
_DELIMITER = re.compile(r"^\s*(--|__)\s*$")
_SEPARATOR = re.compile(
    r"^\s*(-{2,}\s*(original message|mensagem original|mensaje original|ursprüngliche nachricht"
    r"|message d'origine|messaggio originale|oorspronkelijk bericht|forwarded message|mensagem encaminhada)\s*-{2,}"
    r"|_{20,})\s*$", re.I)
_HEADER_LINE = re.compile(
    r"^\s*\*?(from|de|von|van|da|från|sent|enviado|enviada em|enviada|gesendet|envoyé|inviato|date|data|datum"
    r"|verzonden|to|para|an|aan|à|a|cc|subject|assunto|asunto|betreff|objet|oggetto|onderwerp)\s*\*?\s*:", re.I)
_FROM_LINE = re.compile(r"^\s*\*?(from|de|von|van|da|från)\s*\*?\s*:", re.I)


@dataclass(frozen=True)
class Reply:
    text: str
    how: str  # cut | inline (kept whole) | whole (nothing to cut, or nothing left after cutting) | empty


def latest_reply(body: str) -> Reply:
    """The new text of a reply; see the module docstring for the rules."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    whole = text.strip("\n")
    if _inline_reply(text):
        return Reply(whole + "\n", "inline")
    visible = EmailReplyParser.parse_reply(text)
    cut = _cut_headers(visible).strip("\n")
    if not cut.strip():
        if all(line.strip().startswith(">") for line in text.split("\n") if line.strip()):
            return Reply("", "empty")  # nothing but quotes: nothing new was written
        return Reply(whole + "\n", "whole")
    return Reply(cut + "\n", "cut" if cut.strip() != whole.strip() else "whole")


def _cut_headers(text: str) -> str:
    """Everything above the first attribution line or header block the library left in."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if _SEPARATOR.match(line):
            return "\n".join(lines[:i])
        if _FROM_LINE.match(line) and sum(bool(_HEADER_LINE.match(x)) for x in lines[i:i + 5]) >= 2:
            return "\n".join(lines[:i])
        if _attribution_length(lines, i):
            return "\n".join(lines[:i])
    # An attribution line the patterns do not know, left just above the cut quote.
    while lines and not lines[-1].strip():
        lines.pop()
    if lines and len(lines) > 1 and lines[-1].rstrip().endswith(":") and re.search(r"\d", lines[-1]) \
            and ("@" in lines[-1] or _ATTRIBUTION_VERB.search(lines[-1])):
        return "\n".join(lines[:-1])
    return text


def _attribution_length(lines: list[str], i: int) -> int:
    """How many lines an "On <date>, <name> wrote:" attribution starting at line i spans (0: none)."""
    if not _ATTRIBUTION_START.match(lines[i]):
        return 0
    for end in range(i, min(i + 3, len(lines))):
        chunk = " ".join(x.strip() for x in lines[i:end + 1])
        if chunk.endswith(":") and _ATTRIBUTION_VERB.search(chunk) and len(chunk) < 400:
            return end - i + 1
    return 0


def _inline_reply(text: str) -> bool:
    """True when unquoted text follows a ``>`` quote before any separator or header block."""
    seen_quote = False
    lines = text.split("\n")
    skip = 0
    for i, line in enumerate(lines):
        if skip:
            skip -= 1
            continue
        if _SEPARATOR.match(line) or _DELIMITER.match(line) or (
                _FROM_LINE.match(line) and sum(bool(_HEADER_LINE.match(x)) for x in lines[i:i + 5]) >= 2):
            return False
        stripped = line.strip()
        if stripped.startswith(">"):
            seen_quote = True
            continue
        if not seen_quote or not stripped:
            continue
        if (span := _attribution_length(lines, i)) or stripped.endswith(":") and _next_is_quote(lines, i):
            skip = max(span - 1, 0)
            continue
        if lines[i - 1].strip().startswith(">") and i + 1 < len(lines) and lines[i + 1].strip().startswith(">"):
            continue  # a quoted line the client wrapped without its ">"
        return not _only_signature_left(lines[i:])
    return False


def _next_is_quote(lines: list[str], i: int) -> bool:
    rest = [x for x in lines[i + 1:i + 4] if x.strip()]
    return bool(rest) and rest[0].strip().startswith(">")


def _only_signature_left(rest: list[str]) -> bool:
    """A short tail with no further quotes is a signature under a bottom quote, not an answer?

    No: below-the-quote text is exactly what bottom-posters write. Only the classic
    signature delimiter and "Sent from my …" count as nothing new.
    """
    content = [x.strip() for x in rest if x.strip()]
    if not content:
        return True
    return bool(re.match(r"^(sent from my|enviado do meu|get outlook for|obter o outlook)", content[0], re.I))
