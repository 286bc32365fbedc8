"""`maild run --workers N`: the outbox delivered from processes of their own, as an admin
runs it. The senders deliver every mail once, die with the daemon, stop cleanly with it,
and one that dies is replaced."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AGENT, free_port, mail, write_config
from smtpsink import Sink
from test_e2e import MAILD, Daemon, wait_for
from test_outbound_e2e import deliver, outbound_section, settle, sink  # noqa: F401 - the sink fixture

pytestmark = pytest.mark.slow
CUSTOMER = "maria@cliente.example.com.br"


def daemon_with(tmp_path: Path, sink: Sink, *args: str) -> Daemon:  # noqa: F811
    if sink.controller is None:
        sink.start()
    port = free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", smtp_port=str(port),
                          outbound=outbound_section(sink.port))
    return Daemon(config, port, tmp_path / "maild.log", args)


def senders_of(pid: int) -> list[int]:
    """The sender processes maild started (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z" and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def live_sender_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM outbox_senders").fetchone()[0])


@pytest.fixture
def started() -> Iterator[list[Daemon]]:
    daemons: list[Daemon] = []
    yield daemons
    for d in daemons:
        if d.proc and d.proc.poll() is None:
            d.kill()


def start_with_senders(tmp_path: Path, sink: Sink, started: list[Daemon],  # noqa: F811
                       workers: int) -> tuple[Daemon, int]:
    """A daemon with ``workers`` - 1 sender processes running; its pid."""
    daemon = daemon_with(tmp_path, sink, "--workers", str(workers))
    started.append(daemon)
    daemon.start()
    assert daemon.proc is not None
    pid = daemon.proc.pid
    wait_for(lambda: len(senders_of(pid)) == workers - 1, 30, f"{workers - 1} sender process(es)")
    return daemon, pid


def test_two_sender_processes_deliver_each_mail_once_and_stop_with_the_daemon(
        tmp_path: Path, sink: Sink, started: list[Daemon]) -> None:  # noqa: F811
    daemon, pid = start_with_senders(tmp_path, sink, started, 3)
    children = senders_of(pid)
    customers = [f"cliente{i}@cliente.example" for i in range(6)]
    for i, customer in enumerate(customers):
        deliver(daemon.port, mail(f"Pedido {i}", customer, message_id=f"<w{i}@cliente.example>"), customer)
    sink.wait_for(12, 60)
    got = settle(sink, daemon, 60)
    ids = [g.message["Message-ID"] for g in got]
    assert len(ids) == len(set(ids)) == 12  # an acknowledgement and a notification per mail, each once
    assert sorted(g.rcpt_tos[0] for g in got) == sorted(customers + [AGENT] * 6)
    assert live_sender_rows(tmp_path / "maild.db") == 2  # each child beats in its own row
    assert daemon.stop() == 0
    assert not any(running(pid) for pid in children)
    assert live_sender_rows(tmp_path / "maild.db") == 0  # both stopped cleanly and retired
    log = daemon.log.read_text()
    assert "sender process(es)" in log and "Traceback" not in log


def test_the_senders_die_with_a_killed_daemon(
        tmp_path: Path, sink: Sink, started: list[Daemon]) -> None:  # noqa: F811
    daemon, pid = start_with_senders(tmp_path, sink, started, 2)
    child = senders_of(pid)[0]
    daemon.kill()
    wait_for(lambda: not running(child), 30, "the orphaned sender to exit")


def test_a_sender_process_that_dies_is_replaced_and_the_mail_goes_out(
        tmp_path: Path, sink: Sink, started: list[Daemon]) -> None:  # noqa: F811
    daemon, pid = start_with_senders(tmp_path, sink, started, 2)
    first = senders_of(pid)[0]
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: len(senders_of(pid)) == 1 and senders_of(pid)[0] != first, 30, "a new sender process")
    deliver(daemon.port, mail("Depois", CUSTOMER, message_id="<after@cliente.example>"), CUSTOMER)
    sink.wait_for(2, 60)
    assert sorted(g.rcpt_tos[0] for g in sink.received) == sorted([CUSTOMER, AGENT])
    assert daemon.stop() == 0
    assert "ended (exit status -9); starting another" in daemon.log.read_text()


def test_one_worker_runs_everything_in_one_process(
        tmp_path: Path, sink: Sink, started: list[Daemon]) -> None:  # noqa: F811
    daemon, pid = start_with_senders(tmp_path, sink, started, 1)
    deliver(daemon.port, mail("Um", CUSTOMER, message_id="<one@cliente.example>"), CUSTOMER)
    sink.wait_for(2, 60)
    assert senders_of(pid) == []
    assert daemon.stop() == 0


def test_workers_must_be_a_positive_number(tmp_path: Path, sink: Sink) -> None:  # noqa: F811
    daemon = daemon_with(tmp_path, sink)
    result = subprocess.run([*MAILD, "--config", str(daemon.config), "run", "--workers", "0"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 64  # EX_USAGE
    assert "--workers: expected a whole number of at least 1, got '0'" in result.stderr
