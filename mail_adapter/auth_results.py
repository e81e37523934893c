"""Authentication-Results (RFC 8601) read into a verdict on the From domain.

Only headers the receiving server wrote count: those whose authserv-id the admin trusts,
or, when none is configured, the topmost one (a sender can add any header below it, RFC
8601 §5). The From domain is authenticated when DMARC passed for it, or DKIM passed with a
signing domain aligned with it, or SPF passed with an aligned MAIL FROM (relaxed alignment:
same organisational domain).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

RESULTS = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", "policy", "hardfail")
# Second-level public suffixes common in our users' mail; enough for relaxed alignment
# without a public-suffix download at run time.
_TWO_LEVEL = {
    "co.jp", "ne.jp", "or.jp", "ac.jp", "go.jp", "ad.jp", "ed.jp", "gr.jp", "lg.jp", "co.uk", "org.uk", "ac.uk", "gov.uk", "ltd.uk",
    "com.au", "net.au", "org.au", "co.nz", "co.kr", "or.kr", "com.cn", "com.tw", "com.hk", "com.sg", "com.br", "co.in", "co.za",
}


@dataclass(frozen=True, slots=True)
class MethodResult:
    method: str
    result: str
    reason: str | None = None
    properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuthResults:
    authserv_id: str
    results: tuple[MethodResult, ...]


@dataclass(frozen=True, slots=True)
class Check:
    """One method's outcome for the message: result and the domain it was for."""

    result: str = "none"
    domain: str | None = None
    aligned: bool = False
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AuthVerdict:
    spf: Check
    dkim: Check
    dmarc: Check
    authenticated: bool
    from_domain: str | None
    trusted_header: bool  # a trusted Authentication-Results header was present

    def as_dict(self) -> dict[str, object]:
        def one(c: Check) -> dict[str, object]:
            return {"result": c.result, "domain": c.domain, "aligned": c.aligned, "reason": c.reason}

        return {"spf": one(self.spf), "dkim": one(self.dkim), "dmarc": one(self.dmarc), "authenticated": self.authenticated, "from_domain": self.from_domain, "trusted_header": self.trusted_header}


def _strip_comments(value: str) -> str:
    out, depth, quoted = [], 0, False
    for ch in value:
        if ch == '"' and depth == 0:
            quoted = not quoted
        if not quoted and ch == "(":
            depth += 1
            continue
        if not quoted and ch == ")" and depth:
            depth -= 1
            continue
        if depth == 0:
            out.append(ch)
    return "".join(out)


def _split(value: str, sep: str) -> list[str]:
    parts: list[str] = []
    buf: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return [p.strip() for p in parts if p.strip()]


def parse(value: str) -> AuthResults | None:
    """One header value; None when it has no authserv-id."""
    parts = _split(_strip_comments(value.replace("\r", " ").replace("\n", " ")), ";")
    if not parts:
        return None
    authserv = parts[0].split()[0].lower() if parts[0].split() else ""
    if not authserv or "=" in authserv:
        return None
    results = []
    for part in parts[1:]:
        tokens = re.findall(r'[\w.\-/]+\s*=\s*(?:"[^"]*"|[^\s]+)', part)
        if not tokens:
            continue
        method, _, result = tokens[0].partition("=")
        method = method.strip().split("/")[0].lower()
        result = result.strip().strip('"').lower()
        props: dict[str, str] = {}
        reason = None
        for tok in tokens[1:]:
            key, _, val = tok.partition("=")
            key, val = key.strip().lower(), val.strip().strip('"')
            if key == "reason":
                reason = val
            else:
                props[key] = val
        results.append(MethodResult(method, result, reason, props))
    return AuthResults(authserv, tuple(results))


def organisational_domain(domain: str) -> str:
    labels = domain.lower().strip(".").split(".")
    if len(labels) >= 3 and ".".join(labels[-2:]) in _TWO_LEVEL:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def aligned(a: str | None, b: str | None) -> bool:
    return bool(a and b) and organisational_domain(a) == organisational_domain(b)  # type: ignore[arg-type]


def _domain_of(value: str | None) -> str | None:
    if not value:
        return None
    return value.rsplit("@", 1)[-1].lower().strip("<>. ") or None


def trusted_headers(headers: list[str], trusted_ids: frozenset[str]) -> list[AuthResults]:
    parsed = [p for p in (parse(h) for h in headers) if p]
    if trusted_ids:
        return [p for p in parsed if p.authserv_id in trusted_ids]
    return parsed[:1]  # the topmost: the receiving server's own


def verdict(headers: list[str], from_domain: str | None, trusted_ids: frozenset[str] = frozenset()) -> AuthVerdict:
    """headers: every Authentication-Results value, topmost first."""
    trusted = trusted_headers(headers, frozenset(t.lower() for t in trusted_ids))
    spf = dkim = dmarc = Check()
    for header in trusted:
        for r in header.results:
            if r.method == "dmarc":
                # Without header.from the result names no domain: it proves nothing about ours.
                domain = _domain_of(r.properties.get("header.from"))
                check = Check(r.result, domain, aligned(domain, from_domain), r.reason)
                if dmarc.result != "pass":
                    dmarc = check
            elif r.method == "dkim":
                domain = _domain_of(r.properties.get("header.d") or r.properties.get("header.i"))
                check = Check(r.result, domain, aligned(domain, from_domain), r.reason)
                if not (dkim.result == "pass" and dkim.aligned) and (check.result == "pass" or dkim.result == "none"):
                    dkim = check
            elif r.method == "spf":
                domain = _domain_of(r.properties.get("smtp.mailfrom") or r.properties.get("smtp.mfrom") or r.properties.get("smtp.helo"))
                check = Check(r.result, domain, aligned(domain, from_domain), r.reason)
                if spf.result != "pass":
                    spf = check
    ok = bool(from_domain) and (
        (dmarc.result == "pass" and dmarc.aligned) or (dkim.result == "pass" and dkim.aligned) or (spf.result == "pass" and spf.aligned)
    )
    if dmarc.result in ("fail", "permerror") and dmarc.aligned:
        ok = False  # the domain's own policy says this mail is not from it
    return AuthVerdict(spf, dkim, dmarc, ok, from_domain, bool(trusted))
