"""Reading the CSV files people really have: Excel's BOM, semicolons, Latin-1.

``read_rows(path)`` decodes the file (UTF-8 with or without BOM, else Windows-1252),
guesses the delimiter from the header line (``;``, ``,``, tab or ``|``) and yields each
record with the line number it starts on, so a report can name the line an admin sees
in their editor. Header names are matched loosely (accents, case and punctuation
ignored) against a table of aliases.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from maild.forms.extract import norm_label

DELIMITERS = (";", ",", "\t", "|")
# A cell starting with one of these is a formula to a spreadsheet (OWASP "CSV Injection"):
# written with a leading apostrophe, which spreadsheets show as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def formula_escape(cell: str) -> str:
    """The cell as a spreadsheet must read it: a would-be formula gets a leading ``'``."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def formula_unescape(cell: str) -> str:
    """Undo :func:`formula_escape`: a ``'`` before a formula character is ours, not data."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS) else cell


class CsvError(Exception):
    """The file cannot be read as CSV at all (the message says why)."""


@dataclass(frozen=True)
class Row:
    line: int  # 1-based line number where the record starts (the header is line 1)
    values: dict[str, str]  # our column name -> value, stripped
    extra: dict[str, str]  # columns we do not know, by their header as written
    width: int  # how many cells the record had
    expected: int  # how many the header had


def decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_rows(path: Path, aliases: Mapping[str, tuple[str, ...]], required: tuple[str, ...] = ()) -> Iterator[Row]:
    """Records of the file as :class:`Row`; raises CsvError when the header lacks a required column."""
    try:
        text = decode(path.read_bytes())
    except OSError as exc:
        raise CsvError(f"cannot read {path}: {exc.strerror}") from exc
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    first = next((line for line in text.split("\n") if line.strip()), "")
    if not first:
        raise CsvError(f"{path} is empty")
    delimiter = sniff_delimiter(first)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    lookup = {norm_label(alias): ours for ours, names in aliases.items() for alias in (ours, *names)}
    header: list[str] | None = None
    columns: list[str | None] = []
    line = 1
    for record in reader:
        start, line = line, reader.line_num + 1
        if header is None:
            if not any(cell.strip() for cell in record):
                continue
            header = [cell.strip() for cell in record]
            columns = [lookup.get(norm_label(cell)) for cell in header]
            missing = [name for name in required if name not in columns]
            if missing:
                raise CsvError(f"{path}:{start}: no {', '.join(missing)} column in the header "
                               f"({delimiter!r}-separated: {', '.join(header)})")
            continue
        if not any(cell.strip() for cell in record):
            continue  # blank lines are not rows
        values: dict[str, str] = {}
        extra: dict[str, str] = {}
        for index, cell in enumerate(record):
            if index >= len(header):
                break
            ours = columns[index]
            if ours is not None:
                values.setdefault(ours, cell.strip())
            elif header[index]:
                extra[header[index]] = cell.strip()
        yield Row(start, values, extra, len(record), len(header))


def count_records(path: Path) -> int:
    """Roughly how many records (for a progress bar): non-blank lines minus the header."""
    try:
        return max(0, sum(1 for line in decode(path.read_bytes()).splitlines() if line.strip()) - 1)
    except OSError:
        return 0
