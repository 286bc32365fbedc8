"""Where a reply carries a copy of text maild itself sent, and which lines that copy spans.

maild knows the exact text of every mail it sent (the outbox keeps it), so a quoted copy
need not be guessed from attribution lines: it is found by comparison. Lines are compared
normalized — ``>`` quote marks and indentation stripped, whitespace collapsed, ``<address>``
and Outlook's ``<mailto:…>`` link copies dropped, case kept — and consecutive lines are joined before
comparing, so a quote the client re-wrapped at another width still matches.

A *run* is a block of consecutive lines (blank lines inside allowed) whose joined text
occurs in the known text. Short runs are ambiguous (an agent's "Obrigado," may also occur
in the customer's mail that a notification carried), so a run counts only when it is long
enough or every line of it carries a ``>`` mark. The attribution line, Outlook header
block or forward separator just above a run belongs to the copy and goes with it.

Pure: text in, line numbers out.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from maild.outbound.attribution import attribution_length, header_block_top, is_loose_attribution, is_separator

_QUOTE_MARKS = re.compile(r"^(\s*>)+")
# Outlook's "<mailto:…>" / "[mailto:…]" link copies, and "<address>" itself, which HTML
# clients sometimes swallow as an unknown tag: compared without them.
_ADDRESSES = re.compile(r"<mailto:[^>]*>|\[mailto:[^\]]*\]|<[^<>\s]+@[^<>\s]+>", re.I)
_SPACE = re.compile(r"\s+")


def norm(line: str) -> str:
    """A line as compared: no quote marks, no <addresses>, single spaces, case kept."""
    return _SPACE.sub(" ", _ADDRESSES.sub("", _QUOTE_MARKS.sub("", line))).strip()


def stream(texts: Iterable[str]) -> str:
    """The known texts as one searchable string; a newline keeps runs from spanning two mails."""
    return "\n".join(" ".join(n for line in text.replace("\r\n", "\n").split("\n") if (n := norm(line)))
                     for text in texts if text)


def runs(lines: Sequence[str], known: str, min_chars: int, quoted_any_length: bool = True,
         exclude: str = "") -> list[tuple[int, int]]:
    """(first, last) line indexes of each block whose joined text occurs in ``known``.

    ``exclude``: a block whose text also occurs here does not count (text the customer
    wrote or received is no secret, even when an internal mail carried it too).
    """
    if not known:
        return []
    norms = [norm(line) for line in lines]
    found: list[tuple[int, int]] = []
    i = 0
    while i < len(lines):
        at = known.find(norms[i]) if norms[i] else -1
        if at < 0:
            i += 1
            continue
        size, end, j = len(norms[i]), i, i + 1
        while j < len(lines):
            if not norms[j]:
                j += 1
                continue
            piece = f" {norms[j]}"
            # Usually the next line simply continues where the match stands: checked in place,
            # so a long copy costs linear time; otherwise look for the longer text elsewhere.
            if known.startswith(piece, at + size):
                size += len(piece)
            else:
                elsewhere = known.find(known[at:at + size] + piece)
                if elsewhere < 0:
                    break
                at, size = elsewhere, size + len(piece)
            end, j = j, j + 1
        joined = known[at:at + size]
        quoted = quoted_any_length and all(lines[k].lstrip().startswith(">") for k in range(i, end + 1) if norms[k])
        if (len(joined) >= min_chars or quoted) and not (exclude and joined in exclude):
            found.append((_envelope_start(lines, i), end))
            i = end + 1
        else:
            i += 1
    return found


def _envelope_start(lines: Sequence[str], start: int) -> int:
    """Where the copy starting at ``start`` really starts: with its attribution, header block
    and separator lines above it (blank lines between them allowed)."""
    k = start
    while True:
        j = k - 1
        while j >= 0 and not norm(lines[j]):
            j -= 1
        if j < 0:
            return k
        span = next((n for n in (1, 2, 3) if j - n + 1 >= 0 and attribution_length(lines, j - n + 1) == n), 0)
        if span:
            k = j - span + 1
        elif is_separator(lines[j]):
            k = j
        elif (top := header_block_top(lines, j)) is not None:
            k = top
        elif is_loose_attribution(lines[j]):
            k = j
        else:
            return k


def remove(text: str, spans: Sequence[tuple[int, int]]) -> tuple[str, int]:
    """``text`` without the given line spans (blank runs left behind squeezed to one);
    also how many non-blank lines went."""
    lines = text.split("\n")
    gone: set[int] = set()
    for first, last in spans:
        gone.update(range(first, last + 1))
    removed = sum(1 for i in gone if lines[i].strip())
    kept: list[str] = []
    for i, line in enumerate(lines):
        if i in gone or (not line.strip() and kept and not kept[-1].strip()):
            continue
        kept.append(line)
    return "\n".join(kept).strip("\n"), removed
