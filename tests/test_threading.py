"""Pure threading helpers: subject prefixes, tags, signatures."""
from __future__ import annotations

import pytest

from maild.threading.signing import Signer
from maild.threading.subject import find_tag, strip_prefixes, ticket_subject


@pytest.mark.parametrize("subject, expected", [
    ("Re: Boleto", "Boleto"),
    ("RES: RES: Boleto", "Boleto"),
    ("AW: WG: Angebot", "Angebot"),
    ("Fwd: ENC: TR: Contrato", "Contrato"),
    ("[EXTERNAL] Re[2]: Chaves", "Chaves"),
    ("Re:Re:  Visita", "Visita"),
    ("Reunião", "Reunião"),  # a word that starts like a prefix stays
    ("Enc. de obra", "Enc. de obra"),
])
def test_prefixes_are_stripped(subject: str, expected: str) -> None:
    assert strip_prefixes(subject) == expected


@pytest.mark.parametrize("subject, number", [
    ("[Support #12] Boleto", 12),
    ("RES: [support #12] Boleto", 12),
    ("Re: [ Support#7 ]", 7),
    ("[Other #12] Boleto", None),
    ("Support #12", None),
])
def test_tag(subject: str, number: int | None) -> None:
    assert find_tag(subject, "Support") == number


def test_ticket_subject_drops_tag_and_prefixes() -> None:
    assert ticket_subject("RES: [Support #3] Re: Chaves", "Support") == "Chaves"


def test_signatures_round_trip_and_reject_forgery() -> None:
    signer = Signer(b"k", "support", "example.com")
    address = signer.reply_address(42)
    assert signer.ticket_from_address(address) == 42
    assert signer.ticket_from_address(address.upper()) == 42
    assert signer.ticket_from_address(address.replace("+42-", "+43-")) is None
    assert Signer(b"other", "support", "example.com").ticket_from_address(address) is None
    mid = signer.message_id(42)
    assert signer.ticket_from_message_id(mid) == 42
    assert signer.ticket_from_message_id(mid.replace("maild.42.", "maild.41.")) is None
