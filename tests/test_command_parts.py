"""The pure parts of commands, bytes or text in, values out: keyword tables, the command
grammar, dates, Authentication-Results and DKIM proof."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from maild.commands.auth import AgentAuthenticator, parse_authentication_results
from maild.commands.grammar import parse_when, split_commands, starts_with_command
from maild.commands.keywords import AGENT, CUSTOMER, MANAGER, KeywordTable
from maild.commands.settings import AgentAuth, KeywordAction
from maild.threading.signing import Signer

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)
SP = ZoneInfo("America/Sao_Paulo")


def table() -> KeywordTable:
    return KeywordTable({"#urgente": KeywordAction(tags=["urgente"], priority="high", who="anyone"),
                         "[fechar]": KeywordAction(status="closed"),
                         "#spam": KeywordAction(tags=["spam"], who="managers")})


@pytest.mark.parametrize("subject,clean", [
    ("#urgente Vazamento", "Vazamento"), ("Vazamento #URGENTE", "Vazamento"), ("#Urgênte: água", ": água"),
    ("Re: Ação #urgente já", "Re: Ação já"),
])
def test_keywords_ignore_case_and_accents_and_are_cut(subject: str, clean: str) -> None:
    scan = table().scan(subject, CUSTOMER)
    assert scan.subject == clean
    assert [(c.verb, c.args) for c in scan.commands] == [("tag", "+urgente"), ("priority", "high")]


def test_keywords_match_whole_tokens_only() -> None:
    assert not table().scan("#urgentemente", CUSTOMER).changed
    assert not table().scan("x#urgente", CUSTOMER).changed


def test_customers_get_only_public_keywords_and_no_assignments() -> None:
    scan = table().scan("[fechar] [status=closed] pedido", CUSTOMER)
    assert not scan.changed and scan.subject == "[fechar] [status=closed] pedido"
    scan = table().scan("[FECHAR] pedido [tag=+vip,-spam] [assign=ana]", AGENT)
    assert scan.subject == "pedido"
    assert [(c.verb, c.args) for c in scan.commands] == [("status", "closed"), ("tag", "+vip -spam"),
                                                          ("assign", "ana")]


def test_manager_keywords() -> None:
    assert table().scan("#spam x", AGENT).rejected and not table().scan("#spam x", AGENT).commands
    assert table().scan("#spam x", MANAGER).commands[0].args == "+spam"


def test_no_public_keywords_means_no_customer_scan() -> None:
    assert not KeywordTable({"[fechar]": KeywordAction(status="closed")}).has_public
    assert table().has_public


def test_command_lines_at_the_top_only() -> None:
    commands, text = split_commands("\n/status closed\n\n/tag +a -b\nHello,\n/not a command here\n")
    assert [(c.verb, c.args) for c in commands] == [("status", "closed"), ("tag", "+a -b")]
    assert text == "Hello,\n/not a command here\n"
    assert split_commands("/etc/hosts is broken\n") == ((), "/etc/hosts is broken\n")
    assert starts_with_command("  \n/close\n") and not starts_with_command("Hi /close")


@pytest.mark.parametrize("text,expected", [
    ("2026-12-01 14:00", datetime(2026, 12, 1, 17, 0, tzinfo=timezone.utc)),
    ("01/12/2026 14h00", datetime(2026, 12, 1, 17, 0, tzinfo=timezone.utc)),
    ("2026-12-01", datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)),
    ("+90m", datetime(2026, 11, 2, 13, 30, tzinfo=timezone.utc)),
    ("+2h", datetime(2026, 11, 2, 14, 0, tzinfo=timezone.utc)),
    ("+3d", datetime(2026, 11, 5, 12, 0, tzinfo=timezone.utc)),
    ("+1w", datetime(2026, 11, 9, 12, 0, tzinfo=timezone.utc)),
])
def test_next_dates(text: str, expected: datetime) -> None:
    assert parse_when(text, NOW, SP) == (expected, "")


@pytest.mark.parametrize("text", ["tomorrow", "2026-13-01 10:00", "+3y", "32/01/2026 10:00"])
def test_bad_next_dates(text: str) -> None:
    when, why = parse_when(text, NOW, SP)
    assert when is None and why.startswith("bad date")


def test_authentication_results_parsing() -> None:
    [dkim, spf] = parse_authentication_results(
        "mx.acme.test 1; dkim=pass (2048-bit key) header.d=acme.test header.i=@acme.test; "
        "spf=pass (sender SPF authorized) smtp.mailfrom=ana@acme.test")
    assert (dkim.authserv_id, dkim.method, dkim.result, dkim.props["header.d"]) == ("mx.acme.test", "dkim", "pass",
                                                                                   "acme.test")
    assert spf.props["smtp.mailfrom"] == "ana@acme.test"


def _mail(ar: str) -> bytes:
    return (f"Authentication-Results: {ar}\r\nFrom: ana@acme.test\r\nSubject: x\r\n\r\n/close\r\n").encode()


SIGNER = Signer(b"k", "support", "acme.test")


@pytest.mark.parametrize(("agent", "ar", "ok"), [
    ("ana@acme.test", "mx.acme.test; dkim=pass header.d=acme.test", True),
    ("ana@acme.test", "mx.acme.test; dmarc=pass header.from=acme.test", True),
    ("ana@acme.test", "MX.acme.test (comment); dkim=pass (2048-bit) header.d=ACME.test", True),
    ("ana@acme.test", "mx.acme.test; spf=pass smtp.mailfrom=ana@acme.test", False),  # SPF alone: the envelope
    ("ana@acme.test", "mx.acme.test; spf=pass smtp.mailfrom=acme.test; dkim=none", False),
    ("ana@support.acme.test", "mx.acme.test; dkim=pass header.d=acme.test", False),  # a parent domain
    ("ana@acme.test", "mx.acme.test; dkim=pass header.d=mail.acme.test", False),  # a subdomain
    ("ana@acme.test", "mx.acme.test; dmarc=pass header.from=acme.test.evil", False),
    ("ana@acme.test", "mx.acme.test; dkim=pass header.d=evil.test", False),
    ("ana@acme.test", "other.test; dkim=pass header.d=acme.test", False),  # an untrusted authserv-id
    ("ana@acme.test", "mx.acme.test; dkim=fail header.d=acme.test; dmarc=fail header.from=acme.test", False),
])
def test_authentication_results_prove_only_a_trusted_exact_domain_pass(agent: str, ar: str, ok: bool) -> None:
    auth = AgentAuthenticator(AgentAuth(trusted_authserv_ids=["mx.acme.test"]), SIGNER)
    verdict = auth.check(_mail(ar), agent, ["support@acme.test"])
    assert verdict.ok is ok and (verdict.proof == "authentication_results" if ok else "signed reply" in verdict.reason)


def test_proof_is_required_by_default_and_the_signed_reply_address_is_proof() -> None:
    auth = AgentAuthenticator(AgentAuth(), SIGNER, "control@acme.test")
    plain = _mail("mx.acme.test; dkim=pass header.d=acme.test")  # no authserv-id trusted: ignored
    assert not auth.check(plain, "ana@acme.test", ["support@acme.test"]).ok
    mine = SIGNER.agent_reply_address(42, "ana@acme.test")
    assert auth.check(plain, "ana@acme.test", ["support@acme.test", mine.upper()]).proof == "reply_address"
    assert not auth.check(plain, "bruno@acme.test", [mine]).ok  # another agent's address proves nothing
    assert not auth.check(plain, "ana@acme.test", [SIGNER.reply_address(42)]).ok  # the customer's neither
    assert not auth.check(plain, "ana@acme.test", [mine[:-12] + "aaaa@acme.test"]).ok
    control = SIGNER.agent_control_address("control@acme.test", "ana@acme.test")
    assert control.startswith("control+") and auth.check(plain, "ana@acme.test", [control]).ok
    assert not auth.check(plain, "bruno@acme.test", [control]).ok
    off = AgentAuthenticator(AgentAuth(require_proof=False), SIGNER)
    assert off.check(plain, "ana@acme.test", []).proof == "not_required"


def test_dkim_signature_verified_with_dkimpy() -> None:
    dkim = pytest.importorskip("dkim")
    import base64
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test key")
    private = subprocess.run(["openssl", "genrsa", "2048"], capture_output=True, check=True).stdout
    public = subprocess.run(["openssl", "rsa", "-pubout", "-outform", "DER"], input=private, capture_output=True,
                            check=True).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    dns = {b"s1._domainkey.acme.test.": record}

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return dns.get(name if name.endswith(b".") else name + b".")

    raw = b"From: Ana <ana@acme.test>\r\nTo: support@x.test\r\nSubject: close\r\nMessage-ID: <1@acme.test>\r\n\r\n/close\r\n"
    signed = dkim.sign(raw, b"s1", b"acme.test", private, include_headers=[b"From", b"To", b"Subject"]) + raw
    auth = AgentAuthenticator(AgentAuth(verify_dkim=True), SIGNER, dnsfunc=dnsfunc)
    assert auth.check(signed, "ana@acme.test", []).proof == "dkim"
    assert not auth.check(signed.replace(b"/close", b"/assign mallory"), "ana@acme.test", []).ok
    assert not auth.check(raw, "ana@acme.test", []).ok
    assert not auth.check(signed, "ana@other.test", []).ok
    assert not auth.check(signed, "ana@support.acme.test", []).ok  # the parent domain's key is not the agent's
