"""Parse stage: raw bytes → :class:`maild.domain.mail.ParsedMail`.

The only module that touches mail-parser, flufl.bounce or ``email`` objects. The MIME
tree is the stdlib's compat32 tree — the same one mail-parser builds, without its full
extraction, which cost four times the parse and was all redone here; mail-parser reads
the Date, old and broken forms included. Everything that must be exact (headers, bodies,
attachment names) is decoded here from the tree, field by field, so that a broken part
costs a defect note, not the mail. Only a mail without a single usable
header is refused (:class:`QuarantineError`); the raw bytes are kept by the caller.
"""
from __future__ import annotations

import binascii

import dataclasses
import email
import email.message
import email.feedparser
import email.parser
import email.utils
import hashlib
import os
import re
from datetime import datetime, timezone
from email.policy import compat32

from mailparser.utils import convert_mail_date
from flufl.bounce import scan_message

from maild.domain.mail import Address, Attachment, DeliveryReport, ParsedMail, QuarantineError
from maild.ingest import lexicon
from maild.ingest.decode import decode_bytes, decode_words, safe_filename
from maild.ingest.htmltext import html_to_text
from maild.text import one_line

Message = email.message.Message

_USABLE = frozenset(
    "from sender reply-to to cc subject message-id date in-reply-to references received "
    "return-path delivered-to x-original-to mime-version content-type".split()
)
_MSGID = re.compile(r"<[^<>]+>")
_BODY_MSGID = re.compile(r"^[ \t>]*message-id:[ \t]*(<[^<>\s]+>)", re.I | re.M)
_DAEMON = lexicon.DAEMON_ADDRESS
_KNOWN_HEADER = re.compile(
    rb"^(return-path|received|from|message-id|date|subject|to|delivered-to|mime-version)[ \t]*:", re.I | re.M
)
_HEADER_LINE = re.compile(rb"^([!-9;-~]+)[ \t]*:")
# An encoded word stands in for text of the display name only (RFC 2047 §5: never part of
# an addr-spec). Hidden behind these marks while the address list is parsed, its decoded
# "<", "@", "," or CR LF cannot be taken for address syntax.
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[QqBb]\?[^?]*\?=")
_HIDDEN = re.compile("\ue000(\\d+)\ue001")
_ADDR_SPEC = re.compile(r"[^\s<>()\[\]\\,;:\"@\x00-\x1f\x7f-\x9f\ue000\ue001]+@"
                        r"[^\s<>()\[\]\\,;:\"@\x00-\x1f\x7f-\x9f\ue000\ue001]+")
_ANGLE_ADDR = re.compile(r"<\s*([^<>\s]+)\s*>")
_MAX_PARTS = 5000
_FEED_CHUNK = 1 << 20
_MAX_DEPTH = 200


def parse(raw: bytes) -> ParsedMail:
    """Parse one raw mail; never raises except :class:`QuarantineError`."""
    if not raw or not raw.strip():
        raise QuarantineError("empty mail")
    defects: list[str] = []
    msg, headers = _load_repaired(raw.lstrip(b"\r\n").removeprefix(b"\xef\xbb\xbf"), defects)
    if not _USABLE & headers.keys():
        raise QuarantineError("no usable headers (no From, Subject, Message-ID, Date, To ...)")

    parts = _Parts(defects)
    _walk(msg, parts)
    body_text = parts.body_text()

    message_ids = _ids(headers.get("message-id", ""))
    from_ = _addresses(msg, "from") or _addresses(msg, "sender")
    mail = ParsedMail(
        message_id=message_ids[0] if message_ids else _synthetic_id(raw),
        synthetic_message_id=not message_ids,
        subject=one_line(headers.get("subject", "")),
        from_=from_[0] if from_ else None,
        reply_to=_addresses(msg, "reply-to"),
        to=_addresses(msg, "to"),
        cc=_addresses(msg, "cc"),
        delivered_to=_unique(
            a.email for n in ("delivered-to", "x-original-to", "envelope-to") for a in _addresses(msg, n)
        ),
        in_reply_to=_ids(headers.get("in-reply-to", "")),
        references=_ids(headers.get("references", "")),
        date=_date(headers.get("date", ""), defects),
        headers=headers,
        body_text=body_text,
        body_html="\n".join(parts.htmls) if parts.htmls else None,
        attachments=tuple(parts.attachments),
        defects=tuple(defects),
    )
    if _looks_like_report(msg, mail):
        try:
            report = _report(msg, body_text, defects)
        except Exception as exc:  # a report we cannot read is still a mail
            defects.append(f"unreadable delivery report ({type(exc).__name__})")
            report = DeliveryReport()
        mail = dataclasses.replace(mail, report=report, defects=tuple(defects))
    return mail


