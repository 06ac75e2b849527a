"""API keys: creation (token shown once), authentication by hash, revocation, bootstrap.

Authentication reads the key once and then remembers the principal, by token hash, for
:data:`KEY_CACHE_TTL` in this process, so a busy client costs no query per request. The price is
the revocation bound: a key revoked in this process stops working at once; revoked elsewhere
(another API worker, the CLI, SQL), it keeps working for at most :data:`KEY_CACHE_TTL`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.accounts.models import ApiKey
from openpartner.accounts.scopes import PARTNER_SCOPES, PUBLISHABLE_SCOPES, SCOPES, Principal
from openpartner.core.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from openpartner.core.ids import new_id, random_token
from openpartner.core.time import utc_now
from openpartner.partners.models import Partner
from openpartner.programs.models import Program

TOKEN_PREFIX = {"secret": "op_sk_", "publishable": "op_pk_"}
ADMIN_KEY_ID = "key_env_admin"
# Writing last_used_at on every request would turn reads into writes; a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(seconds=60)
KEY_CACHE_TTL = timedelta(seconds=5)
"""How long a worker trusts a key it has read: the bound on revocation by another process."""
_KEY_CACHE_MAX = 10_000  # distinct live keys per process before expired entries are swept
_key_cache: dict[str, tuple[Principal, datetime]] = {}
"""token hash -> (principal, expiry). Only keys that authenticated are kept, so unknown tokens
cannot fill it."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    token: str


def create_key(
    session: Session,
    *,
    kind: str,
    scopes: list[str],
    name: str = "",
    is_admin: bool = False,
    program_id: str | None = None,
    partner_id: str | None = None,
) -> CreatedKey:
    """Create a key exactly as asked (the caller's right to ask is :func:`check_grant`'s)."""
    unknown = sorted(set(scopes) - SCOPES.keys())
    if unknown:
        raise ValidationFailed(f"Unknown scopes: {', '.join(unknown)}.", code="unknown_scope")
    if kind == "publishable":
        if is_admin or partner_id is not None or not set(scopes) <= PUBLISHABLE_SCOPES:
            raise ValidationFailed(
                "Publishable keys may only hold visitors:write (record a click, identify a "
                "visitor).",
                code="invalid_publishable_scope",
            )
        if program_id is None:
            raise ValidationFailed(
                "A publishable key must belong to a program.", code="program_required"
            )
        scopes = sorted(PUBLISHABLE_SCOPES)
    if partner_id is not None:
        partner = session.get(Partner, partner_id)
        if partner is None or (program_id is not None and partner.program_id != program_id):
            raise NotFound(f"Partner {partner_id} not found.")
        if partner.status == "revoked":
            raise Conflict("A revoked partner cannot get keys.", code="partner_revoked")
        extra = sorted(set(scopes) - PARTNER_SCOPES)
        if is_admin or extra:
            raise ValidationFailed(
                "A partner's key may only hold "
                f"{', '.join(sorted(PARTNER_SCOPES))}; not {', '.join(extra) or 'admin'}.",
                code="scope_not_allowed_for_partner",
            )
        program_id = partner.program_id
    if program_id is not None and session.get(Program, program_id) is None:
        raise NotFound(f"Program {program_id} not found.")
    token = TOKEN_PREFIX[kind] + random_token(24)
    key = ApiKey(
        id=new_id("key"),
        kind=kind,
        name=name,
        token_hash=hash_token(token),
        display_prefix=token[:10],
        is_admin=is_admin,
        scopes=sorted(set(scopes)),
        program_id=program_id,
        partner_id=partner_id,
    )
    session.add(key)
    session.flush()
    return CreatedKey(key=key, token=token)


def check_grant(
    creator: Principal,
    *,
    kind: str,
    scopes: list[str],
    is_admin: bool,
    program_id: str | None,
    partner_id: str | None,
) -> None:
    """A key may create only keys within its own rights: no wider binding, no scope it lacks,
    admin only from admin. Raises ``Forbidden(code="key_escalation")``."""
    if creator.is_publishable:
        raise Forbidden("Publishable keys cannot create keys.", code="key_escalation")
    if creator.program_id is not None and program_id != creator.program_id:
        raise Forbidden(
            "A program-bound key can only create keys bound to its own program.",
            code="key_escalation",
        )
    if creator.partner_id is not None and (partner_id != creator.partner_id or kind != "secret"):
        raise Forbidden(
            "A partner's key can only create secret keys of the same partner.",
            code="key_escalation",
        )
    if creator.is_admin:
        return
    if is_admin:
        raise Forbidden("Only an admin key can create an admin key.", code="key_escalation")
    wanted = PUBLISHABLE_SCOPES if kind == "publishable" else set(scopes)
    lacking = sorted(s for s in wanted if not creator.has(s))
    if lacking:
        raise Forbidden(
            f"A key cannot grant scopes it does not hold: {', '.join(lacking)}.",
            code="key_escalation",
        )


def known_principal(token: str | None, admin_api_key: str | None) -> Principal | None:
    """The principal of ``token`` when it can be told without the database (the admin key from
    the environment, or a key authenticated less than :data:`KEY_CACHE_TTL` ago); else None,
    and :func:`authenticate` decides."""
    if not token:
        return None
    if admin_api_key and hmac.compare_digest(token.encode(), admin_api_key.encode()):
        return Principal(key_id=ADMIN_KEY_ID, kind="secret", is_admin=True)
    cached = _key_cache.get(hash_token(token))
    if cached is None or cached[1] <= utc_now():
        return None
    return cached[0]


