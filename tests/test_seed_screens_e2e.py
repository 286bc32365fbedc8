"""The seeds' screens as a Brazilian helpdesk meets them: `maild run` in a subprocess with
``language: pt-BR``, mail in over SMTP, mail out to a real aiosmtpd sink, the CLI's output.

Statuses, history, feedback, control-address reports, the digest and its calendar speak
Portuguese; "Respondido pendente" is a status set by /draft and left by /send; tickets are
listed, counted, changed in bulk and deleted as seeds 000 and 004 show."""
from __future__ import annotations

import json
import subprocess
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import icalendar
import pytest
import yaml
from conftest import AGENT, mail
from smtpsink import Received, Sink
from test_commands import BRUNO, CONTROL, CUSTOMER
from test_commands_e2e import daemon, reply_to, show  # noqa: F401 (daemon: a fixture, the commands config)
from test_e2e import MAILD, Daemon, wait_for

from maild.notify.rules import DEFAULT_TRIGGERS_DATA
from test_outbound_e2e import deliver, settle, sink, text  # noqa: F401 (sink: a fixture)

pytestmark = pytest.mark.slow
OTHER = "joao@cliente.example.com.br"


def portuguese(config: Path, **scheduler: object) -> None:
    """The commands test config, in Portuguese (before the daemon starts)."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["helpdesk"]["language"] = "pt-BR"
    # one agent sends many command mails in a minute here: past the default burst cap
    data["outbound"]["limits"] = {"per_address_burst": {"count": 100, "minutes": 1}}
    if scheduler:
        data["scheduler"] = scheduler
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def cli_json(daemon: Daemon, *args: str) -> list[dict]:
    result = daemon.cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def ids(daemon: Daemon, *args: str) -> list[int]:
    return [t["id"] for t in cli_json(daemon, "tickets", "list", *args)]


def control(daemon: Daemon, sink: Sink, body: str) -> Received:
    """A control-address mail from Ana (proved by her signed control+ address): the report."""
    signed = getattr(daemon, "signed", None)
    if signed is None:
        told = len(sink.to(AGENT))
        deliver(daemon.port, mail("ops", f"Ana <{AGENT}>", to=CONTROL, body="stats\n"), AGENT, to=CONTROL)
        wait_for(lambda: len(sink.to(AGENT)) > told, 60, "the proof notice")
        signed = daemon.signed = reply_to(sink.to(AGENT)[-1])  # type: ignore[attr-defined]
    told = len(sink.to(AGENT))
    deliver(daemon.port, mail("Re: ops", f"Ana <{AGENT}>", to=signed, body=body), AGENT, to=signed)
    wait_for(lambda: any("Re: ops" in str(r.message["Subject"]) for r in sink.to(AGENT)[told:]), 60, "the report")
    return [r for r in sink.to(AGENT)[told:] if "Re: ops" in str(r.message["Subject"])][-1]


def test_portuguese_draft_status_and_send_from_the_control_address(daemon: Daemon, sink: Sink) -> None:
    portuguese(daemon.config)
    sink.start()
    daemon.start()
    deliver(daemon.port, mail("Infiltração no teto", f"Maria <{CUSTOMER}>", message_id="<c-1@cliente.example>",
                              body="Há água no teto da sala.\n"), CUSTOMER)
    wait_for(lambda: daemon.tickets() != [], 60, "the customer's ticket")
    settle(sink, daemon, 60)
    [notice] = sink.to(AGENT)
    mine = reply_to(notice)

    # /draft: saved, not sent, and the ticket is "Respondido pendente"
    before = len(sink.to(CUSTOMER))
    deliver(daemon.port, mail("Re: [Support #1] Infiltração no teto", f"Ana <{AGENT}>", message_id="<a-1@s.example>",
                              to=mine, body="/draft\nOlá Maria, o orçamento é R$ 800.\n"), AGENT, to=mine)
    wait_for(lambda: show(daemon, 1)["status"] == "answered_pending", 60, "the draft status")
    settle(sink, daemon, 60)
    assert len(sink.to(CUSTOMER)) == before and show(daemon, 1)["draft_pending"] is True

    # counted and filtered like any status, by name, label or alias; an unknown one is an error
    counts = {c["status"]: (c["label"], c["count"]) for c in cli_json(daemon, "tickets", "counts")}
    assert counts["answered_pending"] == ("Respondido pendente", 1) and counts["new"] == ("Novo", 0)
    assert list(counts)[:2] == ["new", "answered_pending"]  # the workflow's order, zero tabs too
    assert ids(daemon, "--status", "respondido pendente") == [1] == ids(daemon, "--status", "answered_pending")
    assert ids(daemon, "--status", "finalizado") == []
    wrong = daemon.cli("tickets", "list", "--status", "resolvidissimo")
    assert wrong.returncode == 64 and "Respondido pendente" in wrong.stderr

    # a rejected command: the feedback speaks Portuguese, status names as labels
    told = len(sink.to(AGENT))
    deliver(daemon.port, mail("Re: [Support #1] Infiltração no teto", f"Ana <{AGENT}>", message_id="<a-2@s.example>",
                              to=mine, body="/status pendente de envio\n/next amanha\n"), AGENT, to=mine)
    wait_for(lambda: len(sink.to(AGENT)) > told, 60, "the feedback")
    feedback = text(sink.to(AGENT)[-1])
    assert "situação desconhecida 'pendente de envio' (conhecidas:" in feedback
    assert "data inválida 'amanha': use AAAA-MM-DD HH:MM (America/Sao_Paulo) ou" in feedback
    assert "unknown" not in feedback and "bad date" not in feedback

    # `send 1` at the control address: the customer gets the draft; the report in Portuguese
    report = text(control(daemon, sink, "send 1\nstats\n"))
    wait_for(lambda: len(sink.to(CUSTOMER)) > before, 60, "the released draft")
    assert text(sink.to(CUSTOMER)[-1]).startswith("Olá Maria, o orçamento é R$ 800.\n")
    assert "feito: #1: o rascunho salvo é enviado ao cliente" in report
    assert "Aguardando cliente: 1" in report and "Respondido pendente: 0" in report
    detail = show(daemon, 1)
    assert detail["status"] == "waiting_customer" and detail["draft_pending"] is False
    again = text(control(daemon, sink, "send 1\n"))
    assert "NÃO feito: #1: não há rascunho salvo neste chamado" in again and len(sink.to(CUSTOMER)) == before + 1

    # Bruno takes it; Ana closes it: Bruno hears of it in Portuguese, labels not names
    control(daemon, sink, "assign 1 bruno\n")
    settle(sink, daemon, 60)
    heard = len(sink.to(BRUNO))
    control(daemon, sink, "close 1\n")
    wait_for(lambda: len(sink.to(BRUNO)) > heard, 60, "the status notice")
    changed = sink.to(BRUNO)[-1]
    assert str(changed.message["Subject"]).endswith(": Finalizado")
    assert "mudou de situação: Aguardando cliente -> Finalizado" in text(changed)
    assert "closed" not in text(changed) and "waiting_customer" not in text(changed)

    # the history, as `tickets show` prints it
    history = daemon.cli("tickets", "show", "1").stdout
    assert "situação Finalizado" in history and "histórico:" in history
    assert "situação Novo -> Respondido pendente rascunho salvo" in history
    assert "rascunho resposta salva como rascunho, não enviada (/send a envia)" in history
    assert "new -> " not in history and "-> closed" not in history
    assert daemon.stop() == 0


def test_portuguese_digest_and_calendar(daemon: Daemon, sink: Sink, tmp_path: Path) -> None:
    portuguese(daemon.config)
    sink.start()
    daemon.start()
    deliver(daemon.port, mail("Visita ao apartamento", f"João <{OTHER}>", body="Posso visitar amanhã?\n"), OTHER)
    wait_for(lambda: daemon.tickets() != [], 60, "the ticket")
    settle(sink, daemon, 60)
    mine = reply_to(sink.to(AGENT)[-1])
    deliver(daemon.port, mail("Re: [Support #1] Visita ao apartamento", f"Ana <{AGENT}>", to=mine,
                              body="/take\n/next +2d\n/note ligar para confirmar\n"), AGENT, to=mine)
    wait_for(lambda: show(daemon, 1)["next_action_at"] is not None, 60, "the next action")

    # the digest, made by `maild scheduler run-once` with a digest due, sent by the daemon
    digest_config = tmp_path / "digest.yaml"
    digest_config.write_text(daemon.config.read_text(encoding="utf-8"), encoding="utf-8")
    portuguese(digest_config, unaccepted_minutes=0, digest={"enabled": True, "time": "00:00"})
    once = subprocess.run([*MAILD, "--config", str(digest_config), "scheduler", "run-once"], capture_output=True,
                          text=True, timeout=120)
    assert once.returncode == 0, once.stderr
    wait_for(lambda: any("seus chamados em" in str(r.message["Subject"]) for r in sink.to(AGENT)), 60, "the digest")
    [digest] = [r for r in sink.to(AGENT) if "seus chamados em" in str(r.message["Subject"])]
    body = digest.message.get_body(("plain",)).get_content()
    assert "Chamados por situação (1 no total):" in body
    assert any(line.split() == ["Novo", "1"] for line in body.splitlines()), body
    assert "Visita ao apartamento (Novo, próxima ação" in body and "new" not in body
    [ics] = [p for p in digest.message.iter_attachments() if p.get_content_type() == "text/calendar"]
    cal = icalendar.Calendar.from_ical(ics.get_content())
    assert str(cal["x-wr-calname"]) == "Test Helpdesk: próximas ações"
    [event] = cal.walk("VEVENT")
    assert str(event["description"]).startswith("Chamado #1, situação Novo, cliente " + OTHER)
    assert "no assunto" in str(event["description"])

    exported = daemon.cli("calendar", "export").stdout
    assert "próximas ações" in icalendar.Calendar.from_ical(exported)["x-wr-calname"]
    assert "status" not in exported.lower().replace("status:confirmed", "")
    assert daemon.stop() == 0


def test_listing_bulk_changes_and_delete(daemon: Daemon, sink: Sink, tmp_path: Path) -> None:
    portuguese(daemon.config)
    sink.start()
    daemon.start()
    for n, (who, subject) in enumerate([(CUSTOMER, "Vazamento"), (OTHER, "Aluguel"), (CUSTOMER, "Segunda via")]):
        deliver(daemon.port, mail(subject, who, message_id=f"<c-{n}@cliente.example>",
                                  body=f"Mensagem {n}: texto confidencial {n}.\n"), who)
        wait_for(lambda n=n: len(daemon.tickets()) == n + 1, 60, f"ticket {n + 1}")
    settle(sink, daemon, 60)
    mine = reply_to(sink.to(AGENT)[0])
    deliver(daemon.port, mail("Re: [Support #1] Vazamento", f"Ana <{AGENT}>", to=mine,
                              body="/type manutencao\n/next 2020-01-01 10:00\n/note vistoria\n"), AGENT, to=mine)
    wait_for(lambda: show(daemon, 1)["type"] == "manutencao", 60, "the type")

    # filters, each a real narrowing; unknown values are usage errors naming what is known
    assert ids(daemon, "--type", "manutencao") == [1] and ids(daemon, "--overdue") == [1]
    assert ids(daemon, "--contact", CUSTOMER) == [1, 3] and ids(daemon, "--since", "1d") == [1, 2, 3]
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=2)).date().isoformat()
    assert ids(daemon, "--since", tomorrow) == []
    for flag, value, known in (("--assignee", "zeca", BRUNO), ("--status", "xyz", "Finalizado"),
                               ("--since", "ontem", "7d")):
        bad = daemon.cli("tickets", "list", flag, value)
        assert bad.returncode == 64 and known in bad.stderr, (flag, bad.stderr)

    # bulk changes, as seed 004's "finalizar em lote"
    done = daemon.cli("tickets", "assign", "1", "2", "--agent", "bruno")
    assert done.returncode == 0 and "#1: atribuído a Bruno Costa" in done.stdout, done.stderr
    assert daemon.cli("tickets", "tag", "2", "3", "--tags", "+vip").returncode == 0
    assert ids(daemon, "--assignee", BRUNO) == [1, 2] and ids(daemon, "--tag", "vip") == [2, 3]
    assert ids(daemon, "--assignee", "none") == [3]
    closed = daemon.cli("tickets", "close", "2", "3", "99")
    assert closed.returncode == 65 and "#2: situação → Finalizado" in closed.stdout
    assert "99: chamado inexistente" in closed.stderr
    assert ids(daemon, "--status", "finalizado") == [2, 3]
    assert [e["kind"] for e in show(daemon, 2)["events"]][-1] == "status"

    # delete: the content erased (messages, raw mails), an audit line kept
    raw_files = list((tmp_path / "storage").rglob("*"))
    assert any(b"confidencial 0" in _maybe(p) for p in raw_files)
    refused = daemon.cli("tickets", "delete", "1")
    assert refused.returncode == 64 and show(daemon, 1)["messages"]
    gone = cli_json(daemon, "tickets", "delete", "1", "--yes")
    assert gone["deleted"] == [1] and gone["messages"] >= 2 and gone["raw_mails"] >= 2
    assert ids(daemon) == [2, 3] and ids(daemon, "--overdue") == []
    assert {c["status"]: c["count"] for c in cli_json(daemon, "tickets", "counts")}["closed"] == 2
    assert sum(c["count"] for c in cli_json(daemon, "tickets", "counts")) == 2
    kept = show(daemon, 1)
    assert kept["status"] == "deleted" and kept["messages"] == [] and kept["subject"] != "Vazamento"
    assert kept["events"][-1]["kind"] == "deleted" and kept["events"][-1]["actor"].startswith("cli:")
    assert not any(b"confidencial 0" in _maybe(p) for p in (tmp_path / "storage").rglob("*"))
    assert any(b"confidencial 2" in _maybe(p) for p in (tmp_path / "storage").rglob("*"))  # others kept
    assert daemon.cli("tickets", "close", "1").returncode == 65  # gone for commands too

    # the customer writes again on the deleted ticket's thread: a new ticket, nothing resurrected
    deliver(daemon.port, mail("Re: [Support #1] Vazamento", CUSTOMER, body="Ainda vaza.\n",
                              headers={"In-Reply-To": "<c-0@cliente.example>"}), CUSTOMER)
    wait_for(lambda: 4 in ids(daemon), 60, "the new ticket")
    assert show(daemon, 1)["messages"] == [] and show(daemon, 4)["messages"][0]["body_text"] == "Ainda vaza.\n"
    assert daemon.stop() == 0


def _maybe(path: Path) -> bytes:
    """A stored file's bytes, decompressed when it is a zlib raw mail."""
    if not path.is_file():
        return b""
    data = path.read_bytes()
    try:
        return zlib.decompress(data)
    except zlib.error:
        return data


