"""SMTP receipt latency and memory of the real daemon (`maild run` in a subprocess).

Sends mails over one SMTP connection per client and measures, for each, the time from the
start of the transaction (MAIL FROM) to the 250 after DATA — the moment the mail is durable
in the spool. Then sends one mail with a 25 MB attachment and reports the daemon's peak RSS
(VmHWM) once it has been processed.

    .venv/bin/python bench/smtp.py --mails 2000 --clients 4
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import corpus  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="maild-smtp-bench-"))
    port = free_port()
    config = work / "maild.yaml"
    config.write_text(
        "helpdesk: {address: support@bench.example, subject_tag: Support, secret: bench}\n"
        f"database: {{url: 'sqlite:///{work}/maild.db'}}\n"
        f"storage: {{path: '{work}/storage'}}\nspool: {{path: '{work}/spool'}}\nlog_level: WARNING\n"
        f"smtp_server: {{host: 127.0.0.1, port: {port}, max_message_size: 60000000}}\n")
    maild = [sys.executable, "-m", "maild", "--config", str(config)]
    daemon = subprocess.Popen([*maild, "run"], cwd=ROOT)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        mails = corpus(args.mails, 300, 1)
        latencies: list[float] = []
        lock = threading.Lock()

        def client(chunk: list[bytes]) -> None:
            with smtplib.SMTP("127.0.0.1", port) as smtp:
                for raw in chunk:
                    start = time.perf_counter()
                    smtp.sendmail("cliente@bench.example", ["support@bench.example"], raw)
                    with lock:
                        latencies.append(time.perf_counter() - start)

        threads = [threading.Thread(target=client, args=(mails[i :: args.clients],)) for i in range(args.clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        print(f"smtp receipt     {len(latencies)} mails, {args.clients} clients, {len(latencies) / elapsed:.0f} mails/s acknowledged")
        print(f"latency          p50 {p50:.2f} ms   p99 {p99:.2f} ms   (MAIL FROM → 250 after DATA, spool fsynced)")

        def count() -> int:
            out = subprocess.run([*maild, "tickets", "list", "--json"], capture_output=True, text=True, cwd=ROOT)
            return sum(t["message_count"] for t in json.loads(out.stdout))

        while count() < args.mails:
            time.sleep(0.5)
        before = vm_hwm(daemon.pid)
        big = EmailMessage()
        big["From"], big["To"], big["Subject"] = "cliente@bench.example", "support@bench.example", "planta 25 MB"
        big.set_content("Segue a planta.")
        big.add_attachment(os.urandom(25 * 1024 * 1024), maintype="application", subtype="pdf", filename="planta.pdf")
        raw = big.as_bytes(policy=SMTP)
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.sendmail("cliente@bench.example", ["support@bench.example"], raw)
        while count() < args.mails + 1:
            time.sleep(0.5)
        print(f"peak RSS         {before} MB after the corpus, {vm_hwm(daemon.pid)} MB after a "
              f"{len(raw) / 1e6:.0f} MB mail (25 MB attachment, base64)")
    finally:
        daemon.terminate()
        daemon.wait(30)


if __name__ == "__main__":
    main()
