"""``mypy`` (strict, as configured in pyproject.toml) over ``maild/``: no type errors,
in any module."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ERROR = re.compile(r"^(?P<path>[^:\s]+\.py):\d+: error: ", re.MULTILINE)


def mypy_errors() -> list[str]:
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "--no-pretty", "maild"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stderr or done.stdout  # 2: mypy itself failed (bad config)
    return [line for line in done.stdout.splitlines() if ERROR.match(line)]


def test_maild_has_no_type_errors() -> None:
    errors = mypy_errors()
    assert errors == [], "mypy:\n" + "\n".join(errors)