def _load(raw: bytes, defects: list[str]) -> Message:
    """The MIME tree (compat32, the tree mail-parser itself builds), or headers only."""
    try:
        # Fed in slices: ``message_from_bytes`` reads through a StringIO that holds the
        # whole mail at four bytes a character (≈280 MB at peak for a 36 MB mail, ≈100 MB so).
        parser = email.feedparser.BytesFeedParser(policy=compat32)
        view = memoryview(raw)
        token = f"MAILDKEPT{os.urandom(8).hex()}x"
        kept: dict[str, memoryview] = {}
        done = 0
        runs = _BASE64_RUN.finditer(raw) if len(raw) > _BIG_RUN else iter(())
        for run in runs:
            if run.end() - run.start() < _BIG_RUN:
                continue
            _feed(parser, view[done:run.start()])
            name = f"{token}{len(kept)}"
            end = run.end() - (2 if raw[run.end() - 2:run.end()] == b"\r\n" else 1)  # the last line's ending stays
            kept[name] = view[run.start():end]
            parser.feed(name.encode("ascii") + raw[end:run.end()])
            done = run.end()
        _feed(parser, view[done:])
        msg = parser.close()
        if kept:
            _put_back(msg, token, kept, False)
        return msg
    except Exception as exc:  # e.g. RecursionError on absurd nesting: keep headers, body as text
        defects.append(f"MIME structure unreadable ({type(exc).__name__}); body kept as one attachment")
        return email.parser.BytesHeaderParser(policy=compat32).parsebytes(raw)


# A run of base64 lines this long bypasses the MIME parser, which would hold each line as
# a string (1.7× the run) and then their join (1× more): an attachment's part keeps the
# run's place in the raw mail and is decoded from there (:func:`_base64`).
# Each run matched whole from a line's start, possessively: linear in the mail, and no
# backtracking state per line (2.3× the run); runs below _BIG_RUN bytes stay in the feed.
_BASE64_RUN = re.compile(rb"(?m)^(?:[A-Za-z0-9+/=]{16,998}+\r?\n)++")
_BIG_RUN = 256 * 1024
_KEPT = "_maild_base64"  # the attribute of a part whose base64 body stayed in the raw mail


def _feed(parser: email.feedparser.BytesFeedParser, view: memoryview) -> None:
    for start in range(0, len(view), _FEED_CHUNK):
        parser.feed(bytes(view[start:start + _FEED_CHUNK]))


def _put_back(part: Message, token: str, kept: dict[str, memoryview], inside_message: bool) -> None:
    """Give every part its kept text back, except a base64 attachment's (its bytes are
    decoded straight from the raw mail): texts, and anything inside an attached mail,
    which is read or re-serialised as a whole."""
    if part.is_multipart():
        inside = inside_message or part.get_content_maintype() == "message"
        for sub in part.get_payload():
            if isinstance(sub, Message):
                _put_back(sub, token, kept, inside)
        return
    payload = part.get_payload()
    if not isinstance(payload, str) or token not in payload:
        return
    name = payload.strip()
    if (name in kept and not inside_message and part.get_content_maintype() not in ("text", "message")
            and str(part.get("content-transfer-encoding", "")).strip().lower() == "base64"):
        setattr(part, _KEPT, kept[name])
        return
    for key, text in kept.items():
        if key in payload:
            payload = payload.replace(key, bytes(text).decode("ascii"))
    part.set_payload(payload)


def _load_repaired(raw: bytes, defects: list[str]) -> tuple[Message, dict[str, str]]:
    """Parse; when From (or every header) is missing, retry with a repaired header block."""
    msg = _load(raw, defects)
    headers = _headers(msg)
    if "from" in headers:
        return msg, headers
    fixed = _repair(raw)
    if fixed is None or fixed == raw:
        return msg, headers
    msg2 = _load(fixed, [])
    headers2 = _headers(msg2)
    if "from" in headers2 or (_USABLE & headers2.keys() and not _USABLE & headers.keys()):
        defects.append("broken header block repaired (preamble, 'Name :' or unfolded lines)")
        return msg2, headers2
    return msg, headers


