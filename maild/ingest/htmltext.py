"""HTML → readable plain text for agents (stdlib :mod:`html.parser`, no dependency).

Not a renderer: block elements become line breaks, list items get a dash, links keep
their target when it differs from the text, ``script``/``style``/``title`` are dropped.
Never raises: whatever the parser cannot make sense of is passed through as text.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK = frozenset(
    "address article aside blockquote div dl dt dd fieldset figure footer form h1 h2 h3 h4 "
    "h5 h6 header hr main nav ol p pre section table tbody thead tfoot tr ul".split()
)
_SKIP = frozenset({"script", "style", "title", "template", "noscript"})  # not head: stray text there shows
_SPACES = re.compile(r"[ \t\r\n\f\v]+")


class _Converter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.pre = 0
        self.href: list[str | None] = []
        self.link_text: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in ("td", "th"):
            self.out.append(" ")
        elif tag == "a":
            self.href.append(dict(attrs).get("href"))
            self.link_text.append(len(self.out))
        elif tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt:
                self.out.append(f"[{alt}]")
        elif tag in _BLOCK:
            self.out.append("\n\n" if tag in ("p", "h1", "h2", "h3", "blockquote") else "\n")
            self.pre += tag == "pre"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in _SKIP:
            self.skip -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "a" and self.href:
            href, start = self.href.pop(), self.link_text.pop()
            text = "".join(self.out[start:]).strip()
            if href and not href.startswith(("#", "cid:", "mailto:")) and href != text:
                self.out.append(f" ({href})")
        elif tag in _BLOCK:
            self.out.append("\n\n" if tag in ("p", "h1", "h2", "h3", "blockquote") else "\n")
            self.pre -= tag == "pre" and self.pre > 0

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(data if self.pre else _SPACES.sub(" ", data))


def html_to_text(html: str) -> str:
    """Readable text of an HTML document or fragment; never raises."""
    conv = _Converter()
    try:
        conv.feed(html)
        conv.close()
    except Exception:  # html.parser is lenient, but never let a broken mail through
        return _SPACES.sub(" ", re.sub(r"<[^>]*>", " ", html)).strip()
    text = "".join(conv.out).replace("\xa0", " ")  # &nbsp; is layout, not content
    lines = [line.strip(" ") for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
