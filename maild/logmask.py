"""What log lines may say about people: never a full e-mail address at INFO or above.

``mask("maria.souza@cliente.example.com.br")`` → ``m***@cliente.example.com.br``: enough
for an admin to tell a customer's domain and to grep, not enough to name the person (logs
are kept, shipped and read by more people than the database, and ``contacts forget``
cannot reach them). ``mask_text`` does the same to every address inside a free text (a
decision's reason). Message-IDs are not addresses and are left alone when they come in
angle brackets, which is how maild logs them.
"""
from __future__ import annotations

import re

_ADDRESS = re.compile(r"(?<![<\w.+-])([\w.+-]+)@([\w-]+(?:\.[\w-]+)+)(?![\w>])")


def mask(address: str) -> str:
    local, at, domain = address.rpartition("@")
    if not at:
        return address[:1] + "***" if address else address
    return f"{local[:1]}***@{domain}"


def mask_text(text: str) -> str:
    return _ADDRESS.sub(lambda m: f"{m.group(1)[:1]}***@{m.group(2)}", text)


def mask_phone(phone: str) -> str:
    """``+5521999990000`` → ``+55***0000``: the country, and the last digits to tell numbers apart."""
    return phone[:3] + "***" + phone[-4:] if len(phone) > 7 else "***"
