"""Who wrote the mail an agent forwarded: the customer a ticket opened with ``/new`` (or
``/on-behalf``) is for.

Pure: the text under the command lines in, ``(address, name)`` out. Mail clients forward
inline under a marker line and a small header block; the first ``From:`` / ``De:`` line of
that block names the customer:

    ---------- Forwarded message ---------          (Gmail; "Mensagem encaminhada")
    From: Maria Souza <maria@example.com>
    -------- Original Message --------              (Thunderbird; "Mensagem original")
    Begin forwarded message:                        (Apple Mail; "Início da mensagem encaminhada:")
    ________________________________                (Outlook, with "De: Maria [mailto:maria@…]")
    From: Maria Souza <maria@example.com>

A mail forwarded as an attachment (``message/rfc822``, Outlook's "Forward as attachment")
names its author in its own From header: :func:`attached_author`.
"""
from __future__ import annotations

import email.policy
import re
from email.parser import BytesHeaderParser

_MARKER = re.compile(
    r"^\s*(?:[-_=]{2,}\s*(?:forwarded message|mensagem encaminhada|original message|mensagem original|"
    r"message transf[ée]r[ée]|mensaje reenviado)\s*[-_=]{2,}|begin forwarded message:|"
    r"in[íi]cio da mensagem encaminhada:|_{10,})\s*$", re.IGNORECASE)
_FROM = re.compile(r"^\s*[>*\s]*(?:from|de|von)\s*:\s*\**\s*(.+?)\s*$", re.IGNORECASE)
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_HEADER_LINES = 12  # the From line sits in the block right under the marker


def forwarded_sender(text: str) -> tuple[str, str] | None:
    """The address and display name of the forwarded mail's author, or None."""
    lines = text.replace("\r\n", "\n").split("\n")
    for i, line in enumerate(lines):
        if not _MARKER.match(line):
            continue
        for below in lines[i + 1:i + 1 + _HEADER_LINES]:
            found = _FROM.match(below)
            if found:
                return _person(found.group(1))
    return None


def attached_author(payload: bytes) -> tuple[str, str] | None:
    """The From of a forwarded mail attached whole (its headers only are read)."""
    try:
        header = BytesHeaderParser(policy=email.policy.default).parsebytes(payload).get("From")
        found = header.addresses[0] if header is not None and header.addresses else None
    except Exception:  # noqa: BLE001 - a broken attachment names nobody
        return None
    if found is None or "@" not in found.addr_spec:
        return None
    return found.addr_spec.lower(), " ".join(found.display_name.split())[:200]


def _person(value: str) -> tuple[str, str] | None:
    address = _ADDRESS.search(value)
    if address is None:
        return None
    name = value[:address.start()].replace("mailto:", "").strip(" \t<[(\"'*")
    return address.group(0).lower(), " ".join(name.split())[:200]
