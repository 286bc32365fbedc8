"""May a mail from an agent's address command maild? (SPEC §3.4, §11; docs/COMMANDS.md)

A From header is trivially forged, so by default (``security.agent_auth.require_proof``)
an agent's mail runs commands only with one of these proofs, tried cheapest first:

1. ``reply_address``  it was sent to that agent's signed reply address for a ticket
   (``support+a42-<sig>@``) or for the control address (``control+<sig>@``), found in
   To, Cc or the envelope recipients the listener records (X-Original-To, Delivered-To).
   Only mail maild sent to that agent carries it, so answering from a mail client proves
   it; the same address from another From proves nothing.
2. ``authentication_results``  an ``Authentication-Results`` header (RFC 8601) written by
   one of ``trusted_authserv_ids`` says ``dkim=pass`` with ``header.d`` exactly the agent's
   domain, or ``dmarc=pass`` with ``header.from`` exactly that domain. ``spf=pass`` alone
   proves nothing about the From header, and a parent domain (``header.d=example.com`` for
   ``ana@support.example.com``) proves nothing about the agent's domain. Headers from other
   servers are ignored: anybody can write one. Your MX must delete
   ``Authentication-Results`` headers carrying its own authserv-id from incoming mail
   (RFC 8601 §5; Postfix, OpenDKIM, OpenDMARC and rspamd do).
3. ``dkim``  with ``verify_dkim``, a DKIM signature by exactly the agent's domain verifies
   (dkimpy, DNS lookups; ``dnsfunc`` is injectable for tests).

:meth:`AgentAuthenticator.check` is a function of the raw mail and its recipients; the
processor runs it before the mail's transaction opens, so DKIM's DNS lookups never hold
the database. Only mail from agents' addresses is checked: customers' mail pays nothing.
A mail that fails is processed as customer mail, flagged, and runs nothing.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32

from maild.commands.settings import AgentAuth
from maild.threading.signing import Signer

_COMMENT = re.compile(r"\([^()]*\)")
_PAIR = re.compile(r'([A-Za-z][\w.-]*(?:/\d+)?)\s*=\s*("[^"]*"|[^\s;]+)')


@dataclass(frozen=True)
class AuthVerdict:
    ok: bool
    reason: str  # what was missing, for the log, the history and the agent's notice
    proof: str = ""  # reply_address | authentication_results | dkim | not_required


NOT_REQUIRED = AuthVerdict(True, "", "not_required")


@dataclass(frozen=True)
class MethodResult:
    authserv_id: str
    method: str  # dkim | spf | dmarc | ...
    result: str  # pass | fail | ...
    props: dict[str, str]


def parse_authentication_results(value: str) -> list[MethodResult]:
    """One ``Authentication-Results`` header value → its method results (lenient)."""
    text = " ".join(_COMMENT.sub(" ", value).split())
    parts = [p.strip() for p in text.split(";")]
    if not parts or not parts[0]:
        return []
    authserv = parts[0].split()[0].lower()
    results = []
    for part in parts[1:]:
        pairs = _PAIR.findall(part)
        if not pairs:
            continue
        method, result = pairs[0]
        props = {k.lower(): v.strip('"').lower() for k, v in pairs[1:]}
        results.append(MethodResult(authserv, method.split("/")[0].lower(), result.lower(), props))
    return results


def _domain(value: str) -> str:
    return value.rsplit("@", 1)[-1].strip("<>. ").lower()


class AgentAuthenticator:
    """Built once from the config; :meth:`check` runs per mail from an agent's address."""

    def __init__(self, settings: AgentAuth, signer: Signer, control_address: str | None = None,
                 dnsfunc: Callable[..., bytes | None] | None = None) -> None:
        self.required = settings.require_proof
        self.trusted = frozenset(settings.trusted_authserv_ids)
        self.verify_dkim = settings.verify_dkim
        self.signer = signer
        self.control = control_address
        self.dnsfunc = dnsfunc

    @property
    def enabled(self) -> bool:
        return self.required

    def check(self, raw: bytes, agent: str, recipients: Iterable[str]) -> AuthVerdict:
        """Does this mail prove it comes from ``agent`` (the agent's configured address)?"""
        if not self.required:
            return NOT_REQUIRED
        addresses = [a.strip().strip("<>").lower() for a in recipients]
        if any(self._signed_for(address, agent) for address in addresses):
            return AuthVerdict(True, "", "reply_address")
        missing = ["not sent to the agent's signed reply address"]
        if self.trusted:
            verdict = self._results(raw, _domain(agent))
            if verdict.ok:
                return verdict
            missing.append(verdict.reason)
        if self.verify_dkim:
            verdict = self._dkim(raw, _domain(agent))
            if verdict.ok:
                return verdict
            missing.append(verdict.reason)
        return AuthVerdict(False, "; ".join(missing))

    def _signed_for(self, address: str, agent: str) -> bool:
        if self.signer.agent_reply_ticket(address, agent) is not None:
            return True
        if not self.control:
            return False
        return self.signer.is_agent_control_address(address, self.control, agent)

    def _results(self, raw: bytes, domain: str) -> AuthVerdict:
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
        seen = []
        for value in headers.get_all("Authentication-Results") or []:
            for r in parse_authentication_results(str(value)):
                if r.authserv_id not in self.trusted:
                    continue
                seen.append(f"{r.method}={r.result}")
                if r.result != "pass":
                    continue
                # Exactly the agent's domain: what DMARC calls strict alignment with From.
                if r.method == "dkim" and _domain(r.props.get("header.d", "")) == domain:
                    return AuthVerdict(True, "", "authentication_results")
                if r.method == "dmarc" and _domain(r.props.get("header.from", "")) == domain:
                    return AuthVerdict(True, "", "authentication_results")
        if not seen:
            return AuthVerdict(False, "no Authentication-Results from a trusted server "
                                      f"({', '.join(sorted(self.trusted))})")
        return AuthVerdict(False, f"no DKIM or DMARC pass for exactly {domain} from a trusted server "
                                  f"({', '.join(seen)})")

    def _dkim(self, raw: bytes, domain: str) -> AuthVerdict:
        import dkim  # dkimpy; imported only when configured

        headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
        signatures = headers.get_all("DKIM-Signature") or []
        if not signatures:
            return AuthVerdict(False, "no DKIM signature")
        checker = dkim.DKIM(raw)
        last = "signature does not verify"
        for idx in range(len(signatures)):
            try:
                kwargs = {"dnsfunc": self.dnsfunc} if self.dnsfunc else {}
                ok = checker.verify(idx=idx, **kwargs)
            except Exception as exc:  # noqa: BLE001 - a broken signature is a failed one
                ok = False
                last = str(exc) or type(exc).__name__
            else:
                last = "signature does not verify" if not ok else last
            signer = (checker.domain or b"").decode("ascii", "replace").lower() if ok else ""
            if ok and signer == domain:
                return AuthVerdict(True, "", "dkim")
            if ok:
                last = f"signed by {signer}, not {domain}"
        return AuthVerdict(False, f"no valid DKIM signature of {domain} ({last})")
