"""Automatic mails written for these tests from the published formats (RFC 3464 DSN, RFC 5965
ARF, RFC 8098 MDN, RFC 7489 DMARC, RFC 8460 TLS-RPT, RFC 3834) and the fixed texts the MTAs
and auto-responders print, plus ordinary customer mail that must still open tickets.

Each automatic sample that returns a mail carries ``RETURNED`` (a Message-ID maild gave a
mail it sent) somewhere in its own format, so tests can check the bounce is tied back.
"""
from __future__ import annotations

import base64
import gzip
import io
import zipfile
from dataclasses import dataclass

HELPDESK = "support@support.example.com"
CUSTOMER = "maria@cliente.example.com.br"
RETURNED = "<maild.7.abc123@support.example.com>"


@dataclass(frozen=True)
class Sample:
    name: str
    raw: bytes
    automatic: bool
    returns: bool = False  # carries RETURNED: the classifier must find it


def _mail(headers: dict[str, str], body: str, ctype: str = "text/plain; charset=utf-8") -> bytes:
    base = {"To": HELPDESK, "Date": "Mon, 02 Nov 2026 10:00:00 +0000", "MIME-Version": "1.0",
            "Content-Type": ctype, "Content-Transfer-Encoding": "8bit"}
    base.update(headers)
    lines = [f"{k}: {v}" for k, v in base.items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode("utf-8")


def _returned_headers() -> str:
    return (f"Message-ID: {RETURNED}\nFrom: Test Helpdesk <{HELPDESK}>\nTo: {CUSTOMER}\n"
            "Subject: Re: [Support #7] Infiltração no teto\nAuto-Submitted: auto-replied\n")


def _multipart(headers: dict[str, str], parts: list[tuple[str, str]], report_type: str | None = None) -> bytes:
    boundary = "==sample-boundary=="
    params = f'; report-type={report_type}' if report_type else ""
    kind = "report" if report_type else "mixed"
    body = "".join(f"--{boundary}\n{head}\n\n{content}\n" for head, content in parts) + f"--{boundary}--\n"
    return _mail(headers, body, f'multipart/{kind}{params}; boundary="{boundary}"')


def _id(n: str) -> str:
    return f"<{n}@samples.example>"


def bounces() -> list[Sample]:
    """Non-standard and standard delivery failures, one per MTA/provider family and language."""
    nul = {"Return-Path": "<>"}
    out: list[Sample] = []

    def add(name: str, raw: bytes) -> None:
        out.append(Sample(name, raw, True, returns=True))

    add("rfc3464", _multipart({**nul, "From": "Mail Delivery System <MAILER-DAEMON@mx.example.net>",
                               "Subject": "Undelivered Mail Returned to Sender", "Message-ID": _id("dsn")}, [
        ("Content-Type: text/plain", "This is the mail system at host mx.example.net.\n"),
        ("Content-Type: message/delivery-status",
         "Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient: rfc822; maria@cliente.example.com.br\n"
         "Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\n"),
        ("Content-Type: text/rfc822-headers", _returned_headers()),
    ], "delivery-status"))
    add("qmail", _mail({**nul, "From": "MAILER-DAEMON@mail.example.org", "Subject": "failure notice",
                        "Message-ID": _id("qmail")},
                       "Hi. This is the qmail-send program at mail.example.org.\nI'm afraid I wasn't able to deliver "
                       "your message to the following addresses.\nThis is a permanent error; I've given up. "
                       f"Sorry it didn't work out.\n\n<{CUSTOMER}>:\nSorry, no mailbox here by that name.\n\n"
                       "--- Below this line is a copy of the message.\n\n" + _returned_headers() + "\nOlá Maria\n"))
    add("exim", _mail({"From": "Mail Delivery System <Mailer-Daemon@relay.example.com>",
                       "Subject": "Mail delivery failed: returning message to sender", "X-Failed-Recipients": CUSTOMER,
                       "Auto-Submitted": "auto-replied", "Message-ID": _id("exim")},
                      "This message was created automatically by mail delivery software.\n\nA message that you sent "
                      f"could not be delivered to one or more of its\nrecipients. This is a permanent error.\n\n  {CUSTOMER}\n"
                      "    mailbox is full\n\n------ This is a copy of the message, including all the headers. ------\n\n"
                      + _returned_headers()))
    add("sendmail", _multipart({"From": "Mail Delivery Subsystem <MAILER-DAEMON@old.example.com>",
                                "Subject": "Returned mail: see transcript for details", "Message-ID": _id("sendmail")}, [
        ("Content-Type: text/plain", "The original message was received at Mon, 2 Nov 2026\n\n"
                                     "   ----- The following addresses had permanent fatal errors -----\n"
                                     f"<{CUSTOMER}>\n"),
        ("Content-Type: message/rfc822", _returned_headers() + "\nOlá\n"),
    ]))
    add("office365", _multipart({"From": "Microsoft Outlook <postmaster@cliente.onmicrosoft.com>",
                                 "Subject": "Undeliverable: Re: [Support #7] Infiltração no teto",
                                 "Message-ID": _id("o365")}, [
        ("Content-Type: text/plain", "Your message to maria@cliente.example.com.br couldn't be delivered.\n"
                                     "Delivery has failed to these recipients or groups:\n"),
        ("Content-Type: text/rfc822-headers", _returned_headers()),
    ]))
    add("exchange2003", _mail({"From": "System Administrator <postmaster@corp.example>",
                               "Subject": "Undeliverable: Infiltração", "Message-ID": _id("ex2003")},
                              "Your message did not reach some or all of the intended recipients.\n\n"
                              f"      Subject:  Infiltração\n      Sent:     02/11/2026\n\nMessage-ID: {RETURNED}\n"))
    add("gmail", _mail({"From": "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
                        "Subject": "Delivery Status Notification (Failure)", "X-Failed-Recipients": CUSTOMER,
                        "Message-ID": _id("gmail")},
                       "** Address not found **\n\nYour message wasn't delivered to maria@cliente.example.com.br\n\n"
                       "----- Original message -----\n\n" + _returned_headers()))
    add("yahoo", _mail({**nul, "From": "MAILER-DAEMON@yahoo.example", "Subject": "Failure Notice",
                        "Message-ID": _id("yahoo")},
                       "Sorry, we were unable to deliver your message to the following address.\n\n"
                       f"<{CUSTOMER}>:\n554: delivery error\n\n--- Below this line is a copy of the message.\n\n"
                       + _returned_headers()))
    add("domino", _mail({"From": "Mail Router <postmaster@domino.example>", "Subject": "DELIVERY FAILURE: User maria not listed",
                         "Message-ID": _id("domino")},
                        f"Your message\n\n  Subject: Re: Infiltração\n\nwas not delivered to:\n\n  {CUSTOMER}\n\n"
                        f"because:\n\n  User maria not listed in Domino Directory\n\n  Message-ID: {RETURNED}\n"))
    add("groupwise", _mail({**nul, "From": "Mail Delivery System <postmaster@gw.example>",
                            "Subject": "Message status - undeliverable", "Message-ID": _id("groupwise")},
                           f"The message that you sent was undeliverable to the following:\n\t{CUSTOMER} (user not found)\n\n"
                           f"Possible causes:\n\nOriginal message header:\n\n{_returned_headers()}"))
    add("gateway", _mail({"From": "Email Gateway <postmaster@scanner.example>", "Subject": "Message blocked",
                          "Message-ID": _id("gateway")},
                         f"Unable to deliver message to the following recipients, because the message was rejected\n"
                         f"  {CUSTOMER}\n\n> Message-ID: {RETURNED}\n"))
    add("pt", _mail({**nul, "From": "Sistema de Entrega <mailer-daemon@provedor.example.com.br>",
                     "Subject": "Mensagem não entregue", "Message-ID": _id("pt")},
                    f"Sua mensagem não pôde ser entregue a {CUSTOMER}.\n\n" + _returned_headers()))
    add("es", _mail({**nul, "From": "postmaster@correo.example.es", "Subject": "No se pudo entregar el mensaje",
                     "Message-ID": _id("es")},
                    f"Su mensaje no pudo ser entregado a {CUSTOMER}.\n\n" + _returned_headers()))
    add("de", _mail({"From": "MAILER-DAEMON@mx.example.de", "Subject": "Unzustellbar: Infiltração",
                     "Message-ID": _id("de")},
                    f"Ihre Nachricht konnte nicht zugestellt werden.\n\nMessage-ID: {RETURNED}\n"))
    add("fr", _mail({**nul, "From": "Administrateur <postmaster@mail.example.fr>", "Subject": "Non remis : Infiltração",
                     "Message-ID": _id("fr")},
                    f"Votre message n'a pas pu être remis à {CUSTOMER}.\n\n" + _returned_headers()))
    add("ja", _mail({**nul, "From": "MAILER-DAEMON@docomo.example.jp", "Subject": "配信不能通知",
                     "Message-ID": _id("ja")},
                    f"以下のアドレスへの配信に失敗しました。\n{CUSTOMER}\n\n" + _returned_headers()))
    add("zh", _mail({"From": "系统退信 <postmaster@mail.example.cn>", "Subject": "系统退信",
                     "Message-ID": _id("zh")},
                    f"您发送的邮件被退回。\n\nMessage-ID: {RETURNED}\n"))
    add("ko", _mail({**nul, "From": "MAILER-DAEMON@mail.example.kr", "Subject": "메일 반송 안내",
                     "Message-ID": _id("ko")}, "--- 원본 메일 ---\n" + _returned_headers()))
    add("attached-text", _multipart({**nul, "From": "postmaster@isp.example", "Subject": "Returned mail",
                                     "Message-ID": _id("txtatt")}, [
        ("Content-Type: text/plain", "The message could not be delivered.\n"),
        ('Content-Type: text/plain; name="original.txt"\nContent-Disposition: attachment; filename="original.txt"',
         _returned_headers()),
    ]))
    return out


def reports() -> list[Sample]:
    """Feedback-loop (ARF), DMARC aggregate/forensic, TLS-RPT, read receipts, notification robots."""
    nul = {"Return-Path": "<>"}
    out = [
        Sample("arf", _multipart({"From": "Feedback Loop <feedbackloop@isp.example>", "Subject": "FW: complaint",
                                  "Message-ID": _id("arf")}, [
            ("Content-Type: text/plain", "This is an email abuse report.\n"),
            ("Content-Type: message/feedback-report",
             f"Feedback-Type: abuse\nUser-Agent: ISP-FBL/1.0\nVersion: 1\nOriginal-Rcpt-To: <{CUSTOMER}>\n"),
            ("Content-Type: message/rfc822", _returned_headers() + "\nOlá\n"),
        ], "feedback-report"), True, returns=True),
        Sample("arf-no-type", _multipart({"From": "scomp@aol.example", "Subject": "Email Feedback Report for IP 192.0.2.1",
                                          "Message-ID": _id("arf2")}, [
            ("Content-Type: message/feedback-report", "Feedback-Type: abuse\nVersion: 0.1\n"),
            ("Content-Type: message/rfc822", _returned_headers()),
        ]), True, returns=True),
        Sample("mdn", _multipart({"From": f"Maria <{CUSTOMER}>", "Subject": "Read: Infiltração",
                                  "Message-ID": _id("mdn")}, [
            ("Content-Type: text/plain", "Your message was displayed.\n"),
            ("Content-Type: message/disposition-notification",
             f"Final-Recipient: rfc822; {CUSTOMER}\nOriginal-Message-ID: {RETURNED}\n"
             "Disposition: manual-action/MDN-sent-manually; displayed\n"),
        ], "disposition-notification"), True),
        Sample("tlsrpt", _multipart({"From": "tls-reporting@mx.example.net", "Subject":
                                     "Report Domain: support.example.com Submitter: mx.example.net Report-ID: <1@x>",
                                     "Message-ID": _id("tls")}, [
            ("Content-Type: text/plain", "This is an aggregate TLS report.\n"),
            ('Content-Type: application/tlsrpt+gzip\nContent-Transfer-Encoding: base64\n'
             'Content-Disposition: attachment; filename="mx.example.net!support.example.com!1!2.json.gz"',
             base64.b64encode(gzip.compress(b'{"policies": []}')).decode()),
        ], "tlsrpt"), True),
    ]
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("google.com!support.example.com!1700000000!1700086400.xml", "<feedback/>")
    out.append(Sample("dmarc-zip", _multipart({"From": "noreply-dmarc-support@google.example",
                                               "Subject": "Report domain: support.example.com Submitter: google.com",
                                               "Message-ID": _id("dmarc1")}, [
        ("Content-Type: text/plain", ""),
        ('Content-Type: application/zip\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; '
         'filename="google.com!support.example.com!1700000000!1700086400.zip"', base64.b64encode(zbuf.getvalue()).decode()),
    ]), True))
    out.append(Sample("dmarc-gzip-plain-sender", _multipart({"From": "dmarc@reports.example.org", "Subject": "DMARC Aggregate Report",
                                                           "Message-ID": _id("dmarc2")}, [
        ('Content-Type: application/gzip\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; '
         'filename="reports.example.org!support.example.com!1700000000!1700086400.xml.gz"',
         base64.b64encode(gzip.compress(b"<feedback/>")).decode()),
    ]), True))
    out.append(Sample("ses", _mail({"From": "Amazon Web Services <aws-notifications@amazon.example>",
                                    "Subject": "AWS Notification Message", "X-Amz-Sns-Message-Id": "123",
                                    "Message-ID": _id("sns")}, "An alarm fired.\n"), True))
    out.append(Sample("ses-outgoing", _mail({"From": "alerts@shop.example", "Subject": "Seu pedido foi enviado",
                                             "X-SES-Outgoing": "2026.11.02-54.240.0.1", "Message-ID": _id("ses")},
                                            "Pedido 123 enviado.\n"), True))
    out.append(Sample("no-reply", _mail({"From": "Banco <no-reply@banco.example>", "Subject": "Seu extrato",
                                         "Message-ID": _id("noreply")}, "Extrato disponível.\n"), True))
    out.append(Sample("null-sender-notice", _mail({**nul, "From": "Calendar <calendar@corp.example>",
                                                   "Subject": "Lembrete", "Message-ID": _id("cal")}, "Reunião.\n"), True))
    out.append(Sample("mailman-confirm", _mail({"From": "clientes-request@lists.example.org",
                                                "Subject": "confirm 0123456789abcdef", "Message-ID": _id("mm")},
                                               "Mailing list subscription confirmation notice\n"), True))
    out.append(Sample("listserv-nonmember", _mail({"From": "LISTSERV@lists.example.edu",
                                                   "Subject": "Your message to CLIENTES: not a member",
                                                   "Message-ID": _id("ls")}, "You are not a member.\n"), True))
    return out


def auto_replies() -> list[Sample]:
    """Vacation replies in the common forms and languages."""
    rows = [
        ("rfc3834", {"Auto-Submitted": "auto-replied"}, "Re: Infiltração"),
        ("x-autoreply", {"X-Autoreply": "yes"}, "Re: Infiltração"),
        ("x-autorespond", {"X-Autorespond": "Infiltração"}, "Re: Infiltração"),
        ("exchange-oof", {"X-Auto-Response-Suppress": "All", "X-MS-Exchange-Inbox-Rules-Loop": CUSTOMER},
         "Away until Monday"),
        ("precedence", {"Precedence": "auto_reply"}, "Fora"),
        ("en", {}, "Automatic reply: Infiltração"),
        ("en-ooo", {}, "Out of Office: Infiltração"),
        ("pt", {}, "Resposta automática: Infiltração"),
        ("pt-ausencia", {}, "Ausência temporária: Infiltração"),
        ("es", {}, "Respuesta automática: Infiltração"),
        ("de", {}, "Abwesenheitsnotiz: Infiltração"),
        ("de-auto", {}, "Automatische Antwort: Infiltração"),
        ("fr", {}, "Réponse automatique : Infiltração"),
        ("ja", {}, "自動応答: Infiltração"),
        ("ja-fullwidth", {}, "自動返信：Infiltração"),
        ("zh", {}, "自动回复: Infiltração"),
        ("zh-tw", {}, "自動回覆: Infiltração"),
        ("rt", {}, "[support.example.org #33] AutoReply: Infiltração"),
    ]
    return [Sample(f"vacation-{name}", _mail({"From": f"Maria <{CUSTOMER}>", "Subject": subject,
                                              "Message-ID": _id(f"oof-{name}"), "In-Reply-To": RETURNED, **headers},
                                             "Estou fora até segunda.\n"), True) for name, headers, subject in rows]


def customers() -> list[Sample]:
    """Ordinary customer mail, traps included: each must open a ticket and be acknowledged."""
    rows = [
        ("delivery-failed", "Delivery failed for my order", "My order #123 was never delivered. Help!\n"),
        ("undeliverable-question", "Undeliverable package", "The courier says the package is undeliverable.\n"),
        ("returned-mail", "Returned mail?", "My mail to you came back, is this the right address?\n"),
        ("ooo-hours", "Out of office hours support?", "Do you answer on weekends?\n"),
        ("human-on-oof", "RES: Resposta automática: Problema", "Recebi sua resposta automática, mas preciso de ajuda.\n"),
        ("pasted-bounce", "Meu e-mail voltou", "Recebi isto:\n\nDelivery has failed to these recipients or groups:\n"
                                               "   ----- The following addresses had permanent fatal errors -----\n"),
        ("report-word", "Report of the leak", "The leak is back in the kitchen.\n"),
        ("entrega", "Falha na entrega do imóvel", "As chaves não foram entregues.\n"),
        ("zustellung", "Zustellung fehlgeschlagen?", "Mein Paket kam nicht an.\n"),
        ("absence", "Absence: I will be away", "Please call my husband while I am away.\n"),
        ("ja", "配送について", "荷物が届きません。\n"),
        ("zh", "关于退信的问题", "我的邮件被退回了，请帮忙。\n"),
    ]
    out = [Sample(f"customer-{name}", _mail({"From": f"Cliente <{customer_address(name)}>",
                                             "Subject": subject, "Message-ID": _id(f"c-{name}")}, body), False)
           for name, subject, body in rows]
    # A customer forwarding a bounce they got (message/rfc822 holding a DSN) is still a customer.
    fwd = _multipart({"From": f"Cliente <{customer_address('forwards-bounce')}>", "Subject": "Fwd: Undelivered Mail",
                      "Message-ID": _id("c-fwd")}, [
        ("Content-Type: text/plain", "Vejam o que voltou quando escrevi para vocês.\n"),
        ("Content-Type: message/rfc822",
         "From: MAILER-DAEMON@mx.example.net\nSubject: Undelivered Mail Returned to Sender\n"
         "Message-ID: <inner-dsn@mx.example.net>\n\nThis is the mail system at host mx.example.net.\n"),
    ])
    out.append(Sample("customer-forwards-bounce", fwd, False))
    return out


def customer_address(name: str) -> str:
    return f"cliente.{name.replace('-', '')}@cliente.example.com.br"


def all_samples() -> list[Sample]:
    return bounces() + reports() + auto_replies() + customers()
