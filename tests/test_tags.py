"""Tag colours (``tags:`` in the YAML): validated at start, shown by `maild tickets show`
(and --json), the digest and the control address's reports; unknown tags have none."""
from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import parseaddr
from pathlib import Path

import pytest
import yaml
from conftest import AGENT, free_port, mail, write_config
from scheduling import BRUNO, Clock, last_id, outbox_rows, service, set_ticket, team_env
from smtpsink import Sink
from test_commands import CONTROL, commands_config
from test_e2e import Daemon, wait_for
from test_outbound_e2e import deliver, outbound_section, settle, sink, text  # noqa: F401 (sink: a fixture)

from maild.config import ConfigError, load_config
from maild.domain.tags import TagLook, looks
from maild.threading.signing import Signer

TAGS = """\
    tags:
      vip: {colour: "#D4AF37", label: "VIP"}
      urgente: {colour: "#c00"}
      arquivo: {label: Arquivo morto}
    """


def test_tag_looks_name_label_and_colour() -> None:
    defined = {"vip": TagLook("vip", "VIP", "#d4af37"), "urgente": TagLook("urgente", "urgente", "#c00"),
               "arquivo": TagLook("arquivo", "Arquivo morto")}
    assert [t.text() for t in looks(["arquivo", "novo", "urgente", "vip"], defined)] == [
        "Arquivo morto [arquivo]", "novo", "urgente (#c00)", "VIP (#d4af37)"]
    assert looks(["novo"], defined)[0].as_dict() == {"name": "novo", "label": "novo", "colour": None, "text": "novo"}


def test_the_configuration_defines_tags(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "sqlite:///x.db", tags=TAGS), base_dir=tmp_path)
    assert config.tag_looks() == {"vip": TagLook("vip", "VIP", "#d4af37"),
                                  "urgente": TagLook("urgente", "urgente", "#c00"),
                                  "arquivo": TagLook("arquivo", "Arquivo morto", None)}


@pytest.mark.parametrize(("section", "error"), [
    ('tags:\n  vip: {colour: "gold"}\n', ":{line}: tags.vip.colour: 'gold' is not a colour"),
    ("tags:\n  vip:\n    colour: #d4af37\n", ":{line}: tags.vip: colour is empty: an unquoted # starts a YAML comment"),
    ('tags:\n  vip: {color: "#d4af37"}\n', ":{line}: tags.vip.color: unknown key"),
    ('tags:\n  "muito vip": {colour: "#d4af37"}\n', ":{line}: tags: 'muito vip' is not a tag name"),
])
def test_a_bad_tag_stops_maild_naming_file_line_and_key(tmp_path: Path, section: str, error: str) -> None:
    path = write_config(tmp_path, "sqlite:///x.db", tags=section)
    line = path.read_text().splitlines().index("tags:") + 2
    with pytest.raises(ConfigError) as exc:
        load_config(path, base_dir=tmp_path)
    message = str(exc.value)
    assert message.startswith(str(path)) and error.format(line=line if "not a tag name" not in error
                                                           else line - 1) in message, message


def test_the_digest_shows_the_tags_labels_and_colours(tmp_path: Path, db_url: str) -> None:
    env = team_env(tmp_path, db_url, tags=TAGS, scheduler=textwrap.dedent("""\
        scheduler:
          unaccepted_minutes: 0
          digest: {enabled: true, time: "08:00", upcoming_days: 7}
        """))
    try:
        ticket = env.process(mail("Contrato", "c1@cliente.example")).ticket_id
        assert ticket is not None
        reply_to = env.app.processor.planner.reply_address(ticket, BRUNO)
        env.process(mail("Re: [Support #1] Contrato", BRUNO, body="/tag +vip +novo\n/take\n/note ok\n", to=reply_to))
        day = datetime(2026, 11, 5, tzinfo=timezone.utc)
        set_ticket(env, ticket, next_action_at=day + timedelta(days=1))
        mark = last_id(env)
        assert service(env, Clock(day + timedelta(hours=8))).run_once().digests >= 1
        [digest] = [r for r in outbox_rows(env, mark) if r.to_addr == BRUNO]
        assert "[Support #1] Contrato [novo, VIP (#d4af37)] (" in digest.body_text
    finally:
        env.app.db.dispose()


@pytest.fixture
def daemon(tmp_path: Path, sink: Sink) -> Iterator[Daemon]:  # noqa: F811
    port = free_port()
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", smtp_port=str(port),
                          outbound=outbound_section(sink.port))
    commands_config(config, tags=yaml.safe_load(textwrap.dedent(TAGS))["tags"])
    d = Daemon(config, port, tmp_path / "maild.log")
    yield d
    if d.proc and d.proc.poll() is None:
        d.kill()


@pytest.mark.slow
def test_tags_keep_their_colours_in_show_and_the_control_report(daemon: Daemon, sink: Sink) -> None:  # noqa: F811
    sink.start()
    daemon.start()
    customer = "maria@cliente.example.com.br"
    deliver(daemon.port, mail("Contrato", customer, message_id="<t-1@cliente.example>"), customer)
    sink.wait_for(3)
    [notice] = [r for r in settle(sink, daemon) if r.rcpt_tos == [AGENT]]
    mine = parseaddr(str(notice.message["Reply-To"]))[1]
    deliver(daemon.port, mail("Re: [Support #1] Contrato", f"Ana <{AGENT}>", to=mine,
                              body="/tag +vip +novo\n/note marcado\n"), AGENT, to=mine)
    wait_for(lambda: daemon.tickets()[0]["tags"] == ["novo", "vip"], 30, "the tags")

    shown = json.loads(daemon.cli("tickets", "show", "1", "--json").stdout)
    assert shown["tag_details"] == [
        {"name": "novo", "label": "novo", "colour": None, "text": "novo"},
        {"name": "vip", "label": "VIP", "colour": "#d4af37", "text": "VIP (#d4af37)"}]
    assert "tags novo, VIP (#d4af37)" in daemon.cli("tickets", "show", "1").stdout

    before = len(sink.to(AGENT))
    signed = Signer(b"test-secret", "support", "support.example.com").agent_control_address(CONTROL, AGENT)
    deliver(daemon.port, mail("ver", f"Ana <{AGENT}>", to=signed, body="show 1\nsearch contrato\n"), AGENT,
            to=signed)
    wait_for(lambda: len(sink.to(AGENT)) > before, 30, "the control report")
    report = text(sink.to(AGENT)[-1])
    assert "tags novo, VIP (#d4af37)" in report
    assert any(line.startswith("#1 ") and line.endswith("[novo, VIP (#d4af37)]") for line in report.splitlines())
    assert daemon.stop() == 0
