"""One mail from raw bytes to a committed decision.

keep raw → parse → classify → identify (+ agent proof) → thread → interpret (commands) →
decide → apply, all but the first two inside one transaction. Mail to the control address
leaves the ticket path after identify (:mod:`maild.commands.mailbox`). ``process``
either commits and returns an Outcome, or raises and has
committed nothing (the channel then asks for a retry).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from maild.commands.apply import apply_ops
from maild.commands.auth import AgentAuthenticator, AuthVerdict
from maild.commands.mailbox import ControlMailbox
from maild.commands.queries import CommandReads
from maild.commands.stage import Interpreter
from maild.commands.workflow import Workflow
from maild.config import Config
from maild.contacts import tombstone
from maild.contacts.normalize import AddressKey
from maild.domain.decision import Action, Bounced, Decision, Policy
from maild.domain.events import EventSpec
from maild.domain.texts import KnownTexts
from maild.domain.mail import RETRY, Classification, Kind, ParsedMail, QuarantineError
from maild.domain.match import Match, MatchRule
from maild.domain.sender import Sender
from maild.domain.outcome import DELETED
from maild.forms.match import FormMatcher, as_customer_mail, attach
from maild.forms.store import apply_form
from maild.ingest.attempts import AttemptLog, Attempts
from maild.ingest.classify import classify
from maild.ingest.decide import decide
from maild.ingest.identify import identify
from maild.ingest.parse import parse
from maild.logmask import mask, mask_text
from maild.outbound import outbox, verp
from maild.outbound.compose import LOOP_HEADER
from maild.outbound.plan import Planner
from maild.store import repo, sent
from maild.store import history
from maild.store.apply import (StoredAttachment, adopt_orphans, await_parents, finish_raw, history_of, link_ticket,
                               record_raw, write_message, write_ticket)
from maild.store.blobs import ATTACHMENT, RAW, BlobRef, Blobs
from maild.store.db import Database
from maild.store.errors import ErrorClass, classify_db_error
from maild.threading.match import ThreadContext, thread
from maild.threading.repeat import REPEAT_MINUTES
from maild.threading.signing import Signer

log = logging.getLogger("maild.processor")

__all__ = ["LOOP_HEADER", "RETRY", "MailFailed", "Outcome", "Processor"]


class MailFailed(Exception):
    """This mail failed and was kept for a retry (``process``: the channel asks again)."""


@dataclass(frozen=True)
class Outcome:
    status: str  # created | appended | duplicate | ignored | quarantined | retry
    ticket_id: int | None
    message_id: str | None
    reason: str = ""
    queued: int = 0  # outbound mails this mail put in the outbox
    rules: tuple[str, ...] = ()  # the rules that fired (classification, threading, …), as in the history


def log_outcome(outcome: Outcome, channel: str, digest: str, elapsed_ms: int) -> None:
    """The one line per mail: what became of it, where it came from, which rules fired and how
    long its batch took (from its start to the commit). With ``logging.format: json`` the same
    values are fields of their own."""
    rules = ",".join(outcome.rules) or "-"
    label = outcome.message_id or f"sha256:{digest[:12]}"
    fields = {"mail": label, "channel": channel, "outcome": outcome.status, "ticket": outcome.ticket_id,
              "rules": rules, "ms": elapsed_ms}
    log.info("mail %s channel=%s outcome=%s ticket=%s rules=%s ms=%d%s", label, channel, outcome.status,
             outcome.ticket_id or "-", rules, elapsed_ms, f" ({mask_text(outcome.reason)})" if outcome.reason else "",
             extra=fields)


@dataclass(frozen=True)
class _Prepared:
    raw: bytes
    channel: str
    digest: str
    mail: ParsedMail | None
    failure: str
    attachments: list[StoredAttachment]
    blobs: list[BlobRef]
    proof: AuthVerdict | None = None  # for mail From an agent's address: is it really the agent?


class Processor:
    def __init__(self, config: Config, db: Database, blobs: Blobs, attempts: Attempts | None = None,
                 on_cap: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.db = db
        self.blobs = blobs
        self.attempts: Attempts = attempts or AttemptLog(config.path(config.spool.path) / "attempts")
        self.max_attempts = config.spool.max_attempts
        helpdesk = config.helpdesk
        self.signer = Signer(config.signing_secret(), helpdesk.local_part, helpdesk.domain)
        self.agents = config.agent_by_address()
        self.own_addresses = frozenset([helpdesk.address, *helpdesk.extra_addresses])
        self.loop_value = helpdesk.address
        out = config.outbound
        transitions = config.workflow.transitions
        self.policy = Policy(subject_tag=helpdesk.subject_tag, reopen_days=config.workflow.reopen_days,
                             undeliverable_days=out.undeliverable_days, on_customer_mail=transitions.customer_mail,
                             on_agent_reply=transitions.agent_reply, reopen_status=transitions.reopen,
                             assign_on_reply=config.workflow.assign_on_reply,
                             on_draft=transitions.draft if transitions.draft in
                             {s.name for s in config.workflow.statuses} else None)
        self.max_attachment = config.storage.max_attachment_bytes
        self.planner = Planner(config, self.signer, self.own_addresses, on_cap)
        # Commands (maild/commands/): built once, so ordinary mail pays nothing for them.
        workflow = Workflow.from_config(config)
        self.interpreter = Interpreter(workflow, config.keywords, helpdesk.timezone, self.planner.canned_names())
        self.agent_auth = AgentAuthenticator(config.security.agent_auth, self.signer, helpdesk.control_address)
        if not self.agent_auth.enabled:
            log.warning("security.agent_auth.require_proof is false: mail From an agent's address runs commands "
                        "without proof")
        self.control = ControlMailbox(config, workflow, self.planner) if helpdesk.control_address else None
        self.address_key = AddressKey(config.contacts)
        self.secret = self.signer.secret
        self.forgotten_rule = config.contacts.forgotten
        self.forms = FormMatcher(config.forms, self.address_key)
        # Called after a commit that queued outbound mail (the composition root points it
        # at the sender's wake-up), so replies leave at once instead of at the next poll.
        self.on_outbound: Callable[[], None] = lambda: None

    def process(self, raw: bytes, channel: str, now: datetime) -> Outcome:
        outcome = self.process_batch([(raw, channel)], now)[0]
        if outcome.status == RETRY:
            raise MailFailed(outcome.reason)
        return outcome

    def process_batch(self, items: Sequence[tuple[bytes, str]], now: datetime) -> list[Outcome]:
        """Process several mails in one transaction (one commit, one fsync), each in its
        own savepoint, so one mail's failure never takes another's work with it.

        Returns one Outcome per item, in order. An item whose own failure could not even
        be quarantined comes back as ``retry`` (nothing of it committed; the channel keeps
        it) until it has failed ``spool.max_attempts`` times, then it is quarantined.
        Raises only for a database that is unwell (:func:`classify_db_error` says
        TRANSIENT) and nothing was committed: the caller keeps every item for a retry.
        """
        started = time.monotonic()
        prepared = [self._prepare(raw, channel) for raw, channel in items]
        # The rows about to be committed name these blobs: make them durable first.
        self.blobs.flush(ref for item in prepared for ref in item.blobs)
        outcomes: list[Outcome | None] = [None] * len(prepared)
        failed: dict[int, BaseException] = {}
        busy = 0  # rounds lost to the database itself; each round lost to a mail sets one aside
        conflicts: dict[int, int] = {}  # per mail: rounds it lost to a concurrent writer's row
        while True:
            todo = [i for i, outcome in enumerate(outcomes) if outcome is None and i not in failed]
            if not todo:
                break
            current: int | None = None
            try:
                with self.db.write() as session:
                    for i in todo:
                        current = i
                        # On its third conflict a conflict that persists is this mail's own.
                        outcomes[i] = self._apply_one(session, prepared[i], now, last_try=conflicts.get(i, 0) >= 2)
                        if outcomes[i] is None:
                            # The mails after it wait for the next round: a reply in the same
                            # batch must not overtake the mail it answers.
                            conflicts[i] = conflicts.get(i, 0) + 1
                            break
                    current = None
            except Exception as exc:
                for i in todo:
                    outcomes[i] = None  # rolled back
                if classify_db_error(exc) is ErrorClass.TRANSIENT or current is None:
                    busy += 1
                    if busy == 3:
                        raise
                    log.warning("database busy, retrying %d mails: %s", len(todo), _reason(exc))
                    continue
                # This mail's failure escaped its own quarantine: set it aside, commit the rest.
                failed[current] = exc
        for i, error in failed.items():
            outcomes[i] = self._failed_again(prepared[i], now, error)
        done = [outcome for outcome in outcomes if outcome is not None]
        if len(done) != len(outcomes):
            raise RuntimeError("some mails could not be committed")
        if any(outcome.queued for outcome in done):
            self.on_outbound()
        elapsed_ms = round((time.monotonic() - started) * 1000)
        for outcome, mail in zip(done, prepared):
            if outcome.status != RETRY:
                self.attempts.clear(mail.digest)
            log_outcome(outcome, mail.channel, mail.digest, elapsed_ms)
        return done

    def _failed_again(self, item: _Prepared, now: datetime, exc: BaseException) -> Outcome:
        """Count one more failure of this mail; at ``max_attempts`` quarantine it with the
        reason, in a transaction of its own holding only what cannot fail (no header)."""
        reason = f"processing failed: {_reason(exc)}"
        count = self.attempts.failed(item.digest, reason)
        label = item.mail.message_id if item.mail else f"sha256:{item.digest[:12]}"
        if count < self.max_attempts:
            log.error("%s failed (attempt %d of %d), kept for a retry", label, count, self.max_attempts, exc_info=exc)
            return Outcome(RETRY, None, item.mail.message_id if item.mail else None, reason)
        return self.give_up(item.raw, item.channel, now, count, reason, item.digest,
                            item.mail.message_id if item.mail else None)

    def give_up(self, raw: bytes, channel: str, now: datetime, count: int, reason: str,
                digest: str | None = None, message_id: str | None = None) -> Outcome:
        """Quarantine a mail that failed ``count`` times without trying it again, in a
        transaction holding only what cannot fail (no header): the raw bytes and the reason."""
        digest = digest or self.blobs.put_raw(raw)
        log.error("%s failed %d times; quarantined: %s", message_id or f"sha256:{digest[:12]}", count, reason)
        reason = f"failed {count} times; last: {reason}"
        with self.db.write() as session:
            if repo.raw_seen(session, digest) is None:
                record_raw(session, digest=digest, size=len(raw), channel=channel, now=now,
                           status="quarantined", reason=reason, message_id=None)
        self.attempts.clear(digest)
        return Outcome("quarantined", None, message_id, reason)

    def reprocess(self, items: Sequence[tuple[str, str]], now: datetime) -> list[Outcome]:
        """Run quarantined mails (sha256, channel) through the pipeline again, e.g. after
        a parser fix: each one's quarantine row is replaced by what the pipeline decides."""
        outcomes = []
        for digest, channel in items:
            item = self._prepare(self.blobs.get_raw(digest), channel)
            self.blobs.flush(item.blobs)
            with self.db.write() as session:
                repo.drop_quarantined(session, digest)
                outcome = self._apply_one(session, item, now, last_try=True)
            outcomes.append(outcome or Outcome("quarantined", None, None, "retry later"))
        if any(outcome.queued for outcome in outcomes):
            self.on_outbound()
        return outcomes

    def _apply_one(self, session: Session, item: _Prepared, now: datetime, last_try: bool) -> Outcome | None:
        """One mail in its own savepoint; None means "try again in a new transaction"."""
        try:
            with session.begin_nested():
                return self._decide_and_apply(session, item, now)
        except IntegrityError as exc:
            # A concurrent writer stored the same contact or message first: the next
            # round sees its row and threads onto it. Still failing on the last round,
            # the conflict is this mail's own.
            return self._quarantine(session, item, now, exc) if last_try else None
        except Exception as exc:
            if classify_db_error(exc) is ErrorClass.TRANSIENT:
                raise  # the database itself is unwell: the whole batch is retried later
            # A bug, or data the database refuses (a value too long, a program limit), in
            # this one mail: keep it quarantined with the reason and let the rest of the
            # batch through, rather than stalling the spool behind it forever.
            return self._quarantine(session, item, now, exc)

    def _quarantine(self, session: Session, item: _Prepared, now: datetime, exc: Exception) -> Outcome:
        message_id = item.mail.message_id if item.mail else None
        log.error("%s could not be processed; quarantined", message_id or f"sha256:{item.digest[:12]}",
                  exc_info=exc)
        reason = f"processing failed: {_reason(exc)}"
        with session.begin_nested():
            if repo.raw_seen(session, item.digest) is None:
                record_raw(session, digest=item.digest, size=len(item.raw), channel=item.channel, now=now,
                           status="quarantined", reason=reason, message_id=message_id)
        return Outcome("quarantined", None, message_id, reason)

    def _prepare(self, raw: bytes, channel: str) -> _Prepared:
        """Everything that needs no database: keep raw, parse, store attachments.

        Blobs are written unsynced; ``process_batch`` flushes them all at once before
        committing (the channel still holds the mail until then).
        """
        digest = self.blobs.put_raw(raw, sync=False)  # kept before parsing can fail
        mail, failure = self._parse(raw)
        attachments = self._store_attachments(mail) if mail else []
        refs = [(RAW, digest), *((ATTACHMENT, a.sha256) for a in attachments)]
        return _Prepared(raw, channel, digest, mail, failure, attachments, refs, self._proof(raw, mail))

    def _proof(self, raw: bytes, mail: ParsedMail | None) -> AuthVerdict | None:
        """The agent proof, decided here, outside the transaction: DKIM may ask the DNS.
        None: the sender is no agent (or the mail did not parse)."""
        if mail is None:
            return None
        try:
            sender = identify(mail, self.agents)
            if sender.agent is None:
                return None
            recipients = [a.email for a in (*mail.to, *mail.cc)] + list(mail.delivered_to)
            return self.agent_auth.check(raw, sender.agent.email, recipients)
        except Exception as exc:  # noqa: BLE001 - fail closed; the transaction quarantines a real bug
            log.exception("%s agent proof could not be checked", mail.message_id)
            return AuthVerdict(False, f"the proof could not be checked ({type(exc).__name__})")

    def _parse(self, raw: bytes) -> tuple[ParsedMail | None, str]:
        try:
            return parse(raw), ""
        except QuarantineError as exc:
            return None, str(exc)
        except Exception as exc:  # a parser bug must not lose the mail
            log.exception("parser failed")
            return None, f"parser error: {type(exc).__name__}: {exc}"

    def _store_attachments(self, mail: ParsedMail) -> list[StoredAttachment]:
        stored = []
        for att in mail.attachments:
            if len(att.payload) > self.max_attachment:
                continue  # the raw mail still holds it
            stored.append(StoredAttachment(att.filename, att.content_type, len(att.payload),
                                           self.blobs.put_attachment(att.payload, sync=False), att.inline))
        return stored

    def _decide_and_apply(self, session: Session, item: _Prepared, now: datetime) -> Outcome:
        raw, digest, mail, failure, channel = item.raw, item.digest, item.mail, item.failure, item.channel
        seen = repo.raw_seen(session, digest)
        if seen is not None:
            return Outcome("duplicate", seen[0], seen[1], "identical bytes already received")
        raw_id = record_raw(session, digest=digest, size=len(raw), channel=channel, now=now, status="quarantined",
                            reason=failure, message_id=mail.message_id if mail else None)
        if mail is None:
            return Outcome("quarantined", None, None, failure)

        kind = classify(mail, self.own_addresses, self.loop_value)
        returned = verp.returned_row(mail.delivered_to, self.signer)  # sent to a signed bounce address
        if returned is not None:
            kind = verp.as_returned(kind)
        sender = identify(mail, self.agents)
        forged, claimed = "", sender.agent
        proof = item.proof
        why = proof.reason if proof is not None else "not checked"
        if claimed is not None and (proof is None or not proof.ok):
            forged = f"it carries no proof ({why})"
            log.warning("%s From %s names an agent but %s: customer mail, no command run",
                        mail.message_id, mask(sender.email), mask_text(forged))
            sender = Sender(sender.email, sender.name)
        if self.control is not None and self.control.addressed(mail):
            done = self.control.process(session, mail=mail, kind=kind, sender=sender, forged=forged, raw_id=raw_id,
                                        now=now)
            queued = done.queued
            if forged and claimed is not None and kind.kind is Kind.NORMAL:
                queued += self.planner.proof_notice(session, agent=claimed, ticket_id=None, mail=mail,
                                                    reason=why, now=now)
            finish_raw(session, raw_id, "processed" if done.status == "control" else "ignored", done.reason, None)
            return Outcome(done.status, None, mail.message_id, done.reason, queued, ("control",))
        sender = self.address_key.customer(sender)
        # A website form: the customer is the form's e-mail field, and each form is a new request.
        form = self.forms.recognise(mail, kind, sender)
        if form is not None:
            kind, sender = as_customer_mail(kind, form), form.sender
        lookup = repo.SessionLookup(session)
        # What this customer wrote lately: the same mail again joins its ticket (a responder
        # answering every mail with one fixed text would otherwise open a ticket per exchange).
        recent = (repo.recent_from(session, sender.email, now - timedelta(minutes=REPEAT_MINUTES))
                  if form is None and kind.kind is Kind.NORMAL and not sender.is_agent else [])
        match = thread(ThreadContext(mail, sender.email, sender.is_agent, lookup, self.signer,
                                     self.policy.subject_tag, machine=kind.kind in (Kind.BOUNCE, Kind.AUTO_REPLY,
                                                                             Kind.REPORT),
                                     agent_address=sender.email in self.agents,
                                     agent=sender.agent.email if sender.agent else "", recent=recent))
        if form is not None and match.rule != MatchRule.DUPLICATE:
            match = Match(MatchRule.NEW, None, detail=form.origin)
        forgotten = (match.rule != MatchRule.DUPLICATE and not sender.is_agent and sender.is_known
                     and tombstone.is_forgotten(session, sender.email, tombstone.address_hash(self.secret, sender.email)))
        if forgotten and self.forgotten_rule == tombstone.IGNORE:
            finish_raw(session, raw_id, "ignored", tombstone.REASON_IGNORE, None)
            return Outcome("ignored", None, mail.message_id, tombstone.REASON_IGNORE)
        if forgotten:  # a new person: never onto the anonymized tickets of the old one
            match = Match(MatchRule.NEW, None, detail="sender erased before")
        state = repo.ticket_state(session, match.ticket_id)
        if state is not None and state.status == DELETED:  # its content is gone: start afresh
            match, state = Match(MatchRule.NEW, None, detail=f"ticket #{state.id} was deleted"), None
        interp = None
        if form is None and match.rule != MatchRule.DUPLICATE and kind.kind in (Kind.NORMAL, Kind.LIST):
            interp = self.interpreter.interpret(mail.subject, mail.body_text, sender.email, sender.is_agent,
                                                state.id if state else None, state.status if state else None,
                                                _LazyReads(session), now,
                                                attached=[a.payload for a in mail.attachments
                                                          if a.content_type == "message/rfc822"])
        # An agent's reply is compared with what maild sent on the ticket (the quoted copy of
        # the mail it answers is cut exactly; internal text is never relayed).
        known = sent.known_texts(session, state.id, sent.answered_ids(mail)) \
            if sender.is_agent and state is not None and kind.kind in (Kind.NORMAL, Kind.LIST) else KnownTexts()
        decision = decide(mail, kind, sender, match, state, repo.is_blocked(session, sender.email), self.policy,
                          now, self._bounced(session, kind, returned), interp=interp, forged=forged, known=known)
        decision = attach(decision, form)
        ticket_id = self._write(session, decision, mail=mail, kind=kind, sender=sender, raw_id=raw_id,
                                attachments=item.attachments, channel=channel, now=now)
        if forgotten and decision.action is Action.CREATE:
            tombstone.welcome_back(session, sender.email, ticket_id, mail.message_id, now)
        queued = 0
        if decision.action in (Action.CREATE, Action.APPEND):
            queued = self.planner.plan(session, decision=decision, mail=mail, kind=kind, sender=sender,
                                       ticket_id=ticket_id, now=now, files=item.attachments)
            if forged and claimed is not None and ticket_id is not None and kind.kind in (Kind.NORMAL, Kind.LIST):
                # The real agent hears of it (once a day per ticket): a forger learns nothing.
                queued += self.planner.proof_notice(session, agent=claimed, ticket_id=ticket_id, mail=mail,
                                                    reason=why, now=now)
        if kind.kind is Kind.LOOP:
            log.warning("%s dropped: maild's own mail came back (%s)", mail.message_id, " ".join(kind.reasons))
        status = {Action.DUPLICATE: "duplicate", Action.IGNORE: "ignored"}.get(decision.action, "processed")
        finish_raw(session, raw_id, status, decision.reason, ticket_id)
        return Outcome(decision.action.value, ticket_id, mail.message_id, decision.reason, queued, decision.rules)

    def _write(self, session: Session, decision: Decision, *, mail: ParsedMail, kind: Classification,
               sender: Sender, raw_id: int, attachments: list[StoredAttachment], channel: str,
               now: datetime) -> int | None:
        """The write path of one mail (docs/DESIGN.md): each writer in turn, in this
        transaction — the ticket, the form's fields, the link, the message, the history,
        the commands' changes, what a bounce or complaint says about maild's own mail.
        The writers never call one another. Returns the ticket id."""
        if decision.action in (Action.DUPLICATE, Action.IGNORE):
            return decision.ticket_id
        ticket_id, requester = write_ticket(session, decision=decision, mail=mail, sender=sender,
                                            own_addresses=self.own_addresses, channel=channel, now=now)
        if decision.form is not None and requester is not None:
            apply_form(session, ticket_id, requester, decision.form, now)
        if decision.action is Action.CREATE and decision.refers_to is not None:
            link_ticket(session, ticket_id, decision.refers_to)
        elif decision.action is Action.CREATE and (mail.in_reply_to or mail.references):
            # A reply to mail maild has not seen (yet: on a node that was cut off, say).
            parent = await_parents(session, ticket_id, (*mail.in_reply_to, *reversed(mail.references)), now)
            if parent is not None:  # another node committed it meanwhile
                history.record(session, ticket_id, [EventSpec("linked", new=str(parent), detail=(
                    "answers a mail that arrived at the same time"))], at=now, actor=sender.email,
                    message_id=mail.message_id)
        write_message(session, ticket_id=ticket_id, decision=decision, mail=mail, kind=kind, sender=sender,
                      raw_id=raw_id, attachments=attachments, channel=channel, now=now)
        history.record(session, ticket_id, history_of(decision), at=now, actor=sender.email,
                       message_id=mail.message_id)
        if decision.action is Action.CREATE and not mail.synthetic_message_id:
            for orphan in adopt_orphans(session, mail.message_id, ticket_id):
                history.record(session, orphan, [EventSpec("linked", new=str(ticket_id), detail=(
                    f"answers {mail.message_id}, which arrived after it"))], at=now, actor=sender.email,
                    message_id=mail.message_id)
        if decision.ops:
            apply_ops(session, ticket_id, decision.ops, actor=sender.email, message_id=mail.message_id, now=now)
        if decision.bounced is not None or decision.complaints or decision.undeliverable:
            outbox.record_returns(session, bounced_row=decision.bounced.outbox_id if decision.bounced else None,
                                  complaints=decision.complaints, undeliverable=decision.undeliverable,
                                  cause=mail.message_id, reason=decision.reason, now=now,
                                  undeliverable_days=self.policy.undeliverable_days)
        return ticket_id

    def _bounced(self, session: Session, kind: Classification, returned: int | None) -> Bounced | None:
        """For a bounce or a report: the outbox row its bounce address names, else the one its
        inner Message-IDs name (an MTA that rewrote the envelope), if maild sent it."""
        if kind.kind not in (Kind.BOUNCE, Kind.REPORT):
            return None
        row = outbox.row(session, returned) if returned is not None else None
        if row is None and kind.bounced_message_ids:
            row = outbox.sent_for(session, kind.bounced_message_ids)
        return Bounced(row.id, row.ticket_id, row.to_addr) if row else None


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


class _LazyReads:
    """The reads commands need, opened only when a command asks (keyword-free mail never does)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._reads: CommandReads | None = None

    def _get(self) -> CommandReads:
        if self._reads is None:
            self._reads = CommandReads(self.session)
        return self._reads

    def resolve_ticket(self, ticket_id: int) -> int | None:
        return self._get().resolve_ticket(ticket_id)

    def draft_of(self, ticket_id: int) -> tuple[int, str] | None:
        return self._get().draft_of(ticket_id)

    def requester_of(self, ticket_id: int) -> str:
        return self._get().requester_of(ticket_id)
