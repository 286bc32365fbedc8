"""May a mail from an agent's address command maild? (SPEC §3.4, §11)

A From header is trivially forged. With ``security.agent_auth.trusted_authserv_ids`` set,
an agent's mail is trusted only when an ``Authentication-Results`` header (RFC 8601)
written by one of those servers says ``dkim=pass`` with a signing domain, ``spf=pass``
with an envelope sender domain, or ``dmarc=pass`` with a From domain, aligned (equal, or
one a subdomain of the other) with the agent's address. Headers from other servers are
ignored: anybody can write one. Your MX must delete ``Authentication-Results`` headers
carrying its own authserv-id from incoming mail (RFC 8601 §5; Postfix, OpenDKIM,
OpenDMARC and rspamd do).

With ``verify_dkim``, a DKIM signature of the agent's domain must also verify (dkimpy,
DNS lookups; ``dnsfunc`` is injectable for tests).

Only mail from agents' addresses is checked: this costs customers' mail nothing. A mail
that fails is processed as customer mail and flagged in the ticket history and the log.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32

from maild.commands.settings import AgentAuth

_COMMENT = re.compile(r"\([^()]*\)")
_PAIR = re.compile(r'([A-Za-z][\w.-]*(?:/\d+)?)\s*=\s*("[^"]*"|[^\s;]+)')


@dataclass(frozen=True)
class AuthVerdict:
    ok: bool
    reason: str


TRUSTED = AuthVerdict(True, "")


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


def aligned(a: str, b: str) -> bool:
    """Relaxed alignment: the same domain, or one a subdomain of the other."""
    a, b = _domain(a), _domain(b)
    return bool(a and b) and (a == b or a.endswith("." + b) or b.endswith("." + a))


class AgentAuthenticator:
    def __init__(self, settings: AgentAuth,
                 dnsfunc: Callable[..., bytes | None] | None = None) -> None:
        self.trusted = frozenset(settings.trusted_authserv_ids)
        self.verify_dkim = settings.verify_dkim
        self.dnsfunc = dnsfunc

    @property
    def enabled(self) -> bool:
        return bool(self.trusted) or self.verify_dkim

    def check(self, raw: bytes, agent_address: str) -> AuthVerdict:
        if not self.enabled:
            return TRUSTED
        if self.trusted:
            verdict = self._results(raw, _domain(agent_address))
            if not verdict.ok:
                return verdict
        if self.verify_dkim:
            return self._dkim(raw, _domain(agent_address))
        return TRUSTED

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
                if r.method == "dkim" and aligned(r.props.get("header.d") or r.props.get("header.i", ""), domain):
                    return TRUSTED
                if r.method == "spf" and aligned(r.props.get("smtp.mailfrom", ""), domain):
                    return TRUSTED
                if r.method == "dmarc" and aligned(r.props.get("header.from", ""), domain):
                    return TRUSTED
        if not seen:
            return AuthVerdict(False, "no Authentication-Results from a trusted server "
                                      f"({', '.join(sorted(self.trusted))})")
        return AuthVerdict(False, f"no DKIM/SPF pass aligned with {domain} ({', '.join(seen)})")

    def _dkim(self, raw: bytes, domain: str) -> AuthVerdict:
        import dkim  # dkimpy; imported only when configured

        headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
        signatures = headers.get_all("DKIM-Signature") or []
        if not signatures:
            return AuthVerdict(False, "no DKIM signature")
        checker = dkim.DKIM(raw)
        for idx in range(len(signatures)):
            try:
                kwargs = {"dnsfunc": self.dnsfunc} if self.dnsfunc else {}
                ok = checker.verify(idx=idx, **kwargs)
            except Exception as exc:  # noqa: BLE001 - a broken signature is a failed one
                ok = False
                last = str(exc)
            else:
                last = "signature does not verify"
            signer = (checker.domain or b"").decode("ascii", "replace") if ok else ""
            if ok and aligned(signer, domain):
                return TRUSTED
        return AuthVerdict(False, f"no valid DKIM signature of {domain} ({last})")
