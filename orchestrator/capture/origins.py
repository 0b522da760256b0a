"""Which sites may use a form, pure (DESIGN section 10).

A browser names the page that sends a request in `Origin` (fetch, XHR, form posts) or, failing
that, `Referer`. A request that names a site the form does not allow is refused outright, whatever
its method or content type: CORS only stops a page from *reading* the answer, and a form-encoded
POST is a "simple request" that is never preflighted, so CORS alone protects nothing. A request
with neither header (a server, a privacy proxy) passes here and meets the token, the honeypot and
the rate limits.

Allowed origins are `scheme://host[:port]`, or `https://*.example.vn` for any subdomain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
PREFLIGHT_MAX_AGE = 600


class OriginInvalid(ValueError):
    pass


def _canonical(scheme: str, host: str, port: int | None) -> str:
    scheme = scheme.lower()
    host = host.lower().rstrip(".")
    shown = f":{port}" if port is not None and port != _DEFAULT_PORTS.get(scheme) else ""
    return f"{scheme}://{host}{shown}"


def origin_of(url: str) -> str | None:
    """`https://Shop.vn:443/x?y` -> `https://shop.vn`; None for anything that is not http(s)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return _canonical(parts.scheme, parts.hostname, port)


def normalize_allowed(value: str) -> str:
    """An allowed origin as the forms API stores it; raises `OriginInvalid`."""
    text = value.strip()
    wildcard = "://*." in text
    candidate = text.replace("://*.", "://", 1) if wildcard else text
    try:
        parts = urlsplit(candidate)
        port = parts.port
    except ValueError as exc:
        raise OriginInvalid("not an origin such as 'https://shop.example.vn'") from exc
    if (
        parts.scheme.lower() not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username
        or "*" in parts.hostname
    ):
        raise OriginInvalid("not an origin such as 'https://shop.example.vn' (no path)")
    if wildcard and "." not in parts.hostname:
        raise OriginInvalid("a wildcard needs a registered domain: 'https://*.example.vn'")
    canonical = _canonical(parts.scheme, parts.hostname, port)
    return canonical.replace("://", "://*.", 1) if wildcard else canonical


def is_allowed(origin: str, allowed: Sequence[str]) -> bool:
    for entry in allowed:
        if entry == origin:
            return True
        if "://*." in entry:
            scheme, _, rest = entry.partition("://*.")
            host_port = origin.removeprefix(f"{scheme}://")
            if host_port != origin and host_port.endswith("." + rest):
                return True
    return False


class Verdict(StrEnum):
    ABSENT = "absent"
    ALLOWED = "allowed"
    REFUSED = "refused"


@dataclass(frozen=True)
class OriginCheck:
    verdict: Verdict
    origin: str | None = None

    @property
    def refused(self) -> bool:
        return self.verdict is Verdict.REFUSED


def check(
    origin_header: str | None, referer_header: str | None, allowed: Sequence[str]
) -> OriginCheck:
    """`Origin` when present (`null` from sandboxed frames and files is present and refused),
    else the origin of `Referer`."""
    if origin_header is not None:
        origin = origin_of(origin_header) if origin_header.strip() != "null" else None
    elif referer_header:
        origin = origin_of(referer_header)
    else:
        return OriginCheck(Verdict.ABSENT)
    if origin is not None and is_allowed(origin, allowed):
        return OriginCheck(Verdict.ALLOWED, origin)
    return OriginCheck(Verdict.REFUSED, origin)


def cors_headers(check_result: OriginCheck) -> dict[str, str]:
    """Only an allowed `Origin` is echoed back; there are no cookies, so no credentials."""
    if check_result.verdict is not Verdict.ALLOWED or check_result.origin is None:
        return {"Vary": "Origin"}
    return {"Access-Control-Allow-Origin": check_result.origin, "Vary": "Origin"}


def preflight_headers(check_result: OriginCheck, methods: str) -> dict[str, str]:
    return {
        **cors_headers(check_result),
        "Access-Control-Allow-Methods": methods,
        "Access-Control-Allow-Headers": "Content-Type",
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE),
    }
