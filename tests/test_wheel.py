"""A built wheel installed outside the repository runs: templates and migrations are in it."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import mail, write_config

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from pipe import venv_with  # noqa: E402


def test_wheel_installed_elsewhere_migrates_renders_and_ingests(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w",
                            str(tmp_path / "dist")], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("maild-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(n).relative_to("maild").as_posix() for n in names if n.startswith("maild/")}
    in_tree = {p.relative_to(ROOT / "maild").as_posix() for p in (ROOT / "maild").rglob("*")
               if p.is_file() and p.suffix in (".py", ".j2", ".mako") and "__pycache__" not in p.parts}
    assert in_tree - shipped == set()
    assert any(n.endswith("licenses/LICENSE") or n.endswith("/LICENSE") for n in names)

    # A fresh environment: the wheel alone, maild's dependencies borrowed from this one.
    python, purelib = venv_with(wheel, tmp_path / "venv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = write_config(elsewhere, f"sqlite:///{elsewhere / 'maild.db'}")
    where = subprocess.run([str(python), "-c", "import maild; print(maild.__file__)"], capture_output=True,
                           text=True, cwd=elsewhere, check=True).stdout
    assert where.startswith(purelib)
    run = [str(python), "-m", "maild", "--config", str(config)]
    done = subprocess.run([*run, "ingest", "--now"], input=mail("Instalado"), capture_output=True, cwd=elsewhere, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith(b"created ticket=1"), done.stderr
    outbox = subprocess.run([*run, "outbox", "list", "--json"], capture_output=True, text=True, cwd=elsewhere,
                            timeout=120)
    assert '"kind": "ack"' in outbox.stdout  # the acknowledgement was rendered from the shipped templates