def _repair(raw: bytes) -> bytes | None:
    """Skip a gateway preamble, fix ``Name :`` headers and fold stray lines into headers."""
    start = _KNOWN_HEADER.search(raw[:16384])
    if start is None:
        return None
    head, sep, rest = raw[start.start() :].partition(b"\n\n")
    if not sep:
        head, sep, rest = raw[start.start() :].partition(b"\r\n\r\n")
    lines = []
    for line in head.splitlines(keepends=True):
        name = _HEADER_LINE.match(line)
        if name:
            line = name.group(1) + b":" + line[name.end() :]
        elif line[:1] not in (b" ", b"\t") and not line.startswith(b"From "):
            line = b" " + line
        lines.append(line)
    return b"".join(lines) + sep + rest


def _raw_header(value: object) -> str:
    """A compat32 header value (str with surrogate-escaped 8-bit bytes) as clean text."""
    text = str(value)
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        text = decode_bytes(text.encode("ascii", "surrogateescape"), None, [])
    return re.sub(r"\r?\n(?=[ \t])", "", text).replace("\r", "").replace("\n", " ").strip()


def _headers(msg: Message) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in msg.raw_items():
        key = name.strip().lower()
        if key and key not in headers:
            headers[key] = decode_words(_raw_header(value))
    return headers


def _all_raw(msg: Message, name: str) -> list[str]:
    return [_raw_header(v) for n, v in msg.raw_items() if n.strip().lower() == name]


def _addresses(msg: Message, name: str) -> tuple[Address, ...]:
    """The mailboxes of every ``name`` header: a real addr-spec each, or none at all.

    What the list parser makes of hostile input is checked rather than trusted: an
    "address" that is not a plain addr-spec, that came out of an encoded word, or that is
    an unquoted name standing before ``<addr>`` is dropped; a mailbox the parser could not
    split (an unbalanced quote) keeps its one ``<addr-spec>`` when it has exactly one.
    """
    found: list[Address] = []
    for value in _all_raw(msg, name):
        words: list[str] = []

        def hide(m: re.Match[str]) -> str:
            words.append(m.group(0))
            return f"\ue000{len(words) - 1}\ue001"

        hidden = _ENCODED_WORD.sub(hide, value)
        try:
            pairs = email.utils.getaddresses([hidden])
        except Exception:  # pathological quoting: only what angle brackets say
            pairs = []
        mailboxes = [(display, addr.strip().strip("<>").strip()) for display, addr in pairs]
        good = [(display, addr) for display, addr in mailboxes if _ADDR_SPEC.fullmatch(addr)
                and not (not display and re.search(re.escape(addr) + r"\s*<", hidden))]  # `x@y <real@z>`
        if not good and any(addr for _, addr in mailboxes) or not pairs:
            angles = [a for a in _ANGLE_ADDR.findall(hidden) if _ADDR_SPEC.fullmatch(a)]
            good = [("", angles[0])] if len(angles) == 1 else []
        for display, addr in good:
            shown = _HIDDEN.sub(lambda m: words[int(m.group(1))], display)
            found.append(Address(name=" ".join(one_line(decode_words(shown)).split()), email=addr.lower()))
    return tuple(found)


def thread_ids(raw: bytes) -> tuple[str | None, tuple[str, ...]]:
    """The mail's Message-ID and the Message-IDs it answers (In-Reply-To, References),
    read from the header block alone: cheap enough for the listener and the queue."""
    end = raw.find(b"\r\n\r\n")
    end = raw.find(b"\n\n") if end < 0 else end
    head = raw[:end if end >= 0 else 256 * 1024].decode("utf-8", "surrogateescape")
    headers = email.parser.HeaderParser(policy=compat32).parsestr(head)
    own = _ids(str(headers.get("message-id", "")))
    parents = _ids(" ".join(str(headers.get(name, "")) for name in ("in-reply-to", "references")))
    return (own[0] if own else None), parents


def _ids(value: str) -> tuple[str, ...]:
    return _unique(re.sub(r"\s+", "", m) for m in _MSGID.findall(value) if m.strip("<> \t"))


def _unique(items: object) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))  # type: ignore[call-overload]


def _synthetic_id(raw: bytes) -> str:
    return f"<{hashlib.sha256(raw).hexdigest()[:32]}@maild.invalid>"


def _date(value: str, defects: list[str]) -> datetime | None:
    """mail-parser's tolerant reading of RFC 5322 and obsolete dates, then the stdlib's."""
    if not value:
        return None
    try:
        parsed: datetime
        parsed, _offset = convert_mail_date(value)
    except Exception:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except Exception:
            defects.append(f"unparseable Date: {value[:60]!r}")
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


