"""systemd's notify protocol over a real NOTIFY_SOCKET datagram socket, and the unit file."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import free_port, write_config
from maild.service.notify import Notifier, Watchdog

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(30)
    yield sock, path
    sock.close()


def datagrams(sock: socket.socket) -> Iterator[dict[str, str]]:
    """Each datagram as KEY=VALUE pairs, until the socket's timeout."""
    while True:
        try:
            data = sock.recv(4096).decode()
        except TimeoutError:
            return
        yield dict(line.split("=", 1) for line in data.splitlines())


def wait_datagram(sock: socket.socket, key: str) -> dict[str, str]:
    for message in datagrams(sock):
        if key in message:
            return message
    raise AssertionError(f"no {key} datagram arrived")


def test_ready_status_and_pid_arrive_as_one_datagram(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path})
    notifier.ready("running: Test")
    assert next(datagrams(sock)) == {"READY": "1", "STATUS": "running: Test", "MAINPID": str(os.getpid())}
    notifier.stopping()
    assert next(datagrams(sock))["STOPPING"] == "1"


def test_abstract_namespace_socket_is_reached() -> None:
    name = f"maild-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        Notifier({"NOTIFY_SOCKET": "@" + name}).status("hello")
        assert sock.recv(4096) == b"STATUS=hello"


def test_without_notify_socket_nothing_is_sent_and_nothing_fails() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.send(ready=1) is False


def test_a_vanished_manager_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).send(ready=1) is False
    assert "cannot notify the service manager" in caplog.text


def test_watchdog_pings_at_half_the_interval_only_while_healthy(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    healthy = [True]
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())})
    assert notifier.watchdog_seconds == 0.2
    dog = Watchdog(notifier, lambda: healthy[0])
    dog.start()
    try:
        assert wait_datagram(sock, "WATCHDOG") == {"WATCHDOG": "1"}
        healthy[0] = False
        sock.settimeout(1.0)
        list(datagrams(sock))  # drain what was sent before the flip (at most one ping)
        assert list(datagrams(sock)) == []  # one second, five intervals: no ping for a sick daemon
    finally:
        dog.stop()


def test_watchdog_meant_for_another_pid_is_ignored() -> None:
    env = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier(env).watchdog_seconds is None


@pytest.mark.slow
def test_maild_run_speaks_the_notify_protocol(tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    """READY only once the port answers; watchdog pings; SIGHUP → RELOADING then READY; SIGTERM → STOPPING."""
    sock, path = notify_socket
    port = free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", smtp_port=str(port))
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}
    log = tmp_path / "maild.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "maild", "--config", str(config), "run"],
                                stdout=out, stderr=out, env=env)
    try:
        ready = wait_datagram(sock, "READY")
        assert ready["MAINPID"] == str(proc.pid) and "Test Helpdesk" in ready["STATUS"]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as smtp:  # ready means accepting
            assert smtp.recv(1024).startswith(b"220")
        assert wait_datagram(sock, "WATCHDOG")["WATCHDOG"] == "1"
        proc.send_signal(signal.SIGHUP)
        assert "MONOTONIC_USEC" in wait_datagram(sock, "RELOADING")
        assert wait_datagram(sock, "READY")["READY"] == "1"
        proc.send_signal(signal.SIGTERM)
        assert wait_datagram(sock, "STOPPING")["STOPPING"] == "1"
        assert proc.wait(30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = (DEPLOY / "maild.service").read_text()
    for needed in ("Type=notify", "WatchdogSec=", "ExecReload=/bin/kill -HUP $MAINPID", "ProtectSystem=strict",
                   "NoNewPrivileges=yes", "User=maild", "StateDirectory=maild"):
        assert needed in unit
    # verify checks that ExecStart exists: point it at this installation's maild.
    maild = Path(sys.executable).parent / "maild"
    (tmp_path / "maild.service").write_text(unit.replace("/opt/maild/venv/bin/maild", str(maild)))
    done = subprocess.run([analyze, "verify", str(tmp_path / "maild.service")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "maild.service" not in done.stderr, done.stderr  # no warning about our unit
