from __future__ import annotations

from pydantic import Field

from openpartner.api.schemas import RequestModel, ResponseModel


class ClickCreate(RequestModel):
    """A visit the merchant's own site saw (``https://shop.example/?via=<link_key>``)."""

    link_key: str = Field(pattern=r"^[A-Za-z0-9_-]{3,64}$")
    landing_url: str | None = Field(default=None, max_length=2048)
    """The page the visitor landed on; its ``utm_*`` parameters are recorded."""
    referer: str | None = Field(default=None, max_length=2048)
    ip: str | None = Field(default=None, max_length=64)
    """The visitor's IP (secret keys only: a server reporting a visit). Browsers calling with a
    publishable key are the visitor, so their own address is used."""
    user_agent: str | None = Field(default=None, max_length=1024)
    """The visitor's user agent (secret keys only, as ``ip``)."""
    country: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$")


class ClickCookie(ResponseModel):
    name: str
    value: str
    domain: str | None
    """The program's cookie domain; null means a host-only cookie."""
    path: str
    max_age: int
    secure: bool
    http_only: bool
    same_site: str


class ClickCreated(ResponseModel):
    click_id: str
    link_id: str
    partner_id: str
    program_id: str
    cookie: ClickCookie
    """The first-party cookie the merchant's server should set on its response."""
    set_cookie: str
    """The same cookie as a ready ``Set-Cookie`` header value."""
