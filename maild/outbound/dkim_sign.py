"""DKIM signatures on outbound mail (optional): ``outbound.dkim: {selector, domain, private_key_file}``.

A helpdesk that sends straight to the internet passes DMARC only when its mail carries a
DKIM signature aligned with its From domain. dkimpy signs each mail's final bytes in the
sender, relaxed/relaxed (header folding and trailing spaces that relays change do not
break it), over the headers receivers check and a relay must not alter.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dkim

# The headers a receiver shows or threads by; Auto-Submitted too, so no relay can strip
# the mark that keeps auto-responders quiet without breaking the signature.
SIGNED_HEADERS = (b"from", b"to", b"cc", b"reply-to", b"subject", b"date", b"message-id", b"in-reply-to",
                  b"references", b"auto-submitted", b"mime-version", b"content-type",
                  b"content-transfer-encoding", b"content-language")


@dataclass(frozen=True)
class DkimSigner:
    selector: str
    domain: str
    private_key: bytes  # PEM

    @classmethod
    def from_file(cls, selector: str, domain: str, private_key_file: Path) -> DkimSigner:
        return cls(selector, domain, private_key_file.read_bytes())

    def sign(self, data: bytes) -> bytes:
        """``data`` with a DKIM-Signature header in front."""
        signature: bytes = dkim.sign(data, self.selector.encode(), self.domain.encode(), self.private_key,
                              canonicalize=(b"relaxed", b"relaxed"), include_headers=list(SIGNED_HEADERS))
        return signature + data
