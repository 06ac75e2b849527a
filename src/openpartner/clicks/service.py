"""The no-redirect flow: a merchant's site reports a partner visit it received itself."""

from __future__ import annotations

import ipaddress
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.accounts.scopes import Principal
from openpartner.clicks.flags import is_bot
from openpartner.clicks.schemas import ClickCreate
from openpartner.clicks.writer import ClickRecord, clean_text, record_clicks, utm_fields
from openpartner.core.errors import Gone, NotFound, ValidationFailed
from openpartner.core.ids import new_id
from openpartner.core.time import utc_now
from openpartner.links.models import Link
from openpartner.programs.models import Program
from openpartner.router.target import MAX_COOKIE_DAYS, cookie_header
from openpartner.secrets import keyed_hash


def register_click(
    session: Session,
    principal: Principal,
    data: ClickCreate,
    *,
    client_ip: str,
    client_user_agent: str | None,
) -> dict[str, Any]:
    """Record a click for ``data.link_key`` (flags computed like the router's) and return the
    click id with the first-party cookie to set."""
    link = session.scalar(sa.select(Link).where(Link.key == data.link_key))
    if link is None:
        raise NotFound(f"No link with key {data.link_key!r}.")
    principal.check_program(link.program_id)
    principal.check_partner(link.partner_id)
    program = session.get_one(Program, link.program_id)
    if link.archived or program.archived:
        raise Gone("This link is no longer active.", code="link_archived")
    if principal.kind == "publishable":
        if data.ip is not None or data.user_agent is not None:
            raise ValidationFailed(
                "Only secret keys may report a visitor's IP or user agent.",
                code="visitor_fields_server_only",
            )
        ip, user_agent = client_ip, client_user_agent
    else:
        ip = _valid_ip(data.ip) if data.ip is not None else client_ip
        user_agent = data.user_agent if data.user_agent is not None else client_user_agent
    landing = clean_text(data.landing_url, 2048)
    click_id = new_id("clk")
    record = ClickRecord(
        click_id,
        link.id,
        link.partner_id,
        link.program_id,
        utc_now(),
        keyed_hash(ip, purpose="ip"),
        keyed_hash(f"{ip}\n{user_agent or ''}", purpose="visitor"),
        clean_text(user_agent, 512),
        clean_text(data.referer, 2048),
        landing,
        *utm_fields(landing.partition("?")[2] if landing else ""),
        data.country.upper() if data.country else None,
        "api",
        is_bot(user_agent),
    )
    record_clicks(session, [record])
    days = min(program.cookie_lifetime_days, MAX_COOKIE_DAYS)
    return {
        "click_id": click_id,
        "link_id": link.id,
        "partner_id": link.partner_id,
        "program_id": link.program_id,
        "cookie": {
            "name": program.cookie_name,
            "value": click_id,
            "domain": program.cookie_domain,
            "path": "/",
            "max_age": days * 86400,
            "secure": True,
            "http_only": True,
            "same_site": "Lax",
        },
        "set_cookie": cookie_header(
            program.cookie_name, click_id, domain=program.cookie_domain, max_age_days=days
        ),
    }


def _valid_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValidationFailed(f"{value!r} is not an IP address.", code="invalid_ip") from None
