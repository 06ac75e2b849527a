"""URL and domain rules shared by links, programs and the router: no open redirects."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from openpartner.core.errors import ValidationFailed

_DOMAIN = re.compile(
    r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
)
_ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:\d{1,5})?$")
MAX_URL_LENGTH = 2048


def normalize_domain(value: str) -> str:
    domain = value.strip().lower().rstrip(".")
    if not domain or len(domain) > 253 or not _DOMAIN.match(domain):
        raise ValidationFailed(f"{value!r} is not a domain name.", code="invalid_domain")
    return domain


def normalize_origin(value: str) -> str:
    origin = value.strip().lower().rstrip("/")
    if not _ORIGIN.match(origin):
        raise ValidationFailed(
            f"{value!r} is not an origin like https://shop.example.", code="invalid_origin"
        )
    return origin


def host_allowed(host: str, allowed_domains: list[str]) -> bool:
    host = host.lower().rstrip(".")
    for domain in allowed_domains:
        if domain.startswith("*."):
            base = domain[2:]
            if host == base or host.endswith("." + base):
                return True
        elif host == domain:
            return True
    return False


def validate_destination(url: str, allowed_domains: list[str]) -> str:
    """An absolute http(s) URL whose host is on the program's allowed domains."""
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise ValidationFailed("The URL is too long.", code="invalid_url")
    if any(ch in url for ch in "\r\n\t\\") or any(ord(ch) < 0x20 for ch in url):
        raise ValidationFailed("The URL contains forbidden characters.", code="invalid_url")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        raise ValidationFailed(f"{url!r} is not a valid URL.", code="invalid_url") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValidationFailed(f"{url!r} is not an absolute http(s) URL.", code="invalid_url")
    if parts.username is not None or parts.password is not None:
        raise ValidationFailed("URLs with credentials are not allowed.", code="invalid_url")
    if not host_allowed(host, allowed_domains):
        raise ValidationFailed(
            f"{host} is not one of the program's allowed destination domains.",
            code="destination_not_allowed",
        )
    return url
