"""One test per automatic-mail rule family, and the traps that must stay customer mail."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from automatic_samples import RETURNED, bounces, reports
from conftest import HELPDESK, mail
from maild.ingest.classify import classify
from maild.domain.decision import Bounced, Policy
from maild.ingest.decide import decide
from maild.domain.sender import Sender
from maild.ingest.parse import parse
from maild.domain.mail import Kind
from maild.threading.match import Match

OWN = frozenset({HELPDESK})


def run(raw: bytes):  # type: ignore[no-untyped-def]
    return classify(parse(raw), OWN, HELPDESK)


@pytest.mark.parametrize(("subject", "sender", "headers"), [
    ("Delivery failed for my order", "maria@x.example", {}),
    ("Question about my rent", "postmaster@empresa.example", {}),  # a person who is the postmaster
    ("Report Domain names", "maria@x.example", {}),
    ("Mensagem não entregue?", "maria@x.example", {"Return-Path": "<maria@x.example>"}),
    ("Away until Monday", "maria@x.example", {"X-Auto-Response-Suppress": "All"}),  # Outlook's normal mail
])
def test_customer_traps_stay_normal(subject: str, sender: str, headers: dict[str, str]) -> None:
    result = run(mail(subject, sender, body="Could you help me, please?\n", headers=headers))
    assert result.kind is Kind.NORMAL, result.reasons


@pytest.mark.parametrize(("subject", "headers", "rule"), [
    ("Undeliverable package", {"Return-Path": "<>"}, "bounce:null-sender-subject"),
    ("x", {"X-Failed-Recipients": "maria@x.example"}, "bounce:x-failed-recipients"),
    ("x", {"X-SES-Outgoing": "2026"}, "report:header=x-ses-outgoing"),
    ("Report Domain: example.com Submitter: google.com", {}, "report:dmarc-subject"),
    ("自動応答: x", {}, "auto:subject"),
    ("[rt.example #1] AutoReply: x", {}, "auto:subject"),
])
def test_each_rule_names_itself(subject: str, headers: dict[str, str], rule: str) -> None:
    assert rule in run(mail(subject, "maria@x.example", headers=headers)).reasons


def test_mailer_daemon_alone_is_a_bounce_postmaster_alone_is_not() -> None:
    assert run(mail("Hello", "MAILER-DAEMON@mx.example")).kind is Kind.BOUNCE
    assert run(mail("Hello", "postmaster@mx.example")).kind is Kind.NORMAL


def test_arf_is_a_report_naming_the_returned_mail_and_the_complainer() -> None:
    [arf] = [s for s in reports() if s.name == "arf"]
    result = run(arf.raw)
    assert result.kind is Kind.REPORT and "report:arf=abuse" in result.reasons
    assert RETURNED in result.bounced_message_ids and "maria@cliente.example.com.br" in result.bounced_addresses


def test_a_complaint_about_maild_mail_is_a_note_and_an_unsubscribe() -> None:
    [arf] = [s for s in reports() if s.name == "arf"]
    parsed = parse(arf.raw)
    kind = classify(parsed, OWN, HELPDESK)
    now = datetime(2026, 11, 2, tzinfo=timezone.utc)
    sender = Sender("feedbackloop@isp.example", "")
    tied = decide(parsed, kind, sender, Match("new", None), None, False, Policy("Support", 30), now,
                  Bounced(9, 7, "maria@cliente.example.com.br"))
    assert tied.ticket_id == 7 and tied.direction == "note" and tied.complaints == ("maria@cliente.example.com.br",)
    loose = decide(parsed, kind, sender, Match("new", None), None, False, Policy("Support", 30), now)
    assert loose.action.value == "ignored" and "report:arf=abuse" in loose.reason


def test_every_vendor_bounce_is_a_permanent_bounce_tied_to_the_returned_mail() -> None:
    for sample in bounces():
        result = run(sample.raw)
        assert result.kind is Kind.BOUNCE, (sample.name, result.reasons)
        assert RETURNED in result.bounced_message_ids, sample.name
