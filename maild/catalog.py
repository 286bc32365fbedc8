"""The catalog: items a ticket or a reply can refer to by code, e.g. the agency's properties.

Loaded once at start from the file ``catalog.path`` names — CSV (columns ``ref``, ``title``,
``price``, ``link``; Portuguese headers such as Código, Título, Preço, Valor, URL work too;
other columns are kept as extra fields) or YAML (a list of mappings, or a mapping from ref
to its fields). ``Catalog.get(ref)`` ignores case and spaces. Replies list the linked items
with the ``_listing.j2`` template include (title, price, link); a ref not in the catalog is
still listed, by its code.

The API for ``/listing REF…`` (commands): ``catalog.get(ref)`` to check a code,
:func:`maild.store.references.link` to attach it to the ticket; the reply's template then
lists every item linked to the ticket (``listing``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from maild.contacts.csvfile import CsvError, read_rows

ALIASES = {
    "ref": ("reference", "referencia", "código", "codigo", "code", "cod", "imovel", "imóvel"),
    "title": ("título", "titulo", "name", "nome", "descrição", "descricao", "description"),
    "price": ("preço", "preco", "valor", "value"),
    "link": ("url", "página", "pagina", "site", "href"),
}


class CatalogError(Exception):
    """The catalog file is missing or unreadable; the message names it."""


@dataclass(frozen=True)
class Item:
    ref: str
    title: str = ""
    price: str = ""  # as shown: numeric prices formatted with the currency
    link: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    found: bool = True  # False: a ref the catalog does not know (listed by its code only)

    def as_vars(self) -> dict[str, Any]:
        """The template variables of one listed item."""
        return {"ref": self.ref, "title": self.title, "price": self.price, "link": self.link,
                "fields": dict(self.fields), "found": self.found}


def key(ref: str) -> str:
    return "".join(ref.split()).casefold()


def format_price(value: str, currency: str, language: str) -> str:
    """'450000' → 'R$ 450.000,00' (pt-BR) / 'R$ 450,000.00'; anything else as written."""
    raw = value.strip()
    if not re.fullmatch(r"\d+([.,]\d{1,2})?", raw):
        return raw
    try:
        number = Decimal(raw.replace(",", "."))
    except InvalidOperation:
        return raw
    text = f"{number:,.2f}"
    if language == "pt-BR":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return f"{currency} {text}".strip()


class Catalog:
    def __init__(self, items: dict[str, Item]) -> None:
        self.items = items

    @classmethod
    def empty(cls) -> Catalog:
        return cls({})

    @classmethod
    def load(cls, path: Path, *, link: str | None = None, currency: str = "", language: str = "en") -> Catalog:
        if not path.is_file():
            raise CatalogError(f"catalog file {path} not found")
        if path.suffix.lower() in (".yaml", ".yml"):
            records = _yaml_records(path)
        else:
            try:
                records = [(r.values, r.extra) for r in read_rows(path, ALIASES, required=("ref",))]
            except CsvError as exc:
                raise CatalogError(str(exc)) from exc
        items: dict[str, Item] = {}
        for values, extra in records:
            ref = " ".join(str(values.get("ref", "")).split())
            if not ref:
                continue
            url = values.get("link") or (link.format(ref=ref) if link else "")
            items[key(ref)] = Item(ref=ref, title=values.get("title", ""),
                                   price=format_price(values.get("price", ""), currency, language), link=url,
                                   fields={k: str(v) for k, v in extra.items()})
        return cls(items)

    def __len__(self) -> int:
        return len(self.items)

    def get(self, ref: str) -> Item | None:
        return self.items.get(key(ref))

    def listing(self, refs: list[str]) -> list[Item]:
        """Items for these refs, in order; unknown refs as bare items (``found`` false)."""
        return [self.get(ref) or Item(ref=ref, found=False) for ref in refs]


def _yaml_records(path: Path) -> list[tuple[dict[str, str], dict[str, str]]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"catalog file {path}: {exc}") from exc
    if isinstance(data, dict):
        data = [{"ref": ref, **(fields or {})} for ref, fields in data.items()]
    if not isinstance(data, list):
        raise CatalogError(f"catalog file {path}: a list of items or a mapping ref → fields is needed")
    from maild.forms.extract import norm_label

    lookup = {norm_label(alias): ours for ours, names in ALIASES.items() for alias in (ours, *names)}
    records = []
    for entry in data:
        if not isinstance(entry, dict):
            continue
        values: dict[str, str] = {}
        extra: dict[str, str] = {}
        for name, value in entry.items():
            ours = lookup.get(norm_label(str(name)))
            text = "" if value is None else str(value)
            if ours and ours not in values:
                values[ours] = text
            else:
                extra[str(name)] = text
        records.append((values, extra))
    return records


def from_config(config: Any) -> Catalog:
    """The configured catalog (``catalog:`` section), or an empty one."""
    settings = config.catalog
    if settings is None:
        return Catalog.empty()
    return Catalog.load(config.path(settings.path), link=settings.link, currency=settings.currency,
                        language=config.helpdesk.language)
