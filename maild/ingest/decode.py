"""Text decoding that never raises: charsets, RFC 2047 encoded words, safe file names.

Pure string/bytes helpers used by :mod:`maild.ingest.parse` (no ``email`` objects here).
A charset that is unknown or does not fit the bytes falls back declared → utf-8 →
cp1252 → latin-1, and the fallback is written to ``defects``.
"""
from __future__ import annotations

import binascii
import codecs
import mimetypes
import re
import unicodedata

# Labels mail software writes that Python does not know, or knows under a narrower name.
_ALIASES = {
    "iso-8859-1": "cp1252",  # as browsers do: "latin-1" mail is usually Windows-1252
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "ascii",
    "iso-gb2312": "gb18030",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "x-sjis": "cp932",
    "shift-jis": "cp932",
    "shift_jis": "cp932",
    "windows-874": "cp874",
    "iso-8859-8-i": "iso-8859-8",
    "x-mac-roman": "mac-roman",
    "utf8": "utf-8",
}
# Mislabelled CJK mail is usually a sibling encoding of the same script.
_SIBLINGS = {
    "iso2022_jp": ("euc_jp", "cp932"),
    "euc_jp": ("cp932",),
    "shift_jis": ("cp932", "euc_jp"),
    "cp932": ("euc_jp",),
    "euc_kr": ("cp949",),
    "big5": ("big5hkscs",),
}
_EW = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?]*)\?=")
_QHEX = re.compile(rb"=([0-9A-Fa-f]{2})")
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")
_MIME = mimetypes.MimeTypes()  # built-in table only: same names on every machine


def codec_for(charset: str | None) -> str | None:
    """Python codec name for a MIME charset label, or None when unknown / not text."""
    if not charset:
        return None
    label = charset.strip().strip("\"'").lower()
    label = _ALIASES.get(label, label)
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    return info.name if getattr(info, "_is_text_encoding", True) else None


def decode_bytes(data: bytes, charset: str | None, defects: list[str]) -> str:
    """Decode ``data``; the declared charset wins when it fits, else utf-8, cp1252, latin-1."""
    declared = codec_for(charset)
    if charset and declared is None:
        defects.append(f"unknown charset {charset.strip()[:40]!r}")
    for codec in dict.fromkeys(c for c in (declared, *_SIBLINGS.get(declared or "", ()), "utf-8") if c):
        try:
            text = data.decode(codec)
        except (LookupError, ValueError):  # UnicodeDecodeError is a ValueError
            continue
        if declared and codec != declared:
            defects.append(f"bytes do not fit charset {charset!r}; decoded as {codec}")
        return clean(text)
    defects.append(f"bytes do not fit charset {charset or 'none'!r}; decoded as cp1252/latin-1")
    try:
        return clean(data.decode("cp1252"))
    except UnicodeDecodeError:
        return clean(data.decode("latin-1"))


def clean(text: str) -> str:
    """Replace NUL and lone surrogates, which no database column stores, with U+FFFD."""
    return _BAD_CHARS.sub("\ufffd", text) if _BAD_CHARS.search(text) else text


def _word_bytes(encoding: str, text: str) -> bytes | None:
    data = text.encode("utf-8", "surrogateescape")
    if encoding in "Qq":
        return _QHEX.sub(lambda m: bytes([int(m.group(1), 16)]), data.replace(b"_", b" "))
    data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    try:
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))
    except binascii.Error:
        return None


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; adjacent words of one charset are joined first
    (senders split multi-byte characters across words)."""
    if "=?" not in value:
        return clean(value)
    out: list[str] = []
    pending: tuple[str, bytes] | None = None  # the run of encoded words not yet decoded
    pos = 0
    for match in _EW.finditer(value):
        between, pos = value[pos : match.start()], match.end()
        word = _word_bytes(match.group(2), match.group(3))
        charset = match.group(1).split("*")[0].lower()  # drop an RFC 2231 language tag
        if pending and word is not None and not between.strip():
            if pending[0] == charset:
                pending = (charset, pending[1] + word)
                continue
            between = ""  # whitespace between encoded words is not text
        if pending:
            out.append(decode_bytes(pending[1], pending[0], []))
            pending = None
        out.append(between)
        if word is None:  # broken base64: keep the word as written
            out.append(match.group(0))
        else:
            pending = (charset, word)
    if pending:
        out.append(decode_bytes(pending[1], pending[0], []))
    out.append(value[pos:])
    return clean("".join(out))


def safe_filename(name: str, index: int, content_type: str) -> str:
    """Basename only, no separators, ``..``, control or format characters, ≤ 200 chars."""
    base = re.split(r"[\\/]", name)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    base = re.sub(r"\.{2,}", ".", base.replace(":", "_")).strip(" .")
    if len(base) > 200:
        stem, dot, ext = base.rpartition(".")
        base = f"{stem[: 199 - len(ext)]}.{ext}" if dot and 0 < len(ext) <= 16 else base[:200]
    if not base:
        base = f"attachment-{index}{_MIME.guess_extension(content_type) or '.bin'}"
    return base
