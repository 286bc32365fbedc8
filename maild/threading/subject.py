"""Subject lines: reply/forward prefixes and the ``[TAG #123]`` ticket tag.

Mail clients stack prefixes in many languages (``RES: AW: Re[2]: [EXTERNAL] ...``);
none of them may break matching, and none is kept in a ticket's subject.
"""
from __future__ import annotations

import re
from functools import lru_cache

_PREFIX = re.compile(
    r"""^\s*(?:
        (?:re|res|aw|sv|vs|antw|odp|ynt|rif|r|fw|fwd|enc|tr|wg|rv|doorst|vl|i)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]
      | \[(?:external|ext|extern|externo|spam|suspected\ spam)\]
      | \((?:external|externo)\)
    )\s*""",
    re.IGNORECASE | re.VERBOSE,
)


def strip_prefixes(subject: str) -> str:
    """Remove every leading reply/forward/[EXTERNAL] marker."""
    previous = None
    while previous != subject:
        previous = subject
        subject = _PREFIX.sub("", subject, count=1)
    return subject.strip()


@lru_cache(maxsize=16)
def _tag_pattern(tag: str) -> re.Pattern[str]:
    return re.compile(r"\[\s*" + re.escape(tag) + r"\s*#\s*(\d{1,12})\s*\]", re.IGNORECASE)


def find_tag(subject: str, tag: str) -> int | None:
    """The ticket number of the first ``[TAG #n]`` in the subject, if any."""
    found = _tag_pattern(tag).search(subject)
    return int(found.group(1)) if found else None


def remove_tag(subject: str, tag: str) -> str:
    return re.sub(r"\s{2,}", " ", _tag_pattern(tag).sub("", subject)).strip()


def ticket_subject(subject: str, tag: str) -> str:
    """The subject a new ticket is filed under: no prefixes, no tag."""
    return strip_prefixes(remove_tag(strip_prefixes(subject), tag))


def tagged(subject: str, tag: str, ticket_id: int) -> str:
    return f"[{tag} #{ticket_id}] {subject}".strip()
