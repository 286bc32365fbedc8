"""Which characters of untrusted text may reach a terminal or a header line.

Mail carries control characters on purpose (an ESC sequence in a subject rewrites an
admin's terminal; an encoded CR LF in a display name tries to add a header). Bottom
layer: plain string functions, importing nothing of maild, used where text enters
(the parse stage) and where it leaves (the CLI, outbound headers).

Controls are C0 (U+0000–U+001F), DEL and C1 (U+0080–U+009F) — Unicode category ``Cc``.
"""
from __future__ import annotations

import re

_LINE_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]+")
_TEXT_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # keeps \t and \n
_RAW_C1 = re.compile("[\x7f-\x9f]")

REPLACEMENT = "\ufffd"


def one_line(text: str) -> str:
    """A header value or table cell: every run of controls (CR, LF and tab too) becomes
    one space, so a value can neither break the line nor drive the terminal."""
    return _LINE_CONTROLS.sub(" ", text) if _LINE_CONTROLS.search(text) else text


def for_terminal(text: str) -> str:
    """Multi-line text (a mail body) for a terminal: lines and tabs stay, every other
    control becomes U+FFFD so the reader sees that something was there."""
    text = text.replace("\r\n", "\n")
    return _TEXT_CONTROLS.sub(REPLACEMENT, text) if _TEXT_CONTROLS.search(text) else text


def escape_c1(json_text: str) -> str:
    """JSON as ``json.dumps(ensure_ascii=False)`` writes it, with DEL and C1 escaped too
    (the encoder escapes only C0); the data is unchanged, the terminal safe."""
    return _RAW_C1.sub(lambda m: f"\\u{ord(m.group(0)):04x}", json_text)


def human_size(size: int) -> str:
    """A file size for people: ``812 B``, ``14 KB``, ``3.2 MB`` (powers of 1024)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" or value >= 10 else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
