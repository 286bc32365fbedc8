"""Configuration of one IMAP account that maild reads mail from (the ``imap:`` list).

Folder names are written with ``/`` as the hierarchy separator whatever the server uses;
the worker translates them (``maild/processed`` becomes ``maild.processed`` on Dovecot).
``processed_folder`` / ``failed_folder`` set to ``null`` leave those mails in place: the
UIDVALIDITY/UID checkpoint alone then keeps them from being read twice.

The password comes from exactly one of ``password`` (inline, discouraged),
``password_env`` (an environment variable) or ``password_file`` (a file, stripped); it is
read at each connection, so a rotated secret is picked up, and never appears in a repr.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

DEFAULT_PROCESSED_FOLDER = "maild/processed"
DEFAULT_FAILED_FOLDER = "maild/failed"


class PasswordUnavailable(RuntimeError):
    """The configured password source (environment variable or file) cannot be read."""


class ImapAccount(BaseModel):
    """One mailbox to ingest: where it is, how to log in, which folders to use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@+-]*$")
    host: str = Field(min_length=1)
    port: int = Field(default=993, ge=1, le=65535)  # 143 when ssl is false and port unset
    ssl: bool = True
    starttls: bool = False
    username: str = Field(min_length=1)
    password: SecretStr | None = None
    password_env: str | None = None
    password_file: Path | None = None
    folder: str = Field(default="INBOX", min_length=1)
    processed_folder: str | None = DEFAULT_PROCESSED_FOLDER
    failed_folder: str | None = DEFAULT_FAILED_FOLDER
    poll_seconds: float = Field(default=60, gt=0, le=24 * 3600)

    @model_validator(mode="before")
    @classmethod
    def _default_port(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("port") is None and data.get("ssl") is False:
            return {**data, "port": 143}
        return data

    @model_validator(mode="after")
    def _check(self) -> ImapAccount:
        sources = [
            n for n in ("password", "password_env", "password_file") if getattr(self, n) is not None
        ]
        if len(sources) != 1:
            given = ", ".join(sources) if sources else "none"
            raise ValueError(
                "give exactly one of password, password_env, password_file "
                f"(given: {given})"
            )
        if self.ssl and self.starttls:
            raise ValueError("ssl and starttls are exclusive: ssl is TLS from the start")
        for key in ("processed_folder", "failed_folder"):
            target = getattr(self, key)
            if target is not None and _same_folder(target, self.folder):
                raise ValueError(f"{key} must differ from folder ({self.folder!r})")
        return self

    def resolve_password(self) -> str:
        """The password from its configured source; raises PasswordUnavailable if unset."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise PasswordUnavailable(
                    f"imap account {self.name!r}: environment variable "
                    f"{self.password_env} is not set"
                )
            return value
        assert self.password_file is not None  # guaranteed by _check
        try:
            return self.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise PasswordUnavailable(
                f"imap account {self.name!r}: cannot read password_file "
                f"{self.password_file}: {exc.strerror}"
            ) from exc


def _same_folder(a: str, b: str) -> bool:
    """Folder equality as IMAP sees it (INBOX is case-insensitive)."""
    if a.upper() == "INBOX" or b.upper() == "INBOX":
        return a.upper() == b.upper()
    return a.strip("/") == b.strip("/")
