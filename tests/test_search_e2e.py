"""Search as a user meets it: mail in over SMTP to `maild run`, then `maild tickets search`
and the control address's `search`, whose report goes out to a real SMTP peer."""
from __future__ import annotations

import json

import pytest
from conftest import AGENT, mail
from smtpsink import Sink
from test_commands import CONTROL
from test_commands_e2e import daemon  # noqa: F401 (a fixture)
from test_e2e import Daemon, wait_for
from test_outbound_e2e import deliver, settle, sink, text  # noqa: F401 (sink: a fixture)

from maild.threading.signing import Signer

pytestmark = pytest.mark.slow


def search(daemon: Daemon, *args: str) -> list[dict]:  # noqa: F811
    result = daemon.cli("tickets", "search", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_search_from_the_cli_and_the_control_address(daemon: Daemon, sink: Sink) -> None:  # noqa: F811
    sink.start()
    daemon.start()
    for n, (subject, sender, body) in enumerate([
            ("Ação de despejo", "Maria Souza <maria@cliente.example.com.br>", "Preciso de orientação.\n"),
            ("Conta de luz", "joao@exemplo.com.br", "Recebi uma ação de cobrança.\n"),
            ("Infiltração", "pedro@exemplo.com.br", "Há água no teto.\n")]):
        deliver(daemon.port, mail(subject, sender, body=body, message_id=f"<s-{n}@cliente.example>"),
                sender.split("<")[-1].rstrip(">"))
    wait_for(lambda: len(daemon.tickets()) == 3, 30, "three tickets")
    hits = search(daemon, "acao")
    assert [(h["id"], h["subject"]) for h in hits] == [(1, "Ação de despejo"), (2, "Conta de luz")]
    assert hits[0]["requester"] == "maria@cliente.example.com.br" and hits[0]["score"] > hits[1]["score"]
    assert [h["id"] for h in search(daemon, "souza")] == [1]
    assert [h["id"] for h in search(daemon, "acao", "--limit", "1")] == [1]
    assert search(daemon, "nada", "encontrado") == []
    table = daemon.cli("tickets", "search", "agua", "teto")
    assert table.returncode == 0 and "pedro@exemplo.com.br" in table.stdout and "Infiltração" in table.stdout

    settle(sink, daemon)
    before = len(sink.to(AGENT))
    signed = Signer(b"test-secret", "support", "support.example.com").agent_control_address(CONTROL, AGENT)
    deliver(daemon.port, mail("busca", f"Ana <{AGENT}>", to=signed, body="search ação\n"), AGENT, to=signed)
    wait_for(lambda: len(sink.to(AGENT)) > before, 30, "the control report")
    body = text(sink.to(AGENT)[-1])
    lines = [line for line in body.splitlines() if line.startswith("#")]
    assert [line.split()[0] for line in lines] == ["#1", "#2"] and "2 ticket(s), best match first" in body
    assert daemon.stop() == 0
