"""What an agent actually wrote: the reply without the quoted history below it.

First, exactly: maild knows the text of the mail being answered (its own notification,
reminder or relayed reply, found by In-Reply-To / References), so the copy of it inside
the reply is found by comparison and removed wherever it sits — ``>``-quoted, indented,
unquoted below an attribution line in any language or none, re-wrapped by the client,
inside a forwarded block, or the text of an HTML blockquote (see :mod:`maild.outbound.copies`).

Then, by the usual signs: the maintained ``email-reply-parser`` (GitHub's algorithm) does
the common work: ``>`` quotes, English "On … wrote:" lines, signatures and "Sent from my …".
A thin fallback then cuts the attribution lines and Outlook header blocks the library does
not know (Portuguese "Em … escreveu:", "-----Mensagem original-----", "De: … Enviado: …",
and the German, French, Spanish and Italian forms; :mod:`maild.outbound.attribution`).

Safety rules: if the agent wrote *between or below* quoted lines of an unknown mail (an
inline reply), the whole text is kept, quotes and all, rather than lose their words; if
cutting would leave nothing of a text that does not start with a quote, the whole text is
kept too. Never when the text is a copy of maild's own mail: a reply whose only new lines
were commands is empty, not "the whole quoted notification".

:func:`remove_internal` is the last guard before relaying: lines of text maild sent only
to agents on the ticket never reach the customer, whatever the cutting missed.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from email_reply_parser import EmailReplyParser

from maild.domain.texts import KnownTexts
from maild.outbound import copies
from maild.outbound.attribution import (
    ATTRIBUTION_VERB as _ATTRIBUTION_VERB,
    DELIMITER as _DELIMITER,
    SEPARATOR as _SEPARATOR,
    attribution_length as _attribution_length,
    header_block_starts,
    is_loose_attribution,
)


@dataclass(frozen=True)
class Reply:
    text: str
    # cut | inline (kept whole) | whole (nothing to cut, or nothing left after cutting) | empty
    # | known (the copy of maild's own mail was removed)
    how: str


# A copy of the answered mail counts from this length (or when every line is ">"-quoted);
# shorter matches are as likely the agent's own "Obrigado," as a quote.
_COPY_MIN_CHARS = 20
# The guard removes runs of internal text from this length: one notification line is longer.
INTERNAL_MIN_CHARS = 30


def latest_reply(body: str, answered: Sequence[str] = ()) -> Reply:
    """The new text of a reply; ``answered``: the text(s) of maild's mail(s) it answers.

    See the module docstring for the rules.
    """
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    spans = copies.runs(text.split("\n"), copies.stream(answered), _COPY_MIN_CHARS) if answered else []
    if not spans:
        return _cut(text)
    rest, _ = copies.remove(text, spans)
    if not rest.strip():
        return Reply("", "empty")  # nothing but the copy of maild's mail: nothing new was written
    reply = _cut(rest)
    if not reply.text.strip() or reply.how == "whole" and not _cut_text(rest).strip():
        return Reply("", "empty")  # what is left is only quote lines and attributions
    return Reply(reply.text, "known")


def remove_internal(text: str, known: KnownTexts) -> tuple[str, int]:
    """``text`` without runs of lines maild sent only to agents (not also seen by the customer);
    and how many lines went."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    spans = copies.runs(lines, copies.stream(known.internal), INTERNAL_MIN_CHARS, quoted_any_length=False,
                        exclude=copies.stream(known.public))
    if not spans:
        return text, 0
    rest, removed = copies.remove("\n".join(lines), spans)
    return (rest + "\n" if rest.strip() else ""), removed


def _cut(text: str) -> Reply:
    """The cutting by the usual signs (no known text to compare with)."""
    whole = text.strip("\n")
    if _inline_reply(text):
        return Reply(whole + "\n", "inline")
    cut = _cut_text(text).strip("\n")
    if not cut.strip():
        if _starts_with_quote(text):
            return Reply("", "empty")  # nothing but quoted history: nothing new was written
        return Reply(whole + "\n", "whole")
    return Reply(cut + "\n", "cut" if cut.strip() != whole.strip() else "whole")


def _cut_text(text: str) -> str:
    return _cut_headers(EmailReplyParser.parse_reply(text))


def _starts_with_quote(text: str) -> bool:
    """Is the first written line a ``>`` quote, an attribution line, a separator or a header block?

    Everything below it is then history, so cutting that leaves nothing is right.
    """
    lines = text.split("\n")
    i = next((n for n, line in enumerate(lines) if line.strip()), None)
    if i is None:
        return True
    return (lines[i].lstrip().startswith(">") or bool(_attribution_length(lines, i)) or bool(_SEPARATOR.match(lines[i]))
            or header_block_starts(lines, i) or is_loose_attribution(lines[i]))


def _cut_headers(text: str) -> str:
    """Everything above the first attribution line or header block the library left in."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if _SEPARATOR.match(line):
            return "\n".join(lines[:i])
        if header_block_starts(lines, i):
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
                header_block_starts(lines, i)):
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
