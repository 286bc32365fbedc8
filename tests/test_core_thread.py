"""Table tests for ``thread()``: the threading rules over a dict-backed lookup, no database."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pytest

from maild.domain.mail import Address, ParsedMail
from maild.domain.match import Match, MatchRule
from maild.threading.match import ThreadContext, thread
from maild.threading.signing import Signer

SIGNER = Signer(b"k" * 32, "support", "support.example.com")
AGENT = "bruno@support.example.com"
MARIA = "maria@cliente.example"
JOAO = "joao@cliente.example"
STRANGER = "eva@outro.example"


@dataclass
class DictLookup:
    """What the store answers, as dicts: message-id → ticket, merges, requesters, Cc, To/Cc of messages."""

    messages: dict[str, int] = field(default_factory=dict)
    merged_into: dict[int, int] = field(default_factory=dict)
    requesters: dict[int, str] = field(default_factory=dict)
    participants: dict[int, set[str]] = field(default_factory=dict)
    addressed: dict[str, set[str]] = field(default_factory=dict)  # message-id → its To/Cc

    def ticket_of_message(self, message_id: str) -> int | None:
        return self.messages.get(message_id)

    def ticket_of_any(self, message_ids: Sequence[str]) -> int | None:
        return next((self.messages[m] for m in message_ids if m in self.messages), None)

    def resolve_ticket(self, ticket_id: int) -> int | None:
        while ticket_id in self.merged_into:
            ticket_id = self.merged_into[ticket_id]
        return ticket_id if ticket_id in self.requesters else None

    def is_participant(self, ticket_id: int, email: str) -> bool:
        return email == self.requesters.get(ticket_id) or email in self.participants.get(ticket_id, set())

    def requester_of(self, ticket_id: int) -> str | None:
        return self.requesters.get(ticket_id)

    def addressed_in(self, ticket_id: int, email: str, message_ids: Sequence[str]) -> bool:
        return any(self.messages.get(m) == ticket_id and email in self.addressed.get(m, set())
                   for m in message_ids)


def store() -> DictLookup:
    return DictLookup(
        messages={"<t1-first@cliente.example>": 1, "<t1-out@support.example.com>": 1,
                  "<t2-first@cliente.example>": 2, "<old@cliente.example>": 3},
        merged_into={3: 2},
        requesters={1: MARIA, 2: JOAO, 3: JOAO},
        participants={1: {"ana@cliente.example"}},
        addressed={"<t1-out@support.example.com>": {MARIA, "carla@cliente.example"}},
    )


def mail(sender: str = MARIA, *, subject: str = "Pergunta", message_id: str = "<new@cliente.example>",
         to: tuple[str, ...] = ("support@support.example.com",), cc: tuple[str, ...] = (),
         in_reply_to: tuple[str, ...] = (), references: tuple[str, ...] = ()) -> ParsedMail:
    return ParsedMail(
        message_id=message_id, synthetic_message_id=False, subject=subject, from_=Address("", sender),
        reply_to=(), to=tuple(Address("", a) for a in to), cc=tuple(Address("", a) for a in cc),
        delivered_to=(), in_reply_to=in_reply_to, references=references, date=None, headers={},
        body_text="", body_html=None, attachments=())


def context(m: ParsedMail, *, agent: bool = False, machine: bool = False) -> ThreadContext:
    sender = m.from_.email if m.from_ else ""
    return ThreadContext(mail=m, sender=sender, sender_is_agent=agent, lookup=store(), signer=SIGNER,
                         subject_tag="Support", machine=machine, agent_address=agent,
                         agent=sender if agent else "")


REPLY_1 = SIGNER.reply_address(1)
CASES: list[tuple[str, ThreadContext, Match]] = [
    ("a stored Message-ID is a duplicate",
     context(mail(message_id="<t1-first@cliente.example>")),
     Match(MatchRule.DUPLICATE, 1, detail="<t1-first@cliente.example>")),
    ("nothing named: a new ticket",
     context(mail()), Match(MatchRule.NEW, None)),
    ("subject text alone never threads",
     context(mail(subject="Re: Pergunta")), Match(MatchRule.NEW, None)),
    ("the requester on the signed reply address",
     context(mail(to=(REPLY_1,))), Match(MatchRule.REPLY_ADDRESS, 1, detail=REPLY_1)),
    ("a forged signature is no reply address",
     context(mail(to=(REPLY_1[:-len("@support.example.com") - 1] + "x@support.example.com",))),
     Match(MatchRule.NEW, None)),
    ("a stranger on the reply address opens a ticket that refers to it",
     context(mail(STRANGER, to=(REPLY_1,))),
     Match(MatchRule.NEW, None, refers_to=1, detail="reply address of #1 from a non-participant")),
    ("a Cc participant on In-Reply-To",
     context(mail("ana@cliente.example", in_reply_to=("<t1-out@support.example.com>",))),
     Match(MatchRule.HEADERS, 1)),
    ("someone the ticket's own mail addressed joins",
     context(mail("carla@cliente.example", in_reply_to=("<t1-out@support.example.com>",))),
     Match(MatchRule.HEADERS, 1, joins="addressed by a message of the ticket")),
    ("a reply-all that reaches the requester joins",
     context(mail(STRANGER, cc=(MARIA,), references=("<t1-first@cliente.example>",))),
     Match(MatchRule.HEADERS, 1, joins="wrote to the requester too")),
    ("a stranger on References opens a linked ticket",
     context(mail(STRANGER, references=("<t1-first@cliente.example>",))),
     Match(MatchRule.NEW, None, refers_to=1, detail="In-Reply-To/References of #1 from a non-participant")),
    ("a bounce is recorded where it points, no membership check",
     context(mail("mailer-daemon@outro.example", in_reply_to=("<t1-out@support.example.com>",)), machine=True),
     Match(MatchRule.HEADERS, 1)),
    ("In-Reply-To to a merged ticket follows the merge",
     context(mail(JOAO, in_reply_to=("<old@cliente.example>",))), Match(MatchRule.HEADERS, 2)),
    ("a signed Message-ID maild sent, not stored",
     context(mail(MARIA, in_reply_to=(SIGNER.message_id(1),))),
     Match(MatchRule.HEADERS, 1, detail="signed message-id")),
    ("the subject tag from the requester",
     context(mail(subject="Re: [Support #1] Pergunta")), Match(MatchRule.SUBJECT_TAG, 1)),
    ("the subject tag from an agent",
     context(mail(AGENT, subject="[Support #2] x"), agent=True), Match(MatchRule.SUBJECT_TAG, 2)),
    ("the subject tag from a stranger does not hijack",
     context(mail(STRANGER, subject="[Support #1] x")),
     Match(MatchRule.NEW, None, refers_to=1, detail="tag #1 from a non-participant")),
    ("a tag naming no ticket",
     context(mail(subject="[Support #99] x")), Match(MatchRule.NEW, None, detail="tag #99 names no ticket")),
    ("the duplicate rule comes before the reply address",
     context(mail(message_id="<t2-first@cliente.example>", to=(REPLY_1,))),
     Match(MatchRule.DUPLICATE, 2, detail="<t2-first@cliente.example>")),
    ("the reply address comes before the headers",
     context(mail(JOAO, to=(SIGNER.reply_address(2),), in_reply_to=("<t1-first@cliente.example>",))),
     Match(MatchRule.REPLY_ADDRESS, 2, detail=SIGNER.reply_address(2))),
    ("a proven agent's own signed reply address",
     context(mail(AGENT, to=(SIGNER.agent_reply_address(1, AGENT),)), agent=True),
     Match(MatchRule.REPLY_ADDRESS, 1, detail=SIGNER.agent_reply_address(1, AGENT))),
]


@pytest.mark.parametrize(("ctx", "expected"), [(c, e) for _, c, e in CASES], ids=[name for name, _, _ in CASES])
def test_thread(ctx: ThreadContext, expected: Match) -> None:
    assert thread(ctx) == expected


def test_an_agent_reply_address_counts_only_for_that_agent() -> None:
    address = SIGNER.agent_reply_address(1, AGENT)
    other = context(mail(STRANGER, to=(address,)))
    assert thread(other) == Match(MatchRule.NEW, None)
    assert thread(replace(other, agent="carlos@support.example.com")) == Match(MatchRule.NEW, None)
