"""The server secret used for keyed hashes (client IPs, emails).

``SECRET_KEY`` may list several comma-separated secrets: the first one is current, the others are
kept only to recognise values hashed before a rotation. With no ``SECRET_KEY`` the embedded setup
generates one into ``<data_dir>/secret_key`` (mode 0600) on first start.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import lru_cache

from openpartner.core.files import open_private, private_dir
from openpartner.settings import Settings, get_settings


def server_secrets(settings: Settings) -> list[bytes]:
    if settings.secret_key is not None and settings.secret_key.get_secret_value().strip():
        raw = settings.secret_key.get_secret_value()
        return [part.strip().encode() for part in raw.split(",") if part.strip()]
    path = settings.data_dir / "secret_key"
    if not path.exists():
        private_dir(settings.data_dir)
        with open_private(path, "x") as handle:
            handle.write(secrets.token_urlsafe(32))
    return [path.read_text().strip().encode()]


@lru_cache
def _current() -> bytes:
    return server_secrets(get_settings())[0]


def keyed_hash(value: str, *, purpose: str, secret: bytes | None = None) -> str:
    """HMAC-SHA-256 of ``value`` under the server secret, domain-separated by ``purpose``."""
    inner, outer = _hmac_pads(secret if secret is not None else _current())
    # HMAC by its definition, from the two pad states hashed once per secret: less than half
    # the CPU of ``hmac.digest``, which re-hashes the pads on every call (the router hashes
    # every click twice on its hot path).
    inner = inner.copy()
    inner.update(f"{purpose}:{value}".encode())
    outer = outer.copy()
    outer.update(inner.digest())
    return outer.hexdigest()


@lru_cache(maxsize=8)
def _hmac_pads(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_SHA256_BLOCK, b"\0")
    return hashlib.sha256(key.translate(hmac.trans_36)), hashlib.sha256(
        key.translate(hmac.trans_5C)
    )


_SHA256_BLOCK = 64
