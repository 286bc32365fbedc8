"""Which stored attachments travel with maild's mails, and how they are listed.

* An agent's reply relays the agent's files to the customer — not the images a mail client
  puts inline (signature logos, pasted pictures shown in the text), which belong to the
  agent's own message.
* A notification to agents carries the customer's files while their total size stays within
  ``outbound.notify_attachments_max_bytes``; above it they are only listed, with their
  sizes, and the agent fetches one with ``maild tickets attachment`` or the control
  address's ``get``.

The mail names each file by its content hash; the sender reads the bytes from the blob
store when it builds the mail (:func:`maild.outbound.compose.to_bytes`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from maild.domain.mail import Attachment
from maild.outbound.compose import MailAttachment
from maild.store.apply import StoredAttachment
from maild.text import human_size


def _travels(inline: bool, content_type: str) -> bool:
    return not (inline and content_type.startswith("image/"))


def relayed_files(files: Sequence[StoredAttachment]) -> list[StoredAttachment]:
    """The files of an agent's mail that reach the customer."""
    return [f for f in files if _travels(f.inline, f.content_type)]


def not_kept(attachments: Sequence[Attachment], files: Sequence[StoredAttachment]) -> list[str]:
    """What the agent is told of the files their reply named but maild could not keep (larger
    than ``storage.max_attachment_bytes``): so they are not relayed either."""
    kept = {(f.filename, f.size) for f in files}
    return [f"{a.filename} ({human_size(len(a.payload))}) is larger than storage.max_attachment_bytes: it was "
            "not sent to the customer" for a in attachments
            if _travels(a.inline, a.content_type) and (a.filename, len(a.payload)) not in kept]


class _Stored(Protocol):
    @property
    def filename(self) -> str: ...
    @property
    def content_type(self) -> str: ...
    @property
    def sha256(self) -> str: ...


def as_mail_attachment(f: _Stored) -> MailAttachment:
    """A stored file (a mail's attachment, a ticket's file) as a mail carries it: by hash."""
    return MailAttachment(f.filename, f.content_type or "application/octet-stream", sha256=f.sha256)


@dataclass(frozen=True)
class AgentFiles:
    """The customer's files as a notification to agents carries them."""

    attached: tuple[MailAttachment, ...]
    variables: dict[str, Any]  # ``files`` in the templates (``_attachments.j2``)


def for_agents(files: Sequence[StoredAttachment], limit: int, control: str = "") -> AgentFiles:
    """``control``: the control address agents may ask for a file (``get``), if any."""
    total = sum(f.size for f in files)
    attach = bool(files) and total <= limit
    return AgentFiles(
        tuple(as_mail_attachment(f) for f in files) if attach else (),
        {"list": [{"name": f.filename, "size": f.size, "size_text": human_size(f.size),
                   "content_type": f.content_type} for f in files],
         "attached": attach, "total": total, "total_text": human_size(total), "limit_text": human_size(limit),
         "control": control})


NO_FILES = for_agents((), 0)