@dataclasses.dataclass
class _Parts:
    """What the MIME walk collects: bodies, attachments and what could not be decoded."""

    defects: list[str]
    texts: list[str] = dataclasses.field(default_factory=list)
    htmls: list[str] = dataclasses.field(default_factory=list)
    spare_texts: list[str] = dataclasses.field(default_factory=list)  # inline text "files"
    attachments: list[Attachment] = dataclasses.field(default_factory=list)
    count: int = 0

    def body_text(self) -> str:
        text = "\n\n".join(self.texts)
        if text.strip() or not (self.htmls or self.spare_texts):
            return text
        return html_to_text("\n".join(self.htmls)) if self.htmls else "\n\n".join(self.spare_texts)


def _walk(part: Message, parts: _Parts, depth: int = 0) -> None:
    """Collect inline text/html bodies and attachments, depth-first in MIME order.

    A ``message/rfc822`` part is kept whole as an ``.eml`` attachment; when it is not
    marked as an attachment (inline forwards) its texts are part of the body too.
    """
    parts.count += 1
    if parts.count > _MAX_PARTS or depth > _MAX_DEPTH:
        if parts.count == _MAX_PARTS + 1 or depth == _MAX_DEPTH + 1:
            parts.defects.append("too many or too deeply nested MIME parts; rest dropped")
        return
    ctype = part.get_content_type()
    disposition = _safe(part.get_content_disposition) or ""
    if part.is_multipart() and not ctype.startswith("message/"):
        for sub in part.get_payload():
            if isinstance(sub, Message):
                _walk(sub, parts, depth + 1)
        return
    filename = decode_words(_raw_header(_safe(part.get_filename) or ""))
    content_id = "".join(_all_raw(part, "content-id")[:1]).strip("<> ") or None
    is_text = ctype in ("text/plain", "text/html") and disposition != "attachment"
    if is_text and not filename:
        text = _text(part, parts.defects)
        (parts.texts if ctype == "text/plain" else parts.htmls).append(text)
        return
    if is_text and disposition == "inline":  # a named inline text: body if there is no other
        parts.spare_texts.append(_text(part, parts.defects))
    parts.attachments.append(
        Attachment(
            filename=safe_filename(filename or _fallback_name(part), len(parts.attachments) + 1, ctype),
            content_type=ctype,
            payload=_payload(part, parts.defects),
            content_id=content_id,
            inline=disposition == "inline" or (content_id is not None and disposition != "attachment"),
        )
    )
    if ctype == "message/rfc822" and disposition != "attachment" and part.is_multipart():
        for inner in part.get_payload():
            if isinstance(inner, Message):
                _walk(inner, parts, depth + 1)


def _text(part: Message, defects: list[str]) -> str:
    text = decode_bytes(_payload(part, defects), _safe(part.get_content_charset), defects)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _subparts(part: Message) -> list[Message]:
    """A multipart's parts (``get_payload()`` is typed for a leaf's text too)."""
    payload = part.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _fallback_name(part: Message) -> str:
    if part.get_content_type() == "message/rfc822":
        inner = _subparts(part)
        subjects = _all_raw(inner[0], "subject") if inner else []
        return f"{decode_words(subjects[0] if subjects else '')[:80] or 'message'}.eml"
    return _safe(lambda: part.get_param("name")) or ""


def _payload(part: Message, defects: list[str]) -> bytes:
    try:
        if part.is_multipart():  # message/rfc822 and friends: the inner mail as bytes
            inner = part.get_payload()
            return b"".join(m.as_bytes(policy=compat32) for m in inner if isinstance(m, Message))
        fast = _base64(part)
        if fast is not None:
            return fast
        data = part.get_payload(decode=True)
        return data if isinstance(data, bytes) else b""
    except Exception as exc:
        defects.append(f"undecodable {part.get_content_type()} part ({type(exc).__name__})")
        raw = part.get_payload()
        return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _base64(part: Message) -> bytes | None:
    """A base64 leaf decoded straight from its text, or None for the stdlib's path.

    ``get_payload(decode=True)`` encodes the text, splits it into a list of lines and
    joins them before decoding: four to five times the part's size at once, which for a
    50 MB attachment is most of the daemon's peak memory. ``a2b_base64`` skips the line
    breaks itself; anything it refuses (non-ASCII, bad padding) takes the stdlib's path
    with its defect handling."""
    kept: memoryview | None = getattr(part, _KEPT, None)
    if kept is not None:
        try:
            return binascii.a2b_base64(kept)
        except binascii.Error:
            part.set_payload(bytes(kept).decode("ascii"))  # the stdlib's path, with its defect handling
            delattr(part, _KEPT)
    payload = part.get_payload()
    if not isinstance(payload, str) or str(part.get("content-transfer-encoding", "")).strip().lower() != "base64":
        return None
    try:
        return binascii.a2b_base64(payload)
    except (binascii.Error, ValueError):
        return None


