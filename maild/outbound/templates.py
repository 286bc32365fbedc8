"""Rendering maild's mails from Jinja2 templates.

One cached :class:`jinja2.Environment` per process: a ``ChoiceLoader`` looks first in the
admin's template directory (``<config dir>/templates/<language>/<name>.j2``), then in the
defaults shipped in ``maild/outbound/templates/``. Each template defines two blocks,
``subject`` and ``body``. Text mail: no autoescaping; ``StrictUndefined`` so a misspelt
variable is an error at ``check-config`` time, not an empty hole in a customer's mail.

Customer text only ever enters as a *variable value*: it is never compiled as a template,
so ``{{ 7*7 }}`` written by a customer arrives as those characters. Variables are listed in
``docs/TEMPLATES.md`` and in :data:`SAMPLE` (which ``check`` renders every template with).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

DEFAULTS = Path(__file__).resolve().parent / "templates"
LANGUAGES = ("en", "pt-BR")

ACKNOWLEDGEMENT = "acknowledgement"  # to the customer on a new ticket
AGENT_REPLY = "agent_reply"  # an agent's reply, relayed to the customer
NOTIFY_NEW = "notify_new_ticket"  # to agents: a new ticket
NOTIFY_REPLY = "notify_customer_reply"  # to agents: the customer wrote again
COMMAND_FEEDBACK = "command_feedback"  # to an agent: what was done with their mail
CONTROL_REPORT = "control_report"  # to an agent: the answer to a mail to the control address
NAMES: tuple[str, ...] = (ACKNOWLEDGEMENT, AGENT_REPLY, NOTIFY_NEW, NOTIFY_REPLY, COMMAND_FEEDBACK, CONTROL_REPORT)

SAMPLE: dict[str, Any] = {
    "helpdesk": {"name": "Example Helpdesk", "address": "support@example.com"},
    "ticket": {"id": 42, "subject": "Leaking pipe", "status": "new", "tag": "[Support #42]"},
    "customer": {"name": "Maria Silva", "email": "maria@example.com"},
    "message": {"subject": "Leaking pipe", "text": "Hello, {{ 7*7 }} there is water.", "from_name": "Maria Silva",
                "from_email": "maria@example.com"},
    "agent": {"name": "Ana", "signed": False},
    "feedback": {"subject": "Re: [Support #42] Leaking pipe", "applied": ["note recorded"],
                 "rejected": ["/frobnicate: unknown command"], "sent": False,
                 "notes": ["the ticket is hidden from the customer"]},
    "report": {"subject": "stats", "rejected": True, "sections": [
        {"command": "close 12 13", "applied": ["#12: status → closed"], "rejected": ["#13: no such ticket"],
         "output": []},
        {"command": "stats", "applied": [], "rejected": [], "output": ["New (new): 3", "total: 3"]}]},
    # catalog items linked to the ticket (maild/catalog.py), listed by <language>/_listing.j2
    "listing": [{"ref": "AP-1234", "title": "Apartment, 3 bedrooms", "price": "R$ 450,000.00",
                 "link": "https://example.com/listing/AP-1234", "fields": {"district": "Centro"}, "found": True}],
}


# Trigger and scheduler templates (maild/notify/, maild/scheduler/, docs/SCHEDULER.md).
NOTIFY_AGENT_REPLY = "notify_agent_reply"
NOTIFY_STATUS = "notify_status_changed"
NOTIFY_ASSIGNED = "notify_assigned"
REMINDER = "reminder"
NOTIFY_UNACCEPTED = "notify_unaccepted"
AUTOCLOSE = "autoclose"
DIGEST = "digest"
PROOF_MISSING = "proof_missing"  # to an agent: a mail in their name carried no proof (maild/outbound/proof.py)
NAMES = (*NAMES, NOTIFY_AGENT_REPLY, NOTIFY_STATUS, NOTIFY_ASSIGNED, REMINDER, NOTIFY_UNACCEPTED, AUTOCLOSE, DIGEST,
         PROOF_MISSING)
SAMPLE["ticket"] = {**SAMPLE["ticket"], "priority": "normal", "category": "Vendas", "subcategory": "Aluguel",
                    "assignee": "ana@example.com", "tags": ["vip"], "next_action_at": "2026-12-01 14:00"}
SAMPLE.update({
    "event": {"name": "status_changed", "old": "new", "new": "waiting_customer", "actor": "ana@example.com",
              "actor_name": "Ana"},
    "recipient": {"name": "Bruno", "email": "bruno@example.com"},
    "autoclose": {"days": 14},
    "proof": {"agent": "ana@example.com", "where": "[Support #42]", "control": False,
              "reason": "not sent to the agent's signed reply address",
              "reply_address": "support+a42-abcdefghijklmnop@example.com", "subject": "Re: [Support #42] Leaking pipe"},
    "digest": {"date": "2026-12-01", "total": 3, "upcoming_days": 14,
               "counts": [{"status": "new", "count": 1}, {"status": "waiting_agent", "count": 2}],
               "mine": [{"id": 42, "tag": "[Support #42]", "subject": "Leaking pipe", "status": "waiting_agent",
                         "next_action_at": "2026-12-01 14:00", "assignee": "ana@example.com",
                         "tags": [{"name": "vip", "label": "VIP", "colour": "#d4af37", "text": "VIP (#d4af37)"}]}],
               "overdue": [], "upcoming": []},
})
# The customer's files on a notification to agents (maild/outbound/files.py, <language>/_attachments.j2).
SAMPLE["files"] = {"list": [{"name": "planta.pdf", "size": 2457600, "size_text": "2.3 MB",
                             "content_type": "application/pdf"}],
                   "attached": True, "total": 2457600, "total_text": "2.3 MB", "limit_text": "10 MB",
                   "control": "control@example.com"}
# To an agent past the per-agent cap: one summary per window (maild/notify/agentcap.py).
AGENT_SUMMARY = "agent_summary"
NAMES = (*NAMES, AGENT_SUMMARY)
SAMPLE.update({
    "tag": "Support",
    "summary": {"held": 37, "start": "2026-12-01 14:00", "end": "2026-12-01 14:10", "more": 2,
                "tickets": [{"id": 42, "count": 3, "subject": "Leaking pipe"}]},
})


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


class TemplateError(Exception):
    """A template is missing or broken; the message names it."""


class Renderer:
    """Renders ``<language>/<name>.j2``; thread-safe, build once per process."""

    def __init__(self, override_dir: Path | None, language: str, labels: Mapping[str, str] | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None and override_dir.is_dir():
            loaders.append(jinja2.FileSystemLoader(str(override_dir)))
        loaders.append(jinja2.FileSystemLoader(str(DEFAULTS)))
        self.language = language
        self.override_dir = override_dir
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=False,
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,  # templates are read once; restart maild after editing them
        )
        # ``{{ ticket.status|label }}``: a status as the workflow labels it ("Finalizado"
        # for closed with language pt-BR); a value it does not know, as it is.
        known = dict(labels or {})
        self.env.filters["label"] = lambda value: known.get(str(value), value) if value else value
        self._cache: dict[str, jinja2.Template] = {}

    def _template(self, name: str, language: str) -> jinja2.Template:
        key = f"{language}/{name}.j2"
        template = self._cache.get(key)
        if template is None:
            try:
                template = self.env.get_template(key)
            except jinja2.TemplateNotFound as exc:
                raise TemplateError(f"template {key} not found") from exc
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateError(f"template {exc.filename or key}:{exc.lineno}: {exc.message}") from exc
            for block in ("subject", "body"):
                if block not in template.blocks:
                    raise TemplateError(f"template {key} has no {{% block {block} %}}")
            self._cache[key] = template
        return template

    def render(self, name: str, variables: Mapping[str, Any], language: str | None = None) -> Rendered:
        template = self._template(name, language or self.language)
        try:
            context = template.new_context(dict(variables))
            subject = "".join(template.blocks["subject"](context))
            context = template.new_context(dict(variables))
            body = "".join(template.blocks["body"](context))
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"template {language or self.language}/{name}.j2: {exc.message}") from exc
        return Rendered(" ".join(subject.split()), body.strip("\n") + "\n")

    def names(self, folder: str) -> frozenset[str]:
        """The templates in ``<language>/<folder>/`` (overrides and defaults), without ``.j2``:
        the standard answers of ``/canned NAME`` live in ``canned/``."""
        found: set[str] = set()
        for root in (self.override_dir, DEFAULTS):
            directory = root / self.language / folder if root is not None else None
            if directory is not None and directory.is_dir():
                found.update(p.stem.lower() for p in directory.glob("*.j2") if not p.stem.startswith("_"))
        return frozenset(found)

    def render_text(self, name: str, variables: Mapping[str, Any]) -> str:
        """A whole template as text (no subject/body blocks): a standard answer."""
        key = f"{self.language}/{name}.j2"
        try:
            template = self._cache.get(key) or self.env.get_template(key)
            self._cache[key] = template
            return template.render(dict(variables))
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"template {key} not found") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template {exc.filename or key}:{exc.lineno}: {exc.message}") from exc
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"template {key}: {exc.message}") from exc

    def check(self) -> list[str]:
        """Render every template in the configured language with :data:`SAMPLE`; the problems."""
        problems = []
        for name in NAMES:
            try:
                self.render(name, SAMPLE)
            except (TemplateError, jinja2.TemplateError) as exc:
                problems.append(str(exc))
        for name in sorted(self.names("canned")):
            try:
                self.render_text(f"canned/{name}", SAMPLE)
            except (TemplateError, jinja2.TemplateError) as exc:
                problems.append(str(exc))
        return problems
