"""The SMTP/LMTP listener over real loopback sockets."""
from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import HELPDESK, Env, free_port, mail, make_env
from maild.app import utc_now
from maild.ingest.smtp import Listener, SpoolingHandler
from maild.ingest.spool import Spool, SpoolWorker


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Env, int]]:
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", max_size="20000")
    port = free_port()
    listener = Listener(SpoolingHandler(env.app.spool, env.app.recipients(), "smtp"), "127.0.0.1", port,
                        lmtp=False, max_size=20000)
    listener.start()
    yield env, port
    listener.stop()
    env.app.db.dispose()


def test_mail_is_spooled_before_250_and_then_processed(served: tuple[Env, int]) -> None:
    env, port = served
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        code, _ = smtp.ehlo()
        refused = smtp.sendmail("maria@x.example", [HELPDESK], mail("Pelo SMTP"))
        assert refused == {}
    # The 250 came back: the mail must be durable in the spool already.
    assert len(env.app.spool.pending()) == 1
    worker = SpoolWorker(env.app.spool, env.app.processor.process_batch, utc_now)
    assert worker.drain() == 1
    assert env.app.spool.pending() == []
    assert [t["subject"] for t in env.tickets()] == ["Pelo SMTP"]


def test_lines_longer_than_rfc_limit_are_accepted(served: tuple[Env, int]) -> None:
    env, port = served
    raw = mail("Long line", body="<p>" + "x" * 5000 + "</p>\n")
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        assert smtp.sendmail("maria@x.example", [HELPDESK], raw) == {}
    assert [e.read() for e in env.app.spool.pending()] == [b"Return-Path: <maria@x.example>\r\nX-Original-To: "
                                                            + HELPDESK.encode() + b"\r\n" + raw]


def test_plus_address_is_accepted_and_others_refused(served: tuple[Env, int]) -> None:
    env, port = served
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        smtp.ehlo()
        smtp.mail("maria@x.example")
        assert smtp.rcpt("support+12-abcdefghij@support.example.com")[0] == 250
        assert smtp.rcpt("SUPPORT@Support.Example.com")[0] == 250
        assert smtp.rcpt("someone@elsewhere.example")[0] == 550
        assert smtp.rcpt("support@support.example.com.evil.example")[0] == 550
        assert smtp.rcpt("supportx@support.example.com")[0] == 550


def test_open_relay_refused(served: tuple[Env, int]) -> None:
    env, port = served
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("spammer@x.example", ["victim@gmail.example"], mail("relay me"))
    assert env.app.spool.pending() == []


def test_oversize_mail_gets_552_and_nothing_is_spooled(served: tuple[Env, int]) -> None:
    env, port = served
    big = mail("big", body="x" * 50000 + "\n")
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        with pytest.raises(smtplib.SMTPException) as err:
            smtp.sendmail("maria@x.example", [HELPDESK], big)
    assert "552" in str(err.value)
    assert env.app.spool.pending() == []


def test_spool_failure_answers_451(served: tuple[Env, int], monkeypatch: pytest.MonkeyPatch) -> None:
    env, port = served

    def broken(raw: bytes, channel: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(env.app.spool, "put", broken)
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as err:
            smtp.sendmail("maria@x.example", [HELPDESK], mail("later"))
    assert err.value.smtp_code == 451


def test_lmtp_answers_once_per_recipient(tmp_path: Path) -> None:
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}")
    port = free_port()
    listener = Listener(SpoolingHandler(env.app.spool, env.app.recipients(), "lmtp"), "127.0.0.1", port,
                        lmtp=True, max_size=100000)
    listener.start()
    try:
        with smtplib.LMTP("127.0.0.1", port) as lmtp:
            lmtp.ehlo_or_helo_if_needed = lambda: None  # type: ignore[method-assign]
            assert lmtp.docmd("LHLO", "test")[0] == 250
            lmtp.mail("maria@x.example")
            lmtp.rcpt(HELPDESK)
            lmtp.rcpt("support+sales@support.example.com")
            code, _ = lmtp.data(mail("por LMTP"))
            assert code == 250
            # The second recipient's reply is still on the wire: read it raw.
            second = lmtp.getreply()
            assert second[0] == 250
    finally:
        listener.stop()
    assert len(Spool(env.app.spool.root).pending()) == 1
    env.app.db.dispose()



def test_spool_keeps_arrival_order_when_the_clock_steps_back(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import maild.ingest.spool as spool_module

    readings = iter([2_000_000_000_000_000_000, 1_000_000_000_000_000_000, 1_500_000_000_000_000_000])
    monkeypatch.setattr(spool_module.time, "time_ns", lambda: next(readings))
    spool = Spool(tmp_path / "spool")
    for n in range(3):
        spool.put(f"mail {n}".encode(), "smtp")
    assert [entry.read() for entry in spool.pending()] == [b"mail 0", b"mail 1", b"mail 2"]
