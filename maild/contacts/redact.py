"""Finding and removing one person's data in text and in raw mails (LGPD erasure). Pure.

What counts as the person: their address (any case), their name (any case, any run of
white space between its words; names shorter than 4 characters are too common to erase
safely and are left alone) and their phone number (its digits with any separators between
them, so ``(21) 99999-0000``, ``21 99999-0000`` and ``+55 21999990000`` all match).

A raw mail is searched *decoded*: the stdlib ``email`` parser undoes base64 and
quoted-printable bodies, RFC 2047 encoded words in headers, RFC 2231 parameters and
charsets, and nested ``message/rfc822`` parts are walked too; the undecoded bytes are
searched as well, for whatever lies outside the MIME structure. A mail that mentions the
person is *redacted*: every header, text part, attachment, preamble and epilogue that
mentions them is rewritten without it (the address becomes ``erased@maild.invalid`` so
address headers stay valid, name and phone become ``[erased]``), and the result is
searched again; if anything is still found — or the mail cannot be re-serialized — the
whole mail is replaced by a short stub. The mail's structure (parts, types, filenames)
stays as it was otherwise, so other people's mail keeps its value.
"""
from __future__ import annotations

import email
import email.policy
import email.utils
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.encoders import encode_base64
from email.message import EmailMessage

ERASED = "[erased]"
ERASED_ADDRESS = "erased@maild.invalid"
_SEPARATORS = r"[\s().\-+/]*"


@dataclass(frozen=True)
class Person:
    """The patterns that name one person."""

    address: re.Pattern[str]
    others: tuple[re.Pattern[str], ...]  # name, phone

    @classmethod
    def of(cls, email_address: str, name: str = "", phone: str = "") -> Person:
        others = []
        words = name.split()
        if len(" ".join(words)) >= 4:
            others.append(re.compile(r"\s+".join(re.escape(w) for w in words), re.I))
        digits = re.sub(r"\D", "", phone)
        if len(digits) >= 12 and digits.startswith("55"):
            digits = digits[2:]
        if len(digits) >= 8:
            # Brazilian numbers are written with or without the country code.
            country = r"(?:\+?\s*55" + _SEPARATORS + ")?" if len(digits) in (10, 11) else ""
            others.append(re.compile(r"(?<![\d+])" + country + r"\(?" + _SEPARATORS.join(digits) + r"(?!\d)"))
        return cls(re.compile(re.escape(email_address), re.I), tuple(others))

    @property
    def patterns(self) -> tuple[re.Pattern[str], ...]:
        return (self.address, *self.others)

    def found_in(self, text: str) -> bool:
        return any(p.search(text) for p in self.patterns)

    def erase(self, text: str, address: str = ERASED) -> str:
        text = self.address.sub(address, text)
        for pattern in self.others:
            text = pattern.sub(ERASED, text)
        return text

    def erase_bytes(self, data: bytes) -> bytes:
        """Binary data (an attachment): erase the person in each charset it may be written in."""
        for charset, errors in (("utf-8", "surrogateescape"), ("latin-1", "strict")):
            text = data.decode(charset, errors)
            if self.found_in(text):
                data = self.erase(text).encode(charset, errors)
        for charset in ("utf-16-le", "utf-16-be"):
            for found in set(_literal_forms(self, data, charset)):
                data = data.replace(found, ERASED.encode(charset))
        return data


def _literal_forms(person: Person, data: bytes, charset: str) -> Iterator[bytes]:
    """UTF-16 text inside binary data (office documents): the matches, as bytes."""
    for offset in (0, 1):
        text = data[offset:].decode(charset, errors="replace")
        for pattern in person.patterns:
            for match in pattern.finditer(text):
                yield match.group(0).encode(charset)


def _parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def _decoded(part: EmailMessage) -> bytes:
    """A leaf part's payload, transfer encoding undone (None only for multiparts)."""
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _header_text(part: EmailMessage) -> Iterator[str]:
    for name, value in part.items():
        yield f"{name}: {value}"
        yield str(name) + ": " + str(getattr(value, "_parse_tree", value))
    for name in ("content-type", "content-disposition"):
        for key, value in part.get_params(header=name, failobj=[]) or []:
            yield f"{key}={email.utils.collapse_rfc2231_value(value)}"


def _payload_text(part: EmailMessage) -> str:
    if part.is_multipart():
        return ""
    data = _decoded(part)
    if part.get_content_maintype() == "text":
        try:
            return str(part.get_content())
        except (LookupError, UnicodeError, AssertionError, KeyError):
            pass
    texts = [data.decode(c, errors="ignore") for c in ("utf-8", "latin-1")]
    texts += [data[o:].decode(c, errors="ignore") for c in ("utf-16-le", "utf-16-be") for o in (0, 1)]
    return "\n".join(texts)


def decoded_text(raw: bytes) -> str:
    """Everything a mail says, decoded, as one string (what the search looks at)."""
    texts = [raw.decode("utf-8", errors="replace"), raw.decode("latin-1")]
    try:
        msg = _parse(raw)
        for part in msg.walk():
            texts.extend(_header_text(part))
            texts.append(_payload_text(part))
            texts.extend(t for t in (part.preamble, part.epilogue) if t)
    except Exception:  # noqa: BLE001 - a mail the parser chokes on is still searched as bytes
        pass
    return "\n".join(texts)


def mentions(raw: bytes, person: Person) -> bool:
    return person.found_in(decoded_text(raw))


def redact(raw: bytes, person: Person) -> bytes | None:
    """The mail without the person, or None when it could not be cleaned part by part."""
    try:
        msg = _parse(raw)
        for part in msg.walk():
            _redact_headers(part, person)
            _redact_payload(part, person)
            for attr in ("preamble", "epilogue"):
                value = getattr(part, attr)
                if value and person.found_in(value):
                    setattr(part, attr, person.erase(value))
        new = msg.as_bytes()
    except Exception:  # noqa: BLE001 - fall back to the stub rather than keep the data
        return None
    return None if mentions(new, person) else new


def _redact_headers(part: EmailMessage, person: Person) -> None:
    for index, (name, value) in enumerate(list(part.items())):
        text = str(value)
        if person.found_in(text) or person.found_in(str(getattr(value, "_parse_tree", ""))):
            # Replace in place (same position, same name), without re-parsing the old value.
            part._headers[index] = part.policy.header_store_parse(name, person.erase(text, ERASED_ADDRESS))  # type: ignore[attr-defined]


def _redact_payload(part: EmailMessage, person: Person) -> None:
    if part.is_multipart():
        return
    if part.get_content_maintype() == "text":
        try:
            text = part.get_content()
        except (LookupError, UnicodeError, AssertionError, KeyError):
            text = None
        if text is not None:
            if person.found_in(text):
                del part["Content-Transfer-Encoding"]
                part.set_param("charset", "utf-8")
                part.set_payload(person.erase(text, ERASED_ADDRESS).encode("utf-8"))
                encode_base64(part)
            return
    data = _decoded(part)
    cleaned = person.erase_bytes(data)
    if cleaned != data:
        del part["Content-Transfer-Encoding"]
        part.set_payload(cleaned)
        encode_base64(part)


def stub(note: str) -> bytes:
    """What replaces a raw mail that is erased whole."""
    return (f"X-Maild-Erased: {note}\r\nSubject: {ERASED}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\nThis mail was erased on request (LGPD).\r\n").encode()
