"""Pure rules of the redirect: where it goes, which cookie it sets, who the client is.

No I/O here; the router compiles each link once (when it enters the cache) so a request only
concatenates strings.
"""

from __future__ import annotations

import socket
from urllib.parse import quote, unquote, urlsplit

# RFC 3986 characters that may stay as they are; everything else (spaces, non-ASCII, quotes,
# angle brackets) is percent-encoded as UTF-8. "%" stays so existing escapes are kept verbatim.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"
MAX_COOKIE_DAYS = 400  # browsers cap cookie lifetimes at 400 days (RFC 6265bis)


def compile_target(destination: str, click_param: str) -> tuple[str, str]:
    """Split a validated destination into ``(prefix, suffix)`` so that
    ``prefix + click_id + suffix`` is the redirect: the destination's own query and fragment
    kept byte for byte, any earlier ``click_param`` removed (one click id, ours), the click id
    added last in the query, before the fragment.
    """
    parts = urlsplit(destination)
    path = quote(parts.path, safe=_PATH_SAFE) or "/"
    kept = [
        item
        for item in parts.query.split("&")
        if item and unquote(item.split("=", 1)[0]) != click_param
    ]
    query = "&".join(quote(item, safe=_QUERY_SAFE) for item in kept)
    prefix = f"{parts.scheme}://{parts.netloc}{path}?{query}{'&' if query else ''}{click_param}="
    suffix = "#" + quote(parts.fragment, safe=_QUERY_SAFE) if parts.fragment else ""
    return prefix, suffix


def host_in_domain(host: str, domain: str) -> bool:
    """Whether a cookie for ``domain`` may be set by ``host`` (the domain or a subdomain)."""
    return host == domain or host.endswith("." + domain)


def request_host(raw: str | None) -> str:
    """The Host header without port, lower-cased; empty when absent or malformed."""
    if not raw:
        return ""
    host = raw.strip().lower()
    if host.startswith("["):  # IPv6 literal
        return host[: host.find("]") + 1] if "]" in host else ""
    return host.rsplit(":", 1)[0] if ":" in host else host


def is_localhost(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


def cookie_header(
    name: str,
    value: str,
    *,
    domain: str | None,
    max_age_days: int,
    secure: bool = True,
    http_only: bool = True,
) -> str:
    """A ``Set-Cookie`` value: first-party, whole site, Lax (sent on the top-level navigation
    from the partner's page), lifetime capped at 400 days."""
    max_age = min(max_age_days, MAX_COOKIE_DAYS) * 86400
    attrs = [f"{name}={value}"]
    if domain:
        attrs.append(f"Domain={domain}")
    attrs += ["Path=/", f"Max-Age={max_age}"]
    if secure:
        attrs.append("Secure")
    if http_only:
        attrs.append("HttpOnly")
    attrs.append("SameSite=Lax")
    return "; ".join(attrs)


def parse_trusted(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def client_ip(peer: str, forwarded_for: str | None, trusted: frozenset[str]) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy, in which case the
    right-most X-Forwarded-For entry that is not itself a trusted proxy (entries further left
    are whatever the client chose to send)."""
    if not forwarded_for or peer not in trusted:
        return peer
    for hop in reversed(forwarded_for.split(",")):
        candidate = canonical_ip(hop.strip())
        if candidate is None:
            return peer
        if candidate not in trusted:
            return candidate
    return peer


def canonical_ip(value: str) -> str | None:
    """The canonical text of an IPv4 or IPv6 address (so one address always hashes the same),
    or None. ``inet_pton`` does in C what ``ipaddress`` does in Python, on every request."""
    try:
        return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, value))
    except OSError:
        pass
    try:
        return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, value))
    except OSError:
        return None
