"""Files both ways, as a user meets them: `maild run` in a subprocess, mail in over SMTP, mail
out to a real SMTP peer (aiosmtpd), files fetched with the CLI and the control address."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

import pytest
import yaml
from conftest import AGENT, HELPDESK, free_port, write_config
from smtpsink import Received, Sink
from test_commands import CONTROL, commands_config
from test_commands_e2e import show
from test_e2e import MAILD, Daemon, wait_for
from test_outbound_e2e import deliver, outbound_section, settle, sink  # noqa: F401 (sink: a fixture)

from maild.threading.signing import Signer

pytestmark = pytest.mark.slow
CUSTOMER = "maria@cliente.example.com.br"


def with_files(subject: str, sender: str, body: str, files: list[tuple[str, str, bytes]], *, to: str = HELPDESK,
               message_id: str | None = None, headers: dict[str, str] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = message_id or f"<{os.urandom(8).hex()}@test.example>"
    msg["Date"] = "Mon, 02 Nov 2026 10:00:00 +0000"
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content(body)
    for name, ctype, data in files:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


def text(received: Received) -> str:
    body = received.message.get_body(("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def files_of(received: Received) -> dict[str, bytes]:
    return {part.get_filename(): part.get_content() for part in received.message.iter_attachments()}


def start(tmp_path: Path, sink: Sink, limit: int) -> Daemon:  # noqa: F811
    port = free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", smtp_port=str(port),
                          outbound=outbound_section(sink.port))
    commands_config(config)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["outbound"]["notify_attachments_max_bytes"] = limit
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    d = Daemon(config, port, tmp_path / "maild.log")
    sink.start()
    d.start()
    return d


def customer_sends(daemon: Daemon, sink: Sink, subject: str, body: str,  # noqa: F811
                   files: list[tuple[str, str, bytes]], message_id: str) -> Received:
    """The customer's mail with files opens a ticket: the agent's notification of it."""
    deliver(daemon.port, with_files(subject, f"Maria <{CUSTOMER}>", body, files, message_id=message_id), CUSTOMER)
    sink.wait_for(2)
    settle(sink, daemon)
    [notice] = sink.to(AGENT)
    return notice


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc and d.proc.poll() is None:
            d.kill()


PLANTA = bytes(range(256)) * 8  # 2 KB of binary: every byte value survives the trip
FICHA = b"%PDF-1.4\n" + os.urandom(3000)


def test_files_travel_both_ways_and_are_kept_on_the_ticket(tmp_path: Path, sink: Sink,  # noqa: F811
                                                           daemons: list[Daemon]) -> None:
    daemon = start(tmp_path, sink, limit=10 * 1024 * 1024)
    daemons.append(daemon)
    notice = customer_sends(daemon, sink, "Planta do apartamento", "Segue a planta.\n",
                            [("planta.png", "image/png", PLANTA)], "<c-1@cliente.example>")
    # The agent's notification carries the customer's file, and says so.
    assert files_of(notice) == {"planta.png": PLANTA}
    assert "Attached (1):\n- planta.png (2.0 KB)" in text(notice)

    # The agent answers from their mail client with a file: it reaches the customer.
    mine = parseaddr(str(notice.message["Reply-To"]))[1]
    deliver(daemon.port, with_files(f"Re: {notice.message['Subject']}", f"Ana <{AGENT}>",
                                    "Segue a ficha em anexo.\n", [("ficha.pdf", "application/pdf", FICHA)], to=mine,
                                    headers={"In-Reply-To": str(notice.message["Message-ID"])}), AGENT, to=mine)
    wait_for(lambda: len(sink.to(CUSTOMER)) == 2, 30, "the relayed reply")
    settle(sink, daemon)
    relay = sink.to(CUSTOMER)[-1]
    assert text(relay).startswith("Segue a ficha em anexo.") and files_of(relay) == {"ficha.pdf": FICHA}
    part = next(relay.message.iter_attachments())
    assert part.get_content_type() == "application/pdf"

    # Kept on the ticket: the customer's file on their message, the agent's on what went out.
    detail = show(daemon, 1)
    kept = {(m["direction"], a["filename"], a["size"]) for m in detail["messages"] for a in m["attachments"]}
    assert kept == {("in", "planta.png", len(PLANTA)), ("out", "ficha.pdf", len(FICHA))}
    shown = daemon.cli("tickets", "show", "1")
    assert "[attachment] ficha.pdf (application/pdf, 3009 bytes)" in shown.stdout

    # The CLI hands either file back, byte for byte; an unknown name fails and names the files.
    out = tmp_path / "ficha-copy.pdf"
    got = daemon.cli("tickets", "attachment", "1", "ficha.pdf", "-o", str(out))
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == FICHA
    raw = subprocess.run([*MAILD, "--config", str(daemon.config), "tickets", "attachment", "1", "PLANTA.png"],
                         capture_output=True, timeout=60)
    assert raw.returncode == 0 and raw.stdout == PLANTA  # to stdout, byte for byte; the name in any case
    missing = daemon.cli("tickets", "attachment", "1", "contrato.pdf")
    assert missing.returncode == 65 and "planta.png" in missing.stderr and "ficha.pdf" in missing.stderr
    assert daemon.cli("tickets", "attachment", "7", "ficha.pdf").returncode == 65
    assert daemon.stop() == 0


def test_files_above_the_limit_are_listed_and_fetched_by_control_get(tmp_path: Path, sink: Sink,  # noqa: F811
                                                                     daemons: list[Daemon]) -> None:
    daemon = start(tmp_path, sink, limit=4000)
    daemons.append(daemon)
    deliver(daemon.port, with_files("Documentos", f"Maria <{CUSTOMER}>", "Seguem os documentos.\n",
                                    [("planta.png", "image/png", PLANTA), ("ficha.pdf", "application/pdf", FICHA)],
                                    message_id="<c-2@cliente.example>"), CUSTOMER)
    sink.wait_for(2)
    settle(sink, daemon)
    [notice] = sink.to(AGENT)
    body = text(notice)
    assert files_of(notice) == {}  # 2048 + 3009 bytes > 4000: listed, not attached
    assert "Files (2, 4.9 KB: more than 3.9 KB, so not attached):" in body
    assert "- planta.png (2.0 KB)\n- ficha.pdf (2.9 KB)" in body and f"get 1 NAME` to {CONTROL}" in body

    # The agent asks the control address for one (from their signed control address: proof).
    signed = Signer(b"test-secret", "support", "support.example.com").agent_control_address(CONTROL, AGENT)
    deliver(daemon.port, with_files("files", f"Ana <{AGENT}>", "get 1 ficha.pdf\nget 1 nada.txt\n", [], to=signed),
            AGENT, to=signed)
    wait_for(lambda: len(sink.to(AGENT)) == 2, 30, "the control report")
    settle(sink, daemon)
    report = sink.to(AGENT)[-1]
    assert files_of(report) == {"ficha.pdf": FICHA}
    assert "#1: ficha.pdf (2.9 KB) is attached" in text(report)
    assert "NOT done: #1 has no file 'nada.txt'; its files: planta.png, ficha.pdf" in text(report)
    assert daemon.stop() == 0


LAUDO = b"%PDF-1.4\n" + os.urandom(6000)  # above the 4000-byte limit below


def test_a_drafts_files_go_out_with_send_and_get_answers_large_files_with_the_cli_command(
        tmp_path: Path, sink: Sink, daemons: list[Daemon]) -> None:  # noqa: F811
    daemon = start(tmp_path, sink, limit=4000)
    daemons.append(daemon)
    notice = customer_sends(daemon, sink, "Laudo", "Segue o laudo.\n", [("laudo.pdf", "application/pdf", LAUDO)],
                            "<c-3@cliente.example>")
    mine = parseaddr(str(notice.message["Reply-To"]))[1]

    # A /draft with a file: nothing reaches the customer yet, the file is kept with the draft.
    deliver(daemon.port, with_files(f"Re: {notice.message['Subject']}", f"Ana <{AGENT}>",
                                    "/draft\nSegue a ficha em anexo.\n", [("ficha.pdf", "application/pdf", FICHA)],
                                    to=mine), AGENT, to=mine)
    wait_for(lambda: show(daemon, 1)["draft_pending"], 30, "the draft")
    settle(sink, daemon)
    assert len(sink.to(CUSTOMER)) == 1  # the acknowledgement only

    # `send 1` at the control address: the draft goes out with its file.
    signed = Signer(b"test-secret", "support", "support.example.com").agent_control_address(CONTROL, AGENT)
    deliver(daemon.port, with_files("ops", f"Ana <{AGENT}>", "send 1\nget 1 laudo.pdf\n", [], to=signed),
            AGENT, to=signed)
    wait_for(lambda: len(sink.to(CUSTOMER)) == 2, 30, "the sent draft")
    wait_for(lambda: len(sink.to(AGENT)) == 2, 30, "the control report")
    settle(sink, daemon)
    relay = sink.to(CUSTOMER)[-1]
    assert text(relay).startswith("Segue a ficha em anexo.") and files_of(relay) == {"ficha.pdf": FICHA}
    kept = {(m["direction"], a["filename"]) for m in show(daemon, 1)["messages"] for a in m["attachments"]}
    assert ("out", "ficha.pdf") in kept

    # `get` of a file above outbound.notify_attachments_max_bytes: its size and the CLI command.
    report = sink.to(AGENT)[-1]
    assert files_of(report) == {}
    assert ("#1: laudo.pdf (5.9 KB) is larger than 3.9 KB, so it is not attached; fetch it with "
            "`maild tickets attachment 1 laudo.pdf`") in " ".join(text(report).split())
    out = tmp_path / "laudo.pdf"
    assert daemon.cli("tickets", "attachment", "1", "laudo.pdf", "-o", str(out)).returncode == 0
    assert out.read_bytes() == LAUDO
    assert daemon.stop() == 0
