"""Automatic mail as a running daemon meets it: over real SMTP, replies read at a real sink."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import HELPDESK, free_port, mail, write_config
from smtpsink import Sink
from test_e2e import Daemon, wait_for
from test_outbound_e2e import deliver, outbound_section, settle

pytestmark = pytest.mark.slow
CUSTOMER = "maria@cliente.example.com.br"


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    s.start()
    yield s
    s.stop()


@pytest.fixture
def daemon(tmp_path: Path, sink: Sink) -> Iterator[Daemon]:
    port = free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", smtp_port=str(port),
                          outbound=outbound_section(sink.port))
    d = Daemon(config, port, tmp_path / "maild.log")
    d.start()
    yield d
    if d.proc and d.proc.poll() is None:
        d.kill()


def ignored(daemon: Daemon) -> list[dict]:
    result = daemon.cli("quarantine", "list", "--ignored", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_empty_envelope_sender_is_never_answered_and_a_forged_header_changes_nothing(
        daemon: Daemon, sink: Sink) -> None:
    # 1. MAIL FROM:<> with a customer-looking mail: kept, no ticket, nobody answered.
    deliver(daemon.port, mail("Preciso de ajuda", CUSTOMER, message_id="<null-1@x.example>"), "")
    # 2. MAIL FROM:<> under a Return-Path the mail wrote itself: still the empty envelope.
    deliver(daemon.port, mail("Preciso de ajuda 2", CUSTOMER, message_id="<null-2@x.example>",
                              headers={"Return-Path": f"<{CUSTOMER}>"}), "")
    wait_for(lambda: len(ignored(daemon)) == 2, 20, "both null-sender mails kept")
    assert all("auto:null-reverse-path" in r["reason"] for r in ignored(daemon))
    assert daemon.tickets() == []
    # 3. A real envelope sender under a forged "Return-Path: <>": a customer, answered.
    deliver(daemon.port, mail("Preciso de ajuda 3", CUSTOMER, message_id="<real-3@x.example>",
                              headers={"Return-Path": "<>"}), CUSTOMER)
    sink.wait_for(2)
    got = settle(sink, daemon)
    assert sorted(r.rcpt_tos[0] for r in got) == sorted([CUSTOMER, "ana@support.example.com"])
    assert [t["subject"] for t in daemon.tickets()] == ["Preciso de ajuda 3"]
    assert all(r.message["In-Reply-To"] == "<real-3@x.example>" for r in got if r.rcpt_tos == [CUSTOMER])
    assert daemon.stop() == 0