def authenticate(session: Session, token: str | None, admin_api_key: str | None) -> Principal:
    if not token:
        raise Unauthorized("An API key is required.", code="missing_api_key")
    if admin_api_key and hmac.compare_digest(token.encode(), admin_api_key.encode()):
        return Principal(key_id=ADMIN_KEY_ID, kind="secret", is_admin=True)
    if not token.startswith(tuple(TOKEN_PREFIX.values())):
        raise Unauthorized("Invalid API key.")
    # Lookup is by the SHA-256 of a high-entropy token, so timing reveals nothing useful.
    token_hash = hash_token(token)
    key = session.scalar(sa.select(ApiKey).where(ApiKey.token_hash == token_hash))
    if key is None:
        raise Unauthorized("Invalid API key.")
    if key.revoked_at is not None:
        raise Unauthorized("This API key has been revoked.", code="revoked_api_key")
    origins: frozenset[str] = frozenset()
    scopes = frozenset(key.scopes)
    if key.partner_id is not None:
        # Revoking a partner revokes its keys; this catches a key that slipped through (SQL).
        status = session.scalar(sa.select(Partner.status).where(Partner.id == key.partner_id))
        if status != "active":
            raise Unauthorized("This API key has been revoked.", code="revoked_api_key")
        scopes &= PARTNER_SCOPES  # whatever a row says, a partner's key holds no more
    if key.kind == "publishable":
        scopes = PUBLISHABLE_SCOPES
        allowed = session.scalar(
            sa.select(Program.allowed_origins).where(Program.id == key.program_id)
        )
        origins = frozenset(allowed or ())
    now = utc_now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        key.last_used_at = now
    principal = Principal(
        key_id=key.id,
        kind=key.kind,
        is_admin=key.is_admin and key.partner_id is None and key.kind == "secret",
        scopes=scopes,
        program_id=key.program_id,
        partner_id=key.partner_id,
        origins=origins,
    )
    _remember(token_hash, principal, now)
    return principal


def _remember(token_hash: str, principal: Principal, now: datetime) -> None:
    if len(_key_cache) >= _KEY_CACHE_MAX:
        # list(): other threads of the pool add entries meanwhile.
        for stale in [h for h, (_, expiry) in list(_key_cache.items()) if expiry <= now]:
            _key_cache.pop(stale, None)
        if len(_key_cache) >= _KEY_CACHE_MAX:
            _key_cache.clear()
    _key_cache[token_hash] = (principal, now + KEY_CACHE_TTL)


def forget_key(key_id: str) -> None:
    """Stop trusting ``key_id`` in this process at once (other processes: within the TTL)."""
    for token_hash in [h for h, (p, _) in list(_key_cache.items()) if p.key_id == key_id]:
        _key_cache.pop(token_hash, None)


def visible_keys(principal: Principal) -> sa.Select[ApiKey]:
    """The keys ``principal`` may list and revoke: those within its own binding."""
    return sa.select(ApiKey).where(*principal.filters(ApiKey))


def get_visible_key(session: Session, principal: Principal, key_id: str) -> ApiKey:
    key = session.scalar(visible_keys(principal).where(ApiKey.id == key_id))
    if key is None:
        raise NotFound(f"API key {key_id} not found.")
    return key


def revoke_key(session: Session, key: ApiKey, *, env_admin: bool) -> ApiKey:
    """Revoke ``key`` unless it is the last credential that can administer everything (an
    unbound admin key; ``env_admin``: ``ADMIN_API_KEY`` is set and counts as one)."""
    if key.revoked_at is None:
        if _is_install_admin(key) and not env_admin:
            # Locked so that two revocations at once cannot each see the other key as left.
            others = session.scalar(
                sa.select(sa.func.count()).select_from(
                    sa.select(ApiKey.id)
                    .where(
                        ApiKey.is_admin.is_(True),
                        ApiKey.program_id.is_(None),
                        ApiKey.partner_id.is_(None),
                        ApiKey.kind == "secret",
                        ApiKey.revoked_at.is_(None),
                        ApiKey.id != key.id,
                    )
                    .with_for_update()
                    .subquery()
                )
            )
            if not others:
                raise Conflict(
                    "This is the last active admin credential; create another admin key (or "
                    "set ADMIN_API_KEY) before revoking it.",
                    code="last_admin_credential",
                )
        key.revoked_at = utc_now()
    forget_key(key.id)
    return key


def revoke_partner_keys(session: Session, partner_id: str) -> int:
    """Revoke every live key of a partner (when the partner is revoked): at once here, within
    :data:`KEY_CACHE_TTL` in other processes, and never again usable after reinstatement."""
    keys = session.scalars(
        sa.select(ApiKey).where(ApiKey.partner_id == partner_id, ApiKey.revoked_at.is_(None))
    ).all()
    for key in keys:
        key.revoked_at = utc_now()
        forget_key(key.id)
    return len(keys)


def _is_install_admin(key: ApiKey) -> bool:
    return (
        key.is_admin and key.program_id is None and key.partner_id is None and key.kind == "secret"
    )


def ensure_bootstrap_key(session: Session) -> str | None:
    """On the very first start with no admin key anywhere, create one and return its token
    (to be printed once). Returns None when an admin key already exists."""
    exists = session.scalar(
        sa.select(sa.func.count()).select_from(ApiKey).where(ApiKey.is_admin.is_(True))
    )
    if exists:
        return None
    created = create_key(session, kind="secret", scopes=[], name="bootstrap admin", is_admin=True)
    return created.token
