"""A throwaway Dovecot IMAP server for loopback tests.

One server per test session on a free 127.0.0.1 port, plain-text IMAP (no TLS), users
``support@example.com`` and ``sales@example.com`` with password ``secret``, Maildir storage
under a temporary directory. It offers IDLE, MOVE, UIDPLUS and CONDSTORE.

Fixtures: ``dovecot`` (the session's server, running and emptied before each test) on top
of ``dovecot_session``. Register them with ``pytest_plugins = ["tests.dovecot"]`` in the
root ``conftest.py``, or import ``dovecot_fixture, dovecot_session_fixture`` into a test
module. ``running_dovecot(extra_config)`` starts a private server (e.g. without IDLE/MOVE).
INBOX UIDs keep growing across tests: use the UID ``append`` returns, not 1.

When ``dovecot`` is not installed (looked up on PATH and in /usr/sbin, or given as
``MAILD_DOVECOT=/path/to/dovecot``) the fixture skips with the reason, unless
``MAILD_REQUIRE_SERVERS=1`` is set, in which case it fails. ``MAILD_KEEP_DOVECOT=1`` keeps
the server directory (config, dovecot.log, Maildirs) for a post-mortem.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

PASSWORD = "secret"
USERS = ("support@example.com", "sales@example.com")
_DOVECOT_SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"]
)

_CONFIG = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={dir}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {tls_port}
  }}
}}
service anvil {{
  chroot =
}}
default_internal_user = {user}
default_login_user = {user}
"""


def dovecot_binary() -> str | None:
    """Path of the ``dovecot`` master binary (``$MAILD_DOVECOT`` overrides), or None."""
    explicit = os.environ.get("MAILD_DOVECOT")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("dovecot", path=_DOVECOT_SEARCH_PATH)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> tuple[str, str]:
    """The (user, group) Dovecot's mail processes run as: nobody when we are root."""
    if os.geteuid() == 0:
        return "nobody", grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
    return pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name


