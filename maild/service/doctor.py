"""``maild doctor``: check what maild depends on, from where it runs, and say what to fix.

Each check is a function of the config that returns a ``Finding``; nothing is changed
(no migration, no mail sent: the smarthost sees EHLO, STARTTLS, AUTH and QUIT only).
"""
from __future__ import annotations

import os
import shutil
import ssl
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from maild.config import Config

FREE_SPACE_WARN = 1 << 30  # bytes: below this, a mail burst or a big attachment may fill the disk


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    detail: str
    fix: str = ""


Check = Callable[[Config], Iterator[Finding]]


def database(config: Config) -> Iterator[Finding]:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from maild.store.db import Database

    shown = make_url(config.database_url).render_as_string(hide_password=True)
    db = Database(config.database_url)
    try:
        with db.read() as session:
            session.execute(text("SELECT 1"))
        yield Finding("database", Level.OK, f"{shown} answers")
        current, head = db.current_revision(), db.head_revision()
        if current == head:
            yield Finding("migrations", Level.OK, f"schema {current}")
        else:
            yield Finding("migrations", Level.FAIL, f"schema {current or 'none'}, this maild needs {head}",
                          "run `maild db upgrade` (or start maild with database.auto_migrate: true)")
    except Exception as exc:
        yield Finding("database", Level.FAIL, f"{shown}: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                      "check database.url, that the server runs and that the user may connect")
    finally:
        db.dispose()


def storage(config: Config) -> Iterator[Finding]:
    for name, value in (("storage", config.storage.path), ("spool", config.spool.path)):
        path = config.path(value)
        probe = path / f".doctor-{uuid.uuid4().hex}"
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            yield Finding(name, Level.FAIL, f"{path}: cannot write: {exc.strerror}",
                          f"give the user maild runs as ({_user()}) write access to {path}")
            continue
        free = shutil.disk_usage(path).free
        if free < FREE_SPACE_WARN:
            yield Finding(name, Level.WARN, f"{path}: only {free // (1 << 20)} MiB free",
                          "free disk space: raw mails and attachments are kept there")
        else:
            yield Finding(name, Level.OK, f"{path} writable, {free // (1 << 30)} GiB free")


def smarthost(config: Config) -> Iterator[Finding]:
    out = config.outbound
    if not out.enabled:
        yield Finding("smarthost", Level.WARN, "outbound.enabled is false: replies stay in the outbox",
                      "set outbound.enabled: true once the smarthost is ready")
        return
    from maild.outbound.sender import SmtpTransport

    smtp = out.smtp
    try:
        SmtpTransport(smtp).connect().close()
    except Exception as exc:
        yield Finding("smarthost", Level.FAIL, str(exc),
                      f"check outbound.smtp (host {smtp.host}, port {smtp.port}, starttls/ssl, username and "
                      f"${smtp.password_env or 'password_env'}) and that the server accepts this host")
        return
    yield Finding("smarthost", Level.OK, f"{smtp.host}:{smtp.port} answered EHLO"
                  f"{', STARTTLS' if smtp.starttls else ''}{', login accepted' if smtp.username else ''}")


def imap(config: Config) -> Iterator[Finding]:
    from imapclient import IMAPClient

    for account in config.imap:
        name = f"imap {account.name}"
        try:
            context = ssl.create_default_context() if (account.ssl or account.starttls) else None
            client = IMAPClient(account.host, port=account.port, ssl=account.ssl, ssl_context=context, timeout=15)
            try:
                if account.starttls:
                    client.starttls(context)
                client.login(account.username, account.resolve_password())
                client.select_folder(account.folder, readonly=True)
            finally:
                try:
                    client.logout()
                except Exception:  # already gone: the finding below says why
                    pass
        except Exception as exc:
            yield Finding(name, Level.FAIL, f"{account.username}@{account.host}:{account.port}: "
                          f"{type(exc).__name__}: {exc}",
                          f"check imap[{account.name}] host, port, ssl/starttls, username, the password and "
                          f"that folder {account.folder!r} exists")
            continue
        yield Finding(name, Level.OK, f"{account.username}@{account.host}:{account.port} logged in, "
                      f"{account.folder} readable")


def authentication(config: Config) -> Iterator[Finding]:
    auth = config.security.agent_auth
    if not auth.require_proof:
        yield Finding("agent proof", Level.WARN, "require_proof is false: a forged From runs agent commands",
                      "set security.agent_auth.require_proof: true")
    else:
        yield Finding("agent proof", Level.OK, auth.describe())
    if config.helpdesk.secret and not config.helpdesk.secret_env:
        yield Finding("secret", Level.WARN, "helpdesk.secret is written in the file",
                      "move it to the environment and name it with helpdesk.secret_env")
    yield from _mx(config.helpdesk.domain)


def _mx(domain: str) -> Iterator[Finding]:
    import dns.exception
    import dns.resolver

    try:
        answer = dns.resolver.resolve(domain, "MX", lifetime=5)
    except (dns.exception.DNSException, OSError) as exc:
        yield Finding("dns", Level.WARN, f"{domain}: no MX record ({type(exc).__name__})",
                      f"customers' mail reaches {domain} only with an MX (or A) record pointing at your MTA")
        return
    hosts = sorted(str(r.exchange).rstrip(".") for r in answer)
    yield Finding("dns", Level.OK, f"{domain} MX {', '.join(hosts)}")


# Postfix's LMTP and SMTP clients break longer lines unless these are 0 (docs/MTA.md):
# the LMTP client on the way in, the SMTP client as relay in front and as smarthost.
POSTFIX_LINE_LIMITS = {
    "lmtp_line_length_limit": "Postfix's LMTP client (delivering to maild)",
    "smtp_line_length_limit": "Postfix's SMTP client (relaying to maild, and as maild's smarthost)",
}


def postfix(config: Config, postconf: str = "postconf") -> Iterator[Finding]:
    """The line-length settings of the Postfix on this host, when ``postconf`` can read its
    configuration (``$MAIL_CONFIG`` names another configuration directory, as for postconf)."""
    import subprocess

    found = shutil.which(postconf)
    if found is None:
        yield Finding("postfix", Level.OK, "no postconf on this host: Postfix settings not checked")
        return
    try:
        done = subprocess.run([found, "-h", *POSTFIX_LINE_LIMITS], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        yield Finding("postfix", Level.WARN, f"postconf could not run: {exc}")
        return
    error = next((line for line in done.stderr.splitlines() if "fatal:" in line), "")
    if done.returncode != 0 and "main.cf" in error:
        yield Finding("postfix", Level.OK, f"Postfix has no configuration here ({error.split('fatal: ')[-1]}): "
                      "not checked")
        return
    values = done.stdout.split()
    if done.returncode != 0 or len(values) != len(POSTFIX_LINE_LIMITS):
        yield Finding("postfix", Level.WARN, f"cannot read Postfix's settings: {error or done.stdout.strip()}")
        return
    where = os.environ.get("MAIL_CONFIG", "")
    for (key, who), value in zip(POSTFIX_LINE_LIMITS.items(), values):
        if value == "0":
            yield Finding("postfix", Level.OK, f"{key} = 0{f' ({where})' if where else ''}")
        else:
            yield Finding("postfix", Level.WARN, f"{key} = {value}: {who} breaks lines longer than {value} bytes, "
                          "so such mails arrive altered", f"postconf -e {key}=0 && postfix reload (docs/MTA.md)")


CHECKS: tuple[Check, ...] = (database, storage, smarthost, imap, authentication, postfix)


def run(config: Config, checks: tuple[Check, ...] = CHECKS) -> list[Finding]:
    return [finding for check in checks for finding in check(config)]


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())


def render(findings: list[Finding]) -> Iterator[str]:
    for f in findings:
        yield f"{f.level.upper():4}  {f.check:12} {f.detail}"
        if f.fix and f.level is not Level.OK:
            yield f"      {'':12} fix: {f.fix}"