def _safe(func: object) -> str | None:
    try:
        value = func()  # type: ignore[operator]
    except Exception:
        return None
    return str(value) if value is not None else None


_REPORT_PARTS = frozenset({"message/delivery-status", "message/feedback-report", "message/disposition-notification",
                           "text/rfc822-headers", "message/rfc822-headers", "message/global-delivery-status"})


def _looks_like_report(msg: Message, mail: ParsedMail) -> bool:
    if msg.get_content_type() == "multipart/report":
        return True
    if mail.from_ and (_DAEMON.match(mail.from_.email) or lexicon.DAEMON_NAME.search(mail.from_.name)):
        return True
    if mail.null_reverse_path or mail.header("x-failed-recipients"):
        return True
    return any(p.get_content_type() in _REPORT_PARTS for p in _own_parts(msg))


def _report(msg: Message, body_text: str, defects: list[str]) -> DeliveryReport:
    ids: list[str] = []
    recipients: list[str] = []
    statuses: list[str] = []
    actions: list[str] = []
    returned_to = [a.strip().strip("<>").lower() for v in _all_raw(msg, "x-failed-recipients") for a in v.split(",")]
    feedback_type = ""
    texts: list[str] = []  # text parts that are not the body: a returned mail quoted as a text attachment
    own = _own_parts(msg)
    for part in own:
        ctype = part.get_content_type()
        inner: Message | None = None
        if ctype == "message/feedback-report" and part.is_multipart() and part.get_payload():
            fields = _subparts(part)[0]
            feedback_type = _raw_header(fields.get("feedback-type", "")).lower()
            returned_to += [_raw_header(v).strip("<> ").lower() for v in fields.get_all("original-rcpt-to", [])]
        elif ctype == "text/plain" and part.get_filename():
            texts.append(decode_bytes(_payload(part, defects), _safe(part.get_content_charset), []))
        if ctype == "message/delivery-status":
            for block in _subparts(part) if part.is_multipart() else []:
                for field in ("final-recipient", "original-recipient"):
                    addr = _raw_header(block.get(field, "")).rpartition(";")[2].strip().strip("<>").lower()
                    if "@" in addr:
                        recipients.append(addr)
                status = re.match(r"\s*(\d\.\d{1,3}\.\d{1,3})", _raw_header(block.get("status", "")))
                statuses += [status.group(1)] if status else []
                actions += [_raw_header(block["action"]).lower()] if block.get("action") else []
        elif ctype == "message/rfc822" and part.is_multipart() and part.get_payload():
            inner = _subparts(part)[0]
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers"):
            text = decode_bytes(_payload(part, defects), None, [])
            inner = email.parser.HeaderParser(policy=compat32).parsestr(text)
        if inner is not None:
            for name in ("message-id", "in-reply-to", "references"):
                ids += [i for v in _all_raw(inner, name) for i in _ids(v)]
            returned_to += [a.email for a in _addresses(inner, "to")]
    if not ids:  # qmail-style notices quote the returned mail as plain text, in the body or a text file
        ids = [i for text in (body_text, *texts) for i in _BODY_MSGID.findall(text)]
    try:
        scanned = sorted(a.decode("utf-8", "replace").lower() for a in scan_message(msg))
    except Exception as exc:  # heuristics over broken mail: a note, never a failure
        defects.append(f"flufl.bounce failed ({type(exc).__name__})")
        scanned = []
    return DeliveryReport(
        report_type=(_safe(lambda: msg.get_param("report-type")) or "").lower(),
        message_ids=_unique(ids),
        recipients=_unique(recipients),
        statuses=tuple(statuses),
        actions=tuple(actions),
        scanned_addresses=_unique(scanned),
        part_types=_unique(p.get_content_type() for p in own[1:]),
        feedback_type=feedback_type,
        returned_to=_unique(a for a in returned_to if "@" in a),
    )


def _own_parts(msg: Message) -> list[Message]:
    """The mail's parts, not those of mails it carries: a customer forwarding a bounce
    (message/rfc822 holding a DSN) has not bounced anything."""
    parts: list[Message] = []
    stack = [msg]
    while stack and len(parts) < _MAX_PARTS:
        part = stack.pop()
        parts.append(part)
        if part.is_multipart() and not part.get_content_type().startswith("message/"):
            stack.extend(reversed([p for p in part.get_payload() if isinstance(p, Message)]))
    return parts
