"""A big mail: it arrives intact and costs a bounded multiple of its size in memory.

The e2e test sends a 5 MB attachment over SMTP to `maild run` and reads it back with
`maild tickets attachment`. The unit tests measure with tracemalloc what parsing and
keeping a big mail allocate at their peak (memory, not time: no machine makes them flaky).
"""
from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import HELPDESK, free_port, write_config
from smtpsink import Sink
from test_attachments_e2e import with_files
from test_e2e import MAILD, Daemon, wait_for
from test_outbound_e2e import deliver, outbound_section, sink  # noqa: F401 (sink: a fixture)

from maild.ingest.parse import parse
from maild.store.blobs import BlobStore

CUSTOMER = "maria@cliente.example.com.br"
SCAN = b"%PDF-1.7\n" + os.urandom(5 * 1024 * 1024)  # incompressible, as a scanned PDF is


def peak_of(action: Callable[[], object]) -> int:
    """Bytes allocated at the peak of ``action`` beyond what existed before it."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        action()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def big_mail() -> bytes:
    return with_files("Digitalização", f"Maria <{CUSTOMER}>", "Segue o documento.\n",
                      [("scan.pdf", "application/pdf", SCAN)])


def test_parsing_a_big_attachment_costs_under_three_times_the_mail() -> None:
    raw = big_mail()
    found: list[bytes] = []
    peak = peak_of(lambda: found.extend(a.payload for a in parse(raw).attachments))
    assert found == [SCAN]
    assert peak < 3 * len(raw)  # the stdlib's get_payload(decode=True) alone takes 4.5×


def test_keeping_a_big_raw_mail_compresses_it_in_slices(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    raw = big_mail()
    digest = ""

    def put() -> None:
        nonlocal digest
        digest = store.put_raw(raw, sync=False)

    assert peak_of(put) < len(raw) // 2  # slices, not the mail: zlib.compress of it all held 2.2×
    assert digest == hashlib.sha256(raw).hexdigest() and store.get_raw(digest) == raw


def test_base64_with_bad_padding_still_decodes_as_the_stdlib_does() -> None:
    body = base64.b64encode(b"conteudo do anexo").decode().rstrip("=")  # padding lost on the way
    raw = (f"From: {CUSTOMER}\r\nTo: {HELPDESK}\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nolá\r\n"
           "--b\r\nContent-Type: application/octet-stream; name=a.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           f"{body}\r\n--b--\r\n").encode()
    [attachment] = parse(raw).attachments
    assert attachment.payload == b"conteudo do anexo"


@pytest.mark.slow
def test_a_big_attachment_arrives_intact_over_smtp(tmp_path: Path, sink: Sink) -> None:  # noqa: F811
    port = free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", smtp_port=str(port),
                          max_size=str(20 * 1024 * 1024), outbound=outbound_section(sink.port))
    # A body line that starts with a dot: SMTP doubles it on the wire, the listener undoes it.
    raw = big_mail().replace(b"Segue o documento.\n", b"Segue o documento.\n.assinado\n").replace(b"\n", b"\r\n")
    daemon = Daemon(config, port, tmp_path / "maild.log")
    sink.start()
    daemon.start()
    try:
        deliver(port, raw, CUSTOMER)
        wait_for(lambda: daemon.cli("tickets", "show", "1").returncode == 0, 120, "the ticket")
        got = subprocess.run([*MAILD, "--config", str(config), "tickets", "attachment", "1", "scan.pdf"],
                             capture_output=True, timeout=120)
        assert got.returncode == 0, got.stderr
        assert hashlib.sha256(got.stdout).hexdigest() == hashlib.sha256(SCAN).hexdigest()
        shown = daemon.cli("tickets", "show", "1").stdout
        assert "\n.assinado" in shown and "..assinado" not in shown
        assert daemon.stop() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()



def _big_lines(seed: bytes) -> str:
    """Over the size at which the parser leaves a base64 run in the raw mail."""
    return base64.encodebytes(seed * (400 * 1024 // len(seed))).decode("ascii")


def test_long_base64_runs_in_texts_and_attached_mails_read_as_the_parser_reads_them() -> None:
    text_body = _big_lines(b"texto em base64 ")
    plain_run = _big_lines(b"linhas que parecem base64 ")
    inner_file = b"anexo do anexo " * 30000
    inner = (f"From: {CUSTOMER}\r\nSubject: antigo\r\nMIME-Version: 1.0\r\n"
             "Content-Type: application/octet-stream; name=velho.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
             + base64.encodebytes(inner_file).decode("ascii").replace("\n", "\r\n"))
    raw = (f"From: {CUSTOMER}\r\nTo: {HELPDESK}\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           "--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           f"{text_body.replace(chr(10), chr(13) + chr(10))}"
           "--b\r\nContent-Type: text/plain; name=log.txt\r\nContent-Disposition: attachment; filename=log.txt\r\n\r\n"
           f"{plain_run.replace(chr(10), chr(13) + chr(10))}"
           f"--b\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n{inner}"
           "--b--\r\n").encode("ascii")
    mail = parse(raw)
    assert mail.body_text.startswith("texto em base64 texto em base64")
    assert len(mail.body_text) == len(base64.decodebytes(text_body.encode()))
    log, eml = mail.attachments
    assert log.payload.replace(b"\r\n", b"\n") == plain_run.encode().rstrip(b"\n")  # its last CRLF: the boundary's
    assert base64.encodebytes(inner_file).rstrip(b"\n") in eml.payload.replace(b"\r\n", b"\n")
    assert b"MAILDKEPT" not in log.payload + eml.payload
