"""The `openpartner` command: `up` (everything, embedded default), `api`, `router`, `migrate`,
`keys`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import click

from openpartner.settings import get_settings


@click.group()
@click.version_option(package_name="openpartner")
def main() -> None:
    """OpenPartner: partner attribution and payouts."""


def prepare() -> None:
    """Make the embedded default ready: data folder, server secret, schema, first admin key."""
    from openpartner.accounts.service import ensure_bootstrap_key
    from openpartner.db.engine import get_engine
    from openpartner.db.migrate import upgrade
    from openpartner.db.session import transaction
    from openpartner.secrets import server_secrets

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server_secrets(settings)
    upgrade(get_engine())
    if settings.admin_api_key is None:
        with transaction() as session:
            token = ensure_bootstrap_key(session)
        if token:
            click.secho(
                "\nFirst start: an admin API key was created. It is shown only once:", bold=True
            )
            click.secho(f"\n    {token}\n", fg="green", bold=True)
            click.echo("Store it now (e.g. export OP_KEY=...); only its hash is kept.\n")


@main.command()
def migrate() -> None:
    """Apply database migrations (DATABASE_URL, default: the SQLite file in DATA_DIR)."""
    from openpartner.db.engine import get_engine
    from openpartner.db.migrate import upgrade

    upgrade(get_engine())
    click.echo("database is up to date")


@main.command()
@click.option("--host", default=None, help="Bind address (API_HOST).")
@click.option("--port", default=None, type=int, help="Port (API_PORT).")
@click.option("--workers", default=None, type=int, help="Worker processes (API_WORKERS).")
def api(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the HTTP API."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "openpartner.api.app:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers or settings.api_workers,
        log_level=settings.log_level,
        proxy_headers=False,
    )


@main.command()
@click.option("--host", default=None, help="Bind address (ROUTER_HOST).")
@click.option("--port", default=None, type=int, help="Port (ROUTER_PORT).")
@click.option("--workers", default=None, type=int, help="Worker processes (ROUTER_WORKERS).")
def router(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the click router (partner links)."""
    from openpartner.router.server import serve

    settings = get_settings()
    serve(
        settings,
        host=host or settings.router_host,
        port=port or settings.router_port,
        workers=workers or settings.router_workers,
    )


# Each entry is one long-running process `up` supervises; later parts add theirs here.
UP_PROCESSES: list[list[str]] = [["api"], ["router"]]


@main.command()
def up() -> None:
    """Start everything on this machine: migrate, then run every process until interrupted."""
    prepare()
    settings = get_settings()
    children = [
        subprocess.Popen([sys.executable, "-m", "openpartner", *args], env=os.environ.copy())  # noqa: S603
        for args in UP_PROCESSES
    ]
    click.echo(f"OpenPartner API on http://{settings.api_host}:{settings.api_port} (docs at /docs)")
    click.echo(f"Click router on http://{settings.router_host}:{settings.router_port}/<link-key>")

    def stop(*_: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        stop()
        for child in children:
            child.wait()
    sys.exit(max((child.returncode or 0) for child in children))


@main.group()
def keys() -> None:
    """Manage API keys from the command line."""


@keys.command("create")
@click.option("--kind", type=click.Choice(["secret", "publishable"]), default="secret")
@click.option("--scope", "scopes", multiple=True, help="Repeat for several scopes.")
@click.option("--admin", is_flag=True, help="Full access.")
@click.option("--program", "program_id", default=None)
@click.option("--name", default="")
def keys_create(
    kind: str, scopes: tuple[str, ...], admin: bool, program_id: str | None, name: str
) -> None:
    """Create an API key and print it once."""
    from openpartner.accounts.service import create_key
    from openpartner.db.session import transaction

    with transaction() as session:
        created = create_key(
            session,
            kind=kind,
            scopes=list(scopes),
            name=name,
            is_admin=admin,
            program_id=program_id,
        )
        token = created.token
    click.echo(token)
