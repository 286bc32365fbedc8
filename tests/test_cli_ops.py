"""The read commands an admin scripts against: show by id, --json everywhere, errors with sysexits."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

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


@pytest.mark.parametrize("command", [["tickets", "list"], ["tickets", "show"], ["outbox", "list"], ["outbox", "show"],
                                     ["quarantine", "list"], ["quarantine", "show"], ["db", "status"], ["check-config"],
                                     ["backup"], ["restore"], ["reload"], ["run"]])
def test_every_flag_has_help_text(command: list[str]) -> None:
    from maild.cli import _config_everywhere, _parser

    parser = _parser()
    _config_everywhere(parser)
    target = parser
    for word in command:
        sub = next(a for a in target._actions if a.__class__.__name__ == "_SubParsersAction")
        target = sub.choices[word]
    undocumented = [a.option_strings or [a.dest] for a in target._actions if not a.help and a.dest != "help"]
    assert undocumented == []
