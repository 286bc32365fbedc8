"""What the ``maild`` commands print: JSON, tables and lines of stored text, made safe for a terminal."""
from __future__ import annotations

import json
import sys
from typing import Any

from maild.text import escape_c1, one_line


def line(text: str) -> None:
    """One line of terminal output made of stored mail text: controls never reach the terminal."""
    print(one_line(text))


def print_json(data: Any) -> None:
    sys.stdout.write(escape_c1(json.dumps(data, ensure_ascii=False, indent=2)))
    sys.stdout.write("\n")


def table(rows: list[dict[str, Any]], columns: list[tuple[str, int]], cells: Any, language: str = "en") -> None:
    """Rows as columns; the headings in ``language`` (``helpdesk.language``)."""
    from maild.commands.phrases import word

    if not rows:
        print(word("(none)", language))
        return
    print("  ".join(word(name, language).ljust(width) for name, width in columns).rstrip())
    for row in rows:
        values = [one_line(str(v if v is not None else "-")) for v in cells(row)]
        print("  ".join(v[:w].ljust(w) for v, (_, w) in zip(values, columns)).rstrip())
