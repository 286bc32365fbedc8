"""Golden fixtures through the whole pipeline: ticket created or matched, requester,
stored body and attachments, on SQLite and PostgreSQL."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import FIXTURES, Env

CASES = sorted(p.stem for p in FIXTURES.glob("*.yaml"))


def _expectation(name: str) -> dict[str, Any]:
    return yaml.safe_load((FIXTURES / f"{name}.yaml").read_text(encoding="utf-8")) or {}


def _raw(name: str) -> bytes:
    return (FIXTURES / f"{name}.eml").read_bytes()


@pytest.mark.parametrize("name", CASES)
def test_fixture_through_pipeline(env: Env, name: str) -> None:
    exp = _expectation(name)
    earlier = {}
    for before in exp.get("after", []):
        earlier[before] = env.process(_raw(before))
    tickets_before = {t["id"] for t in env.tickets()}
    outcome = env.process(_raw(name))

    expected = exp.get("ticket")
    if expected == "new":
        assert outcome.status == "created", outcome
        assert outcome.ticket_id not in tickets_before
    elif expected == "existing":
        assert outcome.status == "appended", outcome
        assert outcome.ticket_id in {o.ticket_id for o in earlier.values()}
    elif expected == "none":
        assert outcome.status == "ignored", outcome
        assert {t["id"] for t in env.tickets()} == tickets_before
    if outcome.ticket_id is None or outcome.status == "ignored":
        return
    ticket = env.ticket(outcome.ticket_id)
    if "requester" in exp:
        assert ticket["requester"] == exp["requester"]
    [message] = [m for m in ticket["messages"] if m["message_id"] == outcome.message_id]
    if "body_exact" in exp:
        assert message["body_text"] == exp["body_exact"]
    for fragment in exp.get("body_contains", []):
        assert fragment in message["body_text"]
    if "attachments" in exp:
        assert [a["filename"] for a in message["attachments"]] == exp["attachments"]
        for stored in message["attachments"]:
            assert len(env.app.blobs.get_attachment(stored["sha256"])) == stored["size"]


def test_every_fixture_states_what_the_pipeline_does() -> None:
    missing = [name for name in CASES if "ticket" not in _expectation(name)]
    assert missing == []


def test_attachment_names_cannot_escape_storage(env: Env, tmp_path: Path) -> None:
    outcome = env.process(_raw("multipart_attachment"))
    storage = env.app.blobs.root.resolve()
    for stored in env.ticket(outcome.ticket_id)["messages"][0]["attachments"]:
        path = env.app.blobs.attachment_path(stored["sha256"]).resolve()
        assert path.is_relative_to(storage)
    assert list(tmp_path.rglob("passwd")) == []