def test_bulk_cli_changes_tell_the_people_a_mail_command_would(daemon: Daemon, sink: Sink) -> None:
    portuguese(daemon.config)
    data = yaml.safe_load(daemon.config.read_text(encoding="utf-8"))  # the customer hears of status changes too
    data["triggers"] = [*DEFAULT_TRIGGERS_DATA, {"name": "customer_status", "on": "status_changed", "to": ["customer"]}]
    daemon.config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    sink.start()
    daemon.start()
    for n, subject in enumerate(["Vazamento", "Segunda via"]):
        deliver(daemon.port, mail(subject, CUSTOMER, message_id=f"<b-{n}@cliente.example>", body="Olá.\n"), CUSTOMER)
        wait_for(lambda n=n: len(daemon.tickets()) == n + 1, 60, f"ticket {n + 1}")
    settle(sink, daemon, 60)
    heard = len(sink.to(BRUNO))  # the new-ticket notices

    # assigned on the command line: Bruno gets the assignment notice for each ticket
    done = daemon.cli("tickets", "assign", "1", "2", "--agent", "bruno")
    assert done.returncode == 0, done.stderr
    assert "2 notificação(ões) na fila" in done.stdout
    wait_for(lambda: len(sink.to(BRUNO)) == heard + 2, 60, "the assignment notices")
    assert {"[Support #1]" in str(r.message["Subject"]) for r in sink.to(BRUNO)[heard:]} == {True, False}

    # closed on the command line: the assignee and the customer hear of it, in Portuguese
    told = len(sink.to(CUSTOMER))
    closed = daemon.cli("tickets", "close", "1")
    assert closed.returncode == 0, closed.stderr
    wait_for(lambda: len(sink.to(BRUNO)) == heard + 3, 60, "the status notice")
    wait_for(lambda: len(sink.to(CUSTOMER)) == told + 1, 60, "the customer's status notice")
    assert "Finalizado" in text(sink.to(CUSTOMER)[-1]) and "[Support #1]" in str(sink.to(CUSTOMER)[-1].message["Subject"])
    notice = sink.to(BRUNO)[-1]
    assert str(notice.message["Subject"]).endswith(": Finalizado") and "[Support #1]" in str(notice.message["Subject"])
    assert "Finalizado" in text(notice) and "closed" not in text(notice)
    assert daemon.stop() == 0
