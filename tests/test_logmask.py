"""Logs never print a full e-mail address at INFO or above: a whole run — a customer's
mail, the acknowledgement and notification sent over SMTP, the agent's reply relayed, a
blocked sender, forget — is logged and searched."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from conftest import AGENT, Env, make_env, mail
from maild.contacts.book import set_blocked
from maild.contacts.forget import forget
from maild.logmask import mask, mask_phone, mask_text
from smtpsink import Sink
from test_forget import agent_reply
from test_outbound import drain, sender_for

CUSTOMER = "maria.souza@cliente.example.com.br"


def test_mask_keeps_the_domain_and_message_ids() -> None:
    assert mask(CUSTOMER) == "m***@cliente.example.com.br"
    assert mask_text(f"sender {CUSTOMER} is blocked; see <abc.1@test.example>") == (
        "sender m***@cliente.example.com.br is blocked; see <abc.1@test.example>")
    assert mask_phone("+5521999990000") == "+55***0000"


def test_a_full_run_logs_no_full_address(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env: Env = make_env(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}")
    sink = Sink().start()
    caplog.set_level(logging.INFO)
    try:
        first = env.process(mail("Vazamento", f"Maria <{CUSTOMER}>"))
        drain(sender_for(env, sink.port))
        agent_reply(env, first.ticket_id, "Vamos verificar amanhã.\n")
        drain(sender_for(env, sink.port))
        with env.app.db.write() as session:
            set_blocked(session, "spam@junk.example", True, env.now)
        env.process(mail("Compre", "spam@junk.example"))
        with env.app.db.write() as session:
            forget(session, env.app.blobs, CUSTOMER, secret=b"s", now=env.now, actor="cli:test")
        assert len(sink.received) >= 3  # ack, notification, relayed reply
    finally:
        env.close()
        sink.stop()
    # maild's own loggers (the sink standing in for the smarthost is aiosmtpd, not maild).
    logged = "\n".join(r.getMessage() for r in caplog.records
                       if r.levelno >= logging.INFO and r.name.startswith("maild")).lower()
    assert "sent to" in logged and "blocked" in logged  # the run did log what it did
    for address in (CUSTOMER, AGENT, "spam@junk.example"):
        assert address not in logged, address
