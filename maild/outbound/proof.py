"""The notice to an agent whose address was used without proof (:mod:`maild.commands.auth`).

It goes to the agent's configured address — never to whoever sent the mail — says what
proof was missing and how to reply so it works, and carries the agent's signed reply
address (for a ticket) or signed control address as Reply-To, so answering it is proof.
It does not repeat the mail's text: a forger must not be able to make the helpdesk mail
an agent words of the forger's choosing.

At most one per agent per ticket (or for the control address) per day, and no more than
``outbound.limits.per_address_day`` of them per agent a day, so forged mail cannot turn
maild into a way to flood an agent's mailbox.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from maild.commands import phrases
from maild.config import Agent
from maild.domain.mail import ParsedMail
from maild.outbound import outbox, policy, templates
from maild.outbound.compose import OutboundMail, address
from maild.outbound.mailer import AutoMailer
from maild.store.models import OutboxRow
from maild.store.locks import hold_until_commit

PROOF = "proof"  # outbox kind
_DAY = timedelta(days=1)


def _sent_today(session: Session, agent: str, ticket_id: int | None, now: datetime) -> tuple[int, int]:
    """(notices to the agent about this ticket, notices to the agent at all) in the last day."""
    since = now - _DAY
    base = select(func.count()).where(OutboxRow.kind == PROOF, OutboxRow.to_addr == agent,
                                      OutboxRow.created_at > since)
    same = base.where(OutboxRow.ticket_id.is_(None) if ticket_id is None else OutboxRow.ticket_id == ticket_id)
    return session.scalar(same) or 0, session.scalar(base) or 0


def queue_notice(mailer: AutoMailer, session: Session, *, agent: Agent, ticket_id: int | None, mail: ParsedMail,
                 reason: str, control: str | None, now: datetime) -> int:
    """Queue the notice if the limits allow; return how many mails were queued (0 or 1)."""
    hold_until_commit(session, f"automatic:{agent.email.lower()}")  # the count is the cluster's
    same, total = _sent_today(session, agent.email, ticket_id, now)
    verdict = policy.may_send_automatic(policy.Purpose.PROOF, agent.email,
                                        policy.RecentMail(on_ticket=same, to_address_day=total), own=mailer.own,
                                        caps=mailer.caps, now=now)
    if not verdict.ok:
        if ticket_id is not None:
            mailer.held(session, ticket_id, f"proof notice to {agent.email}", verdict.reason, mail.message_id, now)
        return 0
    if ticket_id is not None:
        reply = mailer.signer.agent_reply_address(ticket_id, agent.email)
        where = f"[{mailer.tag} #{ticket_id}]"
    else:
        reply = mailer.signer.agent_control_address(control or mailer.address, agent.email)
        where = control or mailer.address
    rendered = mailer.renderer.render(templates.PROOF_MISSING, {
        "helpdesk": mailer.helpdesk_vars,
        "proof": {"agent": agent.email, "where": where, "control": ticket_id is None, "reason": phrases.say(reason, mailer.language),
                  "reply_address": reply, "subject": " ".join(mail.subject.split())[:200]},
    })
    if ticket_id is not None:
        out = mailer.mail(PROOF, "auto-replied", ticket_id, rendered, to=(agent.name, agent.email), now=now,
                          root=mailer.root(session, ticket_id))
    else:
        out = OutboundMail(
            kind=PROOF, automatic=True, ticket_id=None, message_id=mailer.signer.message_id(0),
            envelope_from=mailer.address, recipients=(agent.email,),
            from_header=address(mailer.name, control or mailer.address), to_header=address(agent.name, agent.email),
            subject=rendered.subject, body_text=rendered.body, date=now, reply_to=reply,
            auto_submitted="auto-replied", language=mailer.language)
    outbox.enqueue(session, out, now, now + mailer.lifetime)
    return 1
