"""The daemon as a user runs it, and the smarthost it sends to: shared by the end-to-end tests.

``Daemon`` runs ``maild run`` in a subprocess; ``Sink`` (tests/smtpsink.py) is a real
aiosmtpd peer on loopback standing in for the smarthost. Waiting is always polling with a
deadline: ``wait_for`` a condition, ``drain`` until the daemon is idle, ``settle`` until the
outbox is. The fixtures are registered for every test by ``conftest.py``:

- ``sink``: a running smarthost, stopped after the test (``sink.stop()`` then
  ``sink.start()`` make it go away and come back on the same port);
- ``daemons``: makes daemons in the test's directory and kills any still running after it;
- ``daemon``: one daemon, not yet started, whose outbound mail goes to ``sink``.
"""
from __future__ import annotations

import json
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import HELPDESK, free_port, write_config
from smtpsink import Received, Sink

MAILD = [sys.executable, "-m", "maild"]


class Daemon:
    def __init__(self, config: Path, port: int, log: Path, args: tuple[str, ...] = ()) -> None:
        self.config, self.port, self.log = config, port, log
        self.args = args  # after `run`, e.g. ("--workers", "1")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([*MAILD, "--config", str(self.config), "run", *self.args],
                                         stdout=log, stderr=log)
        wait_for(self._listening, 60, "the daemon's SMTP port")

    def _listening(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"maild exited with {self.proc.returncode}:\n{self.log.read_text()}")
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=2) as smtp:
                return smtp.noop()[0] == 250
        except OSError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(30)
        return self.proc.returncode

    def close(self) -> None:
        """Kill the process if it still runs (after a test, whatever it left)."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*MAILD, "--config", str(self.config), *args], capture_output=True, text=True, timeout=60)

    def tickets(self) -> list[dict[str, Any]]:
        result = self.cli("tickets", "list", "--json")
        assert result.returncode == 0, result.stderr
        listed: list[dict[str, Any]] = json.loads(result.stdout)
        return listed


def wait_for(condition: Callable[[], object], seconds: float = 30, what: str = "the condition",
             every: float = 0.05) -> None:
    """Poll ``condition`` every ``every`` seconds until it holds; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def spool_empty(daemon: Daemon) -> bool:
    """No accepted mail waiting: a spool file is removed only after its transaction committed."""
    spool = daemon.config.parent / "spool" / "new"
    return not (spool.is_dir() and any(spool.iterdir()))


def outbox(daemon: Daemon) -> list[dict[str, Any]]:
    result = daemon.cli("outbox", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def outbox_settled(daemon: Daemon) -> bool:
    """Nothing queued or claimed in the outbox: every row sent or given up."""
    return all(row["state"] in ("sent", "failed") for row in outbox(daemon))


def drain(daemon: Daemon, seconds: float = 30, outbox: bool = True) -> None:
    """Drain until idle: every accepted mail processed and (``outbox``: when a smarthost
    takes maild's mail) every outbox row sent or given up."""
    wait_for(lambda: spool_empty(daemon) and (not outbox or outbox_settled(daemon)), seconds,
             "the daemon to be idle")


def settle(sink: Sink, daemon: Daemon, seconds: float = 30) -> list[Received]:
    """Drain until idle: nothing queued or claimed in the outbox, and the sink has it all."""
    wait_for(lambda: outbox_settled(daemon), seconds, "an idle outbox")
    return sink.received


def send(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("maria@cliente.example.com.br", [HELPDESK], raw)


def deliver(port: int, raw: bytes, envelope_from: str, to: str = HELPDESK) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail(envelope_from, [to], raw)


def text(received: Received) -> str:
    return received.message.get_content().replace("\r\n", "\n")


def outbound_section(port: int) -> str:
    return f"""\
        outbound:
          smtp: {{host: 127.0.0.1, port: {port}, timeout: 5}}
          retry: {{first_seconds: 0.3, max_seconds: 1, poll_seconds: 0.2, claim_timeout_seconds: 3}}
        """


class Daemons:
    """Daemons of one test; ``close`` kills those still running."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.made: list[Daemon] = []

    def new(self, config: Path | None = None, port: int | None = None, **sections: str) -> Daemon:
        """A daemon (not started) on ``config``, else on a fresh config (SQLite in the test's
        directory, ``sections`` added) listening on a free port."""
        port = port or free_port()
        if config is None:
            config = write_config(self.directory, f"sqlite:///{self.directory / 'maild.db'}", smtp_port=str(port),
                                  **sections)
        return self.add(Daemon(config, port, config.parent / "maild.log"))

    def add(self, daemon: Daemon) -> Daemon:
        self.made.append(daemon)
        return daemon

    def close(self) -> None:
        for daemon in self.made:
            daemon.close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink().start()
    yield s
    s.stop()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    made = Daemons(tmp_path)
    yield made
    made.close()


@pytest.fixture
def daemon(daemons: Daemons, sink: Sink) -> Daemon:
    return daemons.new(outbound=outbound_section(sink.port))
