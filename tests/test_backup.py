"""`maild backup` while the daemon runs, `maild restore` into a fresh directory: every
ticket, message, raw mail and attachment comes back."""
from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import HELPDESK, mail, write_config
from maild.config import load_config
from maild.store.blobs import BlobStore
from maild.store.db import Database
from maild.store.models import RawMail
from daemons import wait_for
from test_service_e2e import MAILD, Running, send

pytestmark = pytest.mark.slow


def with_attachment(subject: str) -> bytes:
    return (f"From: joao@cliente.example.com.br\r\nTo: {HELPDESK}\r\nSubject: {subject}\r\n"
            "Message-ID: <anexo@cliente.example>\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'
            "Segue a planta.\r\n--b1\r\nContent-Type: application/pdf\r\n"
            'Content-Disposition: attachment; filename="planta.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
            "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK\r\n--b1--\r\n").encode()


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MAILD, "--config", str(config), *args], capture_output=True, text=True, timeout=120)


def everything(config: Path) -> tuple[list[dict], list[dict], dict[str, bytes]]:
    tickets = json.loads(cli(config, "tickets", "list", "--json").stdout)
    shown = [json.loads(cli(config, "tickets", "show", str(t["id"]), "--json").stdout) for t in tickets]
    loaded = load_config(config)
    db = Database(loaded.database_url)
    with db.read() as session:
        digests = list(session.scalars(select(RawMail.sha256)))
    db.dispose()
    blobs = BlobStore(loaded.path(loaded.storage.path))
    return tickets, shown, {digest: blobs.get_raw(digest) for digest in digests}


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    (tmp_path / "live").mkdir()
    r = Running(tmp_path / "live")
    yield r
    if r.proc and r.proc.poll() is None:
        r.proc.kill()
        r.proc.wait(10)


def test_backup_of_a_running_maild_restores_into_a_fresh_directory(running: Running, tmp_path: Path) -> None:
    r = running
    r.start()
    send(r.port, mail("Primeiro", body="Olá\n"))
    send(r.port, mail("Segundo", sender="ana.cliente@example.org"))
    send(r.port, with_attachment("Com anexo"))
    wait_for(lambda: len(r.tickets()) == 3, 30, "three tickets")
    made = cli(r.config, "backup", str(tmp_path / "bk"))
    assert made.returncode == 0, made.stderr
    assert "3 tickets, 6 messages, 3 raw mails" in made.stdout  # each ticket: the mail and its acknowledgement
    before = everything(r.config)
    assert r.stop() == 0

    (tmp_path / "fresh").mkdir()
    fresh = write_config(tmp_path / "fresh", f"sqlite:///{tmp_path / 'fresh' / 'maild.db'}")
    done = cli(fresh, "restore", str(tmp_path / "bk"))
    assert done.returncode == 0, done.stderr
    after = everything(fresh)
    assert after == before
    tickets, shown, raws = after
    assert len(raws) == 3 and all(hashlib.sha256(raw).hexdigest() == digest for digest, raw in raws.items())
    [attachment] = [a for t in shown for m in t["messages"] for a in m["attachments"]]
    assert attachment["filename"] == "planta.pdf"
    again = cli(fresh, "restore", str(tmp_path / "bk"))
    assert again.returncode == 65 and "already has tickets" in again.stderr


def test_backup_and_restore_on_postgresql(tmp_path: Path, pg_database: str) -> None:
    from conftest import _reset_pg

    _reset_pg(pg_database)
    (tmp_path / "pg").mkdir()
    config = write_config(tmp_path / "pg", pg_database)
    assert subprocess.run([*MAILD, "--config", str(config), "ingest", "--now"], input=mail("No Postgres"),
                          capture_output=True, timeout=60).returncode == 0
    before = everything(config)
    made = cli(config, "backup", str(tmp_path / "bk"))
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "bk" / "maild.pgdump").is_file()
    _reset_pg(pg_database)
    done = cli(config, "restore", str(tmp_path / "bk"), "--force")
    assert done.returncode == 0, done.stderr
    assert everything(config) == before


def test_restore_of_something_else_is_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}")
    done = cli(config, "restore", str(tmp_path))
    assert done.returncode == 65 and done.stderr.strip() == (
        f"maild: restore failed: {tmp_path} is not a maild backup (no readable backup.json)")
