"""The sender writes the results of a session's mails together: one transaction (one
fsync) for many mails, on SQLite and PostgreSQL, against a real SMTP peer."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from conftest import HELPDESK, Env, mail
from smtpsink import Sink
from sqlalchemy import event, select

from maild.config import OutboundSmtp, Retry
from maild.outbound.sender import Sender, SmtpTransport
from maild.store.models import Message, OutboxRow


def sender_for(env: Env, port: int, **kwargs: Any) -> Sender:
    return env.sender(Sender(env.app.db, SmtpTransport(OutboundSmtp(host="127.0.0.1", port=port, timeout=5)),
                             Retry(first_seconds=1), HELPDESK, lambda: env.now, **kwargs))


class Commits:
    """Counts the transactions committed on an engine."""

    def __init__(self, env: Env) -> None:
        self.count = 0
        self.engine = env.app.db.engine
        event.listen(self.engine, "commit", self._seen)

    def _seen(self, _conn: Any) -> None:
        self.count += 1

    def close(self) -> None:
        event.remove(self.engine, "commit", self._seen)


def queue_mails(env: Env, count: int) -> None:
    """``count`` new tickets: an acknowledgement and an agent notification each."""
    for i in range(count):
        env.process(mail(f"Pedido {i}", f"cliente{i}@cliente.example", message_id=f"<b{i}@cliente.example>"))


def test_one_round_writes_all_its_results_in_one_transaction(env: Env, sink: Sink) -> None:  # noqa: F811
    queue_mails(env, 6)
    sender = sender_for(env, sink.port)
    commits = Commits(env)
    try:
        assert sender.run_once() == 12
    finally:
        commits.close()
    assert commits.count == 2  # the claim, then the twelve results together
    assert len(sink.received) == 12
    with env.app.db.read() as session:
        outbox = list(session.scalars(select(OutboxRow)))
        assert {(r.state, r.last_error, r.claim_token) for r in outbox} == {("sent", "", None)}
        stamped = session.scalars(select(Message.sent_at).where(Message.direction == "out")).all()
        assert stamped and all(at == env.now for at in stamped)  # the stored copies say when they left
    assert sender.run_once() == 0


def test_results_are_written_every_batch_mails(env: Env, sink: Sink) -> None:  # noqa: F811
    queue_mails(env, 5)  # ten mails
    sender = sender_for(env, sink.port, batch=4)
    commits = Commits(env)
    try:
        rounds = [sender.run_once() for _ in range(4)]
    finally:
        commits.close()
    assert rounds == [4, 4, 2, 0]
    assert len(sink.received) == 10
    assert commits.count == 4 + 3  # four claims (each with its heartbeat), three batches of results
    with env.app.db.read() as session:
        assert set(session.scalars(select(OutboxRow.state))) == {"sent"}


def test_a_batch_mixes_sent_refused_and_retried_mails(env: Env, sink: Sink) -> None:  # noqa: F811
    queue_mails(env, 2)
    sink.handler.refuse = {"cliente1@cliente.example"}  # 550 at RCPT: this acknowledgement fails for good
    sink.handler.fail_next, sink.handler.fail_code = 1, "451 4.3.0 try later"  # the first DATA: retried
    sender = sender_for(env, sink.port)
    assert sender.run_once() == 4
    with env.app.db.read() as session:
        states = {r.to_addr: (r.state, "550" if "550" in r.last_error else r.last_error[:3])
                  for r in session.scalars(select(OutboxRow)) if r.to_addr.startswith("cliente")}
        agent_states = [r.state for r in session.scalars(select(OutboxRow)) if not r.to_addr.startswith("cliente")]
    assert states == {"cliente0@cliente.example": ("queued", "451"), "cliente1@cliente.example": ("failed", "550")}
    assert agent_states == ["sent", "sent"]
    env.now += timedelta(seconds=2)
    assert sender.run_once() == 1  # only the retried one is due again
    assert len(sink.received) == 3
