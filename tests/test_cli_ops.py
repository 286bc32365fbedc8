"""The read commands an admin scripts against: show by id, --json everywhere, errors with sysexits."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys


from conftest import Env, mail

MAILD = [sys.executable, "-m", "maild"]


def cli(env: Env, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*MAILD, "--config", str(env.directory / "maild.yaml"), *args], capture_output=True,
                          timeout=60)


AUTO_REPLY = {"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"}


def test_quarantine_show_gives_the_reason_and_the_raw_mail(sqlite_env: Env) -> None:
    raw = mail("Fora do escritório", body="Volto segunda.\n", headers=AUTO_REPLY)
    outcome = sqlite_env.process(raw)
    assert outcome.status == "ignored"
    [row] = sqlite_env.raw_rows()
    exact = cli(sqlite_env, "quarantine", "show", str(row.id), "--raw")
    assert exact.returncode == 0 and exact.stdout == raw
    shown = json.loads(cli(sqlite_env, "quarantine", "show", str(row.id), "--json").stdout)
    assert shown["status"] == "ignored" and shown["reason"] == row.reason and "Volto segunda." in shown["raw"]
    human = cli(sqlite_env, "quarantine", "show", str(row.id)).stdout.decode()
    assert f"reason           {row.reason}" in human and "Subject: Fora do escritório" in human
    missing = cli(sqlite_env, "quarantine", "show", "999")
    assert missing.returncode == 65 and missing.stderr == b"maild: no quarantined or ignored mail 999\n"


def test_outbox_show_gives_the_state_and_the_mail_as_sent(sqlite_env: Env) -> None:
    sqlite_env.process(mail("Preciso de ajuda"))
    rows = json.loads(cli(sqlite_env, "outbox", "list", "--json").stdout)
    ack = next(r for r in rows if r["kind"] == "ack")
    shown = json.loads(cli(sqlite_env, "outbox", "show", str(ack["id"]), "--json").stdout)
    assert shown["state"] == "queued" and shown["message_id"] == ack["message_id"]
    assert f"Message-ID: {ack['message_id']}" in shown["raw"] and "Auto-Submitted: auto-replied" in shown["raw"]
    raw = cli(sqlite_env, "outbox", "show", str(ack["id"]), "--raw").stdout
    assert raw.decode().replace("\r\n", "\n") == shown["raw"].replace("\r\n", "\n")
    assert cli(sqlite_env, "outbox", "show", "999").returncode == 65


def test_unknown_status_filter_is_a_usage_error_and_aliases_work(sqlite_env: Env) -> None:
    sqlite_env.process(mail("Novo"))
    wrong = cli(sqlite_env, "tickets", "list", "--status", "nwe")
    assert wrong.returncode == 64 and b"unknown status 'nwe'" in wrong.stderr
    by_name = json.loads(cli(sqlite_env, "tickets", "list", "--status", "new", "--json").stdout)
    by_alias = json.loads(cli(sqlite_env, "tickets", "list", "--status", "Novo", "--json").stdout)
    assert [t["subject"] for t in by_name] == [t["subject"] for t in by_alias] == ["Novo"]


def test_check_config_and_db_status_speak_json(sqlite_env: Env) -> None:
    checked = cli(sqlite_env, "check-config", "--json")
    assert checked.returncode == 0
    data = json.loads(checked.stdout)
    assert data["ok"] is True and data["problems"] == [] and data["helpdesk"]["address"] == "support@support.example.com"
    status = cli(sqlite_env, "db", "status", "--json")
    assert status.returncode == 0
    version = json.loads(status.stdout)
    assert version["up_to_date"] is True and version["current"] == version["needed"]


def _commands() -> list[tuple[list[str], argparse.ArgumentParser]]:
    """Every command of ``maild``, nested ones included, with its parser."""
    from maild.cli import _config_everywhere, _parser

    parser = _parser()
    _config_everywhere(parser)
    found: list[tuple[list[str], argparse.ArgumentParser]] = []

    def walk(target: argparse.ArgumentParser, words: list[str]) -> None:
        subs = [a for a in target._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found.append((words, target))
        for sub in subs:
            for name, child in sub.choices.items():
                walk(child, [*words, name])

    walk(parser, [])
    return found


def test_every_flag_and_argument_of_every_command_has_help_text() -> None:
    commands = _commands()
    assert len(commands) > 25
    undocumented = [(words, a.option_strings or [a.dest]) for words, target in commands
                    for a in target._actions if not a.help and a.dest != "help"]
    assert undocumented == []


READ_COMMANDS = [["check-config"], ["db", "status"], ["contacts", "show"], ["outbox", "list"], ["outbox", "show"],
                 ["quarantine", "list"], ["quarantine", "show"], ["scheduler", "status"], ["tickets", "list"],
                 ["tickets", "show"], ["sms", "list"], ["doctor"]]


def test_every_read_command_speaks_json() -> None:
    commands = {" ".join(words): target for words, target in _commands()}
    assert [words for words in READ_COMMANDS if "--json" not in commands[" ".join(words)]._option_string_actions] == []


def test_scheduler_status_says_who_leads_what_is_next_and_what_was_done(sqlite_env: Env) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from maild.clock import utc_now
    from maild.scheduler.leader import LeaseLock
    from maild.store.models import Ticket

    outcome = sqlite_env.process(mail("Com lembrete"))
    before = json.loads(cli(sqlite_env, "scheduler", "status", "--json").stdout)
    assert before["leader"] is None and before["last_done"]["reminder"] is None and before["next_due"] is None
    now = utc_now()
    with sqlite_env.app.db.write() as session:
        session.execute(update(Ticket).where(Ticket.id == outcome.ticket_id).values(
            next_action_at=now - timedelta(minutes=1)))
    assert cli(sqlite_env, "scheduler", "run-once").returncode == 0
    lock = LeaseLock(sqlite_env.app.db, 60, holder="host-a:123:leader")
    assert lock.acquire(now)
    done = cli(sqlite_env, "scheduler", "status", "--json")
    assert done.returncode == 0, done.stderr
    after = json.loads(done.stdout)
    assert after["leader"] == "host-a:123:leader" and after["last_done"]["reminder"] is not None
    lock.release()
    human = cli(sqlite_env, "scheduler", "status").stdout.decode()
    assert "leader       none" in human and f"last reminder    {after['last_done']['reminder']}" in human
