"""Files both ways, fast: which files travel (pure), the bytes built from the blob store,
and the processor's rows on SQLite and PostgreSQL."""
from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest
from conftest import AGENT, HELPDESK, Env
from sqlalchemy import select
from test_commands import CUSTOMER, build, control

from maild.outbound.compose import (
    MailAttachment,
    OutboundMail,
    attachments_json,
    attachments_of,
    to_bytes,
)
from maild.outbound.files import for_agents, relayed_files
from maild.store.apply import StoredAttachment
from maild.store.models import OutboxRow
from maild.text import human_size

PDF = StoredAttachment("ficha.pdf", "application/pdf", 3000, "a" * 64, False)
LOGO = StoredAttachment("logo.png", "image/png", 500, "b" * 64, True)
INLINE_PDF = StoredAttachment("termo.pdf", "application/pdf", 800, "c" * 64, True)


def test_human_size() -> None:
    assert [human_size(n) for n in (0, 812, 1024, 14 * 1024 + 5, 3355443, 10 * 1024 * 1024)] == [
        "0 B", "812 B", "1.0 KB", "14 KB", "3.2 MB", "10 MB"]


def test_the_agents_inline_images_stay_home_everything_else_is_relayed() -> None:
    assert relayed_files([PDF, LOGO, INLINE_PDF]) == [PDF, INLINE_PDF]


def test_agents_get_the_files_up_to_the_limit_then_a_list() -> None:
    within = for_agents([PDF, LOGO], 3500)
    assert [a.filename for a in within.attached] == ["ficha.pdf", "logo.png"] and within.variables["attached"]
    above = for_agents([PDF, LOGO], 3499)
    assert above.attached == () and not above.variables["attached"]
    assert [(f["name"], f["size_text"]) for f in above.variables["list"]] == [("ficha.pdf", "2.9 KB"),
                                                                              ("logo.png", "500 B")]
    assert above.variables["total_text"] == "3.4 KB" and above.variables["limit_text"] == "3.4 KB"


def test_a_stored_file_is_read_from_the_blob_store_when_the_mail_is_built() -> None:
    data = bytes(range(256))
    files = (MailAttachment("ficha.pdf", "application/pdf", sha256="d" * 64),
             MailAttachment("cal.ics", "text/calendar; method=PUBLISH", "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"))
    # The outbox row keeps the reference, never the bytes; rows written before keep working.
    assert attachments_of(attachments_json(files)) == files
    assert attachments_of('[{"filename": "a.ics", "content_type": "text/calendar", "text": "x"}]')[0].sha256 == ""
    mail = OutboundMail(kind="reply", automatic=False, ticket_id=1, message_id="<m@x>", envelope_from=HELPDESK,
                        recipients=(CUSTOMER,), from_header=HELPDESK, to_header=CUSTOMER, subject="s", body_text="b",
                        date=datetime(2026, 11, 2, tzinfo=timezone.utc), attachments=files)
    asked: list[str] = []
    raw = to_bytes(mail, HELPDESK, lambda digest: asked.append(digest) or data)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    parts = {p.get_filename(): p for p in parsed.iter_attachments()}
    assert asked == ["d" * 64] and parts["ficha.pdf"].get_content() == data
    assert parts["ficha.pdf"].get_content_type() == "application/pdf"
    assert "BEGIN:VCALENDAR" in parts["cal.ics"].get_content()
    with pytest.raises(ValueError, match="no blob store"):
        to_bytes(mail, HELPDESK)


@pytest.fixture
def fenv(tmp_path: Path, db_url: str) -> Iterator[Env]:
    built = build(tmp_path, db_url)
    yield built
    built.app.db.dispose()


def with_file(subject: str, sender: str, body: str, name: str, data: bytes, to: str = HELPDESK,
              ctype: str = "application/pdf") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"] = "Mon, 02 Nov 2026 10:00:00 +0000"
    msg.set_content(body)
    msg.add_attachment(data, maintype=ctype.split("/")[0], subtype=ctype.split("/")[1], filename=name)
    return msg.as_bytes()


def rows(env: Env) -> list[OutboxRow]:
    with env.app.db.read() as session:
        return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def files(row: OutboxRow) -> list[tuple[str, str]]:
    return [(a.filename, a.sha256) for a in attachments_of(row.attachments)]


def test_files_on_the_outbox_rows_and_the_ticket(fenv: Env) -> None:
    data = b"%PDF-1.4 ficha"
    created = fenv.process(with_file("Planta", f"Maria <{CUSTOMER}>", "Segue.\n", "planta.pdf", data))
    digest = fenv.ticket(created.ticket_id)["messages"][0]["attachments"][0]["sha256"]
    [ack, *notices] = rows(fenv)
    assert ack.kind == "ack" and files(ack) == [] and len(notices) == 2  # Ana and Bruno
    assert all(n.kind == "notify" and files(n) == [("planta.pdf", digest)] for n in notices)
    reply_to = fenv.app.processor.planner.reply_address(created.ticket_id, AGENT)
    fenv.process(with_file("Re: [Support #1] Planta", AGENT, "Segue a ficha.\n", "ficha.pdf", b"ficha", to=reply_to))
    relay = rows(fenv)[-1]
    assert relay.kind == "reply" and [name for name, _ in files(relay)] == ["ficha.pdf"]
    out = [m for m in fenv.ticket(1)["messages"] if m["direction"] == "out"][-1]
    assert [a["filename"] for a in out["attachments"]] == ["ficha.pdf"]
    # The control address's `get` attaches the file to its report; a wrong name says which exist.
    control(fenv, "get 1 PLANTA.PDF\nget 1 x.doc\nget 9 a.pdf\nget 1\n")
    report = rows(fenv)[-1]
    assert files(report) == [("planta.pdf", digest)]
    assert "#1: planta.pdf (14 B) is attached" in report.body_text
    assert "#1 has no file 'x.doc'; its files: planta.pdf, ficha.pdf" in report.body_text
    assert "#9: no such ticket" in report.body_text and "write `get TICKET NAME`" in report.body_text


def test_a_file_too_big_to_keep_is_not_relayed_and_the_agent_is_told(tmp_path: Path) -> None:
    env = build(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", storage={
        "path": str(tmp_path / "storage"), "max_attachment_bytes": 100})
    try:
        env.process(with_file("Planta", f"Maria <{CUSTOMER}>", "Segue.\n", "planta.pdf", b"p"))
        reply_to = env.app.processor.planner.reply_address(1, AGENT)
        env.process(with_file("Re: [Support #1] Planta", AGENT, "Segue a ficha.\n", "ficha.pdf", b"f" * 500,
                              to=reply_to))
        *_, relay, told = rows(env)
        assert relay.kind == "reply" and files(relay) == [] and "Segue a ficha." in relay.body_text
        assert told.kind == "feedback" and told.to_addr == AGENT
        assert "ficha.pdf (500 B) is larger than storage.max_attachment_bytes" in told.body_text
    finally:
        env.app.db.dispose()
