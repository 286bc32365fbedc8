"""The ``forms:``, ``contacts:`` and ``catalog:`` sections of the YAML file.

A form entry says how to recognise a website form's mail (``match``: sender, subject and
header regexes, all of which must hold), which of the form's labels hold our fields
(``fields``), and what ticket it makes (``ticket``). Regexes are validated here, so a typo
stops maild at start with the file and line, like every other config error.
"""
from __future__ import annotations

import re
from typing import Literal, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FIELD_NAMES = ("name", "email", "phone", "message", "reference", "consent")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc}): {value!r}") from exc
    return value


class FormMatch(_Strict):
    """All given conditions must match; at least one is required."""

    from_: str | None = Field(default=None, alias="from")  # regex on the From address
    subject: str | None = None  # regex searched in the subject
    header: dict[str, str] = {}  # header name -> regex searched in its value

    @field_validator("from_", "subject")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return _check_regex(value) if value is not None else None

    @field_validator("header")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for regex in value.values():
            _check_regex(regex)
        return {name.lower(): regex for name, regex in value.items()}

    @model_validator(mode="after")
    def _something(self) -> FormMatch:
        if self.from_ is None and self.subject is None and not self.header:
            raise ValueError("a form needs at least one of from, subject, header to match")
        return self


class FormTicket(_Strict):
    type: str | None = None
    subtype: str | None = None
    category: str | None = None
    tags: list[str] = []


class FormSpec(_Strict):
    name: str
    match: FormMatch
    # our field -> the form's label (or several labels), e.g. email: [E-mail, Email]
    fields: dict[str, str | list[str]]
    ticket: FormTicket = FormTicket()
    # true: the form's name/phone replace what the contact book holds (the site is the
    # customer's own profile); false (default): they only fill empty ones.
    update_contact: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,60}", value):
            raise ValueError("a short name of letters, digits, '-', '_' or '.', e.g. fale-conosco")
        return value

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(FIELD_NAMES))
        if unknown:
            raise ValueError(f"unknown field {', '.join(unknown)}; known: {', '.join(FIELD_NAMES)}")
        if "email" not in value:
            raise ValueError("the form needs an email field: the customer is the form's e-mail, not its sender")
        return value

    def labels(self, field: str) -> list[str]:
        value = self.fields.get(field, [])
        return [value] if isinstance(value, str) else list(value)


class Contacts(_Strict):
    """How contacts are keyed: addresses are lower-cased; ``gmail_dots`` also drops dots in
    the local part (and anything after ``+``) for the domains listed, where they do not
    matter for delivery."""

    gmail_dots: bool = False
    gmail_domains: list[str] = ["gmail.com", "googlemail.com"]
    # Mail from an address erased with ``contacts forget`` (maild/contacts/tombstone.py):
    # new = a new person, new ticket, no automatic mail until consent is given again;
    # ignore = kept as raw mail only, no ticket.
    forgotten: Literal["new", "ignore"] = "new"


class Catalog(_Strict):
    """Catalog items (e.g. properties) that tickets and replies refer to by reference."""

    path: str  # a .csv or .yaml/.yml file; relative paths from the working directory
    link: str | None = None  # link pattern when the file has none, e.g. https://site/imovel/{ref}
    currency: str = ""  # shown before numeric prices, e.g. "R$"


def unique_names(forms: list[FormSpec]) -> None:
    names = [f.name for f in forms]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"form names must be unique: {', '.join(duplicates)}")
