"""The envelope of an incoming mail: which recipients the helpdesk takes, and how the
envelope (sender, recipients) is written above the mail so every channel records it alike.

Shared by the SMTP/LMTP listener and the pipe (``maild ingest``): the same recipient
table refuses the same addresses on both, and the same null reverse-path forms count
as empty. Cheap to import: the pipe runs it once per delivery.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

# How MTAs write the empty reverse-path (MAIL FROM:<>) when they hand a mail on:
# Postfix's pipe and local delivery write MAILER-DAEMON, qmail writes #@[].
_NULL_FORMS = frozenset({"", "<>", "mailer-daemon", "<mailer-daemon>", "#@[]", "<#@[]>"})


class BounceAddresses(Protocol):
    def is_bounce_form(self, address: str) -> bool: ...

    def outbox_from_bounce_address(self, address: str) -> int | None: ...


class RecipientTable:
    """Which envelope recipients this helpdesk takes, compiled once at start: the
    configured addresses and their ``+`` forms, nothing else (never an open relay).

    A ``+bounce-`` address (VERP) is taken only with a valid signature: a forged one is
    refused at RCPT, so no one can pass mail off as a bounce of maild's mail.
    """

    def __init__(self, addresses: Iterable[str], bounces: BounceAddresses | None = None) -> None:
        self.bounces = bounces
        patterns = []
        for address in addresses:
            local, _, domain = address.lower().rpartition("@")
            patterns.append(rf"{re.escape(local)}(?:\+[^@\s]+)?@{re.escape(domain)}")
        self._pattern = re.compile("|".join(patterns)) if patterns else None

    def accepts(self, address: str) -> bool:
        address = address.strip().strip("<>").lower()
        if not (self._pattern and self._pattern.fullmatch(address)):
            return False
        if self.bounces is not None and self.bounces.is_bounce_form(address):
            return self.bounces.outbox_from_bounce_address(address) is not None
        return True


def helpdesk_recipients(address: str, extra: Iterable[str], control: str | None,
                        bounces: BounceAddresses | None = None) -> RecipientTable:
    """The table for a helpdesk: its address, its extra addresses, the control address."""
    return RecipientTable([address, *extra, *([control] if control else [])], bounces)


def is_null_sender(sender: str) -> bool:
    """Whether an envelope sender as an MTA wrote it is the empty reverse-path."""
    return "".join(sender.split()).lower() in _NULL_FORMS


def envelope_trace(recipients: list[str], mail_from: str | None = None) -> bytes:
    """``Return-Path:`` (the envelope sender, ``<>`` when empty) and ``X-Original-To:`` lines.

    Written above the mail's own headers: the first occurrence is what the pipeline reads,
    so a ``Return-Path`` the sender wrote into the mail cannot stand in for the envelope.
    """
    if mail_from is not None and is_null_sender(mail_from):
        mail_from = ""
    sender = b"" if mail_from is None else b"Return-Path: <" + re.sub(
        r"[\x00-\x20<>]", "", mail_from).encode("utf-8", "replace") + b">\r\n"
    return sender + b"".join(b"X-Original-To: " + re.sub(r"[\x00-\x20<>]", "", r).encode("utf-8", "replace")
                             + b"\r\n" for r in recipients)
