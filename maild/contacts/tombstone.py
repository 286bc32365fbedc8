"""Mail from an address that was erased (``maild contacts forget``): what the admin chose.

``forget`` keeps only a keyed hash of the address (``erasures.subject_hmac``, an HMAC
under the helpdesk secret). A later mail from an address whose hash is there and that has
no contact (again) is handled by ``contacts.forgotten``:

* ``new`` (default): the sender is a brand-new person. The mail opens a new ticket — it
  never threads onto the anonymized old ones — and a new contact is created with consent
  **off**, so no automatic mail (acknowledgement, notices) goes to them until an agent or
  an import gives consent again; agents are notified and may answer by hand. The mail may
  have been written (or sat in the spool) before the erasure: nothing is sent to the person
  on the strength of it alone.
* ``ignore``: the mail is kept as raw mail only (status ``ignored``), with no ticket and no
  contact, and nothing is sent. Running ``forget`` again erases those raw mails too.

Once the contact exists again, the rule no longer applies: it is an ordinary contact.
Changing the helpdesk secret forgets the tombstones (the hashes no longer match).
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.orm import Session

from maild.domain.events import EventSpec
from maild.store import history
from maild.store.models import Contact, Erasure

contacts, erasures = Contact.__table__, Erasure.__table__
NEW, IGNORE = "new", "ignore"
REASON_IGNORE = "the sender's data was erased on request (contacts.forgotten: ignore)"

# One indexed lookup per customer mail: an erased hash, and no contact made since.
_FORGOTTEN = select(exists().where(erasures.c.subject_hmac == bindparam("h"))
                    .where(~exists().where(contacts.c.email == bindparam("e"))))


def address_hash(secret: bytes, email: str) -> str:
    """The keyed hash of a normalized address: confirms an address, names no one."""
    return hmac.new(secret, email.encode(), hashlib.sha256).hexdigest()


def is_forgotten(session: Session, email: str, digest: str) -> bool:
    """``digest`` is :func:`address_hash` of ``email``."""
    return bool(session.connection().execute(_FORGOTTEN, {"h": digest, "e": email}).scalar())


def welcome_back(session: Session, email: str, ticket_id: int | None, message_id: str | None,
                 now: datetime) -> None:
    """Rule ``new``: the new contact starts without consent; the ticket's history says why."""
    session.execute(update(contacts).where(contacts.c.email == email).values(consent=False, updated_at=now))
    if ticket_id is not None:
        history.record(session, ticket_id, [EventSpec(
            "forgotten_sender", detail="the sender's data had been erased on request: a new contact, "
                                       "no automatic mail until consent is given (contacts.forgotten: new)")],
            at=now, actor="maild", message_id=message_id)
