"""Classify stage: golden fixtures plus one test per rule and per false-positive trap."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from maild.domain.mail import Classification, Kind
from maild.ingest.classify import classify
from maild.ingest.parse import parse

FIXTURES = Path(__file__).parent / "fixtures" / "mail"
OWN = frozenset({"support@support.example.com"})
LOOP = "support.example.com"


def run(raw: bytes) -> Classification:
    return classify(parse(raw), OWN, LOOP)


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.yaml")))
def test_fixture(name: str) -> None:
    exp = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text(encoding="utf-8")) or {}
    result = run((FIXTURES / f"{name}.eml").read_bytes())
    if "kind" in exp:
        assert result.kind.value == exp["kind"], result.reasons
    for reason in exp.get("reasons_contain", []):
        assert reason in result.reasons
    if "bounced_message_ids" in exp:
        assert list(result.bounced_message_ids) == exp["bounced_message_ids"]
    if "bounced_addresses" in exp:
        assert list(result.bounced_addresses) == exp["bounced_addresses"]
    if "permanent" in exp:
        assert result.permanent is exp["permanent"]
    if "ticket" in exp:
        assert result.opens_ticket is (exp["ticket"] != "none")


BASE = b"From: Ana <ana@cliente.example>\nTo: support@support.example.com\nMessage-ID: <m@x>\n"


def mail(headers: str, subject: str = "Problema", body: str = "texto") -> bytes:
    return BASE + f"Subject: {subject}\n{headers}\n{body}\n".encode()


@pytest.mark.parametrize(
    ("headers", "subject", "kind"),
    [
        ("", "Problema", Kind.NORMAL),
        # Outlook users' ordinary mail carries these headers: not an auto-reply by itself.
        ("X-Auto-Response-Suppress: All\n", "Problema", Kind.NORMAL),
        ("X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent\n", "Pedido", Kind.NORMAL),
        ("Auto-Submitted: no\n", "Problema", Kind.NORMAL),
        ("", "RES: Resposta automática: Problema", Kind.NORMAL),  # a human answering an OOF
        ("", "Out of office hours support?", Kind.NORMAL),
        ("Auto-Submitted: auto-replied\n", "Problema", Kind.AUTO_REPLY),
        ("X-Autoreply: yes\n", "Problema", Kind.AUTO_REPLY),
        ("X-Autorespond: Problema\n", "Problema", Kind.AUTO_REPLY),
        ("Precedence: auto_reply\n", "Problema", Kind.AUTO_REPLY),
        ("", "Automatic reply: Problema", Kind.AUTO_REPLY),
        ("", "Abwesenheitsnotiz: Problema", Kind.AUTO_REPLY),
        ("", "Ausência temporária: Problema", Kind.AUTO_REPLY),
        ("", "Out of Office", Kind.AUTO_REPLY),
        ("", "Auto: Problema", Kind.AUTO_REPLY),
        ("List-Id: <l.example>\n", "Problema", Kind.LIST),
        ("List-Unsubscribe: <mailto:x@l.example>\n", "Problema", Kind.LIST),
        ("Precedence: bulk\n", "Problema", Kind.LIST),
        ("X-Mailchimp-Campaign: 1\n", "Problema", Kind.LIST),
        ("X-Maild-Loop: support.example.com\n", "Problema", Kind.LOOP),
        # the loop rule is first: maild's own auto-answer coming back is a loop
        ("X-Maild-Loop: support.example.com\nAuto-Submitted: auto-replied\n", "Problema", Kind.LOOP),
        ("Auto-Submitted: auto-replied\nPrecedence: bulk\n", "Problema", Kind.AUTO_REPLY),
    ],
)
def test_rules(headers: str, subject: str, kind: Kind) -> None:
    result = run(mail(headers, subject))
    assert result.kind is kind, result.reasons
    assert bool(result.reasons) is (kind is not Kind.NORMAL)


def test_all_fired_rules_are_recorded() -> None:
    result = run(mail("Auto-Submitted: auto-generated\nList-Id: <l.example>\n", "Automatic reply: x"))
    assert result.kind is Kind.AUTO_REPLY
    assert "list:list-id" in result.reasons and "auto:subject" in result.reasons


def test_from_own_address_is_loop() -> None:
    raw = b"From: Support <SUPPORT@support.example.com>\nSubject: x\n\nbody\n"
    assert run(raw).kind is Kind.LOOP


@pytest.mark.parametrize(
    "subject",
    [
        "Undelivered Mail Returned to Sender",
        "Delivery Status Notification (Failure)",
        "Undeliverable: Problema",
        "Mail delivery failed: returning message to sender",
        "Returned mail: see transcript for details",
        "failure notice",
        "Não é possível entregar: Problema",
    ],
)
def test_daemon_bounce_subjects(subject: str) -> None:
    raw = (
        f"From: Mail Delivery System <MAILER-DAEMON@mx.example>\nSubject: {subject}\n\n"
        "Sorry, I couldn't deliver.\n\n--- Below this line is a copy of the message.\n\n"
        "From: support@support.example.com\nMessage-ID: <out-9@support.example.com>\n\nhi\n"
    ).encode()
    result = run(raw)
    assert result.kind is Kind.BOUNCE and result.permanent
    assert result.bounced_message_ids == ("<out-9@support.example.com>",)  # quoted as text


def test_bounce_subject_from_a_person_is_not_a_bounce() -> None:
    assert run(mail("", "Returned mail? My package never arrived")).kind is Kind.NORMAL


def dsn(status: str, action: str, inner: str) -> bytes:
    return (
        "From: postmaster@mx.example\nSubject: Delivery report\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nreport\n"
        "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n"
        f"Final-Recipient: rfc822; Gone@Cliente.example\nAction: {action}\nStatus: {status}\n\n"
        f"--b\n{inner}\n--b--\n"
    ).encode()


def test_dsn_with_rfc822_headers_part() -> None:
    inner = "Content-Type: text/rfc822-headers\n\nFrom: support@support.example.com\nMessage-ID: <out-3@s>\nReferences: <c-1@x> <c-2@x>\n"
    result = run(dsn("5.2.2", "failed", inner))
    assert result.kind is Kind.BOUNCE and result.permanent
    assert result.bounced_message_ids == ("<out-3@s>", "<c-1@x>", "<c-2@x>")
    assert result.bounced_addresses == ("gone@cliente.example",)


def test_delayed_dsn_is_not_permanent() -> None:
    result = run(dsn("4.4.7", "delayed", "Content-Type: message/rfc822\n\nMessage-ID: <out-4@s>\n\nx\n"))
    assert result.kind is Kind.BOUNCE and not result.permanent
    assert result.bounced_message_ids == ("<out-4@s>",)


def test_read_receipt_is_an_auto_reply() -> None:
    raw = (
        b'From: ana@cliente.example\nSubject: Lido: x\nContent-Type: multipart/report; report-type=disposition-notification; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain\n\nread\n--b\nContent-Type: message/disposition-notification\n\n"
        b"Disposition: manual-action/MDN-sent-manually; displayed\n--b--\n"
    )
    assert run(raw).kind is Kind.AUTO_REPLY


def test_customer_forwarding_a_bounce_is_normal() -> None:
    raw = (
        b'From: ana@cliente.example\nSubject: Fwd: Undelivered Mail Returned to Sender\nContent-Type: multipart/mixed; boundary="o"\n\n'
        b"--o\nContent-Type: text/plain\n\nMy mail to you bounced, see attached.\n--o\nContent-Type: message/rfc822\n\n"
        + dsn("5.1.1", "failed", "Content-Type: message/rfc822\n\nMessage-ID: <mine@x>\n\nx\n")
        + b"\n--o--\n"
    )
    result = run(raw)
    assert result.kind is Kind.NORMAL, result.reasons
