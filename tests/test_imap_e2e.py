"""The IMAP channel as a user runs it: `maild run` with an `imap:` account against a real
Dovecot, tickets read back through the CLI."""
from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from conftest import HELPDESK, free_port, mail, write_config
from daemons import Daemon, Daemons, drain, wait_for
from tests.dovecot import DovecotServer

pytestmark = pytest.mark.slow
BOX = "support@example.com"
PROCESSED = "maild.processed"


def imap_section(dovecot: DovecotServer) -> str:
    return f"""\
        imap:
          - name: support
            host: 127.0.0.1
            port: {dovecot.port}
            ssl: false
            username: {BOX}
            password: {dovecot.password}
            poll_seconds: 2
        """


@pytest.fixture
def daemon(daemons: Daemons, dovecot: DovecotServer) -> Daemon:
    return daemons.new(imap=imap_section(dovecot))


def subjects(daemon: Daemon) -> list[str]:
    return sorted(t["subject"] for t in daemon.tickets())


def test_mail_before_and_during_the_run_seen_or_not_becomes_tickets(daemon: Daemon, dovecot: DovecotServer) -> None:
    dovecot.append(BOX, mail("Antes 1"))
    dovecot.append(BOX, mail("Antes lido"), flags=[r"\Seen"])
    daemon.start()
    wait_for(lambda: len(daemon.tickets()) == 2, 30, "the mails that were waiting")
    dovecot.append(BOX, mail("Durante"))
    dovecot.append(BOX, mail("Durante lido"), flags=[r"\Seen"])
    wait_for(lambda: len(daemon.tickets()) == 4, 30, "the mails that arrived during the run")
    assert subjects(daemon) == ["Antes 1", "Antes lido", "Durante", "Durante lido"]
    wait_for(lambda: dovecot.folder_uids(BOX) == [], 10, "INBOX to be emptied")
    assert len(dovecot.folder_uids(BOX, PROCESSED)) == 4
    assert all(t["message_count"] == 1 for t in daemon.tickets())
    assert daemon.stop() == 0


def test_dovecot_restart_mid_run_loses_nothing(daemon: Daemon, dovecot: DovecotServer) -> None:
    daemon.start()
    dovecot.append(BOX, mail("Primeiro"))
    wait_for(lambda: len(daemon.tickets()) == 1, 30, "the first ticket")
    before = daemon.log.read_text().count("reconnecting in")
    dovecot.stop()
    wait_for(lambda: daemon.log.read_text().count("reconnecting in") > before, 30,
             "the worker to notice the dropped connection and back off")
    dovecot.start()
    dovecot.append(BOX, mail("Depois do reinício"))
    wait_for(lambda: len(daemon.tickets()) == 2, 60, "the mail after the restart")
    assert subjects(daemon) == ["Depois do reinício", "Primeiro"]
    assert daemon.stop() == 0


def test_sigkill_at_any_moment_never_duplicates_or_loses(daemon: Daemon, dovecot: DovecotServer) -> None:
    total = 0
    for round_ in range(3):
        for n in range(40):
            dovecot.append(BOX, mail(f"Rodada {round_} mail {n:02d}", message_id=f"<k{round_}-{n}@x.example>"))
        total += 40
        daemon.start()
        moved = len(dovecot.folder_uids(BOX, PROCESSED))
        # Kill it while it is in the middle of the batch: after a few moves, before the end.
        wait_for(lambda: len(dovecot.folder_uids(BOX, PROCESSED)) >= moved + 5 + 5 * round_, 60, "some progress")
        daemon.kill()
    daemon.start()
    wait_for(lambda: dovecot.folder_uids(BOX) == [], 120, "INBOX to be drained")
    tickets = daemon.tickets()
    assert len(tickets) == total
    assert len(set(subjects(daemon))) == total
    assert all(t["message_count"] == 1 for t in tickets)
    assert len(dovecot.folder_uids(BOX, PROCESSED)) == total
    assert daemon.stop() == 0


def test_one_mail_through_smtp_and_imap_is_one_ticket(daemon: Daemon, dovecot: DovecotServer) -> None:
    raw = mail("Para dois endereços", message_id="<both@x.example>", to=f"{HELPDESK}, {BOX}")
    daemon.start()
    with smtplib.SMTP("127.0.0.1", daemon.port) as smtp:
        smtp.sendmail("maria@x.example", [HELPDESK], raw)
    dovecot.append(BOX, b"Received: from mx by imap; Mon, 02 Nov 2026 10:00:02 +0000\r\n" + raw)
    wait_for(lambda: dovecot.folder_uids(BOX) == [], 30, "the IMAP copy to be processed")
    wait_for(lambda: len(daemon.tickets()) >= 1, 30, "the ticket")
    drain(daemon, outbox=False)  # the SMTP copy too (no smarthost: the outbox stays queued)
    [ticket] = daemon.tickets()
    assert ticket["message_count"] == 1
    assert daemon.stop() == 0


def test_metrics_show_each_accounts_last_pass_and_lag(tmp_path: Path, dovecot: DovecotServer) -> None:
    import re
    import urllib.request

    port, metrics_port = free_port(), free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", smtp_port=str(port),
                          imap=imap_section(dovecot), metrics=f"metrics: {{host: 127.0.0.1, port: {metrics_port}}}\n")
    d = Daemon(config, port, tmp_path / "maild.log")
    dovecot.append(BOX, mail("Pela caixa"))
    d.start()
    try:
        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
                return response.read().decode()

        wait_for(lambda: 'maild_mails_received_total{channel="imap:support"} 1.0' in scrape(), 30, "the IMAP mail")
        wait_for(lambda: re.search(r'^maild_imap_last_pass_timestamp_seconds\{account="support"\} 1\.', scrape(),
                                   re.M) is not None, 30, "a complete pass")
        lag = re.search(r'^maild_imap_lag_seconds\{account="support"\} (\S+)$', scrape(), re.M)
        assert lag is not None and 0 <= float(lag.group(1)) < 600
        assert 'maild_mails_processed_total{channel="imap:support",outcome="created"} 1.0' in scrape()
        assert d.stop() == 0
    finally:
        if d.proc and d.proc.poll() is None:
            d.kill()
