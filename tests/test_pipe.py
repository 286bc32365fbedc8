"""The pipe channel (`maild ingest`): spool and exit, the recipient table, the envelope,
exit codes an MTA reads, and nothing internal in what it may bounce back."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import AGENT, HELPDESK, free_port, mail, write_config
from maild.config import load_config
from maild.exitcodes import EX_NOUSER, EX_OK, EX_TEMPFAIL
from maild.ingest.daemonlock import DaemonLock, daemon_running
from maild.ingest.envelope import is_null_sender
from maild.ingest.pipe import (NO_DAEMON, PipeEnvelope, PipeError, envelope_of, first_header, prepare,
                               read_settings)
from maild.ingest.smtp import RecipientTable
from smtpsink import Sink
from daemons import Daemon, settle, wait_for

MAILD = [sys.executable, "-m", "maild"]
CUSTOMER = "maria@cliente.example.com.br"
TABLE = RecipientTable([HELPDESK, "control@support.example.com"])


# -- pure: the envelope and the recipient table -------------------------------------------
def test_envelope_comes_from_arguments_then_the_pipe_environment_then_the_headers() -> None:
    raw = mail(headers={"Return-Path": "<header@x.example>", "Delivered-To": "support+7@support.example.com"})
    assert envelope_of(raw, None, None, {}) == PipeEnvelope("<header@x.example>", ("support+7@support.example.com",))
    postfix = {"SENDER": "env@x.example", "ORIGINAL_RECIPIENT": "sales@support.example.com",
               "RECIPIENT": HELPDESK}
    assert envelope_of(raw, None, None, postfix) == PipeEnvelope("env@x.example", ("sales@support.example.com",
                                                                                   HELPDESK))
    assert envelope_of(raw, "arg@x.example", f"<{HELPDESK}>", postfix) == PipeEnvelope("arg@x.example", (HELPDESK,))
    assert envelope_of(mail(), None, None, {}) == PipeEnvelope(None, ())


def test_first_header_reads_only_the_header_block_and_unfolds() -> None:
    raw = b"Subject: a\r\nX-Original-To:\r\n  <support@support.example.com>\r\n\r\nReturn-Path: <body@x>\r\n"
    assert first_header(raw, "x-original-to") == "<support@support.example.com>"
    assert first_header(raw, "return-path") is None


@pytest.mark.parametrize("form", ["", "<>", "MAILER-DAEMON", "<MAILER-DAEMON>", "mailer-daemon", "#@[]", "< >"])
def test_the_null_forms_mtas_write_are_the_empty_reverse_path(form: str) -> None:
    assert is_null_sender(form)
    data, refusal = prepare(mail(), PipeEnvelope(form, (HELPDESK,)), TABLE)
    assert refusal is None and data is not None and data.startswith(b"Return-Path: <>\r\nX-Original-To: ")


@pytest.mark.parametrize("real", ["maria@cliente.example.com.br", "mailer-daemon@cliente.example.com.br"])
def test_a_real_sender_is_not_null(real: str) -> None:
    assert not is_null_sender(real)


def test_unknown_recipient_is_refused_with_ex_nouser_and_plus_forms_pass() -> None:
    data, refusal = prepare(mail(), PipeEnvelope("a@x.example", ("sales@support.example.com",)), TABLE)
    assert data is None and refusal is not None and refusal.code == EX_NOUSER
    assert "sales@" not in refusal.message  # the bounce text names nothing of maild's
    data, refusal = prepare(mail(), PipeEnvelope("a@x.example", ("support+12-abc@support.example.com",)), TABLE)
    assert refusal is None and data is not None
    assert data.startswith(b"Return-Path: <a@x.example>\r\nX-Original-To: support+12-abc@support.example.com\r\n")
    # A replay by hand names no recipient: taken as it is.
    raw = mail()
    assert prepare(raw, PipeEnvelope(None, ()), TABLE) == (raw, None)


def test_the_pipe_reads_the_same_spool_and_recipients_as_the_full_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}")
    text = config.read_text().replace(f"  address: {HELPDESK}\n", f"  address: {HELPDESK}\n  extra_addresses: "
                                      "[vendas@imob.example]\n  control_address: control@support.example.com\n")
    config.write_text(text.replace(f"  path: {tmp_path / 'spool'}", "  path: var/relative-spool"))
    full, fast = load_config(config, base_dir=tmp_path), read_settings(config, tmp_path)
    assert fast.spool == full.path(full.spool.path) == tmp_path / "var/relative-spool"
    for address in ("vendas@imob.example", "vendas+x@imob.example", "control@support.example.com", HELPDESK,
                    "outro@support.example.com", "support@imob.example"):
        from maild.app import App

        assert fast.recipients.accepts(address) == App.recipients(type("A", (), {"config": full, "processor": type("P", (), {"signer": None})()})()).accepts(address)
    minimal = tmp_path / "minimal.yaml"
    minimal.write_text(f"helpdesk:\n  address: {HELPDESK}\n  secret: s3cr3t-for-tests\n")
    assert read_settings(minimal, tmp_path).spool == load_config(minimal, tmp_path).path(
        load_config(minimal, tmp_path).spool.path)


@pytest.mark.parametrize("text", ["helpdesk: [unclosed", "- a list", "helpdesk:\n  address: 12\n",
                                  "helpdesk: {address: a@b.example}\nspool: {path: [1]}\n"])
def test_a_broken_config_is_a_pipe_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(PipeError):
        read_settings(path, tmp_path)


def test_the_daemon_lock_is_seen_while_held_and_gone_after(tmp_path: Path) -> None:
    assert not daemon_running(tmp_path)
    lock = DaemonLock(tmp_path)
    lock.acquire()
    other = DaemonLock(tmp_path)  # a second daemon on the same spool
    other.acquire()
    assert daemon_running(tmp_path)
    lock.release()
    assert daemon_running(tmp_path)
    other.release()
    assert not daemon_running(tmp_path)


# -- the command, as an MTA runs it ------------------------------------------------------------
def ingest(config: Path, raw: bytes, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    clean = {k: v for k, v in os.environ.items() if k not in ("SENDER", "RECIPIENT", "ORIGINAL_RECIPIENT")}
    return subprocess.run([*MAILD, "--config", str(config), "ingest", *args], input=raw, capture_output=True,
                          env={**clean, **env}, timeout=60)


def _no_internals(result: subprocess.CompletedProcess[bytes], *secrets: str) -> None:
    text = (result.stdout + result.stderr).decode()
    assert "Traceback" not in text and "Error" not in text
    for secret in secrets:
        assert secret not in text, text


def test_exit_codes_and_texts_an_mta_may_bounce(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}")
    raw = mail("Pelo pipe")
    # No daemon: durable, exit 0, and it says the mail waits.
    done = ingest(config, raw, RECIPIENT=HELPDESK, SENDER=CUSTOMER)
    assert done.returncode == EX_OK and done.stderr.decode().strip() == NO_DAEMON
    assert len(list((tmp_path / "spool" / "new").glob("*.pipe.eml"))) == 1
    # Not a helpdesk address: 67, the MTA bounces; nothing spooled.
    refused = ingest(config, raw, RECIPIENT="vendas@support.example.com", SENDER=CUSTOMER)
    assert refused.returncode == EX_NOUSER
    assert len(list((tmp_path / "spool" / "new").glob("*.eml"))) == 1
    # Not the mail's fault: 75, one fixed line, no path, no exception.
    (tmp_path / "broken.yaml").write_text("helpdesk: [unclosed\n")
    unreadable = tmp_path / "dir.yaml"
    unreadable.mkdir()
    spool_blocked = tmp_path / "blocked"
    spool_blocked.mkdir()
    (spool_blocked / "file").write_text("")
    blocked = write_config(spool_blocked, f"sqlite:///{tmp_path / 'maild.db'}")
    blocked.write_text(blocked.read_text().replace(str(spool_blocked / "spool"), str(spool_blocked / "file" / "x")))
    for bad in (tmp_path / "broken.yaml", unreadable, tmp_path / "missing.yaml", blocked):
        result = ingest(bad, raw, RECIPIENT=HELPDESK)
        assert result.returncode == EX_TEMPFAIL, (bad, result.stderr)
        _no_internals(result, str(tmp_path), "yaml", "unclosed")
    # --now: a database that is not there is the same 75, never 78, and says no more.
    (tmp_path / "dead").mkdir()
    dead = write_config(tmp_path / "dead", f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
    result = ingest(dead, raw, "--now", RECIPIENT=HELPDESK, PGCONNECT_TIMEOUT="2")
    assert result.returncode == EX_TEMPFAIL
    _no_internals(result, str(tmp_path), "psycopg", "127.0.0.1")
    assert ingest(tmp_path / "broken.yaml", raw, "--now").returncode == EX_TEMPFAIL
    # --verbose is for the admin at a terminal: then the details are there.
    assert b"not valid YAML" in ingest(tmp_path / "broken.yaml", raw, "-v").stderr


@pytest.mark.slow
def test_piped_mail_waits_for_the_daemon_then_becomes_a_ticket_with_its_envelope(
        daemon: Daemon, sink: Sink, tmp_path: Path) -> None:
    # Before the daemon runs: spooled, said so.
    first = ingest(daemon.config, mail("Antes do daemon", CUSTOMER, message_id="<p-1@x.example>"),
                   SENDER=CUSTOMER, ORIGINAL_RECIPIENT=HELPDESK, RECIPIENT=HELPDESK)
    assert first.returncode == 0 and first.stderr.decode().strip() == NO_DAEMON
    daemon.start()
    wait_for(lambda: len(daemon.tickets()) == 1, 30, "the spooled mail processed on start")
    # While it runs: no note, the daemon takes the mail.
    second = ingest(daemon.config, mail("Com o daemon", CUSTOMER, message_id="<p-2@x.example>"),
                    "-f", CUSTOMER, "-r", HELPDESK)
    assert second.returncode == 0 and second.stderr == b"" and second.stdout == b""
    # A Postfix pipe's null sender: kept, no ticket, never answered.
    null = ingest(daemon.config, mail("Aviso", CUSTOMER, message_id="<p-3@x.example>",
                                      headers={"Return-Path": "<MAILER-DAEMON>"}), RECIPIENT=HELPDESK)
    assert null.returncode == 0
    wait_for(lambda: len(daemon.tickets()) == 2, 30, "the second ticket")
    wait_for(lambda: len(json.loads(daemon.cli("quarantine", "list", "--ignored", "--json").stdout)) == 1, 30,
             "the null-sender mail kept")
    ignored = json.loads(daemon.cli("quarantine", "list", "--ignored", "--json").stdout)
    assert "auto:null-reverse-path" in ignored[0]["reason"]
    got = settle(sink, daemon)
    acks = sorted(r.message["In-Reply-To"] for r in got if r.rcpt_tos == [CUSTOMER])
    assert acks == ["<p-1@x.example>", "<p-2@x.example>"]
    assert sorted({r.rcpt_tos[0] for r in got}) == sorted({CUSTOMER, AGENT})
    # The envelope is recorded above the kept raw mail, as the listener records it.
    from maild.app import App

    app = App(load_config(daemon.config, base_dir=tmp_path))
    with app.db.read() as session:
        from sqlalchemy import select

        from maild.store.models import RawMail

        raws = {r.message_id: app.blobs.get_raw(r.sha256) for r in session.scalars(select(RawMail))}
    app.db.dispose()
    assert raws["<p-1@x.example>"].startswith(
        f"Return-Path: <{CUSTOMER}>\r\nX-Original-To: {HELPDESK}\r\n".encode())
    assert raws["<p-3@x.example>"].startswith(f"Return-Path: <>\r\nX-Original-To: {HELPDESK}\r\n".encode())
    assert daemon.stop() == 0


def test_a_relative_spool_is_taken_from_the_config_files_directory_whatever_the_mtas_cwd(tmp_path: Path) -> None:
    import subprocess
    import sys

    from maild.cli_args import DEFAULT_CONFIG, base_dir
    from maild.config import default_base_dir

    home = tmp_path / "etc"
    home.mkdir()
    config = home / "maild.yaml"
    config.write_text(f"helpdesk: {{address: {HELPDESK}, secret: s3cr3t-value}}\nspool: {{path: var/spool}}\n")
    elsewhere = tmp_path / "postfix-queue"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-m", "maild", "--config", str(config), "ingest", "-r", HELPDESK],
                          input=mail(), capture_output=True, cwd=elsewhere, timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(list((home / "var" / "spool" / "new").glob("*.eml"))) == 1
    assert not (elsewhere / "var").exists()
    assert base_dir(config) == default_base_dir(config) and base_dir(DEFAULT_CONFIG) == default_base_dir(DEFAULT_CONFIG)
