"""A throwaway Postfix for tests that put maild behind a real MTA (Debian's package).

One private instance per test in its own directory (never /etc/postfix), loopback only,
no DNS: ``port`` takes customers' mail (only known recipients, no relay), ``submit_port``
takes maild's outbound mail (from 127.0.0.1 only) and relays everything to ``relayhost``
(a test sink). Mail for the helpdesk addresses goes to maild by ``transport`` — an LMTP
address (``lmtp:inet:127.0.0.1:PORT``) or ``maild:``, the pipe service running
``maild ingest`` as ``nobody`` with ``flags=DORhu`` and one recipient per delivery.

``postfix_or_skip()`` skips with the reason when Postfix is missing or cannot start, and
fails instead under ``MAILD_REQUIRE_SERVERS=1``. The production set-up it mirrors: docs/MTA.md.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conftest import free_port, need_server

ROOT = Path(__file__).resolve().parent.parent
POSTFIX = shutil.which("postfix", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
POSTQUEUE = shutil.which("postqueue", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))

# Internal services (Debian's master.cf.dist), chroot off: the instance has no chroot tree.
_MASTER = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
127.0.0.1:{port} inet n -       n       -       -       smtpd
  -o smtpd_relay_restrictions=reject_unauth_destination
127.0.0.1:{submit_port} inet n - n      -       -       smtpd
  -o smtpd_relay_restrictions=permit_mynetworks,reject
maild     unix  -       n       n       -       -       pipe
  flags=DORhu user=nobody argv=/usr/bin/env {pipe_env} {python} -m maild --config {config} ingest
"""

_MAIN = """\
compatibility_level = 3.6
config_directory = {dir}
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {dir}/postfix.log
maillog_file_prefixes = {dir}
myhostname = mx.test.example
mydomain = test.example
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
relay_domains = {domain}
relay_recipient_maps = texthash:{dir}/recipients
recipient_delimiter = +
transport_maps = texthash:{dir}/transport
relayhost = [127.0.0.1]:{relay_port}
maild_destination_recipient_limit = 1
message_size_limit = 20000000
mailbox_size_limit = 0
lmtp_line_length_limit = 0
smtp_line_length_limit = 0
smtputf8_enable = yes
queue_run_delay = 30s
minimal_backoff_time = 30s
maximal_backoff_time = 60s
smtp_connect_timeout = 5s
lmtp_connect_timeout = 5s
"""


def pipe_python() -> str | None:
    """An interpreter the pipe's user (nobody) may run: this one, unless it lives in a
    private home (as pyenv's under /root), else the system's of the same version."""
    for candidate in (sys.executable, f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"):
        if not os.path.exists(candidate):
            continue
        done = subprocess.run(["runuser", "-u", "nobody", "--", candidate, "-c", "pass"], capture_output=True)
        if done.returncode == 0:
            return candidate
    return None


class PostfixServer:
    def __init__(self, domain: str, recipients: list[str], transport: dict[str, str], relay_port: int,
                 maild_config: Path | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="maild-postfix-"))
        self.dir.chmod(0o755)
        self.port, self.submit_port = free_port(), free_port()
        (self.dir / "queue").mkdir()
        (self.dir / "data").mkdir()
        shutil.chown(self.dir / "data", "postfix")
        (self.dir / "recipients").write_text("".join(f"{r} OK\n" for r in recipients))
        (self.dir / "transport").write_text("".join(f"{k} {v}\n" for k, v in transport.items()))
        (self.dir / "main.cf").write_text(_MAIN.format(dir=self.dir, domain=domain, relay_port=relay_port))
        site = next(p for p in map(Path, sys.path) if p.name == "site-packages" and p.is_dir())
        (self.dir / "master.cf").write_text(_MASTER.format(
            port=self.port, submit_port=self.submit_port, python=pipe_python() or sys.executable,
            pipe_env=f"PYTHONPATH={ROOT}:{site} PYTHONDONTWRITEBYTECODE=1", config=maild_config or "/nonexistent"))

    def postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert POSTFIX is not None
        return subprocess.run([POSTFIX, "-c", str(self.dir), *args], capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        check = self.postfix("check")
        started = self.postfix("start") if check.returncode == 0 else check
        if started.returncode != 0:
            raise RuntimeError(f"postfix did not start: {started.stderr}{self.log()}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            import socket

            try:
                with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                    if s.recv(100).startswith(b"220"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"postfix is not listening on {self.port}\n{self.log()}")

    def stop(self) -> None:
        if self.postfix("stop").returncode != 0:
            self.postfix("abort")
        pid = self.dir / "queue" / "pid" / "master.pid"
        if pid.exists():
            try:
                os.kill(int(pid.read_text().split()[0]), 9)
            except (ProcessLookupError, ValueError, IndexError):
                pass

    def cleanup(self) -> None:
        if not os.environ.get("MAILD_KEEP_POSTFIX"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def flush(self) -> None:
        assert POSTQUEUE is not None
        subprocess.run([POSTQUEUE, "-c", str(self.dir), "-f"], capture_output=True, timeout=30)

    def queue(self) -> str:
        assert POSTQUEUE is not None
        return subprocess.run([POSTQUEUE, "-c", str(self.dir), "-p"], capture_output=True, text=True,
                              timeout=30).stdout

    def queue_empty(self) -> bool:
        return "Mail queue is empty" in self.queue()

    def log(self) -> str:
        path = self.dir / "postfix.log"
        return path.read_text(errors="replace") if path.exists() else ""


def postfix_or_skip(*args: object, **kwargs: object) -> PostfixServer:
    """A started instance, or skip (fail under MAILD_REQUIRE_SERVERS=1) with the reason."""
    if POSTFIX is None or POSTQUEUE is None:
        need_server("postfix is not installed (apt-get install postfix; .ci/run does)")
    if os.geteuid() != 0:
        need_server("a private postfix instance needs root")
    server = PostfixServer(*args, **kwargs)  # type: ignore[arg-type]
    try:
        server.start()
    except RuntimeError as exc:
        server.stop()
        server.cleanup()
        need_server(f"postfix could not start: {exc}")
    return server
