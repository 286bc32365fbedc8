"""One IMAP connection of an ingest worker: log in, name the folders, move mail, keep the checkpoint.

What :mod:`maild.ingest.imap` needs from the server, kept apart from the worker's loop:

* :func:`connect` logs in (implicit TLS or STARTTLS), finds the personal namespace and the
  capabilities (IDLE, MOVE, UIDPLUS) and creates the processed/failed folders if missing;
* :func:`file_mail` moves a handled mail out of the ingest folder: MOVE, or COPY +
  ``\\Deleted`` + (UID) EXPUNGE where MOVE is missing;
* :func:`start_uid` reads the (UIDVALIDITY, last UID) checkpoint: a changed UIDVALIDITY
  restarts from UID 1 (re-processing is a no-op, skipping would lose mail);
* :func:`already_read` tells whether the server's answer already sits in the read buffer
  (so waiting on the socket in IDLE would miss it).
"""
from __future__ import annotations

import contextlib
import logging
import ssl
from dataclasses import dataclass
from typing import Protocol

from imapclient import IMAPClient, SocketTimeout

from maild.ingest.imap_config import ImapAccount

SOCKET_TIMEOUT = SocketTimeout(connect=15.0, read=300.0)  # read: per recv, big mails are fine
LOGOUT_TIMEOUT_SECONDS = 5.0
_DELETED = b"\\Deleted"


class CheckpointStore(Protocol):
    """Per (account, folder): the UIDVALIDITY and the highest UID fully handled."""

    def load(self, account: str, folder: str) -> tuple[int, int] | None: ...

    def save(self, account: str, folder: str, uidvalidity: int, last_uid: int) -> None: ...


@dataclass
class ImapSession:
    """One logged-in connection and what the server offers."""

    client: IMAPClient
    idle: bool
    move: bool
    uidplus: bool
    folder: str
    processed: str | None
    failed: str | None


def server_folder_name(path: str, prefix: str, delimiter: str | None) -> str:
    """Translate a configured ``a/b`` folder path into the server's own mailbox name.

    ``/`` becomes the server's hierarchy delimiter, and the personal namespace prefix
    (``INBOX.`` on Courier/Cyrus) is prepended unless already there. INBOX stays INBOX.
    """
    if path.upper() == "INBOX":
        return "INBOX"
    parts = [part for part in path.split("/") if part]
    name = delimiter.join(parts) if delimiter else "/".join(parts)
    if prefix and not name.upper().startswith(prefix.upper()):
        name = prefix + name
    return name


def connect(account: ImapAccount, log: logging.Logger) -> ImapSession:
    """Log in and look around; the caller owns the session (see :func:`disconnect`)."""
    acc = account
    context = ssl.create_default_context() if (acc.ssl or acc.starttls) else None
    client = IMAPClient(acc.host, port=acc.port, ssl=acc.ssl, ssl_context=context, timeout=SOCKET_TIMEOUT)
    try:
        if acc.starttls:
            client.starttls(context)
        client.login(acc.username, acc.resolve_password())
        prefix, delimiter = _personal_namespace(client)
        session = ImapSession(
            client=client,
            idle=client.has_capability("IDLE"),
            move=client.has_capability("MOVE"),
            uidplus=client.has_capability("UIDPLUS"),
            folder=server_folder_name(acc.folder, prefix, delimiter),
            processed=_maybe_name(acc.processed_folder, prefix, delimiter),
            failed=_maybe_name(acc.failed_folder, prefix, delimiter),
        )
        for target in (session.processed, session.failed):
            if target is not None and not client.folder_exists(target):
                client.create_folder(target)
                log.info("imap %s: created folder %s", acc.name, target)
    except BaseException:
        close_quietly(client)
        raise
    log.info("imap %s: connected to %s:%d as %s (%s)", acc.name, acc.host, acc.port, acc.username,
             "IDLE" if session.idle else f"polling every {acc.poll_seconds:g}s")
    return session


def disconnect(session: ImapSession, logout: bool = False) -> None:
    """Drop the connection; ``logout`` says goodbye first (bounded: the server may be dead)."""
    if logout:
        try:
            session.client.socket().settimeout(LOGOUT_TIMEOUT_SECONDS)
            session.client.logout()
            return
        except Exception:  # already dead: just close the socket
            pass
    close_quietly(session.client)


def close_quietly(client: IMAPClient) -> None:
    with contextlib.suppress(Exception):
        client.shutdown()


def start_uid(checkpoints: CheckpointStore, account: ImapAccount, uidvalidity: int, log: logging.Logger) -> int:
    """The last UID handled in the account's folder (0: none), by the saved checkpoint."""
    name, folder = account.name, account.folder
    saved = checkpoints.load(name, folder)
    if saved is None:
        return 0
    saved_validity, last_uid = saved
    if saved_validity == uidvalidity:
        return last_uid
    log.warning("imap %s: %s UIDVALIDITY changed %d -> %d; re-offering every mail from UID 1 "
                "(already processed mail is recognized as a duplicate)", name, folder, saved_validity, uidvalidity)
    checkpoints.save(name, folder, uidvalidity, 0)
    return 0


def file_mail(session: ImapSession, uid: int, target: str | None) -> None:
    """Move one mail out of the ingest folder (``None``: leave it, the checkpoint guards)."""
    if target is None:
        return
    client = session.client
    if session.move:
        client.move([uid], target)
        return
    client.copy([uid], target)
    client.add_flags([uid], [_DELETED], silent=True)
    if session.uidplus:
        client.uid_expunge([uid])
    else:  # plain EXPUNGE also removes mails someone else flagged \Deleted here
        client.expunge()


def already_read(client: IMAPClient) -> bool:
    """True when responses already sit in imaplib's read buffer (so the socket looks idle).

    Dovecot reports mail that arrived between our SEARCH and IDLE right after "+ idling",
    often in the same packet; reading the continuation line buffers it, and idle_check()
    only polls the socket, so without this look it would wait for the next keep-alive.
    Peeks with the socket non-blocking: also true when bytes are waiting on the socket.
    """
    peek = getattr(getattr(client._imap, "file", None), "peek", None)
    if peek is None:
        return False
    sock = client.socket()
    sock.setblocking(False)
    try:
        return bool(peek(1))
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    finally:
        sock.settimeout(SOCKET_TIMEOUT.read)


def _maybe_name(path: str | None, prefix: str, delimiter: str | None) -> str | None:
    return None if path is None else server_folder_name(path, prefix, delimiter)


def _personal_namespace(client: IMAPClient) -> tuple[str, str | None]:
    """(prefix, hierarchy delimiter) of the personal namespace."""
    if client.has_capability("NAMESPACE"):
        personal = client.namespace().personal
        if personal:
            prefix, delimiter = personal[0]
            return _text(prefix) or "", _text(delimiter)
    listed = client.list_folders("", "")
    delimiter = listed[0][1] if listed else None
    return "", _text(delimiter)


def _text(value: str | bytes | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
