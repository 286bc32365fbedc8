"""The grammar of command lines, and of the values they take.

An agent's reply may start with command lines, one per line, before the text::

    /status aguardando cliente
    /tag +vip -spam
    /next +3d

    Hello Maria, ...

Leading blank lines and blank lines between commands are skipped; the first line that is
not a ``/command`` starts the text (``/etc/hosts`` is text: a command is ``/word`` followed
by a space or the end of the line). ``parse_when`` reads ``/next`` dates.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

_COMMAND = re.compile(r"^\s*/([A-Za-z][\w-]*)(?:[ \t]+(.*?))?\s*$")
_RELATIVE = re.compile(r"^\+\s*(\d{1,5})\s*(m|min|h|d|w)$", re.I)
_ABSOLUTE = (
    (re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2})[:h](\d{2}))?$"), "ymd"),
    (re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2})[:h](\d{2}))?$"), "dmy"),
)
_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Command:
    verb: str  # lower-case, without the slash
    args: str
    line: str  # as written, for feedback


def split_commands(body: str) -> tuple[tuple[Command, ...], str]:
    """The command lines at the top of ``body`` and the text after them."""
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        found = _COMMAND.match(line)
        if not found:
            break
        commands.append(Command(found.group(1).lower(), (found.group(2) or "").strip(), line.strip()))
        i += 1
    if not commands:
        return (), body
    return tuple(commands), "\n".join(lines[i:])


def starts_with_command(body: str) -> bool:
    """Cheap test for the hot path: does the first non-blank line look like ``/word``?"""
    stripped = body.lstrip()
    return stripped.startswith("/") and bool(_COMMAND.match(stripped.split("\n", 1)[0]))


def parse_when(text: str, now: datetime, tz: ZoneInfo) -> tuple[datetime | None, str]:
    """A ``/next`` value: ``2026-12-01 14:00`` (in the helpdesk's timezone), ``01/12/2026 14:00``,
    ``2026-12-01`` (09:00), or ``+90m``, ``+2h``, ``+3d``, ``+1w`` from now. UTC out."""
    value = " ".join(text.split())
    relative = _RELATIVE.match(value.replace(" ", ""))
    if relative:
        amount, unit = int(relative.group(1)), _UNITS[relative.group(2).lower()]
        return now + timedelta(**{unit: amount}), ""
    for pattern, order in _ABSOLUTE:
        found = pattern.match(value)
        if not found:
            continue
        a, b, c, hour, minute = found.groups()
        year, month, day = (int(a), int(b), int(c)) if order == "ymd" else (int(c), int(b), int(a))
        try:
            local = datetime(year, month, day, int(hour) if hour else 9, int(minute) if minute else 0, tzinfo=tz)
        except ValueError as exc:
            return None, f"bad date {text!r}: {exc}"
        # A wall-clock time that does not exist (DST gap) or exists twice: round trip via UTC.
        return local.astimezone(timezone.utc), ""
    return None, f"bad date {text!r}: use YYYY-MM-DD HH:MM ({tz.key}) or +90m, +2h, +3d, +1w"


_YES = {"yes", "y", "true", "on", "1", "sim", "s"}
_NO = {"no", "n", "false", "off", "0", "nao", "não"}


def parse_bool(text: str) -> bool | None:
    value = text.strip().lower()
    return True if value in _YES else False if value in _NO else None


_ADDRESS = re.compile(r"^<?([^@\s<>]+@[^@\s<>]+\.[^@\s<>]+)>?$")


def parse_address(text: str) -> str | None:
    found = _ADDRESS.match(text.strip())
    return found.group(1).lower() if found else None


def ticket_number(text: str) -> int | None:
    found = re.fullmatch(r"#?(\d{1,12})", text.strip())
    return int(found.group(1)) if found else None
