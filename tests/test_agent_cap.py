"""Agents are capped too: a flood of mail from one sender gives each agent at most
``outbound.limits.per_agent.count`` notifications per window and then one summary at the
window's end, listing what was held back; the check costs one counter row per mail."""
from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from conftest import AGENT, Env, make_env, mail
from smtpsink import Sink
from daemons import Daemons, deliver, outbound_section, settle
from maild.notify import agentcap
from maild.store.models import Event, NotifyCounter, OutboxRow

FLOODER = "robo@flood.example"
LIMITS = """\
outbound:
  limits:
    per_address_burst: {count: 1000, minutes: 1}
    per_address: {count: 1000, minutes: 10}
    per_address_day: {count: 1000, minutes: 1440}
    per_agent: {count: 20, minutes: 10}
"""


def agent_rows(env: Env) -> list[OutboxRow]:
    with env.app.db.read() as session:
        return list(session.scalars(select(OutboxRow).where(OutboxRow.to_addr == AGENT).order_by(OutboxRow.id)))


def test_window_is_fixed_and_aligned() -> None:
    from conftest import T0

    start, end = agentcap.window_of(T0 + timedelta(minutes=7, seconds=3), timedelta(minutes=10))
    assert (start, end) == (T0, T0 + timedelta(minutes=10))
    assert agentcap.window_of(T0, timedelta(minutes=10))[0] == T0


def test_a_flood_of_200_mails_gives_the_agent_20_notifications_and_one_summary(tmp_path: Path) -> None:
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", limits=LIMITS)
    try:
        outcomes = [env.process(mail(f"Oferta {n}", FLOODER, body=f"compre {n}\n")) for n in range(200)]
        assert {o.status for o in outcomes} == {"created"}
        rows = agent_rows(env)
        notices = [r for r in rows if r.kind == "notify"]
        summaries = [r for r in rows if r.kind == "summary"]
        assert len(notices) == 20 and len(summaries) == 1
        summary = summaries[0]
        assert summary.state == "queued" and summary.next_attempt_at == env.now.replace(minute=10, second=0)
        assert "180 notification(s) held back" in summary.subject
        first_held = outcomes[20].ticket_id
        assert f"#{first_held}] Oferta 20 — 1 update(s)" in summary.body_text
        assert "and 130 more update(s)" in summary.body_text  # 50 tickets listed by name
        with env.app.db.read() as session:
            held = session.scalar(select(func.count()).select_from(Event).where(Event.kind == "mail_held"))
            counter = session.scalars(select(NotifyCounter)).one()
        assert held == 180 and (counter.sent, counter.held) == (20, 180)

        # The next window starts afresh: notifications again, and a new summary only if needed.
        env.now = env.now.replace(minute=10, second=0)
        env.process(mail("Depois", FLOODER))
        assert [r.kind for r in agent_rows(env)][-1] == "notify"
    finally:
        env.app.db.dispose()


@pytest.mark.slow
def test_daemon_flood_over_smtp_gives_the_agent_capped_notices_and_a_summary(
        tmp_path: Path, daemons: Daemons, sink: Sink) -> None:
    section = outbound_section(sink.port) + "  limits: {per_agent: {count: 3, minutes: 0.1}}\n"
    daemon = daemons.new(outbound=section)
    daemon.start()
    for n in range(10):
        deliver(daemon.port, mail(f"Oferta {n}", FLOODER), FLOODER)
    got = settle(sink, daemon, seconds=60)
    to_agent = [r for r in got if r.rcpt_tos == [AGENT]]
    summaries = [r for r in to_agent if "held back" in r.message["Subject"]]
    notices = [r for r in to_agent if r not in summaries]
    held = sum(int(re.search(r"(\d+) notification", r.message["Subject"]).group(1)) for r in summaries)
    assert summaries and len(notices) + held == 10 and len(notices) <= 3 * len(summaries) + 3
    assert "Oferta" in summaries[0].message.get_content()
    logged = (tmp_path / "maild.log").read_text().lower()
    assert "sent to" in logged and FLOODER not in logged and AGENT not in logged  # masked at INFO
