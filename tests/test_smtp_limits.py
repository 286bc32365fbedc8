"""What the listener allows at once, over real loopback sockets: connections in all and
per IP, command line length, DATA bytes in flight; and the spool's partial files."""
from __future__ import annotations

import os
import smtplib
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import HELPDESK, Env, free_port, mail, make_env
from daemons import wait_for
from maild.ingest.limits import ConnectionGate, InflightBudget, SessionLimits, declared_size
from maild.ingest.smtp import Listener, SpoolingHandler
from maild.ingest.spool import Spool


class Client:
    """A raw SMTP client: lines out, replies in, nothing hidden."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def reply(self) -> str:
        """One complete reply (multi-line replies joined); '' once the server closed."""
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return "\n".join(lines)
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line.decode())
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(lines)

    def send(self, line: bytes) -> str:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def closed(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[..., tuple[Env, int, Listener]]]:
    started: list[tuple[Env, Listener]] = []

    def start(max_size: int = 2_000_000, **limits: int) -> tuple[Env, int, Listener]:
        env = make_env(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", max_size=str(max_size))
        port = free_port()
        listener = Listener(SpoolingHandler(env.app.spool, env.app.recipients(), "smtp"), "127.0.0.1", port,
                            lmtp=False, max_size=max_size, limits=SessionLimits(**limits))
        listener.start()
        started.append((env, listener))
        return env, port, listener

    yield start
    for env, listener in started:
        listener.stop()
        env.app.db.dispose()


def test_connections_beyond_the_per_ip_limit_get_421_and_are_closed(served) -> None:  # noqa: ANN001
    _, port, listener = served(max_connections=10, max_connections_per_ip=2)
    first, second = Client(port), Client(port)
    assert first.reply().startswith("220") and second.reply().startswith("220")
    third = Client(port)
    assert third.reply() == "421 4.7.0 Too many connections, try again later"
    assert third.closed()
    first.send(b"QUIT")
    first.close()
    wait_for(lambda: listener.gate.open == 1)
    fourth = Client(port)
    assert fourth.reply().startswith("220")
    assert fourth.send(b"NOOP").startswith("250")
    for c in (second, third, fourth):
        c.close()


def test_connections_beyond_the_total_limit_get_421(served) -> None:  # noqa: ANN001
    _, port, listener = served(max_connections=3, max_connections_per_ip=10)
    clients = [Client(port) for _ in range(3)]
    assert all(c.reply().startswith("220") for c in clients)
    extra = Client(port)
    assert extra.reply().startswith("421 4.7.0") and extra.closed()
    with pytest.raises(smtplib.SMTPConnectError):
        smtplib.SMTP("127.0.0.1", port, timeout=10)
    for c in [*clients, extra]:
        c.close()
    wait_for(lambda: listener.gate.open == 0)


def test_a_1_mib_mail_from_line_is_refused_and_the_connection_closed_before_it_ends(served) -> None:  # noqa: ANN001
    _, port, _ = served()
    client = Client(port)
    client.reply()
    assert client.send(b"EHLO client.example").startswith("250")
    # The first 64 KiB of a line that would go on to 1 MiB, with no end of line: the server
    # must answer now, not wait for (and hold) the rest of it.
    client.sock.sendall(b"MAIL FROM:<" + b"a" * 65536)
    assert client.reply() == "500 5.5.2 Line too long"
    sent = 65536
    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        while sent < 1024 * 1024:  # the rest of the megabyte finds the connection closed
            client.sock.sendall(b"a" * 65536)
            sent += 65536
        client.sock.sendall(b"\r\n")
        client.sock.recv(1) or (_ for _ in ()).throw(ConnectionResetError())
    assert client.closed()
    client.close()


def test_a_command_over_512_octets_is_refused_and_the_session_goes_on(served) -> None:  # noqa: ANN001
    _, port, _ = served()
    client = Client(port)
    client.reply()
    client.send(b"EHLO client.example")
    assert client.send(b"MAIL FROM:<" + b"a" * 600 + b"@x.example>") == "500 5.5.2 Line too long"
    assert client.send(b"MAIL FROM:<maria@x.example> SIZE=100").startswith("250")
    client.close()


def test_data_beyond_the_inflight_budget_gets_452_then_goes_through(served) -> None:  # noqa: ANN001
    env, port, listener = served(max_size=2_000_000, max_inflight_bytes=3_000_000)
    first = Client(port)
    first.reply()
    first.send(b"EHLO a.example")
    assert first.send(b"MAIL FROM:<maria@x.example> SIZE=1900000").startswith("250")
    assert first.send(b"RCPT TO:<" + HELPDESK.encode() + b">").startswith("250")
    assert first.send(b"DATA").startswith("354")  # holds 1.9 MB of the 3 MB budget

    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.sendmail("joao@x.example", [HELPDESK], mail("Grande", body=("x" * 999 + "\n") * 1500))
        assert refused.value.smtp_code == 452 and b"4.3.1" in refused.value.smtp_error
        # A small mail still fits beside the first.
        assert smtp.sendmail("joao@x.example", [HELPDESK], mail("Pequeno")) == {}

    first.sock.sendall(mail("Primeiro").replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
    assert first.reply().startswith("250")
    wait_for(lambda: listener.budget.used == 0)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        assert smtp.sendmail("joao@x.example", [HELPDESK], mail("Grande", body=("x" * 999 + "\n") * 1500)) == {}
    assert len(env.app.spool.pending()) == 3
    first.close()


def test_data_past_the_budget_without_size_closes_with_421(served) -> None:  # noqa: ANN001
    env, port, listener = served(max_size=8_000_000, max_inflight_bytes=2 * 1024 * 1024)
    client = Client(port)
    client.reply()
    client.send(b"HELO a.example")  # no EHLO: no SIZE declared
    client.send(b"MAIL FROM:<maria@x.example>")
    client.send(b"RCPT TO:<" + HELPDESK.encode() + b">")
    assert client.send(b"DATA").startswith("354")
    line = b"y" * 998 + b"\r\n"
    try:
        for _ in range(4000):  # 4 MB: twice the budget
            client.sock.sendall(line)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert client.reply() == "421 4.3.1 Insufficient system storage, closing connection"
    assert client.closed()
    client.close()
    wait_for(lambda: listener.budget.used == 0 and listener.gate.open == 0)
    assert env.app.spool.pending() == []


def test_limits_unit() -> None:
    gate = ConnectionGate(total=2, per_ip=1)
    assert gate.enter("a") and not gate.enter("a") and gate.enter("b") and not gate.enter("c")
    gate.leave("a")
    assert gate.enter("c") and gate.open == 2
    budget = InflightBudget(10)
    assert budget.take(6) and not budget.take(5) and budget.take(4)
    budget.give(10)
    assert budget.used == 0
    assert declared_size(["BODY=8BITMIME", "SIZE=1234"]) == 1234 and declared_size(["SIZE"]) is None


def test_config_defaults_and_budget(tmp_path: Path) -> None:
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", max_size="1000")
    smtp = env.config.smtp_server
    assert (smtp.max_connections, smtp.max_connections_per_ip, smtp.inflight_budget) == (100, 20, 4000)
    env.app.db.dispose()


# -- spool partial files --------------------------------------------------------------

def test_a_failed_spool_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path / "spool")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        spool.put(mail("x"), "smtp")
    assert list(spool.tmp.iterdir()) == [] and spool.pending() == []


def test_leftover_tmp_files_of_dead_processes_are_removed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    (spool.tmp / f"{1:020d}-{dead}-00000001.smtp.eml").write_bytes(b"half a mail")
    live = spool.tmp / f"{2:020d}-{os.getppid()}-00000001.smtp.eml"  # a live writer's file stays
    live.write_bytes(b"being written")
    (spool.tmp / "junk").write_bytes(b"?")
    assert spool.clean_tmp() == 2
    assert list(spool.tmp.iterdir()) == [live]


def test_check_config_explains_the_limits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import write_config
    from maild.cli import main

    path = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", max_size="1000")
    assert main(["--config", str(path), "check-config"]) == 0
    out = capsys.readouterr().out
    assert "100 sessions (20 per IP), 4000 bytes of DATA in flight; a mail failing 5 times is quarantined" in out
