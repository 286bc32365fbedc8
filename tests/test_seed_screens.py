"""Fast tests of the seeds' screens: Portuguese labels and lines, the listing filters and
counts, and deleting a ticket's content (the daemon path: tests/test_seed_screens_e2e.py)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import icalendar
import pytest
import yaml
from conftest import T0, Env, mail, write_config
from sqlalchemy import select, update

from maild.calendar import Item, to_ics
from maild.commands.control import run_line
from maild.commands.phrases import kind, say, word
from maild.commands.settings import DEFAULT_STATUSES, localized
from maild.commands.workflow import AgentRef, Workflow
from maild.config import ConfigError, load_config
from maild.domain.files import FileRef
from maild.contacts.erase import delete_tickets
from maild.outbound.templates import Renderer
from maild.store.blobs import BlobStore
from maild.store.models import OutboxRow, RawMail, Ticket
from maild.views import TicketFilter, list_tickets, status_counts

LABELS = {"closed": "Finalizado", "new": "Novo", "answered_pending": "Respondido pendente"}


def config_with(tmp_path: Path, language: str, **sections: object) -> object:
    path = write_config(tmp_path, "sqlite://")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["helpdesk"]["language"] = language
    data.update(sections)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_config(path, base_dir=tmp_path)


def test_pt_br_defaults_label_statuses_and_keep_english_as_aliases(tmp_path: Path) -> None:
    config = config_with(tmp_path, "pt-BR")
    labels = config.status_labels()  # type: ignore[attr-defined]
    assert labels == {"new": "Novo", "answered_pending": "Respondido pendente", "answered": "Respondido",
                      "waiting_agent": "Aguardando resposta", "waiting_customer": "Aguardando cliente",
                      "closed": "Finalizado"}
    workflow = Workflow.from_config(config)
    assert workflow.status("Closed") == workflow.status("finalizado") == workflow.status("FINALIZADO") == "closed"
    assert workflow.status("respondido pendente") == "answered_pending" == workflow.status("Answered, not sent (draft)")
    assert workflow.priority("Média") == "normal" and workflow.priority("urgent") == "urgent"


def test_english_keeps_its_labels_and_an_admins_statuses_are_left_alone(tmp_path: Path) -> None:
    assert config_with(tmp_path, "en").status_labels()["closed"] == "Closed"  # type: ignore[attr-defined]
    own = [{"name": "new", "label": "Aberto"}, {"name": "waiting_agent"}, {"name": "waiting_customer"},
           {"name": "closed", "label": "Encerrado"}]
    config = config_with(tmp_path, "pt-BR", workflow={"statuses": own})
    assert config.status_labels() == {"new": "Aberto", "waiting_agent": "waiting_agent",  # type: ignore[attr-defined]
                                      "waiting_customer": "waiting_customer", "closed": "Encerrado"}
    assert localized(DEFAULT_STATUSES, "en") is DEFAULT_STATUSES
    with pytest.raises(ConfigError, match="'deleted' is reserved"):
        config_with(tmp_path, "en", workflow={"statuses": [*own, {"name": "deleted"}]})


@pytest.mark.parametrize(("line", "expected"), [
    ("/close: status → closed", "/close: situação → Finalizado"),
    ("#12: status → answered_pending", "#12: situação → Respondido pendente"),
    ("/status xyz: unknown status 'xyz' (known: new, closed)", "/status xyz: situação desconhecida 'xyz' (conhecidas: Novo, Finalizado)"),
    ("/send: no saved draft on this ticket", "/send: não há rascunho salvo neste chamado"),
    ("/assign bruno: assigned to Bruno Costa <b@x.example>", "/assign bruno: atribuído a Bruno Costa <b@x.example>"),
    ("#99: no such ticket", "#99: chamado inexistente"),
    ("3 ticket(s), first 2 shown", "3 chamado(s), os primeiros 2 mostrados"),
    ("the reply is empty; nothing was sent", "a resposta está vazia; nada foi enviado"),
    ("not sent to the agent's signed reply address", "não foi enviado ao endereço de resposta assinado do agente"),
    ("Finalizado (closed): 2", "Finalizado: 2"),
    ("open, assigned to nobody: 3", "abertos, sem responsável: 3"),
    ("open, assigned to ana@x.example: 1", "abertos, atribuídos a ana@x.example: 1"),
    ("2 ticket(s), best match first", "2 chamado(s), o mais relevante primeiro"),
    ("your reply would have been sent to the customer", "sua resposta teria sido enviada ao cliente"),
    ("2 line(s) failed: no command of this mail was applied and nothing was sent",
     "2 linha(s) falharam: nenhum comando deste e-mail foi aplicado e nada foi enviado"),
    ("next action due", "próxima ação vencida"),
    ("permanent failure for maria@x.example", "falha permanente para maria@x.example"),
    ("cap reached: 5 automatic mails to maria@x.example about this ticket in 60 min (limit 5)",
     "limite atingido: 5 e-mails automáticos para maria@x.example sobre este chamado em 60 min (limite 5)"),
    ("#3: laudo.pdf (5.9 KB) is larger than 3.9 KB, so it is not attached; fetch it with "
     "`maild tickets attachment 3 laudo.pdf`", "#3: laudo.pdf (5.9 KB) passa de 3.9 KB, por isso não vai anexado; "
     "baixe-o com `maild tickets attachment 3 laudo.pdf`"),
    ("4 notification(s) queued", "4 notificação(ões) na fila"),
])
def test_maild_lines_in_portuguese(line: str, expected: str) -> None:
    assert say(line, "pt-BR", LABELS) == expected
    assert say(line, "en", LABELS) == line  # English lines stay as written


def test_what_people_wrote_passes_through() -> None:
    # a subject or a command argument is not maild's text: only maild's phrase is changed
    assert say("/subject Closed status report: subject → Closed status report", "pt-BR", LABELS) == \
        "/subject Closed status report: assunto → Closed status report"
    assert kind("status", "pt-BR") == "situação" and kind("status", "en") == "status"
    assert kind("something_new", "pt-BR") == "something_new"
    assert word("failed", "pt-BR") == "falhou" and word("assignee", "pt-BR") == "responsável"
    assert word("failed", "en") == "failed" and word("something_new", "pt-BR") == "something_new"


def test_templates_show_status_labels(tmp_path: Path) -> None:
    renderer = Renderer(None, "pt-BR", LABELS)
    rendered = renderer.render("notify_status_changed", {
        "ticket": {"tag": "[S #1]", "subject": "Teto", "status": "closed"},
        "event": {"old": "new", "new": "closed", "actor": "ana@x.example", "actor_name": "Ana"},
        "customer": {"name": "Maria", "email": "maria@x.example"}})
    assert rendered.subject == "[S #1] Teto: Finalizado"
    assert "mudou de situação: Novo -> Finalizado (Ana)" in rendered.body
    assert "Unknown -> Finalizado" in Renderer(None, "pt-BR", LABELS).render("notify_status_changed", {
        "ticket": {"tag": "[S #1]", "subject": "Teto", "status": "closed"},
        "event": {"old": "Unknown", "new": "closed", "actor": "", "actor_name": ""},
        "customer": {"name": "", "email": "m@x.example"}}).body


def test_calendar_speaks_the_helpdesk_language() -> None:
    item = Item(7, "Visita", "new", datetime(2030, 1, 2, 13, tzinfo=timezone.utc), None, "joao@x.example")
    for language, name, start in (("pt-BR", "Imobiliária: próximas ações", "Chamado #7, situação Novo, cliente "),
                                  ("en", "Imobiliária: next actions", "Ticket #7, status Novo, customer ")):
        helpdesk = SimpleNamespace(name="Imobiliária", domain="x.example", address="a@x.example", language=language)
        cal = icalendar.Calendar.from_ical(to_ics([item], helpdesk, T0, "S", LABELS))
        [event] = cal.walk("VEVENT")
        assert str(cal["x-wr-calname"]) == name and str(event["description"]).startswith(start)
        assert [str(c) for c in event["categories"].cats] == ["Novo"]


def three_tickets(env: Env) -> list[int]:
    ids = []
    for n, who in enumerate(["maria@c.example", "joao@c.example", "maria@c.example"]):
        out = env.process(mail(f"Pedido {n}", who, body=f"texto secreto {n}\n", message_id=f"<p-{n}@c.example>"),
                          advance=timedelta(days=1))
        assert out.ticket_id is not None
        ids.append(out.ticket_id)
    with env.app.db.write() as session:
        session.execute(update(Ticket).where(Ticket.id == ids[0]).values(
            type="Locação", assignee="ana@support.example.com", next_action_at=T0, status="waiting_agent"))
        session.execute(update(Ticket).where(Ticket.id == ids[1]).values(status="closed", next_action_at=T0))
    return ids


def test_filters_narrow_and_counts_follow_the_workflow(env: Env) -> None:
    a, b, c = three_tickets(env)
    now = env.now
    with env.app.db.read() as session:
        def listed(**kw: object) -> list[int]:
            return [t["id"] for t in list_tickets(session, where=TicketFilter(**kw))]  # type: ignore[arg-type]

        assert listed() == [a, b, c]
        assert listed(assignee="ana@support.example.com") == [a] and listed(assignee="") == [b, c]
        assert listed(type="locação") == [a] and listed(requester="maria@c.example") == [a, c]
        assert listed(overdue_at=now) == [a]  # b's next action is past too, but b is closed
        assert listed(since=T0 + timedelta(days=2)) == [b, c] and listed(status="closed") == [b]
        counts = status_counts(session, ["new", "answered_pending", "waiting_agent", "closed"])
    assert counts == {"new": 1, "answered_pending": 0, "waiting_agent": 1, "closed": 1}
    assert list(counts) == ["new", "answered_pending", "waiting_agent", "closed"]


def test_delete_erases_the_content_and_keeps_one_audit_line(env: Env) -> None:
    a, b, c = three_tickets(env)
    blobs = BlobStore(env.app.config.path(env.app.config.storage.path))
    with env.app.db.read() as session:
        [raw] = [r for r in session.scalars(select(RawMail).where(RawMail.ticket_id == a))]
        old_path = blobs.raw_path(raw.sha256)
    assert b"texto secreto 0" in blobs.get_raw(raw.sha256)
    with env.app.db.write() as session:
        report = delete_tickets(session, blobs, [a, 99, a], now=env.now, actor="cli:admin")
    assert report.deleted == [a] and report.missing == [99] and report.raw_mails == 1 and report.messages >= 1
    blobs.delete(report.blobs_to_delete)
    assert not old_path.exists()
    with env.app.db.read() as session:
        raw_now = session.get(RawMail, raw.id)
        assert raw_now is not None and b"texto secreto" not in blobs.get_raw(raw_now.sha256)
        assert all("texto secreto 0" not in o.body_text for o in session.scalars(
            select(OutboxRow).where(OutboxRow.ticket_id == a)))
        assert [t["id"] for t in list_tickets(session)] == [b, c]
        assert sum(status_counts(session, ["new", "closed"]).values()) == 2
    kept = env.ticket(a)
    assert kept["status"] == "deleted" and kept["messages"] == [] and kept["next_action_at"] is None
    assert kept["events"][-1]["kind"] == "deleted" and kept["events"][-1]["actor"] == "cli:admin"
    assert all(e["detail"] == "" for e in kept["events"][:-1])
    assert b"texto secreto 2" in blobs.get_raw(env.raw_rows()[-1].sha256)  # other tickets untouched
    with env.app.db.write() as session:  # deleting again finds nothing
        assert delete_tickets(session, blobs, [a], now=env.now, actor="cli:admin").missing == [a]
    # the customer answers the deleted ticket's mail: a new ticket, not the erased one
    out = env.process(mail("Re: [Support #1] Pedido 0", "maria@c.example", body="de novo\n",
                           headers={"In-Reply-To": "<p-0@c.example>"}))
    assert out.status == "created" and out.ticket_id not in (a, b, c)


class _Files:
    """The reads `get` makes: one ticket (#3) with one file."""

    def __init__(self, size: int) -> None:
        self.ref = FileRef("laudo técnico.pdf", "application/pdf", size, "ab" * 32)

    def resolve_ticket(self, ticket_id: int) -> int | None:
        return 3 if ticket_id == 3 else None

    def file(self, ticket_id: int, name: str) -> FileRef | None:
        return self.ref if name == self.ref.filename else None

    def file_names(self, ticket_id: int) -> list[str]:
        return [self.ref.filename]


@pytest.mark.parametrize(("size", "limit", "attached"), [(4000, 4000, True), (4001, 4000, False), (10**9, None, True)])
def test_control_get_attaches_a_file_only_within_the_limit(tmp_path: Path, size: int, limit: int | None,
                                                           attached: bool) -> None:
    workflow = Workflow.from_config(config_with(tmp_path, "en"))
    result = run_line('get 3 "laudo técnico.pdf"', [], workflow=workflow, actor=AgentRef("a@x", "A", "agent", ()),
                      lookup=_Files(size), now=T0, tz=ZoneInfo("UTC"), max_file_bytes=limit)  # type: ignore[arg-type]
    [section] = result.sections
    assert (section.files != ()) is attached and not section.rejected
    if not attached:
        assert section.output == ("#3: laudo técnico.pdf (3.9 KB) is larger than 3.9 KB, so it is not attached; "
                                  "fetch it with `maild tickets attachment 3 'laudo técnico.pdf'`",)
