"""What the interpret stage (:mod:`maild.commands`) makes of a mail's commands.

A :class:`Plan` for one ticket (changes, what the mail is, one feedback line per command)
and the :class:`Interpretation` of a whole mail, as the decide stage reads them.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from maild.domain import ops


class Mode(enum.StrEnum):
    """What an agent's mail with commands is."""

    REPLY = "reply"  # relayed to the customer
    NOTE = "note"  # internal note (/note)
    LOG = "log"  # an interaction recorded (/log)
    DRAFT = "draft"  # saved as a draft (/draft)
    SEND = "send"  # release the saved draft (/send)


REPLY, NOTE, LOG, DRAFT, SEND = Mode.REPLY, Mode.NOTE, Mode.LOG, Mode.DRAFT, Mode.SEND


@dataclass(frozen=True)
class Plan:
    status: str | None = None  # the status the commands ask for (None: unchanged)
    ops: tuple[ops.Op, ...] = ()
    applied: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    mode: Mode = Mode.REPLY  # reply | note | log | draft | send
    note_text: str = ""  # text written on the /note or /log line itself
    canned: str | None = None
    cc: tuple[str, ...] = ()
    draft: tuple[int, str] | None = None  # for /send: the draft to release
    requester: tuple[str, str] | None = None  # /new, /on-behalf: (address, name) of the customer

    @property
    def empty(self) -> bool:
        return not (self.status or self.ops or self.applied or self.rejected or self.mode != Mode.REPLY
                    or self.canned or self.cc)


@dataclass(frozen=True)
class Interpretation:
    plan: Plan
    subject: str  # the mail's subject without the keywords the sender used
    text: str | None = None  # agent mail with command lines: the body after them
