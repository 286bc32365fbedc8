"""Form fields out of a form mail: a JSON body, HTML table rows, or "Label: value" lines.

Pure: ``extract(mail, spec) -> FormData``. Labels are compared loosely (accents, case,
punctuation and spaces ignored, so "E-mail", "email" and "E-MAIL:" are one label). Every
source is read and the first value found for a label wins, in this order: JSON body, HTML
table (``<tr><td>Nome</td><td>Maria</td></tr>``, or ``<th>`` labels), text lines. In text,
a known label starts a field; the lines after it belong to it until the next known label
(so a message can span paragraphs), except for one-line fields (name, e-mail, phone).
"""
from __future__ import annotations

import json
import re
import unicodedata
from html.parser import HTMLParser

from maild.domain.forms import FormData
from maild.domain.mail import ParsedMail
from maild.forms.spec import FormSpec

_LABEL_LINE = re.compile(r"^[\s*_>]*([^:\n]{1,80}?)[\s*_]*:[\s*_]*(.*?)\s*$")
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")
_MULTILINE = frozenset({"message"})
_TRUE = frozenset({"sim", "s", "yes", "y", "true", "1", "on", "x", "aceito", "concordo", "autorizo", "checked"})
_FALSE = frozenset({"nao", "n", "no", "false", "0", "off", "naoaceito", "naoautorizo", ""})


def norm_label(label: str) -> str:
    """'E-mail:' → 'email'; 'Imóvel (código)' → 'imovelcodigo'."""
    decomposed = unicodedata.normalize("NFKD", label.casefold())
    return "".join(c for c in decomposed if c.isalnum())


def extract(mail: ParsedMail, spec: FormSpec) -> FormData:
    wanted = {norm_label(label): ours for ours in spec.fields for label in spec.labels(ours)}
    values: dict[str, str] = {}
    sources: list[str] = []
    for source, pairs in (("json", _json_pairs(mail.body_text)), ("html", _html_pairs(mail.body_html)),
                          ("text", _text_pairs(mail.body_text, wanted))):
        took = False
        for label, value in pairs:
            ours = wanted.get(norm_label(label))
            if ours and value.strip() and ours not in values:
                values[ours] = value.strip()
                took = True
        if took:
            sources.append(source)
    problems = []
    email_raw = values.get("email", "")
    found_email = _EMAIL.search(email_raw)
    email = found_email.group(0).lower().rstrip(".") if found_email else ""
    if not email_raw:
        problems.append("the form has no e-mail field value")
    elif not email:
        problems.append(f"the form's e-mail {email_raw[:80]!r} is not an address")
    consent = None
    if "consent" in values or "consent" in spec.fields:
        word = norm_label(values.get("consent", ""))
        consent = True if word in _TRUE else False if word in _FALSE else None
    return FormData(
        form=spec.name, name=_one_line(values.get("name", "")), email=email, email_raw=email_raw,
        phone=_one_line(values.get("phone", "")), message=values.get("message", ""),
        reference=_one_line(values.get("reference", "")), consent=consent, source="+".join(sources),
        found=tuple(sorted(values)), problems=tuple(problems))


def _one_line(value: str) -> str:
    return " ".join(value.split())[:200]


def _json_pairs(text: str) -> list[tuple[str, str]]:
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return []
    try:
        data = json.loads(stripped)
    except ValueError:
        return []
    pairs: list[tuple[str, str]] = []
    _flatten(data, pairs, 0)
    return pairs


def _flatten(data: object, pairs: list[tuple[str, str]], depth: int) -> None:
    if depth > 5:
        return
    if isinstance(data, dict):
        # {"label": "Nome", "value": "Maria"} items, as some form builders send them
        if {"label", "value"} <= data.keys() and isinstance(data["label"], str):
            pairs.append((data["label"], _scalar(data["value"])))
            return
        for key, value in data.items():
            if isinstance(value, (dict, list)) and not _is_scalar_list(value):
                _flatten(value, pairs, depth + 1)
            else:
                pairs.append((str(key), _scalar(value)))
    elif isinstance(data, list):
        for item in data:
            _flatten(item, pairs, depth + 1)


def _is_scalar_list(value: object) -> bool:
    return isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value)


def _scalar(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "sim" if value else "não"
    if isinstance(value, list):
        return ", ".join(_scalar(v) for v in value)
    return str(value)


class _Rows(HTMLParser):
    """Table rows as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th") and self.rows:
            self.cell = []
            self.rows[-1].append("")
        elif tag == "br" and self.cell is not None:
            self.cell.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None and self.rows:
            self.rows[-1][-1] = "\n".join(" ".join(line.split()) for line in "".join(self.cell).split("\n")).strip()
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data.replace("\n", " "))


def _html_pairs(html: str | None) -> list[tuple[str, str]]:
    if not html or "<t" not in html.lower():
        return []
    parser = _Rows()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # a broken table is no reason to lose the text fields
        return []
    return [(row[0].rstrip(": "), row[1]) for row in parser.rows if len(row) >= 2 and row[0]]


def _text_pairs(text: str, wanted: dict[str, str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    label: str | None = None
    collected: list[str] = []

    def close() -> None:
        if label is not None:
            pairs.append((label, "\n".join(collected).strip("\n")))

    for line in text.replace("\r\n", "\n").split("\n"):
        m = _LABEL_LINE.match(line)
        if m and norm_label(m.group(1)) in wanted:
            close()
            label, collected = m.group(1), [m.group(2)]
            if wanted[norm_label(label)] not in _MULTILINE:
                close()
                label = None
            continue
        if label is not None:
            if line.strip() in ("--", "-- ", "---", "___"):
                close()
                label = None
                continue
            collected.append(line.rstrip())
    close()
    return pairs
