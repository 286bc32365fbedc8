"""Table tests for ``classify()`` over hand-built ParsedMail values (no parsing, no database).

``tests/test_classify.py`` goes through the parser with .eml fixtures; these rows pin the
rule table itself: which kind wins, and which reasons are recorded.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from maild.domain.mail import Address, Attachment, Classification, DeliveryReport, Kind, ParsedMail
from maild.ingest.classify import classify

OWN = frozenset({"support@support.example.com"})
LOOP = "support.example.com"


@dataclass(frozen=True)
class M:
    """The parts of a mail the rules read; everything else is a plain customer mail."""

    sender: str = "maria@cliente.example"
    name: str = "Maria"
    subject: str = "Pedido de orçamento"
    body: str = "Olá, gostaria de um orçamento.\n"
    headers: dict[str, str] = field(default_factory=dict)
    report: DeliveryReport | None = None
    attachments: tuple[Attachment, ...] = ()

    def parsed(self) -> ParsedMail:
        return ParsedMail(
            message_id="<m@cliente.example>", synthetic_message_id=False, subject=self.subject,
            from_=Address(self.name, self.sender), reply_to=(), to=(Address("", "support@support.example.com"),),
            cc=(), delivered_to=(), in_reply_to=(), references=(), date=None, headers=self.headers,
            body_text=self.body, body_html=None, attachments=self.attachments, report=self.report)


DSN = DeliveryReport(report_type="delivery-status", message_ids=("<out-1@support.example.com>",),
                     recipients=("x@cliente.example",), statuses=("5.1.1",), actions=("failed",),
                     part_types=("message/delivery-status", "message/rfc822"))
CASES: list[tuple[str, M, Kind, tuple[str, ...]]] = [
    ("a customer's mail", M(), Kind.NORMAL, ()),
    ("a customer writing about a failed delivery is a customer",
     M(subject="Delivery failed for my order", body="Undelivered mail returned to sender?\n"), Kind.NORMAL, ()),
    ("maild's own loop header", M(headers={"x-maild-loop": "support.example.com"}), Kind.LOOP,
     ("loop:x-maild-loop",)),
    ("mail from maild's own address", M(sender="support@support.example.com"), Kind.LOOP,
     ("loop:from-own-address",)),
    ("a DSN from the mailer-daemon", M(sender="mailer-daemon@mx.cliente.example", name="Mail Delivery System",
                                       subject="Undelivered Mail Returned to Sender", report=DSN),
     Kind.BOUNCE, ("bounce:multipart-report",)),
    ("X-Failed-Recipients", M(headers={"x-failed-recipients": "x@cliente.example"}), Kind.BOUNCE,
     ("bounce:x-failed-recipients",)),
    ("the loop rule comes before the bounce rule",
     M(sender="support@support.example.com", headers={"x-failed-recipients": "x@cliente.example"}),
     Kind.LOOP, ("loop:from-own-address", "bounce:x-failed-recipients")),
    ("an ARF complaint is a report, not a bounce",
     M(sender="fbl@provedor.example", report=DeliveryReport(report_type="feedback-report",
                                                         part_types=("message/feedback-report",),
                                                         feedback_type="abuse")),
     Kind.REPORT, ("report:arf=abuse",)),
    ("a no-reply robot", M(sender="no-reply@loja.example"), Kind.REPORT, ("report:no-reply-sender",)),
    ("Auto-Submitted", M(headers={"auto-submitted": "auto-replied"}), Kind.AUTO_REPLY,
     ("auto:auto-submitted=auto-replied",)),
    ("Auto-Submitted: no is a person", M(headers={"auto-submitted": "no"}), Kind.NORMAL, ()),
    ("an empty reverse-path", M(headers={"return-path": "<>"}), Kind.AUTO_REPLY, ("auto:null-reverse-path",)),
    ("a read receipt", M(report=DeliveryReport(report_type="disposition-notification")), Kind.AUTO_REPLY,
     ("auto:read-receipt",)),
    ("a mailing list", M(headers={"list-id": "<news.loja.example>"}), Kind.LIST, ("list:list-id",)),
    ("Precedence: bulk", M(headers={"precedence": "bulk"}), Kind.LIST, ("list:precedence=bulk",)),
    ("an auto-reply to a list mail is an auto-reply, both recorded",
     M(headers={"auto-submitted": "auto-replied", "list-id": "<l.example>"}), Kind.AUTO_REPLY,
     ("auto:auto-submitted=auto-replied", "list:list-id")),
]


@pytest.mark.parametrize(("mail", "kind", "reasons"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_classify(mail: M, kind: Kind, reasons: tuple[str, ...]) -> None:
    result = classify(mail.parsed(), OWN, LOOP)
    assert result.kind is kind, result.reasons
    assert set(reasons) <= set(result.reasons), result.reasons
    if kind is Kind.NORMAL:
        assert result == Classification(Kind.NORMAL)


def test_a_permanent_dsn_names_the_returned_mail_and_address() -> None:
    result = classify(M(sender="mailer-daemon@mx.cliente.example", report=DSN).parsed(), OWN, LOOP)
    assert result.permanent
    assert result.bounced_message_ids == ("<out-1@support.example.com>",)
    assert result.bounced_addresses == ("x@cliente.example",)


def test_a_delayed_dsn_is_not_permanent() -> None:
    delayed = DeliveryReport(report_type="delivery-status", statuses=("4.4.1",), actions=("delayed",))
    result = classify(M(sender="mailer-daemon@mx.cliente.example", report=delayed).parsed(), OWN, LOOP)
    assert result.kind is Kind.BOUNCE and not result.permanent
