"""The listener greets with the configured host name and names no software or version."""
from __future__ import annotations

import smtplib
import socket
from pathlib import Path

import pytest

from conftest import free_port
from maild.ingest.envelope import RecipientTable
from maild.ingest.smtp import Listener, SpoolingHandler
from maild.ingest.spool import Spool
from daemons import Daemon, Daemons


def _greeting(port: int) -> tuple[bytes, bytes]:
    with smtplib.SMTP(timeout=10) as smtp:
        code, banner = smtp.connect("127.0.0.1", port)
        assert code == 220
        ehlo = smtp.ehlo("client.example")[1]
        return banner, ehlo


@pytest.mark.parametrize("lmtp,ident", [(False, b"ESMTP"), (True, b"LMTP")])
def test_listener_greets_with_its_name_and_no_version(tmp_path: Path, lmtp: bool, ident: bytes) -> None:
    port = free_port()
    listener = Listener(SpoolingHandler(Spool(tmp_path), RecipientTable(["s@x.example"]), "smtp"), "127.0.0.1",
                        port, lmtp=lmtp, max_size=1000, server_name="mx.helpdesk.example")
    listener.start()
    try:
        if lmtp:  # LMTP greets the same way; smtplib's LMTP speaks LHLO
            with socket.create_connection(("127.0.0.1", port), 10) as s:
                banner = s.makefile("rb").readline().rstrip()
            assert banner == b"220 mx.helpdesk.example " + ident
        else:
            banner, ehlo = _greeting(port)
            assert banner == b"mx.helpdesk.example " + ident
            assert ehlo.split(b"\n")[0] == b"mx.helpdesk.example"
    finally:
        listener.stop()


@pytest.fixture
def daemon(daemons: Daemons) -> Daemon:
    return daemons.new()


@pytest.mark.slow
def test_the_daemon_greets_as_the_helpdesk_domain_or_the_configured_name(daemon: Daemon) -> None:
    daemon.start()
    banner, _ = _greeting(daemon.port)
    assert banner == b"support.example.com ESMTP"
    assert b"Python" not in banner and b"1." not in banner
    assert daemon.stop() == 0
    daemon.config.write_text(daemon.config.read_text().replace("smtp_server:\n",
                                                               "smtp_server:\n  hostname: mx1.support.example.com\n"))
    daemon.start()
    assert _greeting(daemon.port)[0] == b"mx1.support.example.com ESMTP"
    assert daemon.stop() == 0
