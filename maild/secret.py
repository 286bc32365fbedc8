"""Where the key that signs reply addresses and Message-IDs comes from.

In order: ``helpdesk.secret_env`` (an environment variable), ``helpdesk.secret`` (inline),
else a random key maild generates on first start and keeps, mode 0600, beside the
database (next to a SQLite file; for a server database, in ``storage.path``). There is no
predictable fallback: whoever knows the key can forge reply addresses and, with them, an
agent's proof. Published placeholders (``change-me-in-production`` …) are refused when the
configuration is loaded.
"""
from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Protocol

log = logging.getLogger("maild.secret")

# Values shipped in examples and docs: a key anybody can read is no key.
PLACEHOLDERS = frozenset({
    "change-me-in-production", "change-me", "changeme", "change_me", "secret", "maild-secret", "your-secret",
    "please-change-me",
})
FILE_SUFFIX = ".secret"


def is_placeholder(value: str) -> bool:
    text = value.strip().lower()
    return not text or text in PLACEHOLDERS or text.startswith("maild-insecure-default")


class _Config(Protocol):
    """What the secret needs to know of the Config (kept narrow for tests)."""

    @property
    def database_url(self) -> str: ...

    def path(self, value: str) -> Path: ...


def secret_file(config: _Config, storage_path: str) -> Path:
    """Where a generated key lives: ``<db file>.secret``, or ``<storage>/maild.secret``."""
    url = config.database_url
    prefix = "sqlite:///"
    if url.startswith(prefix) and ":memory:" not in url and len(url) > len(prefix):
        database = Path(url[len(prefix):].split("?", 1)[0])
        return database.with_name(database.name + FILE_SUFFIX)
    return config.path(storage_path) / f"maild{FILE_SUFFIX}"


def load_or_create(path: Path) -> bytes:
    """The key in ``path``; on first use, a new random one written there with mode 0600.

    Two processes starting at once agree on one key: the file appears complete or not at
    all (written under a temporary name, then hard-linked into place, which fails if it
    already exists).
    """
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _read(path)  # another process was first: use its key
    finally:
        tmp.unlink(missing_ok=True)
    log.warning("helpdesk.secret is not set: generated a random signing key in %s (mode 0600); keep this "
                "file (and back it up) or reply addresses already sent stop working", path)
    return _read(path)


def _read(path: Path) -> bytes:
    value = path.read_text(encoding="ascii").strip()
    if not value:
        raise ValueError(f"{path} is empty: delete it and maild generates a new key")
    return value.encode()
