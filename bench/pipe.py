"""Wall time of one `maild ingest` (the MTA's pipe transport), per invocation.

Each run starts the command the way Postfix's pipe(8) does — a fresh process, the mail
on stdin, the envelope in the environment — and waits for it to exit: interpreter start,
imports, reading the YAML file, the recipient check, the spool write with fsync. The
bench holds the daemon lock of the spool, as a running `maild run` does (so the command
takes its normal path and stays quiet); the mails stay in the spool.
Wall and CPU time (user + system, from ``getrusage``) are both shown: on a loaded machine
the wall time mostly measures the wait for a core. The same is timed for a bare ``python -c pass`` (the floor no import work can go under)
and, with ``-X importtime``, the slowest imports of one run are listed.

    .venv/bin/python bench/pipe.py --runs 200
    .venv/bin/python bench/pipe.py --runs 200 --command "-m maild"   # python -m maild instead of the script
    .venv/bin/python bench/pipe.py --runs 200 --wheel   # maild from a built wheel, as installed on a server

``--wheel`` builds the wheel, unpacks it into a fresh venv (its dependencies borrowed from
this one, as tests/test_wheel.py does) and times ``venv/bin/python -m maild``: a
development install (``pip install -e``) adds an import hook that every start pays for.
"""
from __future__ import annotations

import argparse
import os
import resource
import site
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from maild.ingest.daemonlock import DaemonLock  # noqa: E402
HELPDESK = "support@localhost.localdomain"  # config/maild.yaml's helpdesk.address


def mail(i: int) -> bytes:
    return (f"From: Maria <maria{i % 50}@cliente.example.com.br>\r\nTo: {HELPDESK}\r\n"
            f"Subject: Pedido {i}\r\nMessage-ID: <pipe-{i}-{time.time_ns()}@cliente.example>\r\n"
            "Date: Mon, 02 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + "Uma linha de texto do pedido.\r\n" * 60).encode()


def config(directory: Path) -> Path:
    """The shipped config/maild.yaml (11 KB, comments and all), its relative paths then
    pointing into ``directory``."""
    path = directory / "maild.yaml"
    path.write_text((ROOT / "config" / "maild.yaml").read_text(encoding="utf-8"), encoding="utf-8")
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


def wheel_python(directory: Path) -> Path:
    """A venv holding maild's built wheel (not the source tree), dependencies from this one."""
    dist = directory / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(dist)], check=True,
                   capture_output=True, timeout=600)
    [wheel] = dist.glob("maild-*.whl")
    return venv_with(wheel, directory / "venv")[0]


def venv_with(wheel: Path, venv: Path) -> tuple[Path, str]:
    """A fresh venv holding ``wheel`` alone, maild's dependencies borrowed from this
    interpreter's site-packages: its python and its purelib directory."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    zipfile.ZipFile(wheel).extractall(purelib)
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib) / "deps.pth").write_text("\n".join(deps) + "\n")
    return python, purelib


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="invocations to time (default 100)")
    parser.add_argument("--command", default="",
                        help="arguments after the interpreter instead of the console script, e.g. '-m maild'")
    parser.add_argument("--wheel", action="store_true", help="time `python -m maild` of a built wheel in a fresh venv")
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; cpus {os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="maild-pipe-bench-") as tmp:
        directory = Path(tmp)
        python = wheel_python(directory) if args.wheel else Path(sys.executable)
        extra = shlex.split(args.command) or (["-m", "maild"] if args.wheel else [])
        cmd = [str(python), *extra] if extra else [str(python.with_name("maild"))]
        path = config(directory)
        (directory / "var" / "spool").mkdir(parents=True)
        lock = DaemonLock(directory / "var" / "spool")
        lock.acquire()  # as `maild run` holds it
        env = {**os.environ, "SENDER": "maria@cliente.example.com.br", "ORIGINAL_RECIPIENT": HELPDESK}
        env.pop("MAILD_CONFIG", None)
        argv = [*cmd, "--config", str(path), "ingest"]
        first, done = timed(argv, mail(0), env)  # the first run also writes .pyc files: not counted
        if done.returncode != 0:
            print(f"`{' '.join(argv)}` exited {done.returncode}: {done.stderr.decode(errors='replace')}")
            return 1
        floor_cpu: list[float] = []
        floor = [timed([str(python), "-c", "pass"], b"", env, floor_cpu)[0] for _ in range(min(args.runs, 50))]
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
        imports = subprocess.run([str(python), "-X", "importtime", *(extra or cmd),
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
        lock.release()
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
