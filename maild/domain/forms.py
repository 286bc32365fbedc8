"""A website form's mail: what its fields say and what that makes of the mail.

:mod:`maild.forms.extract` reads a :class:`FormData` out of a mail, :mod:`maild.forms.match`
recognises the form and returns a :class:`FormOutcome`, :mod:`maild.forms.store` writes it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from maild.domain.events import EventSpec
from maild.domain.sender import Sender


class FormProfile(Protocol):
    """What the stages read of a configured form (``maild.forms.spec.FormSpec`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def ticket(self) -> Any: ...  # the form's ticket fields (``maild.forms.spec.FormTicket``)

    @property
    def update_contact(self) -> bool: ...


@dataclass(frozen=True)
class FormData:
    """What a form mail says, in our field names; values stripped, possibly empty."""

    form: str
    name: str = ""
    email: str = ""  # a syntactically usable address, lower-case; "" when none
    email_raw: str = ""  # what the form's e-mail field held
    phone: str = ""
    message: str = ""
    reference: str = ""
    consent: bool | None = None  # None: the form has no (readable) consent field
    source: str = ""  # json | html | text: where the fields were found
    found: tuple[str, ...] = ()  # our field names that had a value
    problems: tuple[str, ...] = field(default_factory=tuple)

@dataclass(frozen=True)
class FormOutcome:
    """A recognised form mail: who the customer is and what the ticket gets."""

    spec: FormProfile
    data: FormData
    sender: Sender  # the form's customer (UNKNOWN_SENDER when the form had no usable e-mail)
    site: str  # the address the mail came from (the website)

    @property
    def origin(self) -> str:
        return f"form:{self.spec.name}"

    def events(self) -> tuple[EventSpec, ...]:
        data = self.data
        detail = (f"website form {self.spec.name} from {self.site}: fields {', '.join(data.found) or 'none'}"
                  f" ({data.source or 'nothing readable'})")
        events = [EventSpec("form", new=self.spec.name, detail=detail)]
        if data.problems:
            events.append(EventSpec("flagged", detail="form mail needs an agent: " + "; ".join(data.problems)))
        if data.reference:
            events.append(EventSpec("reference", new=data.reference, detail=f"from form {self.spec.name}"))
        return tuple(events)
