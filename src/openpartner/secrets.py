"""The server secret used for keyed hashes (client IPs, emails).

``SECRET_KEY`` may list several comma-separated secrets: the first one is current, the others are
kept only to recognise values hashed before a rotation. With no ``SECRET_KEY`` the embedded setup
generates one into ``<data_dir>/secret_key`` (mode 0600) on first start.
"""

from __future__ import annotations

import hmac
import os
import secrets
from functools import lru_cache

from openpartner.settings import Settings, get_settings


def server_secrets(settings: Settings) -> list[bytes]:
    if settings.secret_key is not None and settings.secret_key.get_secret_value().strip():
        raw = settings.secret_key.get_secret_value()
        return [part.strip().encode() for part in raw.split(",") if part.strip()]
    path = settings.data_dir / "secret_key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return [path.read_text().strip().encode()]


@lru_cache
def _current() -> bytes:
    return server_secrets(get_settings())[0]


def keyed_hash(value: str, *, purpose: str, secret: bytes | None = None) -> str:
    """HMAC-SHA-256 of ``value`` under the server secret, domain-separated by ``purpose``."""
    key = secret if secret is not None else _current()
    # The one-shot C HMAC: the router hashes every click's IP on its hot path.
    return hmac.digest(key, f"{purpose}:{value}".encode(), "sha256").hex()
