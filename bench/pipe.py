"""Wall time of one `maild ingest` (the MTA's pipe transport), per invocation.

Each run starts the command the way Postfix's pipe(8) does — a fresh process, the mail
on stdin, the envelope in the environment — and waits for it to exit: interpreter start,
imports, reading the YAML file, the recipient check, the spool write with fsync. The
mails stay in the spool (no daemon runs; the command says so on stderr and exits 0).
Wall and CPU time (user + system, from ``getrusage``) are both shown: on a loaded machine
the wall time mostly measures the wait for a core. The same is timed for a bare ``python -c pass`` (the floor no import work can go under)
and, with ``-X importtime``, the slowest imports of one run are listed.

    .venv/bin/python bench/pipe.py --runs 200
    .venv/bin/python bench/pipe.py --runs 200 --command "-m maild"   # python -m maild instead of the script
"""
from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELPDESK = "support@help.example.com"


def mail(i: int) -> bytes:
    return (f"From: Maria <maria{i % 50}@cliente.example.com.br>\r\nTo: {HELPDESK}\r\n"
            f"Subject: Pedido {i}\r\nMessage-ID: <pipe-{i}-{time.time_ns()}@cliente.example>\r\n"
            "Date: Mon, 02 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + "Uma linha de texto do pedido.\r\n" * 60).encode()


def config(directory: Path) -> Path:
    path = directory / "maild.yaml"
    path.write_text(textwrap.dedent(f"""\
        helpdesk: {{name: Bench, address: {HELPDESK}, secret: bench-secret, control_address: control@help.example.com}}
        database: {{url: "sqlite:///var/maild.db"}}
        storage: {{path: var/storage}}
        spool: {{path: var/spool}}
        agents:
          - {{email: ana@help.example.com, name: Ana}}
        """), encoding="utf-8")
    return path


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], stdin: bytes, env: dict[str, str],
          cpu: list[float] | None = None) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    """Wall time of one run; its CPU time (user + system) appended to ``cpu``."""
    before = _cpu()
    started = time.perf_counter()
    done = subprocess.run(argv, input=stdin, capture_output=True, env=env, timeout=60)
    wall = time.perf_counter() - started
    if cpu is not None:
        cpu.append(_cpu() - before)
    return wall, done


def summary(name: str, seconds: list[float], cpu: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return (f"{name:34} n={len(ms):4}  wall: median {statistics.median(ms):6.1f} ms  p90 {p90:6.1f} ms  "
            f"min {ms[0]:6.1f} ms  max {ms[-1]:6.1f} ms;  CPU: median {statistics.median(cpu) * 1000:5.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="invocations to time (default 100)")
    parser.add_argument("--command", default="",
                        help="arguments after the interpreter instead of the console script, e.g. '-m maild'")
    args = parser.parse_args()
    script = Path(sys.executable).with_name("maild")
    cmd = [sys.executable, *shlex.split(args.command)] if args.command else [str(script)]
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; cpus {os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="maild-pipe-bench-") as tmp:
        directory = Path(tmp)
        path = config(directory)
        env = {**os.environ, "SENDER": "maria@cliente.example.com.br", "ORIGINAL_RECIPIENT": HELPDESK}
        env.pop("MAILD_CONFIG", None)
        argv = [*cmd, "--config", str(path), "ingest"]
        first, done = timed(argv, mail(0), env)  # the first run also writes .pyc files: not counted
        if done.returncode != 0:
            print(f"`{' '.join(argv)}` exited {done.returncode}: {done.stderr.decode(errors='replace')}")
            return 1
        floor_cpu: list[float] = []
        floor = [timed([sys.executable, "-c", "pass"], b"", env, floor_cpu)[0] for _ in range(min(args.runs, 50))]
        pipe, pipe_cpu = [], []
        for i in range(1, args.runs + 1):
            seconds, done = timed(argv, mail(i), env, pipe_cpu)
            if done.returncode != 0:
                print(f"run {i} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
                return 1
            pipe.append(seconds)
        spooled = len(list((directory / "var" / "spool" / "new").glob("*.eml")))
        print(f"command: {' '.join(argv)}  (stdin: a {len(mail(1))}-byte mail)")
        print(summary("python -c pass (interpreter start)", floor, floor_cpu))
        print(summary("maild ingest", pipe, pipe_cpu))
        print(f"first run (writing .pyc): {first * 1000:.1f} ms; mails in the spool: {spooled}")
        imports = subprocess.run([sys.executable, "-X", "importtime", *(shlex.split(args.command) or [str(script)]),
                                  "--config", str(path), "ingest"], input=mail(args.runs + 1), capture_output=True,
                                 env=env, timeout=60)
        rows = []
        for line in imports.stderr.decode(errors="replace").splitlines():
            parts = line.split("|")
            if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
                rows.append((int(parts[1]), parts[2].rstrip()))
        print("slowest imports (cumulative µs):")
        for micros, name in sorted(rows, reverse=True)[:8]:
            print(f"  {micros:8d}  {name}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
