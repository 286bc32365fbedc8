"""From a classified, identified, threaded mail to one Decision value.

Pure: everything it needs (the matched ticket's state, the clock, the policy) is passed
in, and the Decision says what the store must do in one transaction.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from maild.domain import ops as command_ops
from maild.domain.commands import DRAFT, LOG, NOTE, REPLY, SEND, Interpretation, Plan
from maild.domain.decision import FEEDBACK, RELAY, Action, Bounced, Decision, EventSpec, Outgoing, Policy, TicketState
from maild.domain.events import AGENT_REPLIED, CUSTOMER_REPLIED, TICKET_CREATED, Change, TriggerEvent, change_events
from maild.domain.mail import Classification, Kind, ParsedMail
from maild.domain.match import Match, MatchRule
from maild.domain.outcome import Direction
from maild.domain.sender import Sender
from maild.domain.texts import KnownTexts
from maild.outbound.quotes import latest_reply, remove_internal
from maild.threading.subject import ticket_subject


def decide(
    mail: ParsedMail,
    kind: Classification,
    sender: Sender,
    match: Match,
    ticket: TicketState | None,
    blocked: bool,
    policy: Policy,
    now: datetime,
    bounced: Bounced | None = None,
    interp: Interpretation | None = None,
    forged: str = "",
    known: KnownTexts = KnownTexts(),
) -> Decision:
    """``interp``: the commands the mail carries (:mod:`maild.commands.stage`), if any;
    ``forged``: why a mail from an agent's address was not trusted (it is customer mail then);
    ``known``: for agent mail on a ticket, the texts of maild's mails there (:mod:`maild.store.sent`).

    A mail kept without a ticket says why in its reason, rules included (the raw mail row is
    all an admin has of it: ``maild quarantine list --ignored``)."""
    decision = _decide(mail, kind, sender, match, ticket, blocked, policy, now, bounced, interp, forged, known)
    if decision.action is Action.IGNORE:
        return replace(decision, reason=f"{decision.reason}; rules: {' '.join(decision.rules)}")
    if decision.action in (Action.CREATE, Action.APPEND):
        return replace(decision, triggers=triggers(decision, kind, sender))
    return decision


def triggers(decision: Decision, kind: Classification, sender: Sender) -> tuple[TriggerEvent, ...]:
    """The events trigger rules hear of a written mail, in order (a person reached for an
    earlier one is not mailed again for a later one):

    - ``ticket_created``: the mail opened a ticket;
    - ``customer_replied``: a customer's own words on an existing ticket (not an
      auto-reply, a bounce or a complaint recorded there);
    - ``agent_replied``: an agent's reply relayed to the customer;
    - ``assigned`` / ``status_changed``: the net change of the mail's history lines and
      commands (:func:`maild.domain.events.change_events`).

    Whether anyone is told is not decided here: :func:`maild.notify.engine.deliveries`.
    """
    found: list[TriggerEvent] = []
    if decision.action is Action.CREATE:
        found.append(TriggerEvent(TICKET_CREATED))
    else:
        if not sender.is_agent and decision.direction == Direction.IN and kind.kind in (Kind.NORMAL, Kind.LIST):
            found.append(TriggerEvent(CUSTOMER_REPLIED))
        if any(o.what is RELAY for o in decision.outgoing):
            found.append(TriggerEvent(AGENT_REPLIED))
    changes: list[Change] = [(spec.kind, spec.old, spec.new) for spec in decision.events]
    # Commands (/assign, /take, [assign=…]) carry their changes as ops.
    changes += [("assignee", None, str(op.value)) for op in decision.ops
                if isinstance(op, command_ops.SetField) and op.field == "assignee" and op.value]
    return (*found, *change_events(changes, status=decision.action is Action.APPEND))


def _decide(
    mail: ParsedMail,
    kind: Classification,
    sender: Sender,
    match: Match,
    ticket: TicketState | None,
    blocked: bool,
    policy: Policy,
    now: datetime,
    bounced: Bounced | None = None,
    interp: Interpretation | None = None,
    forged: str = "",
    known: KnownTexts = KnownTexts(),
) -> Decision:
    rules = (f"class:{kind.kind.value}", *kind.reasons, f"thread:{match.rule}")
    if forged:
        rules = (*rules, "agent:forged")
    if match.rule == MatchRule.DUPLICATE:
        return Decision(Action.DUPLICATE, match.ticket_id, "message-id already stored", rules)
    if kind.kind is Kind.LOOP:
        return Decision(Action.IGNORE, None, "mail sent by maild itself (loop)", rules)
    if blocked:
        return Decision(Action.IGNORE, match.ticket_id, f"sender {sender.email} is blocked", rules)
    if kind.kind is Kind.BOUNCE:
        return _bounce(kind, match, bounced, rules)
    if kind.kind is Kind.REPORT:
        return _report(kind, bounced, rules)
    if kind.kind is Kind.AUTO_REPLY:
        if match.ticket_id is None:
            return Decision(Action.IGNORE, None, "auto-reply opens no ticket", rules)
        return Decision(Action.APPEND, match.ticket_id, "auto-reply recorded", rules,
                        events=(EventSpec("auto_reply"),))
    flags = (EventSpec("flagged", detail=f"From names an agent but {forged}: processed as customer mail, "
                                         "no command was run"),) if forged else ()
    if ticket is None:
        return _create(mail, sender, match, policy, rules, interp=interp, flags=flags)
    decision = _append(sender, match, ticket, policy, now, rules, mail, interp, flags, known)
    if match.joins and decision.action is Action.APPEND and not sender.is_agent:
        # On the thread by the thread's own say (see maild.threading.match): a Cc participant
        # from now on, so the agent's answer reaches them as well as the requester.
        decision = replace(decision, rules=(*decision.rules, f"joins:{match.joins}"),
                           ops=(*decision.ops, command_ops.AddParticipant(sender.email, "cc")))
    return decision


def _bounce(kind: Classification, match: Match, bounced: Bounced | None, rules: tuple[str, ...]) -> Decision:
    """A bounce is a note on the ticket of the mail it returns; it never reopens or notifies.

    The report's inner Message-ID names the outbox row (most reliable), else the bounce's
    own threading headers name the ticket. A permanent failure marks the addresses
    undeliverable, so no automatic mail goes there for a while.
    """
    ticket_id = bounced.ticket_id if bounced and bounced.ticket_id is not None else match.ticket_id
    if ticket_id is None:
        return Decision(Action.IGNORE, None, "bounce for no known ticket", rules)
    addresses = kind.bounced_addresses or ((bounced.to_addr,) if bounced else ())
    undeliverable = addresses if kind.permanent else ()
    detail = f"{'permanent' if kind.permanent else 'temporary'} failure for {', '.join(addresses) or 'unknown address'}"
    if bounced:
        detail += f" (outbox #{bounced.outbox_id})"
    return Decision(Action.APPEND, ticket_id, "bounce recorded", (*rules, f"bounce:{'outbox' if bounced else 'thread'}"),
                    direction=Direction.NOTE, events=(EventSpec("bounce", detail=detail),),
                    undeliverable=undeliverable, bounced=bounced)


def _report(kind: Classification, bounced: Bounced | None, rules: tuple[str, ...]) -> Decision:
    """A report or a robot's notice opens no ticket and is never answered.

    An abuse/feedback report (ARF) about a mail maild sent is a note on that mail's ticket,
    and the complaining address gets no more automatic mail: a complaint is an unsubscribe.
    """
    arf = any(r.startswith("report:arf") for r in kind.reasons)
    if not (arf and bounced and bounced.ticket_id is not None):
        return Decision(Action.IGNORE, None, "report or robot notice: kept, no ticket", rules)
    detail = f"complaint (feedback report) from {bounced.to_addr} about outbox #{bounced.outbox_id}; " \
             "no more automatic mail to it"
    return Decision(Action.APPEND, bounced.ticket_id, "complaint recorded", (*rules, "report:outbox"),
                    direction=Direction.NOTE, events=(EventSpec("complaint", detail=detail),),
                    complaints=(bounced.to_addr,), bounced=bounced)


def _create(mail: ParsedMail, sender: Sender, match: Match, policy: Policy,
            rules: tuple[str, ...], refers_to: int | None = None, interp: Interpretation | None = None,
            flags: tuple[EventSpec, ...] = ()) -> Decision:
    plan = interp.plan if interp else None
    if plan is not None:
        rules = (*rules, "commands:subject")
    events = [EventSpec("created", new="new", detail=f"rules: {' '.join(rules)}"), *flags]
    refers = refers_to or match.refers_to
    if refers is not None:
        events.append(EventSpec("linked", new=str(refers), detail=match.detail or "refers to"))
    if not sender.is_known:
        events.append(EventSpec("flagged", detail="no sender address: cannot be answered"))
    subject = ticket_subject(interp.subject if interp else mail.subject, policy.subject_tag) or "(no subject)"
    status = "new"
    outgoing = []
    rejected = list(plan.rejected) if plan is not None and sender.is_agent else []
    if plan is not None and sender.is_agent and (plan.mode != REPLY or plan.cc or plan.canned):
        rejected.append("/note, /log, /draft, /send, /cc and /canned work in a reply on a ticket, "
                        "not in a mail that opens one")
    if rejected and plan is not None:  # all or nothing: the ticket is opened, no command applied
        outgoing.append(Outgoing(FEEDBACK, applied=plan.applied, rejected=tuple(rejected)))
        events.append(EventSpec("held", detail=f"{len(rejected)} command(s) failed: no command of this mail "
                                               "was applied"))
        plan = None
    requester = plan.requester if plan is not None else None
    if requester is not None:
        events.append(EventSpec("on_behalf", new=requester[0], detail=f"opened by {sender.email} on behalf of "
                                                                      "the customer"))
    if plan is not None and plan.status and plan.status != "new":
        status = plan.status
        events.append(EventSpec("status", old="new", new=status, detail="subject keyword"))
    body = interp.text if interp is not None and interp.text is not None and sender.is_agent else None
    return Decision(Action.CREATE, None, "new ticket", rules, subject=subject, status=status,
                    refers_to=refers, events=tuple(events), outgoing=tuple(outgoing),
                    ops=plan.ops if plan else (), body=body, requester=requester)


def _append(sender: Sender, match: Match, ticket: TicketState, policy: Policy, now: datetime,
            rules: tuple[str, ...], mail: ParsedMail, interp: Interpretation | None = None,
            flags: tuple[EventSpec, ...] = (), known: KnownTexts = KnownTexts()) -> Decision:
    if sender.is_agent:
        return _agent_mail(mail, sender, ticket, rules, policy, interp, known)
    plan = interp.plan if interp else None
    wanted = plan.status if plan is not None and plan.status else None  # a keyword marked anyone
    ops = plan.ops if plan is not None else ()
    if plan is not None:
        rules = (*rules, "commands:subject")
    if ticket.status == "closed":
        window = timedelta(days=policy.reopen_days)
        if ticket.closed_at is not None and now - ticket.closed_at > window:
            linked = Match(MatchRule.NEW, None, refers_to=ticket.id, detail="reply to a ticket closed too long ago")
            return _create(mail, sender, linked, policy, (*rules, "reopen:too-old"), interp=interp, flags=flags)
        reopened = wanted or policy.on_customer_mail or policy.reopen_status
        return Decision(Action.APPEND, ticket.id, "customer reply reopens", (*rules, "reopen"),
                        status=reopened, ops=ops,
                        events=(EventSpec("status", old="closed", new=reopened, detail="reopened by customer mail"),
                                *flags))
    status = wanted or policy.on_customer_mail
    if status and ticket.status != status:
        return Decision(Action.APPEND, ticket.id, "customer reply", rules, status=status, ops=ops,
                        events=(EventSpec("status", old=ticket.status, new=status,
                                          detail="subject keyword" if wanted else "customer replied"), *flags))
    return Decision(Action.APPEND, ticket.id, "customer reply", rules, ops=ops, events=flags)


def _agent_mail(mail: ParsedMail, sender: Sender, ticket: TicketState, rules: tuple[str, ...], policy: Policy,
                interp: Interpretation | None, known: KnownTexts = KnownTexts()) -> Decision:
    """An agent's mail on a ticket: its commands (:mod:`maild.commands`), then what the text is.

    * ``/note`` / ``/log``: the text is an internal note, never sent;
    * ``/draft``: the text is saved as a pending reply, not sent; ``/send`` sends the saved
      draft (plus any new text) later;
    * otherwise the text (quoted history cut, see :mod:`maild.outbound.quotes`) and/or a
      ``/canned`` answer is relayed to the customer from the helpdesk address, and the
      ticket moves to ``workflow.transitions.agent_reply`` unless a command set a status;
      the first agent who replies to an unassigned ticket takes it
      (``workflow.assign_on_reply``). A reply whose only new lines were commands (the rest
      a copy of maild's mail) relays nothing and moves no status: it was a command mail.
    * on a ticket hidden from the customer (``/visible no``, before or in this mail) the
      reply is kept as an internal note and the agent is told; ``/visible yes`` sends it.

    The copy of the maild mail being answered (``known.answered``) is cut exactly. Before
    relaying, any run of text maild sent only to agents (``known.internal``) that is still
    there is removed and the history says so; if nothing is left, the reply is held and
    the agent is told.

    All or nothing: when anything of the mail fails (a rejected command, an empty or held
    reply) no command is applied, no status moves and nothing is sent or saved; the mail is
    kept on the ticket, and the agent gets one feedback mail saying what failed and what
    would have been done (:func:`all_or_nothing`).
    """
    plan = interp.plan if interp else Plan()
    text = interp.text if interp is not None and interp.text is not None else mail.body_text
    if interp is not None:
        rules = (*rules, "commands")
    rejected = list(plan.rejected)
    events: list[EventSpec] = []
    ops: list[command_ops.Op] = list(plan.ops)
    outgoing: list[Outgoing] = []
    notes: list[str] = []
    direction, body, reason, sent = Direction.AGENT, None, "agent mail with commands", False
    status = plan.status
    relay_text: str | None = None
    extras = [name for name, given in (("/cc", plan.cc), ("/canned", plan.canned)) if given]
    if plan.mode in (NOTE, LOG):
        direction, reason = Direction.NOTE, "internal note by agent" if plan.mode == NOTE else "interaction recorded"
        written = "\n".join(([plan.note_text] if plan.note_text else []) + [text.strip("\n")]).strip("\n") + "\n"
        body = latest_reply(written, known.answered).text
        rules = (*rules, f"agent:{plan.mode}")
        events.append(EventSpec("note", detail="internal note, not sent") if plan.mode == NOTE else
                      EventSpec("interaction", detail="an interaction elsewhere (phone, chat), recorded"))
        if extras:
            rejected.append(f"{' and '.join(extras)}: nothing is sent with /{plan.mode}")
    elif plan.mode == DRAFT:
        draft = latest_reply(text, known.answered).text
        if extras:
            rejected.append(f"{' and '.join(extras)}: give them with /send, not with /draft")
        if not draft.strip():
            rejected.append("/draft: the draft is empty; nothing was saved")
        else:
            direction, body, reason = Direction.DRAFT, draft, "reply saved as a draft"
            rules = (*rules, "agent:draft")
            ops.append(command_ops.DraftPending(True))
            events.append(EventSpec("draft", detail="reply saved as a draft, not sent (/send sends it)"))
            if status is None and policy.on_draft:
                status = policy.on_draft
    elif plan.mode == SEND and plan.draft is not None:
        more = latest_reply(text, known.answered).text if text.strip() else ""
        relay_text = plan.draft[1].rstrip("\n") + ("\n\n" + more if more.strip() else "\n")
        ops += [command_ops.ReleaseDraft(plan.draft[0]), command_ops.DraftPending(False)]
    else:
        reply = latest_reply(text, known.answered)
        if reply.text.strip() or plan.canned:
            relay_text = reply.text if reply.text.strip() else ""
            rules = (*rules, f"agent:reply:{reply.how}")
        elif interp is None or plan.empty:
            rejected.append("the reply is empty; nothing was sent")
            rules = (*rules, "agent:empty")
            reason = "empty agent reply"
    if relay_text is not None and not rejected and known.internal:
        relay_text, removed = remove_internal(relay_text, known)
        if removed and not relay_text.strip() and not plan.canned:
            relay_text = None
            rejected.append("the reply held only text of maild's internal mails to agents; "
                            "nothing was sent to the customer")
            rules, reason = (*rules, "agent:held:internal"), "agent reply held: only internal text"
            events.append(EventSpec("privacy", detail=f"reply held: its {removed} line(s) were all text of maild's "
                                                      "internal mails to agents; nothing was relayed"))
        elif removed:
            rules = (*rules, "agent:internal-removed")
            events.append(EventSpec("privacy", detail=f"{removed} line(s) of maild's internal mails to agents "
                                                      "removed from the reply before relaying"))
    if rejected:
        return all_or_nothing(ticket, rules, plan, rejected, relay_text is not None, events, body)
    if relay_text is not None and not _visible_after(ticket, plan):
        direction, body, reason = Direction.NOTE, relay_text, "agent reply kept internal: the ticket is hidden"
        rules = (*rules, "agent:hidden")
        events.append(EventSpec("note", detail="the ticket is hidden from the customer (/visible no): "
                                               "the reply was kept as an internal note, not sent"))
        notes.append("the ticket is hidden from the customer (/visible no): your reply was kept as an internal "
                     "note and NOT sent; write /visible yes above a reply to send it")
        relay_text = None
    if relay_text is not None:
        outgoing.append(Outgoing(RELAY, text=relay_text, cc=plan.cc, canned=plan.canned,
                                 draft=plan.draft[0] if plan.mode == SEND and plan.draft else None))
        sent = True
        reason = "agent reply relayed" if plan.mode != SEND else "draft sent"
        events.append(EventSpec("reply", detail="agent reply relayed to the customer" +
                                (" (the saved draft)" if plan.mode == SEND else "") +
                                (f" with the standard answer {plan.canned}" if plan.canned else "")))
        if plan.cc:
            events.append(EventSpec("cc", new=", ".join(plan.cc), detail="a copy of this reply"))
        if status is None and policy.on_agent_reply:
            status = policy.on_agent_reply
        if policy.assign_on_reply and ticket.assignee is None and not _sets_assignee(plan):
            # The first agent who answers an unassigned ticket becomes its "Responsável".
            ops.append(command_ops.SetField("assignee", sender.agent.email if sender.agent else sender.email))
            rules = (*rules, "assign:on-reply")
    if status is not None and status != ticket.status:
        events.append(EventSpec("status", old=ticket.status, new=status,
                                detail="by command" if status == plan.status else
                                "draft saved" if plan.mode == DRAFT else "agent replied"))
    else:
        status = None
    if notes:
        outgoing.append(Outgoing(FEEDBACK, applied=plan.applied, sent=sent, notes=tuple(notes)))
    return Decision(Action.APPEND, ticket.id, reason, rules, direction=direction, status=status,
                    events=tuple(events), outgoing=tuple(outgoing), body=body, ops=tuple(ops))


def all_or_nothing(ticket: TicketState, rules: tuple[str, ...], plan: Plan, rejected: list[str], had_reply: bool,
                   events: list[EventSpec], note: str | None) -> Decision:
    """A mail of which something failed: kept on the ticket as the agent's mail (or their
    note), nothing else done. The feedback lists what failed and what would have been done."""
    would = list(plan.applied)
    if had_reply:
        would.append("your reply would have been sent to the customer")
    kept = [e for e in events if e.kind in ("privacy", "note", "interaction")]
    kept.append(EventSpec("held", detail=f"{len(rejected)} line(s) failed: no command of this mail was applied "
                                         "and nothing was sent"))
    internal = plan.mode in (NOTE, LOG)
    return Decision(Action.APPEND, ticket.id, "agent mail held: something failed, nothing was applied",
                    (*rules, "agent:held"), direction=Direction.NOTE if internal else Direction.AGENT,
                    events=tuple(kept),
                    outgoing=(Outgoing(FEEDBACK, applied=tuple(would), rejected=tuple(rejected)),),
                    body=note if internal else None)


def _visible_after(ticket: TicketState, plan: Plan) -> bool:
    visible = ticket.visible
    for op in plan.ops:
        if isinstance(op, command_ops.SetField) and op.field == "visible":
            visible = bool(op.value)
    return visible


def _sets_assignee(plan: Plan) -> bool:
    return any(isinstance(op, command_ops.SetField) and op.field == "assignee" for op in plan.ops)
