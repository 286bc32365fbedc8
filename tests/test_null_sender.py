"""An empty reverse-path (``MAIL FROM:<>`` / ``Return-Path: <>``) is never answered.

The SMTP listener records the envelope sender above the mail's own headers, so a
``Return-Path`` written into the mail by its sender cannot stand in for the envelope.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import select

from conftest import AGENT, HELPDESK, Env, mail
from maild.ingest.classify import classify
from maild.ingest.parse import parse
from maild.ingest.smtp import RecipientTable, SpoolingHandler, envelope_trace
from maild.ingest.spool import Spool
from maild.domain.mail import Kind
from maild.outbound import policy
from maild.store.models import OutboxRow

OWN = frozenset({HELPDESK})


def kind_of(raw: bytes) -> tuple[Kind, tuple[str, ...]]:
    c = classify(parse(raw), OWN, HELPDESK)
    return c.kind, c.reasons


def test_envelope_trace_writes_the_envelope_sender_first() -> None:
    assert envelope_trace([HELPDESK], "") == b"Return-Path: <>\r\nX-Original-To: " + HELPDESK.encode() + b"\r\n"
    assert envelope_trace([HELPDESK], "maria@x.example").startswith(b"Return-Path: <maria@x.example>\r\n")
    # Nothing from the envelope can add a header line of its own.
    assert envelope_trace([], "a@b\r\nBcc: x@y") == b"Return-Path: <a@bBcc:x@y>\r\n"


def test_listener_header_wins_over_a_forged_one(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    handler = SpoolingHandler(spool, RecipientTable([HELPDESK]), "smtp")
    forged = mail("Pedido", headers={"Return-Path": "<>"})
    envelope = SimpleNamespace(original_content=forged, rcpt_tos=[HELPDESK], mail_from="maria@cliente.example.com.br")
    reply = asyncio.run(handler.handle_DATA(SimpleNamespace(), SimpleNamespace(peer="test"), envelope))  # type: ignore[arg-type]
    assert reply.startswith("250")
    [entry] = spool.pending()
    parsed = parse(entry.read())
    assert not parsed.null_reverse_path and kind_of(entry.read())[0] is Kind.NORMAL
    # ... and the other way round: an empty envelope under a customer-looking Return-Path.
    assert parse(envelope_trace([HELPDESK], "") + mail(headers={"Return-Path": "<maria@x.example>"})).null_reverse_path


def test_null_reverse_path_is_automatic_whatever_it_looks_like() -> None:
    for path in ("<>", "< >", "<MAILER-DAEMON>"):
        kind, reasons = kind_of(mail("Preciso de ajuda com meu contrato", headers={"Return-Path": path}))
        assert kind is Kind.AUTO_REPLY and "auto:null-reverse-path" in reasons, path
    assert kind_of(mail("Preciso de ajuda", headers={"Return-Path": "<maria@x.example>"}))[0] is Kind.NORMAL
    assert kind_of(mail("Preciso de ajuda"))[0] is Kind.NORMAL  # no Return-Path at all: nothing known


def test_reply_allowed_refuses_the_null_sender() -> None:
    assert not policy.reply_allowed("maria@x.example", True, OWN).ok
    assert "reverse-path" in policy.reply_allowed("maria@x.example", True, OWN).reason
    assert policy.reply_allowed("maria@x.example", False, OWN).ok
    assert not policy.answerable(Kind.NORMAL, "maria@x.example", True, OWN).ok


def test_null_sender_gets_no_ack_no_ticket_and_is_kept_with_the_rule(sqlite_env: Env) -> None:
    out = sqlite_env.process(mail("Meu pedido", headers={"Return-Path": "<>"}), channel="imap")
    assert out.status == "ignored" and sqlite_env.tickets() == []
    [raw] = sqlite_env.raw_rows()
    assert raw.status == "ignored" and "auto:null-reverse-path" in raw.reason
    with sqlite_env.app.db.read() as session:
        assert list(session.scalars(select(OutboxRow))) == []


def test_null_sender_reply_on_a_ticket_is_recorded_never_answered(sqlite_env: Env) -> None:
    first = sqlite_env.process(mail("Meu pedido", message_id="<c1@x.example>"))
    assert first.status == "created"
    with sqlite_env.app.db.read() as session:
        before = len(list(session.scalars(select(OutboxRow))))
    # An agent's command mail sent with an empty envelope (a misconfigured gateway): no
    # feedback goes back to it, and no command runs on the strength of it.
    out = sqlite_env.process(mail("Re: Meu pedido", AGENT, body="/bogus\n", headers={
        "Return-Path": "<>", "In-Reply-To": "<c1@x.example>", "References": "<c1@x.example>"}))
    assert out.status == "appended"
    with sqlite_env.app.db.read() as session:
        assert len(list(session.scalars(select(OutboxRow)))) == before
