"""Automatic mail as a running daemon meets it: over real SMTP, replies read at a real sink."""
from __future__ import annotations

import json

import pytest

from conftest import HELPDESK, mail
from smtpsink import Sink
from daemons import Daemon, deliver, settle, wait_for

pytestmark = pytest.mark.slow
CUSTOMER = "maria@cliente.example.com.br"


@pytest.fixture
def daemon(daemon: Daemon) -> Daemon:
    """The shared daemon (outbound mail to ``sink``), already running."""
    daemon.start()
    return daemon


def ignored(daemon: Daemon) -> list[dict]:
    result = daemon.cli("quarantine", "list", "--ignored", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_empty_envelope_sender_is_never_answered_and_a_forged_header_changes_nothing(
        daemon: Daemon, sink: Sink) -> None:
    # 1. MAIL FROM:<> with a customer-looking mail: kept, no ticket, nobody answered.
    deliver(daemon.port, mail("Preciso de ajuda", CUSTOMER, message_id="<null-1@x.example>"), "")
    # 2. MAIL FROM:<> under a Return-Path the mail wrote itself: still the empty envelope.
    deliver(daemon.port, mail("Preciso de ajuda 2", CUSTOMER, message_id="<null-2@x.example>",
                              headers={"Return-Path": f"<{CUSTOMER}>"}), "")
    wait_for(lambda: len(ignored(daemon)) == 2, 20, "both null-sender mails kept")
    assert all("auto:null-reverse-path" in r["reason"] for r in ignored(daemon))
    assert daemon.tickets() == []
    # 3. A real envelope sender under a forged "Return-Path: <>": a customer, answered.
    deliver(daemon.port, mail("Preciso de ajuda 3", CUSTOMER, message_id="<real-3@x.example>",
                              headers={"Return-Path": "<>"}), CUSTOMER)
    sink.wait_for(2)
    got = settle(sink, daemon)
    assert sorted(r.rcpt_tos[0] for r in got) == sorted([CUSTOMER, "ana@support.example.com"])
    assert [t["subject"] for t in daemon.tickets()] == ["Preciso de ajuda 3"]
    assert all(r.message["In-Reply-To"] == "<real-3@x.example>" for r in got if r.rcpt_tos == [CUSTOMER])
    assert daemon.stop() == 0


def arf_about(message_id: str, complainer: str) -> bytes:
    b = "==arf=="
    return (f"From: Feedback Loop <feedbackloop@isp.example>\r\nTo: {HELPDESK}\r\nSubject: complaint\r\n"
            f"Message-ID: <arf-1@isp.example>\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/report; report-type=feedback-report; boundary="{b}"\r\n\r\n'
            f"--{b}\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n"
            f"--{b}\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nVersion: 1\r\n\r\n"
            f"--{b}\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: {message_id}\r\nTo: {complainer}\r\n"
            f"From: {HELPDESK}\r\nSubject: Re: [Support #1] x\r\n\r\nhello\r\n--{b}--\r\n").encode()


def test_a_complaint_is_a_note_on_the_ticket_and_stops_automatic_mail(daemon: Daemon, sink: Sink) -> None:
    deliver(daemon.port, mail("Vazamento", CUSTOMER, message_id="<c-1@x.example>"), CUSTOMER)
    sink.wait_for(2)
    [ack] = [r for r in settle(sink, daemon) if r.rcpt_tos == [CUSTOMER]]
    deliver(daemon.port, arf_about(ack.message["Message-ID"], CUSTOMER), "")
    shown: dict = {}

    def complaint_recorded() -> bool:
        shown.update(json.loads(daemon.cli("tickets", "show", "1", "--json").stdout))
        return any(e["kind"] == "complaint" for e in shown["events"])

    wait_for(complaint_recorded, 20, "the complaint on ticket 1")
    assert shown["messages"][-1]["direction"] == "note" and len(daemon.tickets()) == 1
    [event] = [e for e in shown["events"] if e["kind"] == "complaint"]
    assert CUSTOMER in event["detail"]
    # The complainer writes again: the agent hears of it, the complainer gets no automatic mail.
    deliver(daemon.port, mail("Outro assunto", CUSTOMER, message_id="<c-2@x.example>"), CUSTOMER)
    sink.wait_for(3)
    later = settle(sink, daemon)[2:]
    assert [r.rcpt_tos for r in later] == [["ana@support.example.com"]]
    assert len(daemon.tickets()) == 2
    assert daemon.stop() == 0


def test_vendor_bounces_and_reports_over_smtp_open_nothing_and_get_no_reply(daemon: Daemon, sink: Sink) -> None:
    from automatic_samples import auto_replies, bounces, reports

    samples = bounces() + reports() + auto_replies()
    for s in samples:
        deliver(daemon.port, s.raw, "" if b"Return-Path: <>" in s.raw else CUSTOMER)
    wait_for(lambda: len(ignored(daemon)) == len(samples), 60, "every automatic mail kept")
    assert daemon.tickets() == [] and sink.received == []
    reasons = {r["message_id"]: r["reason"] for r in ignored(daemon)}
    assert all("rules: class:" in why for why in reasons.values())
    assert "report:arf=abuse" in reasons["<arf@samples.example>"]
    assert "bounce:daemon-body" in reasons["<qmail@samples.example>"]
    assert daemon.stop() == 0
