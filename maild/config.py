"""The one YAML file admins edit: loading, validation and error messages.

A bad file stops maild at start with the file, the line, the key path and what is
wrong (``ConfigError``). Nothing else in maild reads YAML or environment variables
for settings: the composition root (:mod:`maild.app`) passes a ``Config`` down — except
the pipe (:mod:`maild.ingest.pipe`), which reads only the helpdesk addresses and the spool
path so a delivery does not pay for this schema (``tests/test_pipe.py`` keeps the two alike).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from maild.commands import settings as commands_settings
from maild.domain.tags import TagLook
from maild.forms.spec import Catalog, Contacts, FormSpec, unique_names
from maild.ingest.imap_config import ImapAccount
from maild.notify.rules import Rule, check_rules
from maild.notify.sms_config import SmsGateway
from maild.scheduler.settings import Scheduler
from maild.secret import is_placeholder, load_or_create, secret_file

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "maild.yaml"
ENV_CONFIG = "MAILD_CONFIG"


class ConfigError(Exception):
    """A configuration problem, already phrased for the admin."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Helpdesk(_Strict):
    name: str = "Helpdesk"
    address: str
    extra_addresses: list[str] = []
    subject_tag: str = "Support"
    secret: str | None = None
    secret_env: str | None = None
    language: Literal["en", "pt-BR"] = "en"
    timezone: str = "UTC"  # IANA name; /next dates are read in it
    # Command mails about many tickets go here (docs/COMMANDS.md); never opens a ticket.
    control_address: str | None = None

    @field_validator("control_address")
    @classmethod
    def _control(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value.lower() if value else None

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA timezone name (e.g. America/Sao_Paulo)") from exc
        return value

    @field_validator("address", "extra_addresses")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        for one in [value] if isinstance(value, str) else value:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", one):
                raise ValueError(f"{one!r} is not an e-mail address")
        return value.lower() if isinstance(value, str) else [v.lower() for v in value]

    @field_validator("subject_tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        if not value.strip() or any(c in value for c in "[]#"):
            raise ValueError("must be a short word without [, ] or #, e.g. 'Support'")
        return value.strip()

    @model_validator(mode="after")
    def _secret(self) -> Helpdesk:
        if self.secret_env and not os.environ.get(self.secret_env):
            raise ValueError(f"secret_env names {self.secret_env!r}, which is not set")
        if self.secret_env and is_placeholder(os.environ[self.secret_env]):
            raise ValueError(f"${self.secret_env} holds a published placeholder: anyone could forge reply "
                             "addresses; set a random value (e.g. `openssl rand -base64 32`)")
        return self

    @field_validator("secret")
    @classmethod
    def _not_placeholder(cls, value: str | None) -> str | None:
        if value is not None and is_placeholder(value):
            raise ValueError(f"{value!r} is a published placeholder: anyone could forge reply addresses and "
                             "agent proof; delete the line (maild then generates a random key and keeps it "
                             "beside the database) or set secret_env")
        return value

    def configured_secret(self) -> bytes | None:
        """The key the file names (``secret_env`` first), or None: then maild keeps its own."""
        if self.secret_env:
            return os.environ[self.secret_env].encode()
        return self.secret.encode() if self.secret else None

    @property
    def local_part(self) -> str:
        return self.address.split("@", 1)[0]

    @property
    def domain(self) -> str:
        return self.address.split("@", 1)[1]


class Database(_Strict):
    url: str = "sqlite:///var/maild.db"
    # Bring the schema up to date when the daemon or `maild ingest` starts; with false,
    # they refuse to run on an old schema until `maild db upgrade` is run.
    auto_migrate: bool = True


class Storage(_Strict):
    path: str = "var/storage"
    # Where raw mails and attachments live: files under ``path`` (the default), or the
    # PostgreSQL database, so that every node of a cluster reads every blob.
    backend: Literal["filesystem", "database"] = "filesystem"
    max_attachment_bytes: int = Field(default=50 * 1024 * 1024, gt=0)


class SmtpServer(_Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=2525, ge=0, le=65535)
    lmtp: bool = False
    # The name in the greeting and the EHLO answer; default: the helpdesk address's domain.
    hostname: str | None = None
    max_message_size: int = Field(default=50 * 1024 * 1024, gt=0)
    # What a real MTA limits (maild/ingest/limits.py): sessions at once, in all and per
    # client IP (beyond: 421), and the bytes of DATA held at once across sessions
    # (beyond: 452, the client retries); 0 = four times max_message_size.
    max_connections: int = Field(default=100, ge=1)
    max_connections_per_ip: int = Field(default=20, ge=1)
    max_inflight_bytes: int = Field(default=0, ge=0)

    @property
    def inflight_budget(self) -> int:
        return self.max_inflight_bytes or 4 * self.max_message_size


class Agent(_Strict):
    email: str
    name: str
    aliases: list[str] = []  # further addresses of the same person
    teams: list[str] = []
    role: Literal["agent", "manager"] = "agent"
    phone: str = ""  # for triggers with channel: sms

    @field_validator("email", "aliases")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        for one in [value] if isinstance(value, str) else value:
            if "@" not in one:
                raise ValueError(f"{one!r} is not an e-mail address")
        return value.lower() if isinstance(value, str) else [v.lower() for v in value]

    @property
    def addresses(self) -> list[str]:
        return [self.email, *self.aliases]


class Workflow(_Strict):
    reopen_days: int = Field(default=30, ge=0)
    # Statuses and priorities with labels and aliases (maild/commands/settings.py, docs/COMMANDS.md).
    statuses: list[commands_settings.NamedValue] = commands_settings.DEFAULT_STATUSES
    priorities: list[commands_settings.NamedValue] = commands_settings.DEFAULT_PRIORITIES
    transitions: commands_settings.Transitions = commands_settings.Transitions()
    # Close tickets waiting on the customer this many days, with a closing mail; 0 = never.
    autoclose_days: int = Field(default=0, ge=0)
    # The first agent whose reply to an unassigned ticket is sent becomes its assignee.
    assign_on_reply: bool = True


class Spool(_Strict):
    path: str = "var/spool"
    # What the listener's 250 means: the mail is fsynced in ``path`` on this node
    # (filesystem), or committed to the shared inbound queue in PostgreSQL (database),
    # which any live node processes; ``path`` then buffers mail while the database is away.
    backend: Literal["filesystem", "database"] = "filesystem"
    # A mail whose processing failed this many times is quarantined with its last reason
    # (counted on disk, across restarts) instead of being retried forever.
    max_attempts: int = Field(default=5, ge=1)


class Cluster(_Strict):
    """Several ``maild run`` nodes on one PostgreSQL database (README "Several nodes")."""

    # Each node beats in the ``nodes`` table this often; a node that has not beaten for
    # node_timeout_seconds is dead: its claimed inbound mail is taken by the others.
    heartbeat_seconds: float = Field(default=1.0, gt=0)
    node_timeout_seconds: float = Field(default=5.0, gt=0)
    # A reply whose parent is still in the inbound queue waits for it at most this long.
    reply_wait_seconds: float = Field(default=10.0, ge=0)


class OutboundSmtp(_Strict):
    """The smarthost that delivers maild's mail (the site's MTA or a relay service)."""

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False  # upgrade the connection with STARTTLS before sending
    ssl: bool = False  # implicit TLS from the first byte (port 465)
    username: str | None = None
    password_env: str | None = None  # the environment variable holding the password
    # RFC 5321 4.5.3.2 client timeouts: every command reply, and the reply to the final dot
    # (the server may be scanning the mail; giving up early sends the mail twice).
    timeout: float = Field(default=300.0, gt=0)
    data_timeout: float = Field(default=600.0, gt=0)
    # Sessions are reused for due mail: at most this many open at once, this many mails
    # each, closed after this long idle.
    connections: int = Field(default=1, ge=1, le=20)
    max_messages_per_connection: int = Field(default=100, ge=1)
    idle_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _auth(self) -> OutboundSmtp:
        if self.starttls and self.ssl:
            raise ValueError("starttls and ssl exclude each other: ssl is for port 465, starttls for 25/587")
        if self.password_env and not os.environ.get(self.password_env):
            raise ValueError(f"password_env names {self.password_env!r}, which is not set")
        if self.password_env and not self.username:
            raise ValueError("password_env needs a username")
        return self

    def password(self) -> str | None:
        return os.environ.get(self.password_env) if self.password_env else None


class Retry(_Strict):
    """How the outbox retries a mail the smarthost did not take (4xx, connection errors)."""

    first_seconds: float = Field(default=60.0, gt=0)  # wait after the first failure
    max_seconds: float = Field(default=3600.0, gt=0)  # the wait doubles up to this
    give_up_hours: float = Field(default=120.0, gt=0)  # then the mail is marked failed
    claim_timeout_seconds: float = Field(default=300.0, gt=0)  # SMS: a claim older than this was a crash
    # The outbox sender beats this often; its claims are taken again once it has not beaten
    # for heartbeat_timeout_seconds (a dead process or node), however long a send may take.
    heartbeat_seconds: float = Field(default=2.0, gt=0)
    heartbeat_timeout_seconds: float = Field(default=10.0, gt=0)
    poll_seconds: float = Field(default=5.0, gt=0)  # look for due mail at least this often


class Window(_Strict):
    count: int = Field(gt=0)
    minutes: int = Field(gt=0)


class AgentWindow(_Strict):
    count: int = Field(gt=0)
    minutes: float = Field(gt=0)


class Limits(_Strict):
    """Sliding-window caps on automatic mail, so no loop can run away; ``per_agent`` is a
    fixed window: past ``count`` notifications an agent gets one summary per window."""

    per_ticket: Window = Window(count=10, minutes=10)
    per_address: Window = Window(count=30, minutes=10)
    # A burst: a robot answering each mail at once exchanges 30 mails in a second.
    per_address_burst: Window = Window(count=3, minutes=1)
    per_address_day: Window = Window(count=40, minutes=24 * 60)
    per_agent: AgentWindow = AgentWindow(count=20, minutes=10)
    # Command feedback and control-address reports answer what an agent just did: they are
    # counted apart from every other automatic mail, under this generous cap of their own.
    feedback: Window = Window(count=200, minutes=24 * 60)
    feedback_burst: Window = Window(count=10, minutes=1)


class Dkim(_Strict):
    """DKIM signing of every outbound mail (the public key goes in DNS at <selector>._domainkey.<domain>)."""

    selector: str = Field(min_length=1)
    domain: str = Field(min_length=1)
    private_key_file: str = Field(min_length=1)  # PEM; relative to the config file's directory


class Outbound(_Strict):
    smtp: OutboundSmtp = OutboundSmtp()
    dkim: Dkim | None = None  # off unless configured
    from_name: str | None = None  # display name on maild's mail; default: helpdesk.name
    # Template overrides, <dir>/<language>/<name>.j2; default: templates/ next to the YAML file.
    templates_dir: str | None = None
    retry: Retry = Retry()
    limits: Limits = Limits()
    undeliverable_days: int = Field(default=30, ge=0)  # after a permanent bounce, no automatic mail
    acknowledge: bool = True  # acknowledge a new ticket to the customer
    notify_agents: bool = True  # tell agents about new tickets and customer replies
    # A notification to agents carries the customer's files up to this total size; above it
    # they are listed with their sizes (fetch one: `maild tickets attachment`, control `get`).
    notify_attachments_max_bytes: int = Field(default=10 * 1024 * 1024, ge=0)
    enabled: bool = True  # false: mail stays queued in the outbox, nothing is sent
    # Each mail's envelope sender is its own signed bounce address (support+bounce-<id>-<sig>@…),
    # so a bounce names the mail whatever its body; false: the helpdesk address.
    verp: bool = True


_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_TAG_NAME = re.compile(r"[^\s,#]+")


class TagStyle(_Strict):
    """How a tag is shown (seed 000's coloured tags): ``tags: {vip: {colour: "#d4af37", label: VIP}}``."""

    colour: str | None = None
    label: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _unquoted(cls, data: Any) -> Any:
        if isinstance(data, dict) and "colour" in data and data["colour"] is None:
            raise ValueError('colour is empty: an unquoted # starts a YAML comment; write colour: "#d4af37"')
        return data

    @field_validator("colour")
    @classmethod
    def _colour(cls, value: str | None) -> str | None:
        if value is not None and not _COLOUR.fullmatch(value.strip()):
            raise ValueError(f"{value!r} is not a colour: write it as \"#rrggbb\" (quoted, e.g. \"#d4af37\")")
        return value.strip().lower() if value else None


class Metrics(_Strict):
    """The health and metrics port (``GET /healthz``, ``GET /metrics``); off unless configured."""

    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)


class Logging(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"  # json: one object per line, for log shippers
    # Other libraries' loggers (aiosmtpd, APScheduler, Alembic, imapclient) log at this
    # level or above; aiosmtpd's INFO lines are every SMTP command with its addresses.
    libraries: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"


class Config(_Strict):
    helpdesk: Helpdesk
    database: Database = Database()
    storage: Storage = Storage()
    spool: Spool = Spool()
    cluster: Cluster = Cluster()
    smtp_server: SmtpServer = SmtpServer()
    agents: list[Agent] = []
    workflow: Workflow = Workflow()
    outbound: Outbound = Outbound()
    imap: list[ImapAccount] = []
    forms: list[FormSpec] = []  # website forms (maild/forms/, docs/FORMS.md)
    contacts: Contacts = Contacts()
    catalog: Catalog | None = None
    keywords: dict[str, commands_settings.KeywordAction] = {}  # subject keywords (docs/COMMANDS.md)
    commands: commands_settings.Commands = commands_settings.Commands()
    security: commands_settings.Security = commands_settings.Security()
    scheduler: Scheduler = Scheduler()
    triggers: list[Rule] | None = None  # None: maild.notify.rules.DEFAULT_TRIGGERS
    sms: SmsGateway | None = None  # the HTTP SMS gateway for triggers with channel: sms
    metrics: Metrics | None = None
    tags: dict[str, TagStyle] = {}  # labels and colours of tags; other tags are shown by name
    logging: Logging = Logging()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = None  # older spelling of logging.level

    # Relative paths in the file are taken from here: the file's directory (default_base_dir).
    base_dir: Path = Path(".")
    # The directory of the YAML file: its templates/ folder overrides maild's templates.
    config_dir: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _language_defaults(cls, data: Any) -> Any:
        """Default statuses and priorities labelled in ``helpdesk.language``."""
        if not isinstance(data, dict) or not isinstance(data.get("helpdesk"), dict):
            return data
        language = data["helpdesk"].get("language", "en")
        workflow = data.get("workflow")
        if language == "en" or not (workflow is None or isinstance(workflow, dict)):
            return data
        workflow = dict(workflow or {})
        for key, values in (("statuses", commands_settings.DEFAULT_STATUSES),
                            ("priorities", commands_settings.DEFAULT_PRIORITIES)):
            if key not in workflow:
                workflow[key] = commands_settings.localized(values, language)
        return {**data, "workflow": workflow}

    @model_validator(mode="after")
    def _unique(self) -> Config:
        seen: dict[str, str] = {}
        for agent in self.agents:
            for address in agent.addresses:
                if address in seen:
                    raise ValueError(f"agent address {address} is listed twice")
                seen[address] = agent.name
        names = [a.name for a in self.imap]
        if len(names) != len(set(names)):
            raise ValueError("imap account names must be unique")
        check_rules(self.triggers, self.agents, self.sms is not None)
        unique_names(self.forms)
        if self.catalog is not None and not self.path(self.catalog.path).is_file():
            raise ValueError(f"catalog.path: {self.path(self.catalog.path)} is not a file")
        wf = self.workflow
        commands_settings.check(wf.statuses, wf.priorities, wf.transitions, self.keywords, self.commands, self.agents)
        if not self.database_url.startswith("postgresql"):
            for key, backend in (("spool.backend", self.spool.backend), ("storage.backend", self.storage.backend)):
                if backend == "database":
                    raise ValueError(f"{key}: 'database' needs a PostgreSQL database.url (shared by the nodes); "
                                     "use 'filesystem' with SQLite")
        control = self.helpdesk.control_address
        if control and control in (self.helpdesk.address, *self.helpdesk.extra_addresses, *seen):
            raise ValueError(f"helpdesk.control_address {control} is also a helpdesk or agent address")
        return self

    def status_labels(self) -> dict[str, str]:
        """Each status name → its label (what mails and reports show)."""
        return {s.name: s.label or s.name for s in self.workflow.statuses}
    @field_validator("tags")
    @classmethod
    def _tag_names(cls, value: dict[str, TagStyle]) -> dict[str, TagStyle]:
        for name in value:
            if not _TAG_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a tag name (one word, no spaces, commas or #)")
        lowered = {name.lower() for name in value}
        if len(lowered) != len(value):
            raise ValueError("a tag is defined twice (tag names are not case-sensitive)")
        return value

    def tag_looks(self) -> dict[str, TagLook]:
        """The defined tags by (lower-case) name: :func:`maild.domain.tags.looks` shows any tag."""
        return {name.lower(): TagLook(name.lower(), style.label or name, style.colour)
                for name, style in self.tags.items()}

    @property
    def log_level_name(self) -> str:
        return self.log_level or self.logging.level

    def path(self, value: str) -> Path:
        """A path from the file, relative ones taken from ``base_dir`` (the file's directory)."""
        p = Path(value)
        return p if p.is_absolute() else self.base_dir / p

    @property
    def database_url(self) -> str:
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.path(url[len(prefix):]))
        return url

    def signing_secret(self) -> bytes:
        """The key for reply addresses and Message-IDs; generated and kept on first use
        when the file names none (:mod:`maild.secret`)."""
        return self.helpdesk.configured_secret() or load_or_create(self.secret_path())

    def secret_path(self) -> Path:
        """Where maild keeps the key it generated (used only without secret/secret_env)."""
        return secret_file(self, self.storage.path)

    def templates_path(self) -> Path | None:
        if self.outbound.templates_dir:
            return self.path(self.outbound.templates_dir)
        return self.config_dir / "templates" if self.config_dir else None

    def trigger_rules(self) -> tuple[Rule, ...]:
        from maild.notify.rules import DEFAULT_TRIGGERS

        return DEFAULT_TRIGGERS if self.triggers is None else tuple(self.triggers)

    def agent_by_address(self) -> dict[str, Agent]:
        return {address: agent for agent in self.agents for address in agent.addresses}


def config_path(explicit: str | None) -> Path:
    return Path(explicit or os.environ.get(ENV_CONFIG) or DEFAULT_CONFIG)


def default_base_dir(path: Path) -> Path:
    """Where relative paths in the file point: the file's own directory, so `maild tickets
    list` run from anywhere opens the daemon's database. maild's embedded example file is
    the exception: it keeps its `var/` in the directory maild is started in."""
    resolved = path.resolve()
    return Path.cwd() if resolved == DEFAULT_CONFIG.resolve() else resolved.parent


def load_config(path: Path, base_dir: Path | None = None) -> Config:
    """Read and validate the file; raise ConfigError naming file, line and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
        lines = _key_lines(yaml.compose(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the file must be a mapping of sections (helpdesk:, database:, ...)")
    data = {**data, "base_dir": base_dir or default_base_dir(path), "config_dir": path.resolve().parent}
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(path, exc, lines)) from exc


def _explain(path: Path, exc: ValidationError, lines: dict[tuple[Any, ...], int]) -> str:
    messages = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        key = ".".join(str(part) for part in loc) or "(top level)"
        line = None
        for n in range(len(loc), -1, -1):
            if loc[:n] in lines:
                line = lines[loc[:n]]
                break
        where = f"{path}:{line}" if line else str(path)
        msg = error["msg"].removeprefix("Value error, ")
        named = re.match(r"([a-z_]+(?:\.[a-z_]+)+): ", msg) if not loc else None
        if named:  # a check across sections names the key it is about
            key, msg = named.group(1), msg[named.end():]
            line = lines.get(tuple(key.split(".")), line)
            where = f"{path}:{line}" if line else str(path)
        if error["type"] == "extra_forbidden":
            msg = "unknown key (misspelt?)"
        elif error["type"] == "missing":
            msg = "required key is missing"
        messages.append(f"{where}: {key}: {msg}")
    return "\n".join(messages)


def _key_lines(node: yaml.Node | None, prefix: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map each key path in the YAML document to its 1-based line number."""
    found: dict[tuple[Any, ...], int] = {}
    if node is None:
        return found
    found.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, key.value)
            found[path] = key.start_mark.line + 1
            found.update({k: v for k, v in _key_lines(value, path).items() if k != path})
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found.update(_key_lines(item, (*prefix, index)))
    return found
