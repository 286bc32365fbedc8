"""maild behind a real Postfix (Debian's package, a private instance on loopback ports):
mail in over LMTP and over the pipe, deferral while maild is down, and Postfix as the
smarthost for what maild sends."""
from __future__ import annotations

import json
import shutil
import smtplib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import AGENT, HELPDESK, free_port, mail, write_config
from postfix import PostfixServer, postfix_or_skip
from smtpsink import Sink
from daemons import Daemon, settle, wait_for

pytestmark = pytest.mark.slow
CUSTOMER = "maria@cliente.example.com.br"
DOMAIN = HELPDESK.split("@")[1]
LONG_LINE = "x" * 1500  # Postfix breaks lines over 998 bytes unless *_line_length_limit = 0


@pytest.fixture
def home() -> Iterator[Path]:
    """maild's directory, reachable by the pipe's user (pytest's own tmp is private)."""
    path = Path(tempfile.mkdtemp(prefix="maild-behind-postfix-"))
    path.chmod(0o755)
    for sub in ("spool", "spool/tmp", "spool/new"):
        (path / sub).mkdir(exist_ok=True)
        (path / sub).chmod(0o777)  # the pipe writes as nobody, the daemon reads as root
    yield path
    shutil.rmtree(path, ignore_errors=True)


def maild_daemon(home: Path, port: int, submit_port: int, lmtp: bool) -> Daemon:
    config = write_config(home, f"sqlite:///{home / 'maild.db'}", smtp_port=str(port), outbound=f"""\
        outbound:
          smtp: {{host: 127.0.0.1, port: {submit_port}, timeout: 5}}
          retry: {{first_seconds: 0.3, max_seconds: 1, poll_seconds: 0.2, claim_timeout_seconds: 3}}
        """)
    if lmtp:
        config.write_text(config.read_text().replace("smtp_server:\n", "smtp_server:\n  lmtp: true\n"))
    return Daemon(config, port, home / "maild.log")


@pytest.fixture
def stack(request: pytest.FixtureRequest, home: Path, sink: Sink) -> Iterator[tuple[PostfixServer, Daemon]]:
    """Postfix in front (LMTP or pipe to maild) and as maild's smarthost (to the sink)."""
    lmtp = request.param == "lmtp"
    port = free_port()
    route = f"lmtp:inet:127.0.0.1:{port}" if lmtp else "maild:"
    config = home / "maild.yaml"
    postfix = postfix_or_skip(DOMAIN, [HELPDESK, AGENT, f"vendas@{DOMAIN}"],
                              {HELPDESK: route, f"vendas@{DOMAIN}": route}, sink.port, config)
    daemon = maild_daemon(home, port, postfix.submit_port, lmtp)
    try:
        yield postfix, daemon
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
        postfix.stop()
        postfix.cleanup()


def send(postfix: PostfixServer, raw: bytes, sender: str = CUSTOMER, to: str = HELPDESK) -> None:
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=20) as smtp:
        smtp.sendmail(sender, [to], raw)


def stored_raw(daemon: Daemon, home: Path, message_id: str) -> bytes:
    from maild.app import App
    from maild.config import load_config

    app = App(load_config(daemon.config, base_dir=home))
    try:
        with app.db.read() as session:
            from sqlalchemy import select

            from maild.store.models import RawMail

            sha = session.scalars(select(RawMail.sha256).where(RawMail.message_id == message_id)).one()
        return app.blobs.get_raw(sha)
    finally:
        app.db.dispose()


