"""The pipe channel (``maild ingest``): an MTA's pipe transport hands over one mail.

Accept fast, process later: the mail is checked against the listener's recipient table,
its envelope written above it as the listener writes it, made durable in the spool, and
the command exits; the running daemon does the work. Exit codes are what an MTA reads
(sysexits): 0 the mail is durable; 67 the recipient is no helpdesk address (the MTA
bounces: the mail's own fault); 75 anything else (config, spool) — the MTA keeps the mail
and retries. The text an MTA may quote in a bounce names no path, no exception; the
details go to syslog (and to stderr with ``--verbose``).

To stay well under 100 ms a delivery reads only the keys it needs from the YAML file
(helpdesk addresses, spool path) instead of the whole schema; ``tests/test_pipe.py``
holds these to what :mod:`maild.config` makes of the same file.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from maild.exitcodes import EX_NOUSER, EX_OK, EX_TEMPFAIL
from maild.ingest.daemonlock import daemon_running
from maild.ingest.envelope import RecipientTable, envelope_trace, helpdesk_recipients
from maild.ingest.spool import Spool

DEFAULT_SPOOL = "var/spool"  # maild.config.Spool.path
TEMPORARY = "maild: temporary failure; the mail is kept and delivery will be retried"
NO_SUCH_USER = "maild: no such helpdesk address"
NO_DAEMON = ("maild: the mail is queued in the spool, but no maild daemon is running: "
             "it is processed when `maild run` starts")


class PipeError(Exception):
    """Not the mail's fault (config, spool): the MTA should retry. The text is for the log."""


# NamedTuples, not dataclasses: importing dataclasses (and inspect with it) is a good part
# of the few milliseconds a pipe delivery may take.
class PipeSettings(NamedTuple):
    spool: Path
    recipients: RecipientTable


class PipeEnvelope(NamedTuple):
    """What the MTA said about the delivery; ``None``/empty when it said nothing."""

    sender: str | None
    recipients: tuple[str, ...]


class Result(NamedTuple):
    code: int
    message: str = ""  # one line for stderr, safe to end up in a bounce
    detail: str = ""  # for the log only


def read_settings(path: Path, base_dir: Path) -> PipeSettings:
    """The helpdesk's addresses and the spool directory from the YAML file."""
    import yaml

    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as exc:
        raise PipeError(f"{path}: cannot read the configuration: {exc.strerror}") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PipeError(f"{path}: not valid YAML: {exc}") from exc
    helpdesk = _section(data, "helpdesk", path)
    address = helpdesk.get("address")
    extra = helpdesk.get("extra_addresses") or []
    control = helpdesk.get("control_address")
    spool = _section(data, "spool", path).get("path", DEFAULT_SPOOL)
    if not isinstance(address, str) or not isinstance(extra, list) or not all(isinstance(a, str) for a in extra) \
            or not isinstance(control, (str, type(None))) or not isinstance(spool, str):
        raise PipeError(f"{path}: helpdesk.address, extra_addresses, control_address or spool.path is invalid")
    root = Path(spool) if Path(spool).is_absolute() else base_dir / spool
    return PipeSettings(root, helpdesk_recipients(address, extra, control))


def _section(data: Any, name: str, path: Path) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PipeError(f"{path}: the file must be a mapping of sections")
    section = data.get(name) or {}
    if not isinstance(section, dict):
        raise PipeError(f"{path}: {name}: must be a mapping")
    return section


_HEADER_END = re.compile(rb"\r?\n\r?\n")


def first_header(raw: bytes, name: str) -> str | None:
    """The first ``name:`` header of the mail (unfolded), or None."""
    end = _HEADER_END.search(raw)
    head = raw[:end.start()] if end else raw
    head = re.sub(rb"\r?\n[ \t]+", b" ", head)
    found = re.search(rb"^" + re.escape(name.encode()) + rb"[ \t]*:[ \t]*(.*?)[ \t\r]*$", head, re.I | re.M)
    return found.group(1).decode("utf-8", "replace") if found else None


def envelope_of(raw: bytes, sender: str | None, recipient: str | None, environ: Mapping[str, str]) -> PipeEnvelope:
    """The envelope from the command line (``-f``, ``-r``), else the environment a Postfix
    pipe sets (``SENDER``, ``ORIGINAL_RECIPIENT``, ``RECIPIENT``), else the headers the
    delivering MTA wrote (``Return-Path``, ``Delivered-To``, ``X-Original-To``)."""
    if sender is None:
        sender = environ["SENDER"] if "SENDER" in environ else first_header(raw, "return-path")
    if recipient:
        recipients: Sequence[str] = [recipient]
    else:
        recipients = [v for v in (environ.get("ORIGINAL_RECIPIENT"), environ.get("RECIPIENT")) if v]
        if not recipients:
            recipients = [v for v in (first_header(raw, "delivered-to"), first_header(raw, "x-original-to")) if v]
    return PipeEnvelope(sender, tuple(dict.fromkeys(r.strip().strip("<>") for r in recipients)))


def prepare(raw: bytes, envelope: PipeEnvelope, table: RecipientTable) -> tuple[bytes | None, Result | None]:
    """The bytes to spool (the envelope above the mail), or the refusal. Pure.

    A mail without any recipient information is a replay by hand (``maild ingest < file``)
    and is taken; one that names recipients must name a helpdesk address.
    """
    accepted = [r for r in envelope.recipients if table.accepts(r)]
    if envelope.recipients and not accepted:
        return None, Result(EX_NOUSER, NO_SUCH_USER, f"refused recipient(s) {', '.join(envelope.recipients)}")
    if envelope.sender is None and not accepted:
        return raw, None
    return envelope_trace(accepted[:1], envelope.sender) + raw, None


def deliver(raw: bytes, settings: PipeSettings, envelope: PipeEnvelope, channel: str = "pipe") -> Result:
    """Check, spool (fsynced) and report: the whole pipe delivery."""
    data, refusal = prepare(raw, envelope, settings.recipients)
    if refusal is not None:
        return refusal
    assert data is not None
    try:
        entry = Spool(settings.spool).put(data, channel)
    except OSError as exc:
        return Result(EX_TEMPFAIL, TEMPORARY, f"cannot write to the spool {settings.spool}: {exc}")
    if not daemon_running(settings.spool):
        return Result(EX_OK, NO_DAEMON, f"spooled {entry.path.name}; no daemon holds {settings.spool}")
    return Result(EX_OK, "", f"spooled {entry.path.name}")