class DovecotServer:
    """One Dovecot master process in its own directory; stoppable and restartable."""

    host = "127.0.0.1"

    def __init__(
        self,
        binary: str,
        directory: Path,
        port: int | None = None,
        extra_config: str = "",
        tls: bool = False,
    ) -> None:
        self.binary = binary
        self.directory = directory
        self.port = port or free_port()
        self.extra_config = extra_config
        # With tls: implicit TLS on tls_port, STARTTLS on port, self-signed cert in ca_file.
        self.tls_port = free_port() if tls else 0
        self.ca_file = directory / "cert.pem" if tls else None
        self.users = USERS
        self.password = PASSWORD
        self._process: subprocess.Popen[bytes] | None = None
        self._write_config()

    @property
    def config_path(self) -> Path:
        return self.directory / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / "dovecot.log"

    def _write_config(self) -> None:
        user, group = _run_as()
        for sub in ("run", "state", "home"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o755)
        (self.directory / "home").chmod(0o1777)
        passwd = "".join(f"{name}:{{PLAIN}}{PASSWORD}\n" for name in USERS)
        (self.directory / "passwd").write_text(passwd)
        ssl = "ssl = no"
        if self.ca_file is not None:
            key = self.directory / "key.pem"
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                 "-keyout", str(key), "-out", str(self.ca_file)],
                check=True, capture_output=True,
            )
            ssl = f"ssl = yes\nssl_cert = <{self.ca_file}\nssl_key = <{key}"
            if Path("/usr/share/dovecot/dh.pem").exists():
                ssl += "\nssl_dh = </usr/share/dovecot/dh.pem"
        self.config_path.write_text(
            _CONFIG.format(dir=self.directory, port=self.port, tls_port=self.tls_port,
                           ssl=ssl, user=user, group=group)
            + self.extra_config
        )

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> None:
        """Start the server (again) on the same port and wait until it accepts logins."""
        if self.running:
            return
        self._process = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"dovecot exited at start: {err}\n{self.tail_log()}")
            try:
                with self.client(USERS[0]):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not start in {timeout}s\n{self.tail_log()}")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (clients are disconnected) and wait until the port is free."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
        if process.stderr:
            process.stderr.close()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def tail_log(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # -- mailbox helpers ----------------------------------------------------------------
    @contextlib.contextmanager
    def client(self, user: str) -> Iterator[IMAPClient]:
        """A logged-in IMAPClient for ``user`` (logged out on exit)."""
        imap = IMAPClient(self.host, port=self.port, ssl=False, timeout=30)
        try:
            imap.login(user, PASSWORD)
            yield imap
        finally:
            with contextlib.suppress(Exception):
                imap.logout()

    def append(
        self, user: str, raw: bytes, flags: Iterable[str | bytes] = (), folder: str = "INBOX"
    ) -> int:
        """APPEND ``raw`` to ``folder`` (created if missing); return the new UID."""
        with self.client(user) as imap:
            if not imap.folder_exists(folder):
                imap.create_folder(folder)
            response = imap.append(folder, raw, flags=tuple(flags))
        # "[APPENDUID <uidvalidity> <uid>] Append completed." (UIDPLUS)
        text = response.decode() if isinstance(response, bytes) else str(response)
        return int(text.split("]")[0].split()[-1])

    def folder_uids(self, user: str, folder: str = "INBOX") -> list[int]:
        """UIDs currently in ``folder`` (empty when the folder does not exist)."""
        with self.client(user) as imap:
            if not imap.folder_exists(folder):
                return []
            imap.select_folder(folder, readonly=True)
            return sorted(imap.search("ALL"))

    def folder_messages(
        self, user: str, folder: str = "INBOX"
    ) -> dict[int, tuple[bytes, set[bytes]]]:
        """UID → (raw bytes, flags) for every mail in ``folder``."""
        with self.client(user) as imap:
            if not imap.folder_exists(folder):
                return {}
            imap.select_folder(folder, readonly=True)
            uids = imap.search("ALL")
            if not uids:
                return {}
            data = imap.fetch(uids, ["BODY.PEEK[]", "FLAGS"])
            return {
                uid: (item[b"BODY[]"], set(item[b"FLAGS"])) for uid, item in data.items()
            }

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        with self.client(user) as imap:
            return int(imap.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])

    def recreate_folder(self, user: str, folder: str) -> None:
        """Delete and re-create ``folder`` with the same mails: a new UIDVALIDITY, UIDs from 1.

        Simulates a server restored from backup or a rebuilt mailbox index.
        """
        with self.client(user) as imap:
            imap.select_folder(folder)
            uids = imap.search("ALL")
            raws = [imap.fetch([u], ["BODY.PEEK[]", "FLAGS"])[u] for u in uids]
            imap.unselect_folder()
            imap.delete_folder(folder)
            imap.create_folder(folder)
            for item in raws:
                flags = tuple(f for f in item[b"FLAGS"] if f != b"\\Recent")
                imap.append(folder, item[b"BODY[]"], flags=flags)

    def reset(self) -> None:
        """Remove every mail and every folder but INBOX, for every user."""
        for user in USERS:
            with self.client(user) as imap:
                folders = [
                    name for flags, _d, name in imap.list_folders()
                    if name.upper() != "INBOX"
                    and not {b"\\Noselect", b"\\NonExistent"} & set(flags)
                ]
                for name in sorted(folders, key=len, reverse=True):  # children first
                    imap.delete_folder(name)
                imap.select_folder("INBOX")
                uids = imap.search("ALL")
                if uids:
                    imap.delete_messages(uids)
                    imap.expunge()


def _require_servers() -> bool:
    return os.environ.get("MAILD_REQUIRE_SERVERS") == "1"


def dovecot_binary_or_skip() -> str:
    """The dovecot binary; skip the test when missing (fail with MAILD_REQUIRE_SERVERS=1)."""
    binary = dovecot_binary()
    if binary is None:
        reason = "dovecot is not installed (apt-get install dovecot-imapd)"
        if _require_servers():
            pytest.fail(f"MAILD_REQUIRE_SERVERS=1 but {reason}")
        pytest.skip(reason)
    return binary


@contextlib.contextmanager
def running_dovecot(extra_config: str = "", tls: bool = False) -> Iterator[DovecotServer]:
    """A started server in a fresh temporary directory, stopped and removed on exit.

    ``extra_config`` is appended to dovecot.conf, e.g. ``imap_capability = IMAP4rev1``
    to hide IDLE and MOVE. ``tls=True`` adds a self-signed certificate (needs openssl).
    """
    # mkdtemp, not tmp_path: Dovecot's unix sockets need a short base_dir path.
    directory = Path(tempfile.mkdtemp(prefix="maild-dovecot-"))
    server = DovecotServer(dovecot_binary_or_skip(), directory, extra_config=extra_config,
                           tls=tls)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if not os.environ.get("MAILD_KEEP_DOVECOT"):
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session", name="dovecot_session")
def dovecot_session_fixture() -> Iterator[DovecotServer]:
    """The session's Dovecot server (started once, stopped at the end)."""
    with running_dovecot() as server:
        yield server


@pytest.fixture(name="dovecot")
def dovecot_fixture(dovecot_session: DovecotServer) -> Iterator[DovecotServer]:
    """The session's Dovecot, running and emptied before each test."""
    dovecot_session.start()
    dovecot_session.reset()
    yield dovecot_session
    dovecot_session.start()  # a test that stopped it leaves it running for the next
