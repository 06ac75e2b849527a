"""The one typed settings object. Every option has a safe default for the embedded setup
(SQLite in ``./data``) and is documented in ``.env.example``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"), description="Local folder for the SQLite file etc."
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL. Empty means sqlite:///<data_dir>/openpartner.db; "
        "postgresql+psycopg://user@host/db switches to PostgreSQL.",
    )
    admin_api_key: SecretStr | None = Field(default=None, description="Bootstrap admin key.")
    secret_key: SecretStr | None = Field(
        default=None,
        description="Server secret for keyed hashes (IPs, emails). Empty: generated once into "
        "<data_dir>/secret_key.",
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = 1
    database_pool_size: int = Field(
        default=10,
        ge=1,
        le=100,
        description="Connections each process keeps open (PostgreSQL). An API worker also runs "
        "at most this many requests' database work at once (SQLite: one, its single writer), "
        "so a thread never waits for a connection and none is opened and closed per request.",
    )
    api_max_concurrent_requests: int = Field(
        default=256,
        ge=1,
        le=100_000,
        description="Requests one API process takes at once (health checks aside). Beyond the "
        "ones doing database work, they wait their turn on the event loop, holding no thread "
        "and no connection; one more is answered 503 overloaded with Retry-After at once.",
    )
    router_host: str = "127.0.0.1"
    router_port: int = 8001
    router_workers: int = 1
    router_flush_interval_ms: int = Field(
        default=100, ge=5, le=100, description="Clicks are written at least this often."
    )
    router_cache_poll_ms: int = Field(
        default=250, ge=20, le=1000, description="How often routers look for link changes."
    )
    router_cache_reload_seconds: int = Field(
        default=300,
        ge=10,
        description="Full link-cache reload, the safety net for edits made outside the API.",
    )
    router_spool_dir: Path | None = Field(
        default=None,
        description="Where clicks wait while the database is unreachable. Empty: <data_dir>/spool.",
    )
    router_spool_max_bytes: int = Field(default=1024**3, ge=1024 * 1024)
    router_write_lock_wait_ms: int = Field(
        default=20_000,
        ge=100,
        le=25_000,
        description="How long a flush waits for its turn to write (router processes take turns) "
        "before its clicks go to the spool.",
    )
    router_buffer_max_clicks: int = Field(
        default=1_000_000, ge=1000, description="Memory guard while a flush is stuck."
    )
    router_ip_rate_limit: int = Field(
        default=600, ge=0, description="Hard cap: requests per client IP per window (0: off)."
    )
    router_ip_rate_window_seconds: int = Field(default=60, ge=1, le=3600)
    router_trusted_proxies: str = Field(
        default="127.0.0.1,::1",
        description="Peers whose X-Forwarded-For is believed (comma-separated IPs).",
    )
    router_country_header: str = Field(
        default="",
        description="Request header carrying an ISO country code, e.g. "
        "cf-ipcountry. Empty: country is not recorded.",
    )
    router_cookie_http_only: bool = True
    router_insecure_localhost_cookies: bool = Field(
        default=False,
        description="Drop Secure on cookies for *.localhost hosts (plain-HTTP development only).",
    )
    redis_url: str = Field(
        default="", description="When set, the router's per-IP cap is shared through Redis."
    )
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    page_size_max: int = Field(default=200, ge=1)
    log_level: str = "info"
    event_max_backdate_days: int = Field(default=30, ge=0, le=3650)
    event_max_future_seconds: int = Field(default=300, ge=0, le=86400)
    stripe_program_id: str = Field(
        default="", description="Program that Stripe events belong to when nothing else says."
    )
    stripe_secret_key: SecretStr | None = Field(
        default=None, description="Stripe secret key (sk_...). Empty: Stripe is not configured."
    )
    stripe_api_base: str = Field(
        default="https://api.stripe.com",
        description="Base URL of the Stripe API; tests point it at the local Stripe server.",
    )
    stripe_webhook_secrets: SecretStr | None = Field(
        default=None,
        description="Webhook signing secrets (whsec_...), comma-separated to rotate: any of "
        "them verifies an incoming event.",
    )
    stripe_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="Connect and read timeout of each Stripe call."
    )

    scheduler_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        le=86400,
        description="How often the worker enqueues scheduled work (payout runs, auto-approval).",
    )

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'openpartner.db').as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
