"""Which configured form, if any, a mail is — and what that makes of it.

Built once at start from the config (regexes compiled here, never per mail). For an
ordinary mail the cost is one regex on the From address per form (the cheapest test
first; most forms name the site's sender), then the subject, then headers.

``recognise`` is the identify stage's form step, pure: mail + identified sender in, a
:class:`FormOutcome` out. The customer of a form mail is the form's e-mail field, not the
site's (often no-reply) From; a form without a usable e-mail still makes a ticket,
requested by no one and flagged for an agent, so it is never lost.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from maild.domain.decision import Action, Decision
from maild.domain.forms import FormOutcome
from maild.domain.mail import Classification, Kind, ParsedMail
from maild.domain.sender import UNKNOWN_SENDER, Sender, normalize_address
from maild.forms.extract import extract
from maild.forms.spec import FormSpec


@dataclass(frozen=True)
class _Compiled:
    spec: FormSpec
    from_: re.Pattern[str] | None
    subject: re.Pattern[str] | None
    headers: tuple[tuple[str, re.Pattern[str]], ...]


class FormMatcher:
    def __init__(self, forms: list[FormSpec], normalize: Callable[[str], str] = normalize_address) -> None:
        self.forms = tuple(
            _Compiled(f, re.compile(f.match.from_, re.I) if f.match.from_ else None,
                      re.compile(f.match.subject, re.I) if f.match.subject else None,
                      tuple((name, re.compile(regex, re.I)) for name, regex in f.match.header.items()))
            for f in forms)
        self.normalize = normalize

    def match(self, mail: ParsedMail) -> FormSpec | None:
        if not self.forms:
            return None
        sender = mail.from_.email if mail.from_ else ""
        for form in self.forms:
            if form.from_ is not None and not form.from_.search(sender):
                continue
            if form.subject is not None and not form.subject.search(mail.subject):
                continue
            if any(not regex.search(mail.header(name)) for name, regex in form.headers):
                continue
            return form.spec
        return None

    def recognise(self, mail: ParsedMail, kind: Classification, sender: Sender) -> FormOutcome | None:
        """The form this mail is, with its customer; None for every other mail.

        Agents' mail, bounces and maild's own mail are never forms.
        """
        if sender.is_agent or kind.kind in (Kind.BOUNCE, Kind.LOOP):
            return None
        spec = self.match(mail)
        if spec is None:
            return None
        data = extract(mail, spec)
        customer = (Sender(email=self.normalize(data.email), name=data.name) if data.email
                    else Sender(email=UNKNOWN_SENDER, name=data.name))
        return FormOutcome(spec, data, customer, sender.email)


def as_customer_mail(kind: Classification, form: FormOutcome | None) -> Classification:
    """A website's mailer often marks its mail automatic or bulk, or sends it from a no-reply
    address; a form is a person's request."""
    if form is None or kind.kind not in (Kind.AUTO_REPLY, Kind.LIST, Kind.REPORT):
        return kind
    return Classification(Kind.NORMAL, (*kind.reasons, f"form:{form.spec.name}"))


def attach(decision: Decision, form: FormOutcome | None) -> Decision:
    """The decision for a form mail: its ticket fields and history, the message text."""
    if form is None or decision.form is not None or decision.action is not Action.CREATE:
        return decision
    body = form.data.message + "\n" if form.data.message and decision.body is None else decision.body
    return replace(decision, events=(*decision.events, *form.events()), form=form,
                   rules=(*decision.rules, form.origin), body=body)
