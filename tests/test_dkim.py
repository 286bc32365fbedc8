"""DKIM signing (optional): every mail maild sends carries a signature that dkimpy verifies
against the public key of a key pair the test makes (the DNS lookup is injected)."""
from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import dkim
import pytest

from conftest import HELPDESK, mail, make_env
from maild.outbound.compose import OutboundMail, to_bytes
from maild.outbound.dkim_sign import DkimSigner
from smtpsink import Sink

CUSTOMER = "maria@cliente.example.com.br"


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A fresh RSA key (PEM file) and its DNS TXT record."""
    directory = tmp_path_factory.mktemp("dkim")
    key = directory / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    return key, b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def dns_for(record: bytes, name: bytes = b"mail2026._domainkey.support.example.com."):
    def lookup(query: bytes, timeout: int = 5) -> bytes | None:
        return record if query == name else None
    return lookup


def test_a_signed_mail_verifies_and_a_changed_one_does_not(key_pair: tuple[Path, bytes]) -> None:
    key, record = key_pair
    from datetime import datetime, timezone

    raw = to_bytes(OutboundMail(
        kind="ack", automatic=True, ticket_id=1, message_id="<maild.1.x@support.example.com>",
        envelope_from=HELPDESK, recipients=(CUSTOMER,), from_header=f"Support <{HELPDESK}>", to_header=CUSTOMER,
        subject="Re: [Support #1] Vazamento", body_text="Recebemos.\n", date=datetime.now(timezone.utc),
        auto_submitted="auto-replied"), HELPDESK)
    signed = DkimSigner.from_file("mail2026", "support.example.com", key).sign(raw)
    header = signed.split(b"\r\n\r\n", 1)[0].decode()
    assert header.startswith("DKIM-Signature:") and "c=relaxed/relaxed" in header and "d=support.example.com" in header
    assert "auto-submitted" in header.lower() and "message-id" in header.lower()
    assert dkim.verify(signed, dnsfunc=dns_for(record))
    assert not dkim.verify(signed.replace(b"Vazamento", b"Vazamentx"), dnsfunc=dns_for(record))
    assert not dkim.verify(signed.replace(b"auto-replied", b"no"), dnsfunc=dns_for(record))


def test_configured_dkim_signs_every_mail_the_sender_delivers(tmp_path: Path, sink: Sink,
                                                              key_pair: tuple[Path, bytes]) -> None:
    key, record = key_pair
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "dkim.pem").write_bytes(key.read_bytes())
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'maild.db'}", outbound=f"""\
        outbound:
          smtp: {{host: 127.0.0.1, port: {sink.port}, timeout: 5}}
          dkim: {{selector: mail2026, domain: support.example.com, private_key_file: keys/dkim.pem}}
        """)
    try:
        env.process(mail("Vazamento", f"Maria <{CUSTOMER}>"))
        while env.app.sender.run_once():
            pass
        got = sink.received
        assert sorted(r.rcpt_tos[0] for r in got) == sorted([CUSTOMER, "ana@support.example.com"])
        for received in got:
            assert received.data.startswith(b"DKIM-Signature:")
            assert dkim.verify(received.data, dnsfunc=dns_for(record))
    finally:
        env.app.sender.stop()
        env.app.db.dispose()


def test_without_dkim_nothing_is_signed(sqlite_env, sink: Sink) -> None:  # noqa: ANN001
    assert sqlite_env.app.sender.sign is None
    assert sqlite_env.config.outbound.dkim is None
