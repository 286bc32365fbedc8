"""SMS through an HTTP gateway: a durable queue table and its sender thread (the gateway's
YAML settings are :class:`maild.notify.sms_config.SmsGateway`).

A trigger with ``channel: sms`` inserts a row in ``sms_outbox`` inside the transaction of
the change that caused it (never an HTTP call on the ingest path). :class:`SmsSender`
claims due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), renders the gateway request
from the YAML templates and posts it: 2xx → ``sent``; 408/429/5xx and connection errors
→ retried with the outbound backoff until the row expires; other 4xx → ``failed``.

The gateway is described in YAML, so any provider with an HTTP API fits::

    sms:
      url: "https://sms.example.com/api/messages?to={{ phone|urlencode }}"
      method: POST
      headers: {Content-Type: application/json}
      headers_env: {Authorization: MAILD_SMS_AUTH}   # header value from the environment
      body: '{"to": {{ phone|tojson }}, "text": {{ text|tojson }}}'
"""
from __future__ import annotations

import logging
import os
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.orm import Session

from maild.domain.events import EventSpec
from maild.loop import Loop
from maild.notify.sms_config import SmsGateway, template_env
from maild.store import history
from maild.store.db import Database
from maild.store.models import SmsRow
from maild.store.queue import claim_due
from maild.store.rows import rowcount
from maild.logmask import mask_phone

log = logging.getLogger("maild.sms")
sms_outbox = SmsRow.__table__


def normalize_phone(phone: str) -> str:
    """Digits with an optional leading +; empty when there is no usable number."""
    phone = phone.strip()
    digits = re.sub(r"[^\d]", "", phone)
    if len(digits) < 6:
        return ""
    return ("+" if phone.startswith("+") else "") + digits


# -- the queue --------------------------------------------------------------------------
def enqueue(session: Session, *, ticket_id: int | None, phone: str, text: str, rule: str, now: datetime,
            expires_at: datetime) -> None:
    session.connection().execute(insert(sms_outbox), {
        "ticket_id": ticket_id, "phone": phone, "text": text, "rule": rule[:200], "state": "queued", "attempts": 0,
        "next_attempt_at": now, "expires_at": expires_at, "claim_token": None, "claimed_at": None, "sent_at": None,
        "last_error": "", "created_at": now})


def recent_count(session: Session, phone: str, since: datetime) -> int:
    return session.connection().execute(select(func.count()).where(
        sms_outbox.c.phone == phone, sms_outbox.c.created_at > since)).scalar_one()


def claim(session: Session, token: str, now: datetime, stale_before: datetime, limit: int) -> list[SmsRow]:
    """Take up to ``limit`` due rows for this sender; a stale claim counts as due."""
    return claim_due(session, SmsRow, token, now, stale_before, limit)


def listing(session: Session, limit: int = 200) -> list[SmsRow]:
    return list(session.scalars(select(SmsRow).order_by(SmsRow.id.desc()).limit(limit)))


# -- the gateway ------------------------------------------------------------------------
class SmsTransient(Exception):
    pass


class SmsPermanent(Exception):
    pass


class HttpGateway:
    """Renders and sends one gateway request per SMS (urllib: no extra dependency)."""

    def __init__(self, settings: SmsGateway) -> None:
        self.settings = settings
        env = template_env()
        self.url = env.from_string(settings.url)
        self.body = env.from_string(settings.body)

    def request(self, phone: str, text: str) -> urllib.request.Request:
        s = self.settings
        values: dict[str, Any] = {"phone": phone, "text": text[:s.max_length]}
        data = self.body.render(values).encode("utf-8") if s.body and s.method != "GET" else None
        headers = {**s.headers, **{h: os.environ.get(v, "") for h, v in s.headers_env.items()}}
        if data is not None and not any(h.lower() == "content-type" for h in headers):
            headers["Content-Type"] = "application/json" if s.body.lstrip().startswith("{") else "text/plain"
        return urllib.request.Request(self.url.render(values), data=data, headers=headers, method=s.method)

    def send(self, phone: str, text: str) -> str:
        try:
            with urllib.request.urlopen(self.request(phone, text), timeout=self.settings.timeout) as response:
                return f"{response.status} {response.read(200).decode('utf-8', 'replace').strip()}"
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code} {exc.read(200).decode('utf-8', 'replace').strip()}"
            if exc.code >= 500 or exc.code in (408, 429):
                raise SmsTransient(reason) from exc
            raise SmsPermanent(reason) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise SmsTransient(f"{type(exc).__name__}: {exc}") from exc


class SmsSender(Loop):
    thread_name = "sms-sender"

    """Like the mail sender: ``run_once`` is one round, ``start`` runs rounds in a thread."""

    def __init__(self, db: Database, gateway: HttpGateway, retry: Any, clock: Callable[[], datetime],
                 batch: int = 20) -> None:
        self.db, self.gateway, self.retry, self.clock, self.batch = db, gateway, retry, clock, batch
        super().__init__()

    def run_once(self) -> int:
        now = self.clock()
        token = uuid.uuid4().hex[:24]
        with self.db.write() as session:
            rows = claim(session, token, now, now - timedelta(seconds=self.retry.claim_timeout_seconds), self.batch)
            work = [(r.id, r.phone, r.text, r.attempts, r.expires_at, r.ticket_id) for r in rows]
        for row_id, phone, text, attempts, expires_at, ticket_id in work:
            mine = and_(SmsRow.id == row_id, SmsRow.claim_token == token, SmsRow.state == "claimed")
            try:
                answer = self.gateway.send(phone, text)
            except SmsTransient as exc:
                at = self.clock() + timedelta(seconds=min(self.retry.max_seconds,
                                                          self.retry.first_seconds * 2 ** max(attempts - 1, 0)))
                if at <= expires_at:
                    with self.db.write() as session:
                        session.execute(update(SmsRow).where(mine).values(
                            state="queued", next_attempt_at=at, claim_token=None, last_error=str(exc)[:2000]))
                    log.warning("SMS %d to %s not sent (attempt %d), retry at %s: %s", row_id, mask_phone(phone), attempts,
                                at.isoformat(timespec="seconds"), exc)
                    continue
                self._fail(mine, row_id, ticket_id, phone, f"gave up after {attempts} attempts: {exc}")
                continue
            except SmsPermanent as exc:
                self._fail(mine, row_id, ticket_id, phone, str(exc))
                continue
            with self.db.write() as session:
                session.execute(update(SmsRow).where(mine).values(
                    state="sent", sent_at=self.clock(), claim_token=None, last_error=answer[:2000]))
            log.info("SMS %d sent to %s (ticket %s)", row_id, mask_phone(phone), ticket_id)
        return len(work)

    def _fail(self, mine: Any, row_id: int, ticket_id: int | None, phone: str, error: str) -> None:
        with self.db.write() as session:
            done = session.execute(update(SmsRow).where(mine).values(state="failed", claim_token=None,
                                                                     last_error=error[:2000]))
            if rowcount(done) and ticket_id is not None:
                history.record(session, ticket_id, [EventSpec("delivery_failed", None, "sms", f"SMS to {phone}: {error}")],
                               at=self.clock(), actor="maild")
        log.error("SMS %d to %s failed: %s", row_id, mask_phone(phone), error)

    def step(self) -> float:
        try:
            if self.run_once():
                return 0
        except Exception:  # the database may be away; the queue keeps everything
            log.exception("SMS round failed")
        return float(self.retry.poll_seconds)
