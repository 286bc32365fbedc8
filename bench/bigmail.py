"""Memory for one big mail: what a mail of N MB adds to the daemon's peak RSS.

Starts the real daemon (`maild run`, SQLite, acknowledgements and agent notifications on,
an aiosmtpd sink as smarthost) and lets it settle; reads the peak RSS (``VmHWM``) of every
maild process; sends one mail of N MB (a text part and a PDF-like attachment, base64) over
SMTP; waits until its ticket is committed and the outbound mail it caused reached the sink;
reads the peaks again. Reports each process's peak before and after, the growth of the
largest one and of their sum, each as a multiple of the mail's size on the wire.

    .venv/bin/python bench/bigmail.py                 # 50 MB
    .venv/bin/python bench/bigmail.py --mb 20 --workers 1
    .venv/bin/python bench/bigmail.py --no-outbound   # outbound off: intake and pipeline only
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import create_engine, text  # noqa: E402

from e2e import (HELPDESK, ROOT, _listening, agents_of, free_port, memory, tree,  # noqa: E402
                 write_config)
from sink import SinkProcess  # noqa: E402

MESSAGE_ID = "<bigmail@bench.example>"


def big_mail(mb: int) -> tuple[bytes, str]:
    """A mail of about ``mb`` MB on the wire and the sha256 of its attachment."""
    size = mb * 1024 * 1024 * 3 // 4  # base64 grows by 4/3
    payload = b"%PDF-1.7\n" + os.urandom(size)  # incompressible, as a scanned PDF is
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    head = (f"From: Big Sender <big@customer.example>\r\nTo: {HELPDESK}\r\nSubject: The scan you asked for\r\n"
            f"Message-ID: {MESSAGE_ID}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
            "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHere is the scan.\r\n"
            "--b\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\n"
            "Content-Disposition: attachment; filename=\"scan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
    return head.encode() + encoded + b"--b--\r\n", hashlib.sha256(payload).hexdigest()


def peaks(root: int) -> dict[int, int]:
    """VmHWM in kB of every process of the daemon."""
    return {pid: memory(pid)[1] for pid in tree(root)}


def wait_for(condition: object, deadline: float, what: str) -> None:
    assert callable(condition)
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=50, help="size of the mail on the wire in MB")
    parser.add_argument("--workers", type=int, default=0, help="maild run --workers N (default: maild's)")
    parser.add_argument("--no-outbound", action="store_true", help="no acknowledgement or notification")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    raw, attachment_sha = big_mail(args.mb)
    work = Path(tempfile.mkdtemp(prefix="maild-bigmail-"))
    db_url = f"sqlite:///{work / 'maild.db'}"
    port, sink_port = free_port(), free_port()
    config = write_config(work, db_url, port, sink_port, agents_of(3), "INFO")
    body = config.read_text().replace("max_message_size: 10000000", f"max_message_size: {len(raw) * 2}")
    if args.no_outbound:
        body = body.replace("acknowledge: true", "acknowledge: false").replace("notify_agents: true",
                                                                                "notify_agents: false")
    config.write_text(body)
    sink = SinkProcess(sink_port).start()
    daemon: subprocess.Popen[bytes] | None = None
    try:
        with open(work / "maild.log", "ab") as log:
            workers = ["--workers", str(args.workers)] if args.workers else []
            daemon = subprocess.Popen([sys.executable, "-m", "maild", "--config", str(config), "run", *workers],
                                      cwd=ROOT, stdout=log, stderr=log)
        wait_for(lambda: _listening(port), 120, "the SMTP listener")
        time.sleep(2)  # the daemon's processes finish starting (imports, first loop)
        before = peaks(daemon.pid)
        engine = create_engine(db_url)
        start = time.monotonic()
        with smtplib.SMTP("127.0.0.1", port, timeout=600) as smtp:
            smtp.sendmail("big@customer.example", [HELPDESK], raw)
        accepted = time.monotonic()

        def stored() -> bool:
            with engine.connect() as conn:
                return conn.scalar(text("SELECT count(*) FROM messages WHERE message_id = :m"),
                                   {"m": MESSAGE_ID}) == 1

        wait_for(stored, 600, "the ticket")
        committed = time.monotonic()
        expected = 0 if args.no_outbound else 1 + 3  # the acknowledgement, a notification per agent
        wait_for(lambda: sink.count >= expected, 600, "the outbound mail")
        with engine.connect() as conn:
            got = conn.scalar(text("SELECT sha256 FROM attachments WHERE filename = 'scan.pdf'"))
        after = peaks(daemon.pid)
        engine.dispose()
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(60)
        sink.stop()
    size_mb = len(raw) / 2**20
    print(f"mail             {size_mb:.1f} MB on the wire (attachment sha256 {'ok' if got == attachment_sha else got})")
    print(f"250 after        {accepted - start:.1f} s; committed after {committed - start:.1f} s")
    for pid in after:
        print(f"pid {pid:<8}     peak {before.get(pid, 0) / 1024:7.1f} MB → {after[pid] / 1024:7.1f} MB")
    grown = max(after[pid] - before.get(pid, 0) for pid in after) / 1024
    total = (sum(after.values()) - sum(before.values())) / 1024
    print(f"largest growth   {grown:.1f} MB = {grown / size_mb:.2f}× the mail")
    print(f"sum of peaks     +{total:.1f} MB = {total / size_mb:.2f}× the mail")
    if args.keep:
        print(f"kept             {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if got == attachment_sha else 1


if __name__ == "__main__":
    sys.exit(main())
