"""A stored file of a ticket, as commands and reports name it (the bytes are in the blob
store, by ``sha256``)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileRef:
    filename: str
    content_type: str
    size: int
    sha256: str
