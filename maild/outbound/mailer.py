"""Building and enqueuing maild's own mails, the same way for every producer of them.

The per-mail planner (acknowledgements, relayed replies, command feedback) and the trigger
notifier (notifications, reminders, digests) derive the same things from the config once
— sender identity, subject tag, caps and their windows, how long a mail may wait — and
build mails alike: one thread per ticket (every mail about it names the ticket's root, its
first stored message, first in References, and answers it unless it answers a later one:
mail clients group a ticket's mails for agents as for customers), a signed Message-ID and Reply-To (for an agent, the agent's own signed
reply address, so answering it proves who wrote: :mod:`maild.commands.auth`), the ticket tag kept in the subject
even when an admin's template drops it, an ``out`` message on the ticket for what the
customer receives, and a ``mail_held`` history event for what the rules hold back.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from maild.config import Config
from maild.domain.events import EventSpec
from maild.outbound import outbox, policy, templates
from maild.outbound.compose import OutboundMail, address, references_for
from maild.store import history
from maild.store.apply import StoredAttachment, record_attachments
from maild.store.locks import hold_until_commit
from maild.store.repo import messages
from maild.threading.signing import Signer
from maild.threading.subject import find_tag
from maild.logmask import mask_text

log = logging.getLogger("maild.outbound")

# The customer's last message on a ticket: what maild's mail to the customer replies to.
LAST_IN = (select(messages.c.message_id, messages.c.references).where(
    messages.c.ticket_id == bindparam("tid"), messages.c.direction == "in")
    .order_by(messages.c.id.desc()).limit(1))
# A ticket's first stored message: the root of the thread every mail about the ticket joins.
_ROOT = (select(messages.c.message_id).where(messages.c.ticket_id == bindparam("tid"))
         .order_by(messages.c.id).limit(1))
_NEW_MESSAGE = insert(messages).returning(messages.c.id)


def _no_cap(cap: str) -> None:
    """No metrics to tell (commands run outside the daemon, tests)."""


class AutoMailer:
    """Built once from the Config; subclasses decide who gets which mail."""

    def __init__(self, config: Config, signer: Signer, renderer: templates.Renderer | None = None,
                 own_addresses: frozenset[str] | None = None, on_cap: Callable[[str], None] | None = None) -> None:
        helpdesk, out = config.helpdesk, config.outbound
        self.labels = config.status_labels()
        # Told the cap's name each time a cap holds a mail back (the metrics' caps-hit counter).
        self.on_cap: Callable[[str], None] = on_cap or _no_cap
        self.renderer = renderer or templates.Renderer(config.templates_path(), helpdesk.language, self.labels)
        self.signer = signer
        self.own = own_addresses if own_addresses is not None else frozenset(
            [helpdesk.address, *helpdesk.extra_addresses])
        self.address = helpdesk.address
        self.name = out.from_name or helpdesk.name
        self.tag = helpdesk.subject_tag
        self.language = helpdesk.language
        limits = out.limits
        self.caps = policy.Caps((limits.per_ticket.count, limits.per_ticket.minutes),
                                (limits.per_address.count, limits.per_address.minutes),
                                (limits.per_address_day.count, limits.per_address_day.minutes),
                                per_address_burst=(limits.per_address_burst.count, limits.per_address_burst.minutes),
                                feedback=(limits.feedback.count, limits.feedback.minutes),
                                feedback_burst=(limits.feedback_burst.count, limits.feedback_burst.minutes))
        self.windows = outbox.Windows(limits.per_ticket.minutes, limits.per_address.minutes,
                                      limits.per_address_day.minutes, limits.per_address_burst.minutes,
                                      limits.feedback.minutes, limits.feedback_burst.minutes)
        self.lifetime = timedelta(hours=out.retry.give_up_hours)
        self.helpdesk_vars = {"name": helpdesk.name, "address": helpdesk.address}
        # Any address of an agent → the agent's configured address, which signatures name.
        self.agent_of = {address: agent.email for agent in config.agents for address in agent.addresses}

    def reply_address(self, ticket_id: int, recipient: str) -> str:
        """Where a reply to maild's mail about a ticket goes: the agent's signed address for
        an agent, the ticket's signed address for anyone else."""
        agent = self.agent_of.get(recipient.lower())
        if agent is not None:
            return self.signer.agent_reply_address(ticket_id, agent)
        return self.signer.reply_address(ticket_id)

    def root(self, session: Session, ticket_id: int) -> str:
        """The Message-ID every mail about this ticket threads under (its first message)."""
        return session.connection().execute(_ROOT, {"tid": ticket_id}).scalar() or ""

    def mail(self, kind: str, auto_submitted: str, ticket_id: int | None, rendered: templates.Rendered, *,
             to: tuple[str, str], now: datetime, cc: tuple[str, ...] = (), automatic: bool = True,
             from_name: str | None = None, in_reply_to: str = "", references: str = "",
             attachments: tuple[Any, ...] = (), root: str = "") -> OutboundMail:
        """``root``: the ticket's thread root (:meth:`root`); the mail answers ``in_reply_to``,
        else the root, and its References start with the root."""
        subject = rendered.subject
        reply_to = ""
        if root:
            in_reply_to = in_reply_to or root
            references = references_for(f"{root} {references}", in_reply_to)
        if ticket_id is not None:
            if find_tag(subject, self.tag) != ticket_id:  # an overridden template must not break threading
                subject = f"[{self.tag} #{ticket_id}] {subject}".strip()
            reply_to = address(self.name, self.reply_address(ticket_id, to[1]))
        extra = {"attachments": attachments} if attachments else {}
        return OutboundMail(
            kind=kind, automatic=automatic, ticket_id=ticket_id, message_id=self.signer.message_id(ticket_id or 0),
            envelope_from=self.address, recipients=(to[1], *cc),
            from_header=address(from_name or self.name, self.address), to_header=address(*to),
            cc_header=", ".join(cc), reply_to=reply_to, subject=subject, body_text=rendered.body, date=now,
            in_reply_to=in_reply_to, references=references, auto_submitted=auto_submitted, language=self.language,
            **extra)

    def enqueue_with_message(self, session: Session, out: OutboundMail, now: datetime, *, author: str,
                             from_name: str, files: Sequence[StoredAttachment] = ()) -> None:
        """The outbox row, and the ``out`` message the customer receives, on the ticket
        (with the stored ``files`` the mail carries, so the ticket keeps them)."""
        outbox.enqueue(session, out, now, now + self.lifetime)
        message_id = session.connection().execute(_NEW_MESSAGE, {
            "ticket_id": out.ticket_id, "direction": "out", "message_id": out.message_id,
            "in_reply_to": out.in_reply_to, "references": out.references, "from_addr": self.address,
            "from_name": from_name[:200], "to_addrs": out.recipients[0], "cc_addrs": out.cc_header,
            "subject": out.subject, "body_text": out.body_text, "body_html": None, "kind": out.kind,
            "channel": "outbox", "author": author, "raw_id": None, "sent_at": None, "created_at": now,
        }).scalar_one()
        if files:
            record_attachments(session, message_id, files)

    def gate(self, session: Session, purpose: policy.Purpose, to: str, ticket_id: int | None, now: datetime, *,
             answering: policy.Answering | None = None, recent: policy.RecentMail | None = None) -> policy.Verdict:
        """:func:`maild.outbound.policy.may_send_automatic` with what the outbox says about ``to``
        (read only when the address itself may be mailed at all; ``recent``: already read)."""
        first = policy.may_send_automatic(purpose, to, policy.RecentMail(), own=self.own, caps=self.caps, now=now,
                                           answering=answering)
        if not first.ok:
            return first
        if recent is None and purpose is policy.Purpose.AGENT:
            # The per-agent window's row lock (notify/agentcap.py) already makes two nodes
            # counting one agent take turns; a lock of its own here would be held across the
            # rest of each batch and cross with the customers' locks below.
            recent = outbox.agent_recent(session, to, ticket_id, self.windows, now)
        elif recent is None:
            # Another node counting mail to the same address waits until this transaction
            # ends, then counts what it queued: the caps hold for the cluster, not per node.
            hold_until_commit(session, f"automatic:{to.lower()}")
            recent = outbox.recent(session, to, ticket_id, self.windows, now)
        verdict = policy.may_send_automatic(purpose, to, recent, own=self.own, caps=self.caps, now=now,
                                            answering=answering)
        if verdict.cap:
            self.on_cap(verdict.cap)
        return verdict

    def held(self, session: Session, ticket_id: int, what: str, reason: str, cause: str | None,
             now: datetime) -> int:
        """Record that the rules held a mail back (and why); counts as no mail queued."""
        log.info("%s no %s on ticket %d: %s", cause or "scheduler", mask_text(what), ticket_id, mask_text(reason))
        history.record(session, ticket_id, [EventSpec("mail_held", None, what, reason)], at=now, actor="maild",
                       message_id=cause)
        return 0
