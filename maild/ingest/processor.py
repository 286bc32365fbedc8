"""One mail from raw bytes to a committed decision.

keep raw → parse → classify → identify → thread → decide → apply, the last four inside
one transaction. ``process`` either commits and returns an Outcome, or raises and has
committed nothing (the channel then asks for a retry).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from maild.config import Config
from maild.ingest.classify import classify
from maild.ingest.decide import Action, Policy, decide
from maild.ingest.identify import identify
from maild.ingest.parse import parse
from maild.mail import ParsedMail, QuarantineError
from maild.store import repo
from maild.store.apply import StoredAttachment, apply_decision
from maild.store.blobs import BlobStore, sha256
from maild.store.db import Database
from maild.store.models import RawMail
from maild.threading.match import ThreadContext, thread
from maild.threading.signing import Signer

log = logging.getLogger("maild.processor")

LOOP_HEADER = "X-Maild-Loop"


@dataclass(frozen=True)
class Outcome:
    status: str  # created | appended | duplicate | ignored | quarantined
    ticket_id: int | None
    message_id: str | None
    reason: str = ""


class Processor:
    def __init__(self, config: Config, db: Database, blobs: BlobStore) -> None:
        self.config = config
        self.db = db
        self.blobs = blobs
        helpdesk = config.helpdesk
        self.signer = Signer(helpdesk.resolved_secret(), helpdesk.local_part, helpdesk.domain)
        self.agents = config.agent_by_address()
        self.own_addresses = frozenset([helpdesk.address, *helpdesk.extra_addresses])
        self.loop_value = helpdesk.address
        self.policy = Policy(subject_tag=helpdesk.subject_tag, reopen_days=config.workflow.reopen_days)
        self.max_attachment = config.storage.max_attachment_bytes

    def process(self, raw: bytes, channel: str, now: datetime) -> Outcome:
        digest = self.blobs.put_raw(raw)  # durable before anything else can fail
        mail, failure = self._parse(raw)
        attachments = self._store_attachments(mail) if mail else []
        for attempt in range(3):
            try:
                with self.db.write() as session:
                    outcome = self._decide_and_apply(session, raw, digest, mail, failure, attachments, channel, now)
                break
            except (IntegrityError, OperationalError) as exc:
                # A concurrent writer stored the same contact or message first: the
                # retry sees its row and threads onto it (or finds the duplicate).
                if attempt == 2:
                    raise
                log.info("retrying %s after %s", mail.message_id if mail else digest, type(exc).__name__)
        log.info("%s %s ticket=%s %s", outcome.message_id or f"sha256:{digest[:12]}", outcome.status,
                 outcome.ticket_id, outcome.reason)
        return outcome

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
                                           self.blobs.put_attachment(att.payload), att.inline))
        return stored

    def _decide_and_apply(self, session: Session, raw: bytes, digest: str, mail: ParsedMail | None,
                          failure: str, attachments: list[StoredAttachment], channel: str,
                          now: datetime) -> Outcome:
        seen = repo.raw_seen(session, digest)
        if seen is not None:
            return Outcome("duplicate", seen.ticket_id, seen.message_id, "identical bytes already received")
        record = RawMail(sha256=digest, size=len(raw), channel=channel, received_at=now, status="quarantined",
                         reason=failure, message_id=mail.message_id[:998] if mail else None)
        session.add(record)
        session.flush()
        if mail is None:
            return Outcome("quarantined", None, None, failure)

        kind = classify(mail, self.own_addresses, self.loop_value)
        sender = identify(mail, self.agents)
        lookup = repo.SessionLookup(session)
        match = thread(ThreadContext(mail, sender.email, sender.is_agent, lookup, self.signer,
                                     self.policy.subject_tag))
        decision = decide(mail, kind, sender, match, repo.ticket_state(session, match.ticket_id),
                          repo.is_blocked(session, sender.email), self.policy, now)
        ticket_id = apply_decision(session, decision=decision, mail=mail, kind=kind, sender=sender, raw=record,
                                   attachments=attachments, own_addresses=self.own_addresses,
                                   channel=channel, now=now)
        record.status = {Action.DUPLICATE: "duplicate", Action.IGNORE: "ignored"}.get(decision.action, "processed")
        record.reason = decision.reason
        record.ticket_id = ticket_id
        return Outcome(decision.action.value, ticket_id, mail.message_id, decision.reason)