@pytest.mark.parametrize("stack", ["lmtp", "pipe"], indirect=True)
def test_mail_through_postfix_becomes_a_ticket_with_its_envelope_and_the_ack_goes_out_through_it(
        stack: tuple[PostfixServer, Daemon], sink: Sink, home: Path) -> None:
    postfix, daemon = stack
    daemon.start()
    # Unknown recipients are refused at Postfix's edge: no bounce for maild to cause.
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(postfix, mail("Nada"), to=f"ninguem@{DOMAIN}")
    send(postfix, mail("Vazamento na cozinha", CUSTOMER, message_id="<pf-1@cliente.example>",
                       body=f"Está vazando.\n{LONG_LINE}\n"))
    wait_for(lambda: len(daemon.tickets()) == 1, 60, "the ticket")
    ticket = json.loads(daemon.cli("tickets", "show", "1", "--json").stdout)
    assert LONG_LINE in ticket["messages"][0]["body_text"]  # the long line arrived whole
    raw = stored_raw(daemon, home, "<pf-1@cliente.example>")
    assert raw.startswith(f"Return-Path: <{CUSTOMER}>\r\nX-Original-To: {HELPDESK}\r\n".encode()), raw[:300]
    # The acknowledgement and the agent's notification leave through Postfix to the sink.
    wait_for(lambda: len(sink.to(CUSTOMER)) == 1 and len(sink.to(AGENT)) == 1, 60, "mail through postfix")
    settle(sink, daemon)
    ack = sink.to(CUSTOMER)[0]
    assert ack.message["In-Reply-To"] == "<pf-1@cliente.example>"
    assert "by mx.test.example" in str(ack.message["Received"])  # it went through Postfix
    # A null sender (MAIL FROM:<>) stays null behind Postfix: kept, never answered.
    send(postfix, mail("Aviso", CUSTOMER, message_id="<pf-null@cliente.example>"), sender="")
    wait_for(lambda: len(json.loads(daemon.cli("quarantine", "list", "--ignored", "--json").stdout)) == 1, 60,
             "the null-sender mail kept")
    ignored = json.loads(daemon.cli("quarantine", "list", "--ignored", "--json").stdout)
    assert "auto:null-reverse-path" in ignored[0]["reason"]
    assert len(sink.to(CUSTOMER)) == 1 and len(daemon.tickets()) == 1
    assert daemon.stop() == 0


@pytest.mark.parametrize("stack", ["pipe"], indirect=True)
def test_the_pipe_refuses_an_address_maild_does_not_serve_and_postfix_bounces_it_cleanly(
        stack: tuple[PostfixServer, Daemon], sink: Sink, home: Path) -> None:
    postfix, daemon = stack
    daemon.start()
    send(postfix, mail("Para vendas", CUSTOMER, message_id="<pf-v@cliente.example>"), to=f"vendas@{DOMAIN}")
    def bounces() -> list[str]:
        return [r.data.decode(errors="replace") for r in sink.to(CUSTOMER) if "MAILER-DAEMON" in r.message["From"]]

    wait_for(bounces, 60, "Postfix's bounce to the customer")
    dsn = bounces()[0]
    assert "5.1.1" in dsn and "no such helpdesk address" in dsn
    assert str(home) not in dsn and "Traceback" not in dsn
    assert daemon.tickets() == []
    assert daemon.stop() == 0


@pytest.mark.parametrize("stack", ["lmtp", "pipe"], indirect=True)
def test_maild_down_postfix_defers_then_delivers_exactly_once(
        stack: tuple[PostfixServer, Daemon], sink: Sink, home: Path) -> None:
    postfix, daemon = stack
    if "lmtp: true" not in daemon.config.read_text():
        # The pipe with no daemon: the mail is durable in maild's spool (Postfix is done),
        # and maild says so; it becomes a ticket when the daemon starts.
        send(postfix, mail("Sem daemon", CUSTOMER, message_id="<pf-down@cliente.example>"))
        wait_for(postfix.queue_empty, 60, "Postfix handing the mail to the pipe")
        wait_for(lambda: "status=sent" in postfix.log(), 30, "the pipe delivery logged")
        assert "no maild daemon is running" in postfix.log()
    else:
        send(postfix, mail("Sem daemon", CUSTOMER, message_id="<pf-down@cliente.example>"))
        wait_for(lambda: "status=deferred" in postfix.log(), 60, "Postfix deferring the mail")
        assert not postfix.queue_empty()
    daemon.start()
    postfix.flush()
    wait_for(lambda: len(daemon.tickets()) == 1, 60, "the ticket after the restart")
    wait_for(postfix.queue_empty, 60, "Postfix's queue empty")
    postfix.flush()  # nothing left to redeliver: still exactly one ticket with one message
    settle(sink, daemon)
    tickets = daemon.tickets()
    assert len(tickets) == 1 and tickets[0]["message_count"] == 1
    assert len(sink.to(CUSTOMER)) == 1
    assert daemon.stop() == 0


