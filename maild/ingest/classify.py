"""Classify stage: what kind of mail is this — normal, bounce, report, auto-reply, list or loop?

An ordered rule table (:data:`RULES`). Every rule is a small function that returns the
reasons it fired for (empty when it did not), each named ``kind:rule`` (docs/AUTOMATIC.md
lists them). All rules run so the reasons can be recorded on the ticket history and the
raw mail row; the kind of the first rule that fired wins. Reads only
:class:`~maild.domain.mail.ParsedMail`: delivery-report details come from ``mail.report``, the
words and sender names from :mod:`maild.ingest.lexicon`.

Against false positives: a word in a subject or body alone never makes a mail automatic.
It counts only from a machine sender (mailer-daemon, postmaster, ...), under an empty
reverse-path, or beside a report part — a customer writing "Delivery failed for my
order" is a customer.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from maild.domain.mail import Classification, Kind, ParsedMail
from maild.ingest import lexicon as lx


@dataclass(frozen=True)
class Context:
    own_addresses: frozenset[str]
    loop_header_value: str


Rule = Callable[[ParsedMail, Context], list[str]]

_LIST_PRECEDENCE = frozenset({"bulk", "list", "junk"})
_BULK_PREFIXES = ("x-mailchimp-", "x-mc-user", "x-campaign", "x-campaignid", "x-sendgrid-", "x-feedback-id")


def _loop(mail: ParsedMail, ctx: Context) -> list[str]:
    reasons = []
    marker = mail.header("x-maild-loop").strip().lower()
    if marker and ctx.loop_header_value and ctx.loop_header_value.strip().lower() in marker:
        reasons.append("loop:x-maild-loop")
    own = {a.lower() for a in ctx.own_addresses}
    if mail.from_ and mail.from_.email in own:
        reasons.append("loop:from-own-address")
    return reasons


def _from_daemon(mail: ParsedMail) -> bool:
    if mail.from_ is None:
        return False
    return bool(lx.DAEMON_ADDRESS.match(mail.from_.email) or lx.DAEMON_NAME.search(mail.from_.name))


def _bounce(mail: ParsedMail, ctx: Context) -> list[str]:
    reasons = []
    report = mail.report
    if report is not None and "message/feedback-report" in report.part_types:
        return []  # a complaint quotes the mail it is about, as bounces do: the report rule decides
    if report is not None and report.report_type == "delivery-status":
        reasons.append("bounce:multipart-report")
    elif report is not None and (report.statuses or "message/delivery-status" in report.part_types):
        reasons.append("bounce:delivery-status-part")
    if mail.header("x-failed-recipients").strip():  # Exim and the providers that copy it
        reasons.append("bounce:x-failed-recipients")
    daemon = _from_daemon(mail)
    machine = daemon or mail.null_reverse_path
    who = "daemon" if daemon else "null-sender"
    if machine and lx.BOUNCE_SUBJECT.search(mail.subject):
        reasons.append(f"bounce:{who}-subject")
    if machine and lx.BOUNCE_BODY.search(mail.body_text[:20000]):
        reasons.append(f"bounce:{who}-body")
    if machine and report is not None and report.message_ids and (
            "message/rfc822" in report.part_types or "text/rfc822-headers" in report.part_types):
        reasons.append(f"bounce:{who}-returned-mail")
    if machine and report is not None and report.scanned_addresses:
        reasons.append(f"bounce:{who}-flufl")
    if mail.from_ is not None and lx.STRICT_DAEMON.match(mail.from_.email) and not reasons:
        reasons.append("bounce:mailer-daemon")  # no person writes as MAILER-DAEMON
    return reasons


def _report(mail: ParsedMail, ctx: Context) -> list[str]:
    """Feedback (ARF), DMARC and TLS-RPT reports and notification robots: kept, no ticket."""
    reasons = []
    report = mail.report
    if report is not None:
        if report.report_type and report.report_type not in ("delivery-status", "disposition-notification"):
            reasons.append(f"report:multipart-report={report.report_type[:30]}")
        if "message/feedback-report" in report.part_types:
            reasons.append(f"report:arf={report.feedback_type[:20] or '?'}")
    if lx.REPORT_SUBJECT.search(mail.subject):
        reasons.append("report:dmarc-subject")
    if any(a.content_type in lx.REPORT_TYPES and lx.REPORT_FILE.search(a.filename) for a in mail.attachments) and (
            reasons or mail.null_reverse_path or _robot_sender(mail)):
        reasons.append("report:dmarc-attachment")
    reasons += [f"report:header={n[:40]}" for n in mail.headers if n.startswith(lx.ROBOT_HEADER_PREFIXES)][:2]
    if mail.from_ is not None and lx.NO_REPLY_ADDRESS.match(mail.from_.email):
        reasons.append("report:no-reply-sender")
    if mail.from_ is not None and lx.FEEDBACK_ADDRESS.match(mail.from_.email):
        reasons.append("report:feedback-loop-sender")
    if mail.from_ is not None and lx.LIST_ROBOT_ADDRESS.match(mail.from_.email) and \
            lx.LIST_ROBOT_SUBJECT.search(mail.subject):
        reasons.append("report:list-robot")
    return reasons


def _robot_sender(mail: ParsedMail) -> bool:
    return mail.from_ is not None and bool(lx.NO_REPLY_ADDRESS.match(mail.from_.email)
                                           or lx.FEEDBACK_ADDRESS.match(mail.from_.email))


def _auto_reply(mail: ParsedMail, ctx: Context) -> list[str]:
    reasons = []
    submitted = mail.header("auto-submitted").strip().lower()
    if submitted and not submitted.startswith("no"):
        reasons.append(f"auto:auto-submitted={submitted.split(';')[0][:30]}")
    for name in ("x-autoreply", "x-autorespond", "x-autoresponder", "x-autogenerated"):
        if mail.header(name).strip():
            reasons.append(f"auto:{name}")
    for name in ("precedence", "x-precedence"):
        if mail.header(name).strip().lower() == "auto_reply":
            reasons.append(f"auto:{name}=auto_reply")
    if mail.report is not None and (mail.report.report_type == "disposition-notification"
                                    or "message/disposition-notification" in mail.report.part_types):
        reasons.append("auto:read-receipt")
    if mail.null_reverse_path:  # only notifications travel with MAIL FROM:<> (RFC 5321 §4.5.5)
        reasons.append("auto:null-reverse-path")
    # Exchange marks its own OOF notices; alone these headers prove nothing (Outlook
    # users' normal mail carries X-Auto-Response-Suppress too).
    suppress = mail.header("x-auto-response-suppress").lower()
    exchange = any(v in suppress for v in ("all", "oof", "autoreply"))
    if lx.AUTO_SUBJECT.search(mail.subject):
        reasons.append("auto:subject")
        if mail.header("x-ms-exchange-generated-message-source") or exchange:
            reasons.append("auto:exchange-headers")
    elif exchange and mail.header("x-ms-exchange-inbox-rules-loop"):  # an inbox rule answered
        reasons.append("auto:exchange-inbox-rule")
    return reasons


def _list(mail: ParsedMail, ctx: Context) -> list[str]:
    reasons = [f"list:{n}" for n in ("list-id", "list-unsubscribe", "list-post") if mail.header(n).strip()]
    for name in ("precedence", "x-precedence"):
        if mail.header(name).strip().lower() in _LIST_PRECEDENCE:
            reasons.append(f"list:{name}={mail.header(name).strip().lower()}")
    reasons += [f"list:{n}" for n in mail.headers if n.startswith(_BULK_PREFIXES)][:3]
    return reasons


RULES: tuple[tuple[Kind, Rule], ...] = (
    (Kind.LOOP, _loop),
    (Kind.BOUNCE, _bounce),
    (Kind.REPORT, _report),
    (Kind.AUTO_REPLY, _auto_reply),
    (Kind.LIST, _list),
)


def classify(mail: ParsedMail, own_addresses: frozenset[str], loop_header_value: str) -> Classification:
    """Run every rule in order; the first that fired decides the kind."""
    ctx = Context(own_addresses, loop_header_value)
    kind = Kind.NORMAL
    reasons: list[str] = []
    for rule_kind, rule in RULES:
        fired = rule(mail, ctx)
        if fired and not reasons:
            kind = rule_kind
        reasons += fired
    if kind is Kind.REPORT:
        report = mail.report
        return Classification(Kind.REPORT, tuple(reasons),
                              bounced_message_ids=report.message_ids if report else (),
                              bounced_addresses=report.returned_to if report else ())
    if kind is not Kind.BOUNCE:
        return Classification(kind=kind, reasons=tuple(reasons))
    return _bounce_classification(mail, tuple(reasons))


def _bounce_classification(mail: ParsedMail, reasons: tuple[str, ...]) -> Classification:
    report = mail.report
    failed_subject = bool(lx.FAILURE_SUBJECT.search(mail.subject))
    if report is None:
        return Classification(Kind.BOUNCE, reasons, permanent=failed_subject)
    if report.statuses:
        permanent = any(s.startswith("5") for s in report.statuses)
    else:
        permanent = "failed" in report.actions or failed_subject or bool(report.scanned_addresses)
    return Classification(
        kind=Kind.BOUNCE,
        reasons=reasons,
        bounced_message_ids=report.message_ids,
        bounced_addresses=tuple(dict.fromkeys(report.recipients + report.scanned_addresses
                                              + (report.returned_to if not report.recipients else ()))),
        permanent=permanent,
    )
