"""Bounces by envelope (VERP): each outbound mail's own signed envelope sender, taken by the
listener, ties whatever comes back to it to its outbox row and ticket; a forged one is
refused at RCPT; the returned Message-ID stays the fallback."""
from __future__ import annotations

import json
import smtplib

import pytest
from sqlalchemy import select

from conftest import HELPDESK, Env, mail
from maild.config import OutboundSmtp
from maild.ingest.smtp import RecipientTable
from maild.outbound.pool import Pool
from maild.outbound.sender import Sender, SmtpTransport
from maild.outbound.verp import as_returned
from maild.domain.mail import Classification, Kind
from maild.store.models import OutboxRow
from maild.threading.signing import Signer
from smtpsink import Sink
from daemons import Daemon, outbox, wait_for

CUSTOMER = "maria@cliente.example.com.br"
SIGNER = Signer(b"k" * 32, "support", "support.example.com")


def no_message_id_bounce(to: str) -> bytes:
    """A carrier's notice: no DSN part, no returned headers, no Message-ID of ours anywhere."""
    return (f"X-Original-To: {to}\r\nFrom: Postmaster <postmaster@carrier.example>\r\nTo: {to}\r\n"
            "Subject: Notice\r\nMessage-ID: <notice-1@carrier.example>\r\n\r\n"
            "Your item could not be handed over. Reference 77-A.\r\n").encode()


# -- the address -----------------------------------------------------------------------------

def test_a_bounce_address_names_its_row_and_nothing_else() -> None:
    address = SIGNER.bounce_address(42)
    assert address.startswith("support+bounce-42-") and address.endswith("@support.example.com")
    assert SIGNER.outbox_from_bounce_address(address) == 42
    assert SIGNER.outbox_from_bounce_address(address.upper()) == 42
    forged = address.replace("bounce-42-", "bounce-43-")
    assert SIGNER.outbox_from_bounce_address(forged) is None
    assert SIGNER.outbox_from_bounce_address("support+bounce-42@support.example.com") is None
    assert Signer(b"x" * 32, "support", "support.example.com").outbox_from_bounce_address(address) is None


def test_the_listener_takes_signed_bounce_addresses_only() -> None:
    table = RecipientTable([HELPDESK], bounces=SIGNER)
    assert table.accepts(SIGNER.bounce_address(7)) and table.accepts(f"<{SIGNER.bounce_address(7)}>")
    assert not table.accepts(SIGNER.bounce_address(7).replace("bounce-7-", "bounce-8-"))
    assert not table.accepts("support+bounce-7@support.example.com")
    assert table.accepts("support+12-whatever@support.example.com") and table.accepts(HELPDESK)


def test_mail_to_a_bounce_address_is_a_bounce_unless_a_reply_or_report() -> None:
    assert as_returned(Classification(Kind.NORMAL)).kind is Kind.BOUNCE
    assert as_returned(Classification(Kind.NORMAL)).reasons == ("bounce:verp",)
    assert as_returned(Classification(Kind.LOOP)).kind is Kind.BOUNCE
    declared = Classification(Kind.AUTO_REPLY, ("auto:null-reverse-path", "header:auto-submitted"))
    assert as_returned(declared) == declared
    assert as_returned(Classification(Kind.AUTO_REPLY, ("auto:null-reverse-path",))).kind is Kind.BOUNCE
    assert as_returned(Classification(Kind.REPORT)).kind is Kind.REPORT


# -- in process ------------------------------------------------------------------------------

def test_a_bounce_without_any_message_id_reaching_the_verp_address_is_a_note_on_the_right_ticket(
        sqlite_env: Env, sink: Sink) -> None:
    env = sqlite_env
    signer = env.app.processor.signer
    first = env.process(mail("Vazamento", CUSTOMER))
    env.process(mail("Outra coisa", "pedro@cliente.example"))  # a second ticket the bounce must not touch
    transport = SmtpTransport(OutboundSmtp(host="127.0.0.1", port=sink.port, timeout=5))
    sender = env.sender(Sender(env.app.db, transport, env.config.outbound.retry, HELPDESK, lambda: env.now,
                               pool=Pool(transport), bounces=signer))
    while sender.run_once():
        pass
    with env.app.db.read() as session:
        ack = session.scalars(select(OutboxRow).where(OutboxRow.kind == "ack", OutboxRow.to_addr == CUSTOMER)).one()
    [sent] = sink.to(CUSTOMER)
    assert sent.mail_from == signer.bounce_address(ack.id)
    assert all(r.mail_from != HELPDESK for r in sink.received)

    outcome = env.process(no_message_id_bounce(sent.mail_from), channel="smtp")
    assert (outcome.status, outcome.ticket_id) == ("appended", first.ticket_id)
    with env.app.db.read() as session:
        assert session.get(OutboxRow, ack.id).last_error.startswith("bounced:")
    ticket = env.ticket(first.ticket_id)
    [event] = [e for e in ticket["events"] if e["kind"] == "bounce"]
    assert event["detail"].endswith(f"for {CUSTOMER} (outbox #{ack.id})")
    assert [(m["direction"], m["kind"]) for m in ticket["messages"]][-1] == ("note", "bounce")


def test_without_the_envelope_the_same_notice_is_not_a_bounce_of_ours(sqlite_env: Env) -> None:
    env = sqlite_env
    first = env.process(mail("Vazamento", CUSTOMER))
    outcome = env.process(no_message_id_bounce(HELPDESK), channel="smtp")
    assert outcome.ticket_id != first.ticket_id  # the VERP address, not the text, makes it ours


# -- over SMTP, maild running ----------------------------------------------------------------

@pytest.mark.slow
def test_over_smtp_the_verp_bounce_becomes_a_note_and_a_forged_one_is_refused(daemon: Daemon, sink: Sink) -> None:
    port = daemon.port
    daemon.start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.sendmail(CUSTOMER, [HELPDESK], mail("Vazamento", CUSTOMER))
        wait_for(lambda: len(sink.to(CUSTOMER)) == 1, 30, "the acknowledgement")
        verp = sink.to(CUSTOMER)[0].mail_from
        ack = next(r for r in outbox(daemon) if r["kind"] == "ack")
        assert verp.startswith(f"support+bounce-{ack['id']}-")

        forged = verp.replace(f"bounce-{ack['id']}-", f"bounce-{ack['id'] + 1}-")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                smtp.sendmail("", [forged], no_message_id_bounce(forged))
        assert refused.value.recipients[forged][0] == 550

        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.sendmail("", [verp], no_message_id_bounce(verp))

        def noted() -> bool:
            shown = json.loads(daemon.cli("tickets", "show", "1", "--json").stdout)
            return any((m["direction"], m["kind"]) == ("note", "bounce") for m in shown["messages"])
        wait_for(noted, 30, "the bounce on ticket 1")
        assert [t["id"] for t in daemon.tickets()] == [1]  # no ticket for the bounce
        wait_for(lambda: next(r for r in outbox(daemon) if r["id"] == ack["id"])["last_error"].startswith("bounced:"),
                 10, "the bounce on the outbox row")
    finally:
        assert daemon.stop() == 0