@pytest.mark.parametrize("stack", ["lmtp"], indirect=True)
def test_a_550_at_the_final_hop_comes_back_as_a_postfix_dsn_and_becomes_a_note(
        stack: tuple[PostfixServer, Daemon], sink: Sink) -> None:
    postfix, daemon = stack
    daemon.config.write_text(daemon.config.read_text().replace("outbound:\n", "outbound:\n  notify_agents: false\n"))
    sink.handler.fail_next, sink.handler.fail_code = 1, f"550 5.1.1 <{CUSTOMER}>: mailbox unknown"
    daemon.start()
    send(postfix, mail("Visita", CUSTOMER, message_id="<pf-dsn-1@cliente.example>"))

    def shown() -> dict:
        return json.loads(daemon.cli("tickets", "show", "1", "--json").stdout or "{}")

    # The acknowledgement is refused at the sink; Postfix returns a DSN to maild's envelope
    # sender, which comes back in over LMTP and is recorded on the ticket.
    wait_for(lambda: any(e["kind"] == "bounce" for e in shown().get("events", [])), 90, "the DSN as a note")
    ticket = shown()
    assert ticket["messages"][-1]["direction"] == "note"
    assert any(e["kind"] == "bounce" and "permanent" in e["detail"] for e in ticket["events"])
    assert len(daemon.tickets()) == 1  # the DSN opened nothing
    # The address is marked: the customer's next mail gets no acknowledgement.
    send(postfix, mail("Outra coisa", CUSTOMER, message_id="<pf-dsn-2@cliente.example>"))
    wait_for(lambda: len(daemon.tickets()) == 2, 60, "the second ticket")
    settle(sink, daemon)
    assert sink.to(CUSTOMER) == []
    assert daemon.stop() == 0


JOAO = "joão@clientes.test"


@pytest.mark.parametrize("stack", ["lmtp", "pipe"], indirect=True)
def test_a_utf8_address_gets_its_acknowledgement_through_postfix_and_the_next_mail_still_goes_out(
        stack: tuple[PostfixServer, Daemon], sink: Sink) -> None:
    postfix, daemon = stack
    daemon.start()
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=20) as smtp:  # Postfix offers SMTPUTF8
        smtp.sendmail(JOAO, [HELPDESK], mail("Fatura em dobro", JOAO, message_id="<utf8-1@clientes.test>"),
                      mail_options=["SMTPUTF8"])
    wait_for(lambda: len(daemon.tickets()) == 1, 60, "the ticket of the UTF-8 address")
    assert daemon.tickets()[0]["requester"] == JOAO
    # Its acknowledgement, then the agent's notification queued behind it: both through Postfix.
    wait_for(lambda: len(sink.to(JOAO)) == 1 and len(sink.to(AGENT)) == 1, 60, "the acknowledgement and the next mail")
    ack = sink.to(JOAO)[0]
    assert "SMTPUTF8" in ack.mail_options and ack.message["In-Reply-To"] == "<utf8-1@clientes.test>"
    assert "by mx.test.example" in str(ack.message["Received"])
    # A later mail of an ASCII customer goes out over the same sender sessions as before.
    send(postfix, mail("Outra coisa", CUSTOMER, message_id="<after-utf8@cliente.example>"))
    wait_for(lambda: len(sink.to(CUSTOMER)) == 1, 60, "the next customer's acknowledgement")
    settle(sink, daemon)
    rows = json.loads(daemon.cli("outbox", "list", "--json").stdout)
    assert {r["state"] for r in rows} == {"sent"} and all(r["attempts"] <= 1 for r in rows), rows
    assert "nested MAIL command" not in postfix.log()
    assert daemon.stop() == 0
