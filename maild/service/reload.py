"""What a reload (SIGHUP, ``maild reload``) may change while maild runs, and what needs a restart.

A reload re-reads the YAML file. Agents, keywords, triggers, templates, forms, workflow
and the automatic-mail limits are read by the processor, which is rebuilt and swapped in
between two batches: a mail already being processed finishes under the old processor.
The settings below are held by open sockets, threads or files; a change to them is
named in the log and takes effect at the next restart.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

# Dotted key paths into Config, compared as values.
RESTART_ONLY: tuple[str, ...] = (
    "database", "storage", "spool", "smtp_server", "imap", "outbound.enabled", "outbound.smtp",
    "outbound.retry", "scheduler", "sms", "metrics", "logging", "log_level",
    "helpdesk.secret", "helpdesk.secret_env",
)


def restart_only_changes(old: BaseModel, new: BaseModel) -> list[str]:
    """The restart-only keys whose value differs between the running and the new config."""
    return [key for key in RESTART_ONLY if _value(old, key) != _value(new, key)]


def _value(model: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        model = getattr(model, part, None)
    return model
